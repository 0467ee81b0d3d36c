// Package node assembles one Herald process: the store, the delivery engine, the API and the HTTP
// server, with their lifecycles. The CLI, the end-to-end tests and the benchmark all start Herald
// through it, so they exercise the same wiring.
package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/dispatch"
	"github.com/heraldhq/herald/internal/httpsend"
	"github.com/heraldhq/herald/internal/inbound"
	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/internal/ops"
	"github.com/heraldhq/herald/internal/outboxrelay"
	"github.com/heraldhq/herald/internal/redact"
	"github.com/heraldhq/herald/internal/seal"
	"github.com/heraldhq/herald/internal/source"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/postgres"
	"github.com/heraldhq/herald/internal/store/sqlite"
	"github.com/heraldhq/herald/internal/telemetry"
	"github.com/heraldhq/herald/internal/ui"
)

// DefaultAddr is where Herald listens unless told otherwise: loopback only, so a first start
// exposes nothing.
const DefaultAddr = "127.0.0.1:8080"

// Version is Herald's version, set at build time with -ldflags "-X ...node.Version=...".
var Version = "0.1.0-dev"

// Config is everything a node needs; zero values take the defaults.
type Config struct {
	Addr    string // listen address; default DefaultAddr
	DataDir string // SQLite store directory; default ./herald-data
	// DatabaseURL, when set, selects the PostgreSQL store instead of SQLite: several nodes may
	// then share one database. DatabaseSchema optionally names the schema to use.
	DatabaseURL    string
	DatabaseSchema string
	// NoMigrate makes a node on PostgreSQL refuse to start on a database that lacks migrations,
	// rather than apply them (herald migrate does).
	NoMigrate bool
	// Dev allows plain-HTTP and loopback endpoints, for local work.
	Dev bool
	// AllowCIDRs are private ranges every endpoint may reach (--allow-cidr).
	AllowCIDRs []netip.Prefix
	// InternalCIDRs are private ranges only endpoints marked internal may reach
	// (--internal-cidr); internal endpoints may also use plain http://.
	InternalCIDRs []netip.Prefix
	// APIKey, when set, is an admin key to accept (stored hashed). Without it, a first start
	// creates one and reports it through OnAdminKey.
	APIKey     string
	OnAdminKey func(key string)
	// MaxEventBytes bounds one event (default 256 KiB).
	MaxEventBytes int
	// Retention deletes events older than this (0: the default, 30 days; negative keeps everything).
	Retention time.Duration
	// AuditRetention deletes audit log entries older than this (0: the default, 365 days;
	// negative keeps everything).
	AuditRetention time.Duration
	// SQLiteSynchronous is the SQLite synchronous pragma (default FULL).
	SQLiteSynchronous string
	// Limits bound endpoints per tenant and deliveries per publish request (zero fields: the
	// store's defaults, store.DefaultMaxEndpoints and store.DefaultMaxDeliveries).
	Limits store.Limits
	// Encryption says where the master key that encrypts endpoint secrets at rest comes from;
	// when it names none, a key file in DataDir, created on first start (see rekey.go).
	Encryption seal.Config
	Dispatch   dispatch.Config
	// APILimits are the API's request rate limits (api.RateLimits; the zero value: none; herald
	// serve applies api.DefaultRateLimits).
	APILimits api.RateLimits
	// MaxListenStreams bounds the listen streams open at once on this node, and
	// MaxListenStreamsPerKey those of one API key (0: api.DefaultMaxListenStreams and
	// api.DefaultMaxListenStreamsPerKey).
	MaxListenStreams int
	// BulkShare is the share of the time large publishes may take while small publishes flow
	// (api.Config.BulkShare; 0: api.DefaultBulkShare, 1: no bound).
	BulkShare              float64
	MaxListenStreamsPerKey int
	// TLSCertFile and TLSKeyFile (PEM), both set, make the API serve HTTPS instead of HTTP.
	TLSCertFile string
	TLSKeyFile  string
	// TLSClientCAFile (PEM), with TLSCertFile, makes the listener ask for client certificates
	// and verify those given against these CAs, for sources that require one (never required
	// at the handshake: the API and other sources do without).
	TLSClientCAFile string
	// TrustedProxies are the proxies whose forwarded client certificate headers (Envoy's
	// X-Forwarded-Client-Cert, nginx's X-SSL-Client-Verify/-Cert) sources believe.
	TrustedProxies []netip.Prefix
	// TLSConfig for outbound requests (tests trust their own CA with it).
	HTTPSend httpsend.Config
	Logger   *slog.Logger
	// Metrics tunes the Prometheus metrics served, without authentication, at GET /metrics on
	// the API's listener; NoMetrics turns them off. See docs/observability.md.
	Metrics   metrics.Options
	NoMetrics bool
	// PublicURL is the base URL senders reach this node at ("https://hooks.example.com"): the
	// API shows source URLs under it. Empty: the scheme and host of the API request that asks.
	PublicURL string
	// WebhookOrigin is the WebHook-Request-Origin of the CloudEvents handshake Herald performs
	// before delivering to a CloudEvents endpoint (a DNS name receivers allow); default: the
	// host of PublicURL, else this machine's host name.
	WebhookOrigin string
	// MaxInboundBytes bounds the body of a request received on a source that sets no limit
	// (default 1 MiB).
	MaxInboundBytes int
	// Tracing says where OpenTelemetry spans are exported (none by default). TracerProvider,
	// when set, is used instead (tests record spans with it); the node does not shut it down.
	Tracing        telemetry.Config
	TracerProvider trace.TracerProvider
	// Ops turns on operational webhooks: events about Herald itself, published to Ops.Tenant
	// (see docs/observability.md). Store and Logger are the node's.
	Ops ops.Config
	// CertificateCheck is how often the node looks for webhook client certificates expiring
	// within 14 days, to publish endpoint.certificate_expiring (with Ops on); default
	// DefaultCertificateCheck.
	CertificateCheck time.Duration
	// BrokerMaxConnections bounds the connections each message broker destination type holds
	// open at once, over all endpoints (0: destination.DefaultMaxConnections).
	BrokerMaxConnections int
	// Destinations are destination types the node has beyond its own (destinations.go), for
	// tests.
	Destinations []func(destination.Env) destination.Type
	// Sources are broker source types to run beside the built-in ones (tests add their own);
	// BrokerSourcePoll is how often the node reads the broker sources again to follow changes
	// made through other nodes (default 5 s).
	Sources          []func(source.Env) source.Type
	BrokerSourcePoll time.Duration
}

