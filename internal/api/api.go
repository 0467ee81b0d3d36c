// Package api is Herald's REST API: JSON over HTTP under /v1, errors as RFC 9457 problem+json, and an
// OpenAPI 3.1 document generated from the same handler signatures that serve the routes (huma), so
// the two cannot drift.
package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strings"
	"syscall"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"go.opentelemetry.io/otel/trace"

	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/destination"
	webhookdest "github.com/heraldhq/herald/internal/destination/webhook"
	"github.com/heraldhq/herald/internal/expr"
	"github.com/heraldhq/herald/internal/httpsend"
	"github.com/heraldhq/herald/internal/inbound"
	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/internal/seal"
	"github.com/heraldhq/herald/internal/source"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/telemetry"
)

// Notifier is told about changes the delivery engine must act on.
type Notifier interface {
	Notify(endpointIDs ...string)
	EndpointChanged(id string)
	Rescan()
}

// Config holds the API's dependencies and limits.
type Config struct {
	Store    store.Store
	Notifier Notifier
	// URLCheck validates endpoint URLs at registration (scheme, credentials, blocked addresses).
	URLCheck *httpsend.Client
	// InternalURLCheck validates the URLs of endpoints marked internal, which may also reach the
	// ranges --internal-cidr opens (nil: URLCheck, so they may reach no more than others).
	InternalURLCheck *httpsend.Client
	// Destinations are the destination types endpoints may have: the API checks an endpoint's
	// type and config against them (nil: webhooks only).
	Destinations *destination.Registry
	Logger       *slog.Logger
	Version      string
	// MaxEventBytes bounds one event's envelope (default 256 KiB).
	MaxEventBytes int
	// Limits are the store's bounds on a tenant (endpoints, sources) and Retention the node's
	// (negative: keep everything; 0: none known): with MaxEventBytes, the limits a tenant has
	// when neither it nor its plan sets them (plans.go).
	Limits    store.Limits
	Retention time.Duration
	// SecretOverlap is how long a rotated-out endpoint secret stays valid (default 24 h).
	SecretOverlap time.Duration
	// MaxJSONDepth bounds how deeply a request body nests arrays and objects (default 64).
	MaxJSONDepth int
	// RateLimits are the request rate limits (ratelimit.go); a zero Rate is no limit, and the
	// zero value none at all. herald serve applies DefaultRateLimits.
	RateLimits RateLimits
	// Now is the clock; tests may set it.
	Now func() time.Time
	// Metrics, when set, counts requests by route and published events.
	Metrics *metrics.Metrics
	// TracerProvider traces publishes (nil: no spans; a trace context that comes with a publish
	// is still stored with its events and reaches the receivers).
	TracerProvider trace.TracerProvider
	// Inbound replays received requests and is told when a source changes (nil: the received
	// requests' replay route answers 503).
	Inbound Inbound
	// PublicURL is the base of the ingest URLs the API shows ("https://hooks.example.com");
	// empty means the scheme and Host of the API request that asks.
	PublicURL string
	// CursorKeys seal feed and listen cursors (the node's encryption keyring, so that every node
	// opens every node's cursors); nil: a random key, whose cursors die with the process.
	CursorKeys *seal.Keyring
	// ListenHeartbeat is how often a quiet listen stream sends a heartbeat (default 15 s).
	ListenHeartbeat time.Duration
	// ListenWriteTimeout is how long a listen stream's client has to take each write before the
	// stream is dropped (default DefaultListenWriteTimeout).
	ListenWriteTimeout time.Duration
	// MaxListenStreams bounds the listen streams open at once on this server (default
	// DefaultMaxListenStreams), MaxListenStreamsPerKey those of one API key or portal link
	// (default DefaultMaxListenStreamsPerKey).
	MaxListenStreams       int
	MaxListenStreamsPerKey int
	// PortalKey signs and checks portal links (portal.go); nil: portal links answer 503 and no
	// portal token is accepted.
	PortalKey []byte
	// BulkShare is the share of the time large publishes (the bulk lane, bulk.go) may take while
	// small publishes flow: DefaultBulkShare if 0, no bound if 1 or more.
	BulkShare float64
	// BodyGrace and BodyMinRate bound how long a request body may take: BodyGrace plus one second
	// per BodyMinRate bytes received (defaults DefaultBodyGrace, DefaultBodyMinRate; body.go).
	BodyGrace   time.Duration
	BodyMinRate int
	// AnswerTimeout, when set, is the time an answer gets to be written once the request's body
	// has been read: the server's WriteTimeout, which would otherwise count the body's time too.
	AnswerTimeout time.Duration
	// SourceTypes are the broker source types this node runs (nil: none; creating a broker
	// source answers 422). BrokerSourcesChanged, when set, is called after a broker source is
	// created, changed or deleted, so that the node's runners follow at once.
	SourceTypes          *source.Registry
	BrokerSourcesChanged func()
}

