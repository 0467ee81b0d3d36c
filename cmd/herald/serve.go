package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/dispatch"
	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/internal/store"
)

func serveCmd() *cobra.Command {
	var (
		cfg            node.Config
		allowCIDRs     []string
		internalCIDRs  []string
		trustedProxies []string
		logFormat      string
		logLevel       string
		checkLimits    func(*slog.Logger) error
		pprofAddr      string
		pprofRemote    bool
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run Herald: the API and the delivery engine",
		Long: `Run Herald on an embedded SQLite store. Every flag can also be set with an environment
variable: HERALD_ and the flag's name in capitals, dashes as underscores (HERALD_DATA_DIR).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := bindEnv(cmd.Flags()); err != nil {
				return err
			}
			encryptionEnv(&cfg.Encryption)
			if err := checkPostgresKey(cmd.Flags(), &cfg); err != nil {
				return err
			}
			// Without --otlp-endpoint, the exporter follows the standard OTEL_EXPORTER_OTLP_* variables.
			cfg.Tracing.FromEnv = true
			log, err := newLogger(logFormat, logLevel)
			if err != nil {
				return err
			}
			for _, c := range allowCIDRs {
				p, err := netip.ParsePrefix(c)
				if err != nil {
					return fmt.Errorf("--allow-cidr %q: %w", c, err)
				}
				cfg.AllowCIDRs = append(cfg.AllowCIDRs, p)
			}
			for _, c := range trustedProxies {
				p, err := netip.ParsePrefix(c)
				if err != nil {
					return fmt.Errorf("--trusted-proxy-cidr %q: %w", c, err)
				}
				cfg.TrustedProxies = append(cfg.TrustedProxies, p)
			}
			for _, c := range internalCIDRs {
				p, err := netip.ParsePrefix(c)
				if err != nil {
					return fmt.Errorf("--internal-cidr %q: %w", c, err)
				}
				cfg.InternalCIDRs = append(cfg.InternalCIDRs, p)
			}
			cfg.Logger = log
			if cfg.Retention == 0 {
				cfg.Retention = -1 // --retention 0 keeps everything
			}
			if cfg.AuditRetention == 0 {
				cfg.AuditRetention = -1 // likewise
			}
			cfg.OnAdminKey = func(key string) {
				fmt.Fprintf(os.Stderr, "\nCreated an admin API key. It is shown once and stored only as a hash:\n\n    %s\n\n", key)
			}
			if cfg.Dev {
				log.Warn("dev mode: plain-HTTP and loopback endpoints are allowed; do not use in production")
			}
			if err := checkLimits(log); err != nil {
				return err
			}
			if cfg.BrokerMaxConnections < 1 {
				return fmt.Errorf("--broker-max-connections %d: want at least 1", cfg.BrokerMaxConnections)
			}
			if cfg.MaxListenStreams < 1 || cfg.MaxListenStreamsPerKey < 1 {
				return fmt.Errorf("--max-listen-streams %d, --max-listen-streams-per-key %d: want at least 1", cfg.MaxListenStreams, cfg.MaxListenStreamsPerKey)
			}
			if pprofAddr != "" {
				p, err := startPprof(pprofAddr, pprofRemote, log)
				if err != nil {
					return err
				}
				defer p.stop()
			}
			ctx := cmd.Context()
			n, err := node.Start(ctx, cfg)
			if err != nil {
				return err
			}
			<-ctx.Done()
			log.Info("shutting down: finishing in-flight requests and attempts")
			shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return n.Close(shutdown)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Addr, "addr", node.DefaultAddr, "address to listen on")
	f.StringVar(&cfg.DataDir, "data-dir", "herald-data", "directory of the embedded SQLite store and of the default encryption key file (with --database-url, only used when given)")
	f.StringVar(&cfg.DatabaseURL, "database-url", "", "PostgreSQL URL (postgres://…): use PostgreSQL instead of SQLite, so several nodes can share the work")
	f.StringVar(&cfg.DatabaseSchema, "database-schema", "", "PostgreSQL schema for Herald's tables (created if missing)")
	f.BoolVar(&cfg.NoMigrate, "no-migrate", false, "on PostgreSQL, do not apply schema migrations at start: refuse to start if any is missing (run herald migrate)")
	f.BoolVar(&cfg.Dev, "dev", false, "allow plain-HTTP and loopback endpoints (local development only)")
	f.StringSliceVar(&allowCIDRs, "allow-cidr", nil, "private networks endpoints may reach (e.g. 10.1.0.0/16); repeatable")
	f.StringSliceVar(&internalCIDRs, "internal-cidr", nil, "private networks only endpoints an admin marked internal may reach, over http or https (e.g. 10.2.0.0/16); repeatable")
	f.StringVar(&cfg.HTTPSend.Proxy, "egress-proxy", "", "send webhooks through this outbound proxy: http://, https:// or socks5://[user:password@]host[:port] (endpoints may override it); Herald still checks each destination and asks the proxy for the checked address")
	f.BoolVar(&cfg.HTTPSend.ProxyEnforcing, "egress-proxy-enforcing", false, "--egress-proxy enforces the SSRF rules itself: hand it host names instead of resolving and checking them here (see docs/endpoints-auth.md)")
	f.StringVar(&cfg.APIKey, "api-key", "", "an admin API key to accept (otherwise one is created at first start)")
	f.IntVar(&cfg.MaxEventBytes, "max-event-bytes", event.DefaultMaxBytes, "largest event accepted, in bytes")
	checkLimits = apiLimitFlags(f, &cfg.APILimits)
	f.Float64Var(&cfg.BulkShare, "bulk-share", api.DefaultBulkShare, "share of the time large publishes (bodies over 64 KiB, one at a time) may take while small publishes flow, so that they never crowd out the small ones (1: no bound)")
	f.IntVar(&cfg.MaxListenStreams, "max-listen-streams", api.DefaultMaxListenStreams, "listen streams (GET /v1/tenants/{tenant}/listen) this node holds open at once, over all keys")
	f.IntVar(&cfg.MaxListenStreamsPerKey, "max-listen-streams-per-key", api.DefaultMaxListenStreamsPerKey, "listen streams one API key may hold open at once")
	f.IntVar(&cfg.Limits.MaxEndpoints, "max-endpoints-per-tenant", store.DefaultMaxEndpoints, "endpoints a tenant may have, unless an admin sets the tenant's max_endpoints")
	f.IntVar(&cfg.Limits.MaxDeliveries, "max-deliveries-per-request", store.DefaultMaxDeliveries, "deliveries one publish request may create (events × the endpoints each goes to); a request over it is refused whole")
	f.IntVar(&cfg.Limits.MaxSources, "max-sources-per-tenant", store.DefaultMaxSources, "sources (receiving) a tenant may have")
	f.StringVar(&cfg.PublicURL, "public-url", "", "base URL senders reach Herald at (https://hooks.example.com), shown in sources' URLs; default: the scheme and host of the API request")
	f.StringVar(&cfg.WebhookOrigin, "webhook-origin", "", "WebHook-Request-Origin of the CloudEvents handshake sent before delivering to CloudEvents endpoints (a DNS name receivers allow); default: the host of --public-url, else the host name")
	f.StringVar(&cfg.TLSCertFile, "tls-cert", "", "PEM certificate (chain) to serve the API over HTTPS; needs --tls-key")
	f.StringVar(&cfg.TLSKeyFile, "tls-key", "", "PEM private key of --tls-cert")
	f.StringVar(&cfg.TLSClientCAFile, "tls-client-ca", "", "PEM CA certificates to verify client certificates against, for sources that require one (asked for, never required by the listener); needs --tls-cert")
	f.StringSliceVar(&trustedProxies, "trusted-proxy-cidr", nil, "proxies (CIDRs) whose forwarded client certificate headers (X-Forwarded-Client-Cert, X-SSL-Client-Verify/-Cert) sources requiring one believe; repeatable")
	f.DurationVar(&cfg.Retention, "retention", 30*24*time.Hour, "delete events, deliveries and attempts older than this (0 keeps everything)")
	f.DurationVar(&cfg.AuditRetention, "audit-retention", 365*24*time.Hour, "delete audit log entries older than this (0 keeps everything)")
	encryptionFlag(f, &cfg.Encryption)
	f.StringVar(&cfg.SQLiteSynchronous, "sqlite-synchronous", "FULL", "SQLite synchronous pragma: FULL survives power loss, NORMAL only crashes")
	f.IntVar(&cfg.Dispatch.MaxInFlight, "max-in-flight", dispatch.DefaultMaxInFlight, "attempts in flight at once over all endpoints")
	f.IntVar(&cfg.Dispatch.MaxInFlightPerTenant, "max-in-flight-per-tenant", 0, "attempts in flight and queued at once for one tenant's endpoints together (0: half of --max-in-flight)")
	f.DurationVar(&cfg.Dispatch.LeaseMargin, "lease-margin", 30*time.Second, "added to an endpoint's timeout to make a claim's lease (renewed every third of it while the claim is held); on PostgreSQL, a dead node's claims are taken over by its missed heartbeats, sooner")
	f.IntVar(&cfg.BrokerMaxConnections, "broker-max-connections", destination.DefaultMaxConnections, "connections each message broker destination type (nats, rabbitmq, …) holds open at once, over all endpoints; an attempt over it is retried later (broker_busy)")
	f.DurationVar(&cfg.Dispatch.DisableAfter, "disable-after", 5*24*time.Hour, "disable an endpoint failing without a success for this long")
	f.BoolVar(&cfg.NoMetrics, "no-metrics", false, "do not serve Prometheus metrics at GET /metrics (served without authentication otherwise; see docs/observability.md)")
	f.IntVar(&cfg.Metrics.EndpointLabels, "metrics-endpoint-labels", 0, "label delivery metrics by endpoint for the first N endpoints delivered to, the rest as \"other\" (0: no endpoint label)")
	f.StringVar(&cfg.Tracing.Endpoint, "otlp-endpoint", "", "export OpenTelemetry traces over OTLP/HTTP to this collector (http://collector:4318); default: the standard OTEL_EXPORTER_OTLP_ENDPOINT, else no export")
	f.StringVar(&cfg.Ops.Tenant, "ops-tenant", "", "publish operational events (endpoint.disabled, endpoint.failing, delivery.dead_lettered, source.verification_failing) to this tenant; default: none (off)")
	f.StringVar(&pprofAddr, "pprof-addr", "", "serve Go profiles (net/http/pprof, /debug/pprof/) on this address of their own, never on --addr; loopback only unless --pprof-allow-remote (default: off)")
	f.BoolVar(&pprofRemote, "pprof-allow-remote", false, "let --pprof-addr listen on an address that is not loopback (profiles show the process's internals: keep it on a private network)")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	return cmd
}

func newLogger(format, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: want text or json, not %q", format)
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print Herald's version",
		Run: func(cmd *cobra.Command, args []string) {
			fmt.Fprintln(cmd.OutOrStdout(), versionLine())
		},
	}
}

// versionLine is what herald version and herald --version print.
func versionLine() string { return "herald " + node.Version }