// Node is a running Herald process.
type Node struct {
	Store      store.Store
	Dispatcher *dispatch.Dispatcher
	API        *api.Server
	Addr       string // the address actually listened on
	scheme     string // "http", or "https" with a certificate
	log        *slog.Logger
	srv        *http.Server
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	runErr     error
	tracing    *telemetry.Tracing

	// Metrics is nil with NoMetrics.
	Metrics *metrics.Metrics
	// Inbound serves /in/{token}, the sources' URLs.
	Inbound *inbound.Service
}

// Start opens the store, starts the engine and serves the API. Stop it with Close.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.DataDir == "" {
		cfg.DataDir = "herald-data"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Retention == 0 {
		cfg.Retention = 30 * 24 * time.Hour
	}
	log := cfg.Logger
	publicURL, err := checkPublicURL(cfg.PublicURL)
	if err != nil {
		return nil, err
	}
	cfg.PublicURL = publicURL
	if err := cfg.HTTPSend.Validate(); err != nil {
		return nil, err
	}
	keys, err := loadKeys(cfg)
	if err != nil {
		return nil, err
	}
	st, pg, err := openStore(ctx, cfg, keys)
	if err != nil {
		return nil, err
	}
	if err := ensureAdminKey(ctx, st, cfg); err != nil {
		_ = st.Close()
		return nil, err
	}
	// Attempt responses are redacted by their tenant's setting on their way into the store.
	st = redact.NewStore(st, 10*time.Second)
	hc := cfg.HTTPSend
	hc.AllowHTTP = hc.AllowHTTP || cfg.Dev
	hc.AllowLoopback = hc.AllowLoopback || cfg.Dev
	hc.AllowCIDRs = append(hc.AllowCIDRs, cfg.AllowCIDRs...)
	if hc.UserAgent == "" {
		hc.UserAgent = "Herald-Webhooks/" + Version + " (+https://github.com/heraldhq/herald)"
	}
	client := httpsend.New(hc)
	// Endpoints an admin marked internal get a client of their own, whose guard also admits
	// --internal-cidr: one shared guard would open those ranges to every endpoint.
	ihc := hc
	ihc.AllowHTTP = true
	// Internal endpoints are on the operator's network: --egress-proxy (the way out to the
	// internet) is not theirs; an internal endpoint may still name a proxy of its own.
	ihc.Proxy, ihc.ProxyEnforcing = "", false
	ihc.AllowCIDRs = append(append([]netip.Prefix(nil), hc.AllowCIDRs...), cfg.InternalCIDRs...)
	internalClient := httpsend.New(ihc)
	dc := cfg.Dispatch
	// The SQLite store belongs to this process alone, so leases left at start are a crashed run's;
	// on PostgreSQL they may be other nodes' and expire on their own.
	dc.ReleaseClaimsAtStart = pg == nil
	if pg != nil && dc.QueueDepth == 0 {
		// A claim on PostgreSQL is a round trip (a few ms on a loaded machine, against tens of µs
		// for SQLite's in-process read): deeper queues amortise it. Leases stay short either
		// way, as they are renewed.
		dc.QueueDepth = 32
	}
	dc.Logger = log
	var m *metrics.Metrics
	if !cfg.NoMetrics {
		m = metrics.New(cfg.Metrics)
		m.WatchOldestPending(st.DueEndpoints, 10*time.Second)
	}
	dc.Metrics = m
	dc.InternalClient = internalClient
	dests, err := destinations(cfg, log, client, internalClient)
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	dc.Destinations = dests
	tracing, tp, err := setupTracing(ctx, cfg)
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			_ = tracing.Shutdown(context.WithoutCancel(ctx))
		}
	}()
	opsCfg := cfg.Ops
	opsCfg.Store, opsCfg.Logger = st, log
	opsPub := ops.New(opsCfg)
	if err := opsPub.Register(ctx); err != nil {
		_ = st.Close()
		return nil, err
	}
	dc.TracerProvider, dc.Ops = tp, opsPub
	d := dispatch.New(st, client, dc)
	brokers, sourceTypes, err := startBrokerSources(cfg, st, source.Env{Dial: client.DialContext, InternalDial: internalClient.DialContext,
		Logger: log.With("component", "broker-sources")}, m, opsPub, log)
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	in := inbound.New(inbound.Config{Store: st, Notifier: d, Logger: log, Metrics: m, MaxBodyBytes: cfg.MaxInboundBytes,
		TracerProvider: tp, Ops: opsPub, TrustedProxies: cfg.TrustedProxies})
	// Received requests are replayed through rep: a broker source's held messages by the broker
	// sources' publisher, built once the API is (its BuildEvent checks their events).
	rep := &replayer{in: in, st: st}
	a := api.New(api.Config{
		Store: st, Notifier: d, URLCheck: client, InternalURLCheck: internalClient, Destinations: dests, Logger: log, Version: Version, MaxEventBytes: cfg.MaxEventBytes, Limits: cfg.Limits, Retention: cfg.Retention,
		RateLimits: cfg.APILimits, MaxListenStreams: cfg.MaxListenStreams, MaxListenStreamsPerKey: cfg.MaxListenStreamsPerKey, BulkShare: cfg.BulkShare, Metrics: m, Inbound: rep, PublicURL: cfg.PublicURL, TracerProvider: tp,
		PortalKey: keys.Derive("herald portal link v1"),
		// Feed and listen cursors are sealed with the keyring, so every node opens every node's.
		CursorKeys: keys,
		// An API body takes its time by its size (api.DefaultBodyMinRate); the answer then gets
		// the whole write window.
		AnswerTimeout: serverWriteTimeout,
		SourceTypes:   sourceTypes, BrokerSourcesChanged: brokers.changed,
	})
	dashboard, err := ui.New(ui.Config{Version: Version})
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	// Sources' URLs sit beside the API, outside its authentication: the sender proves itself by
	// the source's verification instead.
	mux := http.NewServeMux()
	if m != nil {
		mux.Handle("GET /metrics", m.Handler())
	}
	mux.Handle("/in/", in)
	mux.Handle("/ui/", dashboard)
	// A browser pointed at the server's address lands on the dashboard.
	mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
	mux.Handle("/", a)
	var handler http.Handler = mux
	srvTLS, err := serverTLS(cfg.TLSCertFile, cfg.TLSKeyFile, cfg.TLSClientCAFile)
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n := &Node{Store: st, Dispatcher: d, API: a, Inbound: in, Metrics: m, Addr: ln.Addr().String(), scheme: "http", log: log, cancel: cancel,
		tracing: tracing}
	// Every phase of a request is bounded, so a slow or stalled client holds a connection for
	// seconds, not forever: headers within 5 s (slowloris), the whole request within 30 s, the
	// answer within 60 s, and an idle keep-alive for 2 min. An API request's body is the
	// exception: the API moves the read deadline on as the body arrives (10 s, plus 1 s per
	// 64 KiB: a 32 MiB batch on a slow link may take minutes) and then gives the answer 60 s.
	n.srv = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      serverWriteTimeout,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		TLSConfig:         srvTLS,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// Listen streams never end by themselves: Shutdown would wait for them until it gave up.
	n.srv.RegisterOnShutdown(a.StopStreams)
	if srvTLS != nil {
		n.scheme = "https"
		ln = tls.NewListener(ln, srvTLS)
	}
	if pg != nil {
		// Other nodes' publishes wake this node's lanes at once; after a reconnect (nil) the
		// dispatcher scans for work it may have missed.
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			err := pg.Listen(runCtx, func(ids []string) {
				if ids == nil {
					d.Rescan()
					return
				}
				d.Notify(ids...)
			})
			if err != nil && runCtx.Err() == nil {
				log.Error("listen for new deliveries", "err", err)
			}
		}()
	}
	if pg != nil {
		// Events that applications wrote to the outbox in their own transactions (docs/outbox.md).
		n.wg.Go(func() {
			_ = outboxrelay.Run(runCtx, outboxrelay.Config{Store: pg, Build: a.BuildEvent, Notify: d.Notify, Logger: log, Metrics: m})
		})
	}
	// Broker sources: every node consumes each enabled one (internal/source). After the API is
	// built: their events are checked by its BuildEvent.
	rep.pub = &brokerPublisher{st: st, build: a.BuildEvent, notify: d.Notify, m: m, now: time.Now}
	brokers.mgr = source.NewManager(source.Config{Types: sourceTypes.Types(), Reporter: brokers, Member: brokers.node,
		Logger: log.With("component", "broker-sources"), Publisher: rep.pub})
	n.wg.Go(func() {
		brokers.run(runCtx)
		// The consumers have stopped: the types' own connections go.
		if err := sourceTypes.Close(); err != nil {
			log.Warn("close broker source types", "err", err)
		}
	})
	n.wg.Add(4)
	go func() {
		defer n.wg.Done()
		opsPub.Run(runCtx, d)
	}()
	go func() {
		defer n.wg.Done()
		if err := d.Run(runCtx); err != nil {
			log.Error("dispatcher stopped", "err", err)
			n.runErr = err
		}
	}()
	go func() {
		defer n.wg.Done()
		if err := n.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "err", err)
		}
	}()
	go func() {
		defer n.wg.Done()
		n.retain(runCtx, cfg.Retention, cfg.AuditRetention)
	}()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.rekeyAtStart(runCtx)
	}()
	certs := &certWatch{st: st, ops: opsPub, log: log, every: cfg.CertificateCheck, now: time.Now}
	n.wg.Go(func() { certs.run(runCtx) })
	storeDesc := "sqlite:" + filepath.Join(cfg.DataDir, "herald.db")
	if pg != nil {
		storeDesc = "postgres"
	}
	started = true
	log.Info("herald is serving", "addr", n.Addr, "tls", srvTLS != nil, "store", storeDesc, "dev", cfg.Dev, "version", Version)
	return n, nil
}