// Inbound is what the API needs of the receiving side (internal/inbound.Service).
type Inbound interface {
	// Replay sends a received request's event to the tenant's endpoints again; a quarantined
	// request is checked against the source's current schema first (unless force) and becomes
	// an event.
	Replay(ctx context.Context, tenantID, requestID string, force bool) (*inbound.ReplayResult, error)
	// SourceChanged drops what this process cached about a source, after an update, a token
	// rotation or a delete.
	SourceChanged(sourceID string)
}

// Server is the HTTP handler of the API.
type Server struct {
	cfg Config
	st  store.Store
	log *slog.Logger
	api huma.API
	mux *http.ServeMux
	// limits are the request rate limits' buckets.
	limits limiters
	// types remembers event types known to exist, for the publish path.
	types *typeCache
	// keys remembers valid API keys for a few seconds.
	keys *keyCache
	// tracer makes the publish spans.
	tracer trace.Tracer
	// cursorKeys seal feed cursors (feed.go); streams ends listen streams (listen.go).
	cursorKeys *seal.Keyring
	streams    *streams
	exports    *holds    // exports running, by tenant (export.go)
	bulkLane   *bulkLane // large publishes, in turn (bulk.go)
	// exprs compiles endpoints' filters and transformations when they are saved.
	exprs *expr.Cache
	// dests are the destination types endpoints may have.
	dests *destination.Registry
	// limitDefaults are the node's tenant limits; tenantLimits remembers tenants' effective
	// limits and eventRates are their events-per-second buckets (plans.go).
	limitDefaults store.TenantLimits
	tenantLimits  *limitsCache
	eventRates    *eventRates
}

