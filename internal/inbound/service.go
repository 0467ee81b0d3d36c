package inbound

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/inbound/schema"
	"github.com/heraldhq/herald/internal/inbound/verify"
	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/internal/ops"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/telemetry"
)

// Notifier wakes the delivery engine for endpoints that got new deliveries (dispatch.Dispatcher).
type Notifier interface {
	Notify(endpointIDs ...string)
}

// Defaults.
const (
	// DefaultMaxBodyBytes bounds a request body when the source does not say.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultCacheTTL is how long a source is served from memory: the longest a change made on
	// another node takes to apply on this one.
	DefaultCacheTTL = 5 * time.Second
	// DefaultCacheSize bounds how many sources are held in memory.
	DefaultCacheSize = 10000
	// MaxRejectedBody bounds the body stored with a rejected request: enough to see what a
	// failing sender sends, too little for a flood of forgeries to fill the store.
	MaxRejectedBody = 16 << 10
	// maxTokenLen bounds a token looked up: longer ones cannot exist, so they cost no store read.
	maxTokenLen = 256
)

// Config holds a Service's dependencies; zero values take the defaults.
type Config struct {
	Store    store.Store
	Notifier Notifier // nil: the dispatcher finds new deliveries on its next scan
	Logger   *slog.Logger
	Metrics  *metrics.Metrics // nil: nothing is counted
	// TracerProvider traces each request (nil: no spans); the event a request becomes carries
	// the request's trace context to its deliveries' attempts.
	TracerProvider trace.TracerProvider
	// Ops is told of requests rejected by verification and of verified ones, for
	// source.verification_failing (nil: off).
	Ops *ops.Publisher
	// MaxBodyBytes bounds a request body when the source sets no limit (default 1 MiB).
	MaxBodyBytes int
	// CacheTTL and CacheSize tune the token cache (defaults 5 s and 10,000 sources).
	CacheTTL  time.Duration
	CacheSize int
	// Now is the clock; tests may set it.
	Now func() time.Time
	// TrustedProxies are the addresses of the proxies whose forwarded client certificate
	// headers a source requiring one believes (clientcert.go); empty trusts none.
	TrustedProxies []netip.Prefix
}

// Service receives webhooks on sources: it is the http.Handler of /in/{token}, and it replays
// received requests for the API.
type Service struct {
	cfg      Config
	st       store.Store
	log      *slog.Logger
	m        *metrics.Metrics
	sources  *sourceCache
	limiters *limiters
	tracer   trace.Tracer
}

// New builds a Service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{cfg: cfg, st: cfg.Store, log: cfg.Logger, m: cfg.Metrics, limiters: &limiters{buckets: make(map[string]*bucket)},
		tracer: telemetry.Tracer(cfg.TracerProvider)}
	s.sources = newSourceCache(cfg.Store.SourceByToken, cfg.CacheTTL, cfg.CacheSize)
	return s
}