// checkPublicURL validates --public-url and returns it without a trailing slash.
func checkPublicURL(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", fmt.Errorf("public URL %q: %w", s, err)
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "":
		return "", fmt.Errorf("public URL %q: want http(s)://host[:port][/path]", s)
	case u.User != nil, u.RawQuery != "", u.ForceQuery, u.Fragment != "":
		return "", fmt.Errorf("public URL %q: must not contain credentials, a query or a fragment", s)
	}
	return strings.TrimRight(s, "/"), nil
}

// URL is the base URL of the API.
func (n *Node) URL() string { return n.scheme + "://" + n.Addr }

// serverTLS loads the API's certificate; it is nil (plain HTTP) when neither file is given. The
// files are read once at start: restart to serve a renewed certificate.
func serverTLS(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	if certFile == "" && keyFile == "" {
		if clientCAFile != "" {
			return nil, errors.New("client certificates (--tls-client-ca) need HTTPS (--tls-cert and --tls-key)")
		}
		return nil, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, errors.New("HTTPS needs both a certificate and its key (--tls-cert and --tls-key)")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load the TLS certificate: %w", err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2", "http/1.1"},
	}
	if clientCAFile != "" {
		pemCAs, err := os.ReadFile(clientCAFile)
		if err != nil {
			return nil, fmt.Errorf("read the client CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemCAs) {
			return nil, fmt.Errorf("the client CA file %s holds no PEM certificate", clientCAFile)
		}
		// Asked for, verified when given, required by no handshake: the sources that require
		// one check that it was given (inbound, clientcert.go).
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// Close stops accepting requests, lets in-flight API calls and attempts finish, and closes the store.
func (n *Node) Close(ctx context.Context) error {
	err := n.srv.Shutdown(ctx)
	n.cancel()
	n.wg.Wait()
	// After the engine stopped: the last attempts' spans are exported too. A collector that is
	// down costs those spans, not a failed shutdown.
	if terr := n.tracing.Shutdown(ctx); terr != nil {
		n.log.Warn("export the last spans", "err", terr)
	}
	return errors.Join(err, n.runErr, n.Store.Close())
}

// setupTracing is the node's tracer provider: the one Config gives, or the OTLP exporter
// Config.Tracing configures (which the node shuts down), or none.
func setupTracing(ctx context.Context, cfg Config) (*telemetry.Tracing, trace.TracerProvider, error) {
	if cfg.TracerProvider != nil {
		return nil, cfg.TracerProvider, nil
	}
	tc := cfg.Tracing
	if tc.Version == "" {
		tc.Version = Version
	}
	t, err := telemetry.Setup(ctx, tc, os.Getenv)
	if err != nil {
		return nil, nil, err
	}
	return t, t.Provider, nil
}

// envKeyName marks the key that HERALD_API_KEY provides.
const envKeyName = "from HERALD_API_KEY"

// serverWriteTimeout is how long an answer may take to be written: the HTTP server's WriteTimeout,
// and the API's AnswerTimeout, counted from when an API request's body is in.
const serverWriteTimeout = 60 * time.Second

// ensureAdminKey makes sure an admin can get in: the key from --api-key / HERALD_API_KEY when one
// is given (replacing the one an earlier value gave), otherwise a new key when no admin key is
// left, reported once through OnAdminKey.
// openStore opens PostgreSQL when a database URL is configured, the embedded SQLite otherwise.
func openStore(ctx context.Context, cfg Config, keys *seal.Keyring) (store.Store, *postgres.Store, error) {
	if cfg.DatabaseURL != "" {
		pg, err := postgres.Open(ctx, cfg.DatabaseURL, postgres.Options{Schema: cfg.DatabaseSchema, Notify: true, NoMigrate: cfg.NoMigrate, Keys: keys, Limits: cfg.Limits})
		if err != nil {
			return nil, nil, err
		}
		return pg, pg, nil
	}
	st, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "herald.db"), sqlite.Options{Synchronous: cfg.SQLiteSynchronous, Keys: keys, Limits: cfg.Limits, Logger: cfg.Logger})
	if err != nil {
		return nil, nil, err
	}
	return st, nil, nil
}

