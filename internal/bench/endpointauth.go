package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// AuthTarget is issue 17's bound: delivering with an OAuth2 token (cached) or a client
// certificate costs at most 1.2× the CPU per delivery of a plain HTTPS endpoint, connections
// being reused.
const AuthTarget = 1.2

// AuthConfig is the endpoint authentication scenario: one node (SQLite), one HTTPS receiver, and
// an endpoint of each kind (plain, OAuth2 client credentials, mutual TLS) draining a backlog of
// Events, one after the other; the CPU the process spent during each drain, per delivery.
type AuthConfig struct {
	Events      int // per endpoint (default 20,000)
	Concurrency int // each endpoint's max_concurrency (default 10)
	PayloadSize int // bytes of each event's data (default 512)
	Synchronous string
	Logger      *slog.Logger
}

// AuthRun is one kind of endpoint's drain.
type AuthRun struct {
	Kind       string // "plain", "oauth2", "mtls"
	Deliveries int
	Rate       float64       // deliveries per second
	CPU        time.Duration // user+system CPU of the process during the drain
	Tokens     int64         // tokens the token URL issued during the run (oauth2)
	Handshakes int64         // TLS handshakes the receiver saw during the drain
}

// CPUPerDelivery is the drain's CPU divided by its deliveries.
func (r *AuthRun) CPUPerDelivery() time.Duration {
	if r.Deliveries == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Deliveries)
}

// RunEndpointAuth runs the scenario.
func RunEndpointAuth(ctx context.Context, cfg AuthConfig) ([]*AuthRun, error) {
	if cfg.Events <= 0 {
		cfg.Events = 20000
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 10
	}
	if cfg.PayloadSize <= 0 {
		cfg.PayloadSize = 512
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	pki, err := newBenchPKI()
	if err != nil {
		return nil, err
	}
	rc := newAuthReceiver()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	srv := &http.Server{Handler: rc, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{pki.server}, ClientCAs: pki.pool, ClientAuth: tls.VerifyClientCertIfGiven,
			MinVersion: tls.VersionTLS12},
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				rc.conns.Add(1)
			}
		}}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	defer srv.Close()
	base := "https://" + ln.Addr().String()

	api, closeNode, err := startBenchNode(ctx, cfg.Logger, cfg.Synchronous)
	if err != nil {
		return nil, err
	}
	defer closeNode()
	if err := api.post(ctx, "/v1/event-types", `{"name":"bench.happened"}`, http.StatusCreated); err != nil {
		return nil, err
	}
	if _, err := api.must(ctx, "POST", "/v1/tenants", map[string]any{"id": "bench", "name": "Bench"}, http.StatusCreated); err != nil {
		return nil, err
	}
	kinds := []struct {
		kind   string
		config map[string]any
	}{
		{"plain", map[string]any{"tls_ca_bundle": pki.caPEM}},
		{"oauth2", map[string]any{"tls_ca_bundle": pki.caPEM, "auth": "oauth2", "oauth2_token_url": base + "/token",
			"oauth2_client_id": authClientID, "oauth2_client_secret": authClientSecret}},
		{"mtls", map[string]any{"tls_ca_bundle": pki.caPEM, "tls_client_certificate": pki.clientCertPEM, "tls_client_key": pki.clientKeyPEM}},
	}
	data := `{"s":"` + strings.Repeat("x", max(cfg.PayloadSize-8, 1)) + `"}`
	var out []*AuthRun
	for _, k := range kinds {
		// The endpoint only subscribes to its own event type, so that each backlog is its own.
		typ := "bench." + k.kind
		if err := api.post(ctx, "/v1/event-types", `{"name":"`+typ+`"}`, http.StatusCreated); err != nil {
			return nil, err
		}
		ans, err := api.must(ctx, "POST", "/v1/tenants/bench/endpoints", map[string]any{"url": base + "/" + k.kind, "config": k.config,
			"event_types": []string{typ}, "max_concurrency": cfg.Concurrency, "rate_limit": 0.01}, http.StatusCreated)
		if err != nil {
			return nil, fmt.Errorf("%s endpoint: %w", k.kind, err)
		}
		var ep struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(ans, &ep); err != nil || ep.ID == "" {
			return nil, fmt.Errorf("%s endpoint: no id in %s", k.kind, ans)
		}
		for start := 0; start < cfg.Events; start += 100 {
			var b strings.Builder
			b.WriteString(`{"events":[`)
			for i := start; i < min(start+100, cfg.Events); i++ {
				if i > start {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, `{"id":"%s-%d","type":%q,"data":%s}`, k.kind, i, typ, data)
			}
			b.WriteString(`]}`)
			if err := api.post(ctx, "/v1/tenants/bench/events/batch", b.String(), http.StatusAccepted); err != nil {
				return nil, fmt.Errorf("%s backlog: %w", k.kind, err)
			}
		}
		got := rc.counter(k.kind)
		before, tokens, conns := got.Load(), rc.tokens.Load(), rc.conns.Load()
		cpu0, start := processCPU(), time.Now()
		if _, err := api.must(ctx, "PATCH", "/v1/tenants/bench/endpoints/"+ep.ID, map[string]any{"rate_limit": 0}, http.StatusOK); err != nil {
			return nil, err
		}
		last, lastAt := got.Load(), time.Now()
		for got.Load() < int64(cfg.Events) && time.Since(lastAt) < time.Minute {
			if cur := got.Load(); cur != last {
				last, lastAt = cur, time.Now()
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(2 * time.Millisecond):
			}
		}
		run := &AuthRun{Kind: k.kind, Deliveries: int(got.Load() - before), CPU: processCPU() - cpu0,
			Tokens: rc.tokens.Load() - tokens, Handshakes: rc.conns.Load() - conns}
		run.Rate = float64(run.Deliveries) / time.Since(start).Seconds()
		if got.Load() < int64(cfg.Events) {
			return nil, fmt.Errorf("%s: %d of %d delivered within a minute of the last progress (unauthorised: %d)", k.kind, got.Load(), cfg.Events, rc.refused.Load())
		}
		out = append(out, run)
	}
	return out, nil
}