// New builds the API's routes.
func New(cfg Config) *Server {
	if cfg.MaxEventBytes <= 0 {
		cfg.MaxEventBytes = event.DefaultMaxBytes
	}
	if cfg.SecretOverlap <= 0 {
		cfg.SecretOverlap = 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	if cfg.MaxJSONDepth <= 0 {
		cfg.MaxJSONDepth = DefaultMaxJSONDepth
	}
	if cfg.BulkShare <= 0 {
		cfg.BulkShare = DefaultBulkShare
	}
	if cfg.BodyGrace <= 0 {
		cfg.BodyGrace = DefaultBodyGrace
	}
	if cfg.BodyMinRate <= 0 {
		cfg.BodyMinRate = DefaultBodyMinRate
	}
	dests := cfg.Destinations
	if dests == nil {
		// Webhooks only: the type checks settings and is never opened here.
		var err error
		if dests, err = destination.NewRegistry(webhookdest.New(cfg.URLCheck, cfg.InternalURLCheck)); err != nil {
			panic(err) // one type cannot clash with itself
		}
	}
	mux := http.NewServeMux()
	hc := huma.DefaultConfig("Herald API", cfg.Version)
	hc.Info.Description = "Herald sends webhooks to your customers' endpoints and receives webhooks for you. " +
		"Authenticate with `Authorization: Bearer <api key>`. Errors are RFC 9457 problem+json documents."
	hc.OpenAPIPath = "/openapi"
	hc.DocsPath = "" // huma's docs page loads scripts from a CDN; the dashboard will host docs instead
	hc.SchemasPath = "/schemas"
	hc.Components.Schemas = huma.NewMapRegistry("#/components/schemas/", schemaNamer)
	// The event package holds no huma code: its raw JSON object gets its schema here.
	hc.Components.Schemas.RegisterTypeAlias(reflect.TypeFor[event.Object](), reflect.TypeFor[object]())
	hc.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"bearer": {Type: "http", Scheme: "bearer", Description: "An API key: hk_admin_… or hk_tenant_…"},
	}
	hc.Security = []map[string][]string{{"bearer": {}}}
	hc.CreateHooks = nil // no $schema links injected into responses
	// A format map of our own (huma's default is a package variable): JSON only, with a nesting
	// limit. "json" serves media types such as application/merge-patch+json.
	jf := jsonFormat(cfg.MaxJSONDepth)
	hc.Formats = map[string]huma.Format{"application/json": jf, "json": jf}
	hc.Transformers = []huma.Transformer{boundErrorValues, fillSlices}
	hc.Servers = servers(cfg.PublicURL)
	// readBody (body.go) reads request bodies with their own deadlines; huma's flat 5 s is off.
	hc.OnAddOperation = append(hc.OnAddOperation, func(_ *huma.OpenAPI, op *huma.Operation) { op.BodyReadTimeout = -1 }, declareProblems)
	s := &Server{cfg: cfg, st: cfg.Store, log: cfg.Logger, mux: mux, limits: newLimiters(cfg.RateLimits), types: newTypeCache(), exports: newHolds(nil), bulkLane: newBulkLane(cfg.BulkShare), keys: newKeyCache(), exprs: expr.NewCache(256), dests: dests}
	s.limitDefaults = store.NodeLimitDefaults(cfg.Limits, cfg.MaxEventBytes, cfg.Retention)
	s.tenantLimits, s.eventRates = newLimitsCache(), newEventRates()
	s.tracer = telemetry.Tracer(cfg.TracerProvider)
	s.api = humago.New(mux, hc)
	// authenticate runs first: the rate limit is per authenticated key, and no body is read for
	// a request that is refused.
	// knownQuery refuses unknown query parameters before anything is read.
	s.api.UseMiddleware(s.authenticate, s.rateLimit, s.knownQuery, s.bulk, s.readBody)
	s.registerTenants()
	s.registerPlans()
	s.registerUsage()
	s.registerEventTypes()
	s.registerEndpoints()
	s.registerDestinationTypes()
	s.registerEvents()
	s.registerDeliveries()
	s.registerFailures()
	s.registerKeys()
	s.registerAudit()
	s.registerExport()
	s.registerSources()
	s.registerBrokerSources()
	s.registerSourceTypes()
	s.registerReceived()
	s.registerFeed()
	s.registerListen()
	s.registerPortal()
	s.registerTimeseries()
	// Once every schema is built: the endpoints' and broker sources' types.
	s.documentTypes()
	nonNullArrays(s.api.OpenAPI())
	declareTags(s.api.OpenAPI())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	mux.HandleFunc("GET /readyz", s.ready)
	return s
}

// schemaNamer is huma's namer, except that the event package's Input keeps the name the API
// has always given it (EventInput), and the OpenAPI document its components.
func schemaNamer(t reflect.Type, hint string) string {
	if t == reflect.TypeFor[event.Input]() {
		return "EventInput"
	}
	return huma.DefaultSchemaNamer(t, hint)
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// A caller's W3C trace context (traceparent) makes a publish's span its child.
	if r.Header.Get("traceparent") != "" {
		r = r.WithContext(telemetry.Extract(r.Context(), r.Header))
	}
	s.cfg.Metrics.ServeMux(s.mux, w, r)
}

// OpenAPI returns the generated OpenAPI document.
func (s *Server) OpenAPI() *huma.OpenAPI { return s.api.OpenAPI() }

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "application/json")
	if err := s.st.Ping(ctx); err != nil {
		s.log.Warn("readiness check failed", "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		if errors.Is(err, store.ErrUnavailable) {
			_, _ = w.Write([]byte(`{"status":"unavailable","reason":"store cannot take writes"}`))
			return
		}
		_, _ = w.Write([]byte(`{"status":"unavailable","reason":"store unreachable"}`))
		return
	}
	_, _ = w.Write([]byte(`{"status":"ok"}`))
}