func ensureAdminKey(ctx context.Context, st store.Store, cfg Config) error {
	keys, err := st.ListAPIKeys(ctx)
	if err != nil {
		return err
	}
	if cfg.APIKey != "" {
		if len(cfg.APIKey) < 16 {
			return errors.New("the admin API key (--api-key, HERALD_API_KEY) must be at least 16 characters")
		}
		hash := api.HashKey(cfg.APIKey)
		for _, k := range keys {
			if bytes.Equal(k.Hash, hash) {
				if k.RevokedAt != nil {
					return errors.New("the admin API key given by --api-key / HERALD_API_KEY was revoked; choose another")
				}
				return nil
			}
		}
		// A new value replaces the key an earlier value gave.
		for _, k := range keys {
			if k.Name == envKeyName && k.RevokedAt == nil {
				if err := st.RevokeAPIKey(ctx, k.ID); err != nil {
					return fmt.Errorf("revoke the previous HERALD_API_KEY: %w", err)
				}
			}
		}
		k := &store.APIKey{ID: fmt.Sprintf("key_env_%x", hash[:6]), Name: envKeyName, Role: store.RoleAdmin, Hash: hash,
			Prefix: cfg.APIKey[:min(len(cfg.APIKey), 14)], CreatedAt: time.Now().UTC()}
		if err := st.CreateAPIKey(ctx, k); err != nil {
			// Nodes starting together with the same key race to store it: the loser finds it stored.
			if errors.Is(err, store.ErrConflict) {
				if _, err := st.APIKeyByHash(ctx, hash); err == nil {
					return nil
				}
			}
			return fmt.Errorf("store HERALD_API_KEY: %w", err)
		}
		return nil
	}
	for _, k := range keys {
		if k.Role == store.RoleAdmin && k.RevokedAt == nil {
			return nil
		}
	}
	secret, k, err := api.NewKey(store.RoleAdmin, "", "created at start: no admin key was left", time.Now().UTC())
	if err != nil {
		return err
	}
	if err := st.CreateAPIKey(ctx, k); err != nil {
		return fmt.Errorf("store admin key: %w", err)
	}
	if cfg.OnAdminKey != nil {
		cfg.OnAdminKey(secret)
	}
	return nil
}

// retain deletes old events in small batches, so that the writer is never held for long.
func (n *Node) retain(ctx context.Context, keep, keepAudit time.Duration) {
	if keepAudit == 0 {
		keepAudit = 365 * 24 * time.Hour
	}
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if keep >= 0 && !n.deleteInBatches(ctx, "retention", func() (int, error) {
			return n.Store.DeleteOlderThan(ctx, time.Now().Add(-keep), 500)
		}) {
			return
		}
		if keepAudit >= 0 && !n.deleteInBatches(ctx, "audit retention", func() (int, error) {
			return n.Store.DeleteAuditOlderThan(ctx, time.Now().Add(-keepAudit), 500)
		}) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// deleteInBatches calls del, which deletes at most 500 rows, until it deletes fewer, pausing
// between batches. It reports false when ctx ended.
func (n *Node) deleteInBatches(ctx context.Context, what string, del func() (int, error)) bool {
	for {
		deleted, err := del()
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			n.log.Error(what, "err", err)
			return true
		}
		if deleted < 500 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}