// AuthTable prints the runs with each one's CPU per delivery against the plain endpoint's.
func AuthTable(w io.Writer, runs []*AuthRun) {
	fmt.Fprintln(w, "| endpoint | deliveries | deliveries/s | CPU per delivery | against plain | new TLS connections | tokens issued |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	var plain time.Duration
	for _, r := range runs {
		if r.Kind == "plain" {
			plain = r.CPUPerDelivery()
		}
	}
	for _, r := range runs {
		rel := "-"
		if plain > 0 {
			rel = fmt.Sprintf("%.2f×", float64(r.CPUPerDelivery())/float64(plain))
		}
		fmt.Fprintf(w, "| %s | %d | %.0f | %.1f µs | %s | %d | %d |\n", r.Kind, r.Deliveries, r.Rate,
			float64(r.CPUPerDelivery())/float64(time.Microsecond), rel, r.Handshakes, r.Tokens)
	}
	fmt.Fprintln(w)
	for _, r := range runs {
		if r.Kind == "plain" || plain == 0 {
			continue
		}
		x := float64(r.CPUPerDelivery()) / float64(plain)
		verdict := "met"
		if x > AuthTarget {
			verdict = "NOT met"
		}
		fmt.Fprintf(w, "%s: %.2f× the plain endpoint's CPU per delivery (target ≤ %.1f×: %s)\n", r.Kind, x, AuthTarget, verdict)
	}
}

// processCPU is the user and system CPU this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

const (
	authClientID     = "herald-bench"
	authClientSecret = "bench-client-secret-0123456789"
)

// authReceiver is the HTTPS receiver: /plain takes anything, /oauth2 a token its /token issued,
// /mtls a request that presented a client certificate; /token issues tokens for one hour to the
// bench's client (HTTP Basic or form credentials).
type authReceiver struct {
	mu      sync.Mutex
	issued  map[string]bool
	counts  map[string]*atomic.Int64
	tokens  atomic.Int64
	conns   atomic.Int64
	refused atomic.Int64
}

func newAuthReceiver() *authReceiver {
	return &authReceiver{issued: map[string]bool{}, counts: map[string]*atomic.Int64{
		"plain": {}, "oauth2": {}, "mtls": {}}}
}

func (rc *authReceiver) counter(kind string) *atomic.Int64 { return rc.counts[kind] }

func (rc *authReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	kind := strings.TrimPrefix(r.URL.Path, "/")
	switch kind {
	case "token":
		id, secret, ok := r.BasicAuth()
		if !ok {
			id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
		}
		if subtle.ConstantTimeCompare([]byte(id+":"+secret), []byte(authClientID+":"+authClientSecret)) != 1 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid_client"}`)
			return
		}
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		tok := hex.EncodeToString(b)
		rc.mu.Lock()
		rc.issued[tok] = true
		rc.mu.Unlock()
		rc.tokens.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, tok)
		return
	case "oauth2":
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		rc.mu.Lock()
		valid := ok && rc.issued[tok]
		rc.mu.Unlock()
		if !valid {
			rc.refused.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
	case "mtls":
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			rc.refused.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
	}
	if c := rc.counts[kind]; c != nil {
		c.Add(1)
	}
	w.WriteHeader(http.StatusNoContent)
}

// benchPKI is a CA, the receiver's certificate for 127.0.0.1 and a client certificate, made for
// the run.
type benchPKI struct {
	pool                               *x509.CertPool
	server                             tls.Certificate
	caPEM, clientCertPEM, clientKeyPEM string
}

func newBenchPKI() (*benchPKI, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ca key: %w", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "herald bench CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, ip bool) ([]byte, *ecdsa.PrivateKey, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		if ip {
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		return der, key, err
	}
	srvDER, srvKey, err := leaf(2, "127.0.0.1", x509.ExtKeyUsageServerAuth, true)
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	cliDER, cliKey, err := leaf(3, "herald bench client", x509.ExtKeyUsageClientAuth, false)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	keyPEM := func(k *ecdsa.PrivateKey) (string, error) {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return "", err
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
	}
	cliKeyPEM, err := keyPEM(cliKey)
	if err != nil {
		return nil, fmt.Errorf("client key: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &benchPKI{
		pool:          pool,
		server:        tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey},
		caPEM:         string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})),
		clientCertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cliDER})),
		clientKeyPEM:  cliKeyPEM,
	}, nil
}