// fail turns a store error into a problem answer: the client's mistakes get 4xx naming what was
// wrong; anything else is logged and answered 500 without internals.
func (s *Server) fail(err error, what string) error {
	var limit *store.LimitError
	switch {
	case errors.As(err, &limit):
		return limitProblem(limit, "body.events")
	case errors.Is(err, store.ErrNotFound):
		return huma.Error404NotFound(what + " not found")
	case errors.Is(err, store.ErrConflict):
		return huma.Error409Conflict(what + " already exists")
	case errors.Is(err, store.ErrBadCursor):
		return huma.Error422UnprocessableEntity("invalid cursor", &huma.ErrorDetail{Location: "query.cursor", Message: "not a cursor this API returned"})
	case errors.Is(err, context.Canceled):
		return huma.NewError(499, "client closed request")
	case errors.Is(err, context.DeadlineExceeded):
		s.log.Error("store too slow to answer in time", "what", what, "err", err)
		return huma.ErrorWithHeaders(huma.Error503ServiceUnavailable("the store did not answer in time; nothing was acknowledged, try again later"),
			http.Header{"Retry-After": []string{"5"}})
	case store.Unavailable(s.st, err), unreachable(err):
		s.log.Error("store unavailable", "what", what, "err", err)
		// "Not acknowledged", not "not stored": a database connection lost during a commit
		// leaves its outcome unknown. A retry with the same event id cannot store it twice.
		return huma.ErrorWithHeaders(huma.Error503ServiceUnavailable("the store cannot take writes now; nothing was acknowledged, try again later"),
			http.Header{"Retry-After": []string{"5"}})
	}
	s.log.Error("request failed", "what", what, "err", err)
	return huma.Error500InternalServerError("internal error")
}

// unreachable reports a store error that a driver did not classify but that can only mean the
// database could not be reached (a refused, reset or cut connection): the store is unavailable,
// not broken, and the client should try again.
func unreachable(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// limitProblem is the answer to a request over one of the store's limits (nothing was stored): a
// 422 naming the limit and the numbers, at loc for the per-request limits; the endpoint and
// source limits are the tenant's (path.tenant).
func limitProblem(le *store.LimitError, loc string) error {
	switch le.Limit {
	case "max_endpoints":
		return huma.Error422UnprocessableEntity("endpoint limit reached",
			&huma.ErrorDetail{Location: "path.tenant", Message: le.Error() + "; delete an endpoint or ask the operator to raise the tenant's max_endpoints", Value: le.Max})
	case "max_sources":
		return huma.Error422UnprocessableEntity("source limit reached",
			&huma.ErrorDetail{Location: "path.tenant", Message: le.Error() + "; delete a source you no longer use", Value: le.Max})
	case "max_broker_sources":
		return huma.Error422UnprocessableEntity("broker source limit reached",
			&huma.ErrorDetail{Location: "path.tenant", Message: le.Error() + "; delete a broker source you no longer use", Value: le.Max})
	case "filter_time":
		return huma.Error422UnprocessableEntity("endpoint filters took too long", &huma.ErrorDetail{Location: loc, Message: le.Error(), Value: le.Max})
	}
	return huma.Error422UnprocessableEntity("too many deliveries for one request", &huma.ErrorDetail{Location: loc, Message: le.Error(), Value: le.Got})
}

func (s *Server) now() time.Time { return s.cfg.Now().UTC() }

// ListParams are the pagination query parameters shared by every list.
type ListParams struct {
	Limit  int    `query:"limit" minimum:"1" maximum:"250" default:"50" doc:"Items per page."`
	Cursor string `query:"cursor" maxLength:"200" doc:"Opaque cursor from a previous page's next_cursor."`
}

func (p ListParams) page() store.Page { return store.Page{Limit: p.Limit, Cursor: p.Cursor} }

// ListBody is the shape of every list answer.
type ListBody[T any] struct {
	Data       []T    `json:"data"`
	NextCursor string `json:"next_cursor,omitempty" doc:"Pass as cursor to get the next page; absent on the last page."`
}

func list[T any](items []T, next string) ListBody[T] {
	if items == nil {
		items = []T{}
	}
	return ListBody[T]{Data: items, NextCursor: next}
}

// Out wraps a body for huma.
type Out[T any] struct {
	Body T
}

// Empty is an answer without a body.
type Empty struct{}

// TenantPath is the tenant path parameter shared by tenant-scoped routes.
type TenantPath struct {
	Tenant string `path:"tenant" maxLength:"64" doc:"Tenant id."`
}

// noNUL refuses NUL characters in free-text fields: PostgreSQL text cannot hold them, and no
// name or description needs one. Pairs are location, value.
func noNUL(pairs ...string) error {
	var errs []error
	for i := 0; i+1 < len(pairs); i += 2 {
		if strings.ContainsRune(pairs[i+1], 0) {
			errs = append(errs, &huma.ErrorDetail{Location: pairs[i], Message: "must not contain NUL characters"})
		}
	}
	if len(errs) > 0 {
		return huma.Error422UnprocessableEntity("invalid text", errs...)
	}
	return nil
}