// SourceChanged drops what this process cached about a source, so that an update, a token
// rotation or a delete applies here at once (other nodes see it within CacheTTL).
func (s *Service) SourceChanged(sourceID string) { s.sources.forget(sourceID) }

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// Answer is the JSON body of a request's 2xx answer.
type Answer struct {
	ID          string `json:"id"`
	Status      string `json:"status"`
	EventID     string `json:"event_id,omitempty"`
	DuplicateOf string `json:"duplicate_of,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

// exchange is one request on its way through ServeHTTP: what to count and log once answered.
type exchange struct {
	start   time.Time
	tenant  string
	outcome string
}

// ServeHTTP receives a webhook on /in/{token}. The checks run cheapest first, and nothing is
// written for requests refused before the signature check (unknown token, address, rate, size),
// so that a flood costs no writes: 404 → 403 → 429 → 413 → 401/400 (stored as rejected) →
// schema (stored as quarantined, 202) → dedup → one transaction → 200.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := &exchange{start: time.Now()}
	// A sender's own trace context, if it sends one, is continued.
	ctx, span := s.tracer.Start(telemetry.Extract(r.Context(), r.Header), "herald.inbound", trace.WithSpanKind(trace.SpanKindServer))
	r = r.WithContext(ctx)
	defer func() {
		s.m.InboundRequest(x.tenant, x.outcome, time.Since(x.start))
		if span.IsRecording() {
			span.SetAttributes(telemetry.AttrTenant.String(x.tenant), telemetry.AttrOutcome.String(x.outcome))
		}
		span.End()
	}()
	w.Header().Set("Cache-Control", "no-store")
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
	case http.MethodOptions:
		s.handshake(w, r, x, s.now())
		return
	default:
		x.outcome = metrics.InboundBadRequest
		w.Header().Set("Allow", "OPTIONS, POST, PUT, PATCH")
		writeProblem(w, http.StatusMethodNotAllowed, "method_not_allowed", "a source accepts POST, PUT and PATCH")
		return
	}
	now := s.now()
	src, body, ok := s.admit(w, r, x, now)
	if !ok {
		return
	}
	s.ingest(w, r, x, src, body, now)
}

// admit finds the request's source and applies the checks that cost no write: allowlist, client
// certificate, rate limit and body size. It answers and reports false when one fails.
func (s *Service) admit(w http.ResponseWriter, r *http.Request, x *exchange, now time.Time) (*source, []byte, bool) {
	src, ok := s.find(w, r, x, now)
	if !ok {
		return nil, nil, false
	}
	debug := func(msg string, args ...any) {
		s.log.Debug(msg, append([]any{"tenant", src.tenantID, "source", src.id, "remote", r.RemoteAddr}, args...)...)
	}
	if ok, wait := s.limiters.allow(src.id, src.settings.RateLimit, src.settings.RateBurst, now); !ok {
		x.outcome = metrics.InboundRateLimited
		debug("inbound: rate limited")
		secs := max(1, int(math.Ceil(wait.Seconds())))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeProblem(w, http.StatusTooManyRequests, "rate_limited", fmt.Sprintf("this source accepts %g requests per second; retry after %d s", src.settings.RateLimit, secs))
		return nil, nil, false
	}
	limit := int64(s.cfg.MaxBodyBytes)
	if src.settings.MaxBodyBytes > 0 {
		limit = int64(src.settings.MaxBodyBytes)
	}
	body, err := readBody(r, limit)
	switch {
	case errors.Is(err, errTooLarge):
		x.outcome = metrics.InboundTooLarge
		debug("inbound: body too large", "limit", limit)
		// The rest of the body is not read: close the connection rather than drain it.
		w.Header().Set("Connection", "close")
		writeProblem(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("the body is over this source's limit of %d bytes", limit))
		return nil, nil, false
	case err != nil:
		x.outcome = metrics.InboundBadRequest
		debug("inbound: read body", "err", err)
		writeProblem(w, http.StatusBadRequest, "unreadable_body", "the body could not be read")
		return nil, nil, false
	}
	return src, body, true
}

// find finds the request's source and applies the checks every request on it passes first: the
// address allowlist and the client certificate requirement. It answers and reports false when
// one fails. Refusals here are floods' answers: logged at debug only.
func (s *Service) find(w http.ResponseWriter, r *http.Request, x *exchange, now time.Time) (*source, bool) {
	token := tokenOf(r)
	var src *source
	err := errUnknownSource
	if token != "" {
		src, err = s.sources.get(r.Context(), token, now)
	}
	switch {
	case errors.Is(err, errUnknownSource):
		x.outcome = metrics.InboundNotFound
		s.log.Debug("inbound: unknown token or disabled source", "remote", r.RemoteAddr)
		notFound(w)
		return nil, false
	case errors.Is(err, errMisconfigured):
		x.outcome = metrics.InboundStoreError
		s.log.Error("inbound: source cannot verify requests; fix its settings", "err", err)
		writeProblem(w, http.StatusInternalServerError, "source_misconfigured", "this source cannot verify requests now; retry later")
		return nil, false
	case err != nil:
		x.outcome = metrics.InboundStoreError
		s.storeFailed(w, err, "look up source")
		return nil, false
	}
	x.tenant = src.tenantID
	if !src.allowed(remoteAddr(r)) {
		x.outcome = metrics.InboundForbidden
		s.log.Debug("inbound: address not allowed", "tenant", src.tenantID, "source", src.id, "remote", r.RemoteAddr)
		writeProblem(w, http.StatusForbidden, "ip_not_allowed", "this source does not accept requests from your address")
		return nil, false
	}
	if req := src.settings.ClientCert; req != nil {
		if err := s.clientCert(r, req); err != nil {
			x.outcome = metrics.InboundForbidden
			s.log.Debug("inbound: client certificate refused", "tenant", src.tenantID, "source", src.id, "remote", r.RemoteAddr, "err", err)
			writeProblem(w, http.StatusForbidden, "client_certificate_required", "this source requires a verified client certificate: "+err.Error())
			return nil, false
		}
	}
	return src, true
}

// ingest verifies an admitted request, stores it with what it became, and answers.
func (s *Service) ingest(w http.ResponseWriter, r *http.Request, x *exchange, src *source, body []byte, now time.Time) {
	ctx := r.Context()
	log := s.log.With("tenant", src.tenantID, "source", src.id)
	vreq := verify.FromHTTP(r, body)
	rr := s.received(r, src, body, now)
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(telemetry.AttrSource.String(src.id), telemetry.AttrRequest.String(rr.ID))
	if _, err := src.verifier.VerifyAt(vreq, now); err != nil {
		span.SetStatus(codes.Error, "verification failed")
		s.reject(ctx, w, x, log, rr, err)
		s.cfg.Ops.SourceRejected(src.tenantID, src.id, rr.Reason)
		return
	}
	s.cfg.Ops.SourceVerified(src.id)
	if src.verifier.Scheme() == verify.SchemeSlack && verify.PayloadValue(vreq, "type") == "url_verification" {
		// Slack checks a new Request URL with a signed challenge it expects echoed; it is not an
		// event, so nothing is stored.
		x.outcome = metrics.InboundChallenge
		writeJSON(w, http.StatusOK, map[string]string{"challenge": verify.PayloadValue(vreq, "challenge")})
		return
	}
	pev := src.verifier.Event(vreq)
	data := eventData(r.Header, body)
	var ev *store.Event
	var err error
	rr.Status = store.ReceiveAccepted
	if src.schema != nil {
		if err := src.schema.Validate(data); err != nil {
			rr.Status, rr.Reason = store.ReceiveQuarantined, quarantineReason(err)
		}
	}
	if key := dedupKey(src.settings.Dedup, vreq, pev, src.verifier.SecretHeaders()); key != "" {
		rr.DedupKey, rr.DedupUntil = key, now.Add(src.settings.Dedup.Window())
	}
	if rr.Status == store.ReceiveAccepted {
		if ev, err = buildEvent(src.tenantID, src.id, eventType(&src.settings, pev.Type), data, now, Origin{RequestID: rr.ID, ProviderID: pev.ID}); err != nil {
			// Not the store's failure: a bug, which a retry does not mend.
			x.outcome = metrics.InboundStoreError
			log.Error("inbound: build event", "err", err)
			writeProblem(w, http.StatusInternalServerError, "internal_error", "the request could not be stored; it was not acknowledged")
			return
		}
		rr.EventID, rr.EventType = ev.ID, ev.Type
		ev.Traceparent, ev.Tracestate = telemetry.Capture(ctx)
		span.SetAttributes(telemetry.AttrEventID.String(ev.ID), telemetry.AttrEventType.String(ev.Type))
	}
	res, err := s.st.Receive(ctx, rr, ev)
	if err != nil {
		x.outcome = metrics.InboundStoreError
		if errors.Is(err, store.ErrNotFound) {
			// Deleted since it was cached.
			s.sources.forget(src.id)
			x.outcome = metrics.InboundNotFound
			notFound(w)
			return
		}
		s.storeFailed(w, err, "store received request")
		return
	}
	if res.Published != nil && len(res.Published.EndpointIDs) > 0 && s.cfg.Notifier != nil {
		s.cfg.Notifier.Notify(res.Published.EndpointIDs...)
	}
	stored := res.Request
	switch stored.Status {
	case store.ReceiveDuplicate:
		x.outcome = metrics.InboundDuplicate
		writeJSON(w, http.StatusOK, Answer{ID: stored.ID, Status: string(stored.Status), DuplicateOf: stored.DuplicateOf})
	case store.ReceiveQuarantined:
		x.outcome = metrics.InboundQuarantined
		// Not the reason: a schema's messages may quote the payload, which logs never hold.
		log.Info("inbound: quarantined", "request", stored.ID)
		writeJSON(w, http.StatusAccepted, Answer{ID: stored.ID, Status: string(stored.Status), Reason: stored.Reason})
	default:
		x.outcome = metrics.InboundAccepted
		writeJSON(w, http.StatusOK, Answer{ID: stored.ID, Status: string(stored.Status), EventID: stored.EventID})
	}
}

// received is the request as it is stored, before its outcome is known.
func (s *Service) received(r *http.Request, src *source, body []byte, now time.Time) *store.ReceivedRequest {
	return &store.ReceivedRequest{
		ID:       event.NewPrefixedID("req", now),
		TenantID: src.tenantID, SourceID: src.id, ReceivedAt: now,
		Method: r.Method,
		// The token is a credential, stored sealed with the source: not in plaintext here.
		Path:       "/in/" + Redacted,
		Query:      storedQuery(r.URL.RawQuery, src.verifier.Reveals),
		Headers:    storedHeaders(r.Header, src.verifier.SecretHeaders(), src.verifier.Reveals),
		Body:       body,
		RemoteAddr: r.RemoteAddr,
	}
}

// reject answers a request that failed verification, and stores it (body capped) so that a
// user can see why a sender fails. A failure to store it is logged; the sender still gets the
// rejection, which is what it needs.
func (s *Service) reject(ctx context.Context, w http.ResponseWriter, x *exchange, log *slog.Logger, rr *store.ReceivedRequest, verr error) {
	reason := verify.ReasonOf(verr)
	status := http.StatusUnauthorized
	switch reason {
	case verify.ReasonMalformedBody:
		status, x.outcome = http.StatusBadRequest, metrics.InboundRejectedBody
	case verify.ReasonStaleTimestamp, verify.ReasonFutureTimestamp:
		x.outcome = metrics.InboundRejectedTimestamp
	default:
		x.outcome = metrics.InboundRejectedSignature
	}
	if reason == "" {
		reason = verify.ReasonBadSignature
	}
	rr.Status, rr.Reason = store.ReceiveRejected, rejectReason(reason, verr)
	if len(rr.Body) > MaxRejectedBody {
		rr.Body = rr.Body[:MaxRejectedBody]
	}
	if _, err := s.st.Receive(ctx, rr, nil); err != nil {
		log.Warn("inbound: store rejected request", "request", rr.ID, "err", err)
	}
	log.Info("inbound: rejected", "request", rr.ID, "reason", reason, "remote", rr.RemoteAddr)
	// verify's errors name the scheme, the reason and the header at fault, never a secret, a
	// signature or body bytes.
	writeProblem(w, status, string(reason), verr.Error())
}

// rejectReason is the stored reason of a rejection: the machine-readable reason first, then
// the header at fault and what is wrong with it ("bad_signature: X-Hub-Signature-256: signature
// matches no secret").
func rejectReason(reason verify.Reason, err error) string {
	parts := []string{string(reason)}
	if e, ok := errors.AsType[*verify.Error](err); ok {
		for _, p := range []string{e.Header, e.Detail} {
			if p != "" {
				parts = append(parts, p)
			}
		}
	} else {
		parts = append(parts, err.Error())
	}
	return strings.Join(parts, ": ")
}

// quarantineReason is the stored reason of a payload that failed the schema.
func quarantineReason(err error) string {
	if v, ok := errors.AsType[*schema.Violation](err); ok {
		return "schema: " + strings.Join(v.Problems, "; ")
	}
	return "schema: " + err.Error()
}

// storeRetryAfter is the Retry-After, in seconds, of a request the store could not answer.
const storeRetryAfter = "5"

// storeFailed answers 503 with Retry-After for any failure of the store: the lookup of a source,
// the dedup check and the commit all need it, and none of their failures says anything about the
// request itself (only "not found" is the sender's fault, answered before this). Nothing was
// acknowledged; the sender should retry.
func (s *Service) storeFailed(w http.ResponseWriter, err error, what string) {
	if errors.Is(err, context.Canceled) {
		// The sender hung up; it will retry.
		s.log.Debug("inbound: "+what, "err", err)
		writeProblem(w, http.StatusServiceUnavailable, "canceled", "the request was canceled")
		return
	}
	if errors.Is(err, store.ErrLimit) {
		// The tenant's endpoints and filters make this event cost more than a request may
		// (store.Limits): a retry would be refused the same way.
		s.log.Warn("inbound: "+what, "err", err)
		writeProblem(w, http.StatusUnprocessableEntity, "over_limit", err.Error())
		return
	}
	s.log.Error("inbound: "+what, "err", err)
	w.Header().Set("Retry-After", storeRetryAfter)
	writeProblem(w, http.StatusServiceUnavailable, "store_unavailable", "the request could not be stored; it was not acknowledged, retry later")
}

// tokenOf is the token of /in/{token}, or "" when the path has another shape.
func tokenOf(r *http.Request) string {
	token := r.PathValue("token")
	if token == "" {
		token, _ = strings.CutPrefix(r.URL.Path, "/in/")
	}
	if token == "" || len(token) > maxTokenLen || strings.ContainsRune(token, '/') {
		return ""
	}
	return token
}

// remoteAddr is the peer's address. X-Forwarded-For is never read: anyone can send it.
func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		a, _ := netip.ParseAddr(r.RemoteAddr)
		return a.Unmap()
	}
	return ap.Addr().Unmap()
}

var errTooLarge = errors.New("body too large")

// readBody reads at most limit bytes of the body.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, errTooLarge
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, limit+1)); err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if int64(buf.Len()) > limit {
		return nil, errTooLarge
	}
	return buf.Bytes(), nil
}

// notFound is the one answer for an unknown token and a disabled source, so that nobody can tell
// them apart.
func notFound(w http.ResponseWriter) {
	writeProblem(w, http.StatusNotFound, "source_not_found", "no source has this URL")
}

// problem is an RFC 9457 problem document, with a machine-readable reason.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	Reason string `json:"reason"`
}

func writeProblem(w http.ResponseWriter, status int, reason, detail string) {
	writeBody(w, status, "application/problem+json",
		problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail, Reason: reason})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	writeBody(w, status, "application/json", v)
}

func writeBody(w http.ResponseWriter, status int, contentType string, v any) {
	doc, err := event.Marshal(v)
	if err != nil {
		doc = []byte(`{}`)
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(doc)))
	w.WriteHeader(status)
	_, _ = w.Write(doc)
}
