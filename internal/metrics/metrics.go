// Package metrics holds Herald's Prometheus metrics: one registry per node, never the global
// default one, so that several nodes in one process (tests, the benchmark) count apart.
//
// Every method is safe on a nil *Metrics and does nothing, so that the dispatcher and the API work
// without metrics (unit tests, tools) and need no checks at their call sites.
//
// Labels are bounded: tenant ids (as many as there are tenants), fixed sets of outcomes and error
// classes, the API's route patterns, and endpoint ids only when asked for, capped (see Options).
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options tune what is measured; zero values take the defaults.
type Options struct {
	// EndpointLabels, when positive, adds an endpoint label to the delivery metrics for the first
	// EndpointLabels endpoints this process delivers to; the others are counted as "other". 0
	// (the default) leaves the label out.
	EndpointLabels int
}

// Outcomes of an attempt, as the deliveries_total outcome label.
const (
	OutcomeSuccess = "success" // delivered
	OutcomeRetry   = "retry"   // failed, another attempt is scheduled
	OutcomeDead    = "dead"    // failed, no attempt is left (or the endpoint is gone)
)

// otherEndpoint is the endpoint label of endpoints beyond the cap.
const otherEndpoint = "other"

// Metrics is one node's set of metrics and the registry that exposes them.
type Metrics struct {
	reg *prometheus.Registry

	published       *prometheus.CounterVec
	deliveries      *prometheus.CounterVec
	attemptDuration *prometheus.HistogramVec
	inFlight        prometheus.Gauge
	queued          prometheus.Gauge
	breakersOpen    prometheus.Gauge
	laneWaits       prometheus.Gauge
	apiRequests     *prometheus.CounterVec
	apiDuration     *prometheus.HistogramVec
	inbound         *prometheus.CounterVec
	inboundAck      *prometheus.HistogramVec
	outboxRefused   *prometheus.CounterVec
	listenStreams   prometheus.Gauge
	listenDropped   *prometheus.CounterVec

	endpoints *endpointCap // nil: no endpoint label
}

// New makes the metrics and registers them, with the Go runtime and process collectors, in a new
// registry.
func New(opts Options) *Metrics {
	reg := prometheus.NewRegistry()
	deliveryLabels := []string{"tenant", "outcome", "error_class"}
	durationLabels := []string{"tenant"}
	m := &Metrics{reg: reg}
	if opts.EndpointLabels > 0 {
		m.endpoints = &endpointCap{limit: opts.EndpointLabels, seen: map[string]bool{}}
		deliveryLabels = append(deliveryLabels, "endpoint")
		durationLabels = append(durationLabels, "endpoint")
	}
	m.published = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_events_published_total",
		Help: "Events stored by the publish API and the outbox relay (duplicates excluded).",
	}, []string{"tenant"})
	m.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_deliveries_total",
		Help: "Delivery attempts by outcome: success, retry (another attempt is scheduled) or dead (none is left).",
	}, deliveryLabels)
	m.attemptDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "herald_attempt_duration_seconds",
		Help: "Duration of delivery attempts, from the request's start until the response was read or the attempt failed.",
		// 1 ms to 30 s, the longest endpoint timeout.
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30},
	}, durationLabels)
	m.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "herald_inflight_attempts",
		Help: "Delivery attempts under way in this process.",
	})
	m.queued = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "herald_lane_queue_depth",
		Help: "Deliveries claimed by this process and waiting in their endpoint's lane for a free slot.",
	})
	m.breakersOpen = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "herald_breaker_open_endpoints",
		Help: "Endpoints whose circuit breaker is open in this process.",
	})
	m.laneWaits = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "herald_lane_waiting_endpoints",
		Help: "Endpoints with due deliveries that this process may not deliver to for now because it cannot take their lane (PostgreSQL).",
	})
	m.apiRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_api_requests_total",
		Help: "API requests by route pattern and status code.",
	}, []string{"route", "code"})
	m.apiDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "herald_api_request_duration_seconds",
		Help:    "Duration of API requests by route pattern.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"route"})
	m.inbound = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_inbound_requests_total",
		Help: "Requests received on sources (/in/{token}) by tenant and outcome; tenant is empty when no source was found.",
	}, []string{"tenant", "outcome"})
	m.inboundAck = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "herald_inbound_ack_duration_seconds",
		Help: "Time from a received request's arrival to its answer (verification, storage and commit included).",
		// 0.5 ms to 5 s: the target is 20 ms at the 99th percentile.
		Buckets: []float64{.0005, .001, .0025, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"tenant"})
	m.outboxRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_outbox_refused_total",
		Help: "Tries to relay an outbox row that Herald refused (unknown type or tenant, data against the schema); the row stays and is tried again.",
	}, []string{"tenant"})
	m.listenStreams = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "herald_listen_streams",
		Help: "Listen streams (GET /v1/tenants/{tenant}/listen) open on this process.",
	})
	m.listenDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_listen_dropped_total",
		Help: "Listen streams the server dropped, by reason: slow_consumer (the client did not take a write in time).",
	}, []string{"reason"})
	reg.MustRegister(m.published, m.deliveries, m.attemptDuration, m.inFlight, m.queued, m.breakersOpen, m.laneWaits,
		m.apiRequests, m.apiDuration, m.inbound, m.inboundAck, m.outboxRefused, m.listenStreams, m.listenDropped,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the node's registry, for tests and for adding collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	// ContinueOnError: a failing collector (the store scan of oldest_pending) must not hide the rest.
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// EventsPublished counts n events stored for tenant.
func (m *Metrics) EventsPublished(tenant string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.published.WithLabelValues(tenant).Add(float64(n))
}

// OutboxRefused counts one refused try to relay an outbox row of tenant.
func (m *Metrics) OutboxRefused(tenant string) {
	if m == nil {
		return
	}
	m.outboxRefused.WithLabelValues(tenant).Inc()
}

// ListenStreams sets the number of listen streams open.
func (m *Metrics) ListenStreams(n int) {
	if m == nil {
		return
	}
	m.listenStreams.Set(float64(n))
}

// ListenDropped counts one listen stream the server dropped, for reason.
func (m *Metrics) ListenDropped(reason string) {
	if m == nil {
		return
	}
	m.listenDropped.WithLabelValues(reason).Inc()
}

// Outcomes of a request received on a source, as the herald_inbound_requests_total outcome label.
const (
	InboundAccepted          = "accepted"           // stored and turned into an event
	InboundDuplicate         = "duplicate"          // its dedup key was seen: acknowledged, not forwarded
	InboundQuarantined       = "quarantined"        // verified but failed the source's schema
	InboundChallenge         = "challenge"          // a verified Slack url_verification, answered
	InboundRejectedSignature = "rejected_signature" // missing, malformed or wrong signature or credentials
	InboundRejectedTimestamp = "rejected_timestamp" // signed timestamp too old or in the future
	InboundRejectedBody      = "rejected_body"      // a body the scheme cannot read
	InboundNotFound          = "not_found"          // unknown token or disabled source
	InboundForbidden         = "forbidden"          // address not in the source's allowlist
	InboundRateLimited       = "rate_limited"       // over the source's rate limit
	InboundTooLarge          = "too_large"          // body over the size limit
	InboundBadRequest        = "bad_request"        // wrong method, or a body that could not be read
	InboundStoreError        = "store_error"        // the store could not commit: answered 5xx
)

// InboundRequest counts one request received on a source of tenant ("" when no source was
// found) with its outcome (one of the Inbound constants), and how long it took to answer.
func (m *Metrics) InboundRequest(tenant, outcome string, ack time.Duration) {
	if m == nil {
		return
	}
	m.inbound.WithLabelValues(tenant, outcome).Inc()
	m.inboundAck.WithLabelValues(tenant).Observe(ack.Seconds())
}

// Attempt records one finished attempt: its outcome (one of the Outcome constants), its result
// and its duration.
func (m *Metrics) Attempt(tenant, endpoint, outcome string, out destination.Outcome) {
	if m == nil {
		return
	}
	class := ErrorClass(out)
	if m.endpoints == nil {
		m.deliveries.WithLabelValues(tenant, outcome, class).Inc()
		m.attemptDuration.WithLabelValues(tenant).Observe(out.Latency.Seconds())
		return
	}
	ep := m.endpoints.label(endpoint)
	m.deliveries.WithLabelValues(tenant, outcome, class, ep).Inc()
	m.attemptDuration.WithLabelValues(tenant, ep).Observe(out.Latency.Seconds())
}

// ErrorClass is the error_class label of an outcome: "none" for a clean success, "http_4xx" /
// "http_5xx" for an error status, otherwise the attempt's error kind (timeout, dns, tls, …), a
// fixed set.
func ErrorClass(out destination.Outcome) string {
	switch {
	case out.ErrorKind == "":
		return "none"
	case out.ErrorKind == destination.KindHTTPStatus && out.StatusCode >= 100 && out.StatusCode <= 599:
		return "http_" + strconv.Itoa(out.StatusCode/100) + "xx"
	}
	return out.ErrorKind
}

// SetDispatch reports the dispatcher's attempts in flight and the claims queued in its lanes.
func (m *Metrics) SetDispatch(inFlight, queued int) {
	if m == nil {
		return
	}
	m.inFlight.Set(float64(inFlight))
	m.queued.Set(float64(queued))
}

// SetLaneWaits reports the endpoints waiting for their lane (see dispatch's lane waits).
func (m *Metrics) SetLaneWaits(n int) {
	if m != nil {
		m.laneWaits.Set(float64(n))
	}
}

// BreakerOpened and BreakerClosed follow the endpoints whose breaker is open.
func (m *Metrics) BreakerOpened() {
	if m != nil {
		m.breakersOpen.Inc()
	}
}

// BreakerClosed is BreakerOpened's counterpart: the breaker left the open state, or its lane was
// forgotten while open.
func (m *Metrics) BreakerClosed() {
	if m != nil {
		m.breakersOpen.Dec()
	}
}

// endpointCap hands out endpoint labels for the first limit endpoints, "other" for the rest. The
// set only grows for the life of the process: a series once exported keeps its label.
type endpointCap struct {
	mu    sync.Mutex
	limit int
	seen  map[string]bool
}

func (c *endpointCap) label(id string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen[id] {
		return id
	}
	if len(c.seen) < c.limit {
		c.seen[id] = true
		return id
	}
	return otherEndpoint
}

// DueFunc lists endpoints with pending deliveries and their earliest due time (store.Store's
// DueEndpoints).
type DueFunc func(ctx context.Context, now time.Time) (map[string]time.Time, error)

// WatchOldestPending adds herald_oldest_pending_seconds, computed on scrape from due: how long
// the most overdue pending delivery has been due (0 when none is). The scan is cached for
// cacheFor, so that several scrapers cost one store query per period; a cached value is the lag
// as it was at the scan, not extrapolated, since the delivery may have gone out since.
func (m *Metrics) WatchOldestPending(due DueFunc, cacheFor time.Duration) {
	if m == nil {
		return
	}
	m.reg.MustRegister(&oldestPending{due: due, cacheFor: cacheFor, desc: prometheus.NewDesc(
		"herald_oldest_pending_seconds",
		"How long the most overdue pending delivery has been due (0 when none is). It includes deliveries claimed and not yet finished.",
		nil, nil)})
}

type oldestPending struct {
	due      DueFunc
	cacheFor time.Duration
	desc     *prometheus.Desc

	mu  sync.Mutex
	at  time.Time // when lag was measured; zero before the first scan
	lag float64   // seconds
}

func (o *oldestPending) Describe(ch chan<- *prometheus.Desc) { ch <- o.desc }

func (o *oldestPending) Collect(ch chan<- prometheus.Metric) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := time.Now()
	if o.at.IsZero() || now.Sub(o.at) >= o.cacheFor {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		due, err := o.due(ctx, now)
		cancel()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(o.desc, err)
			return
		}
		o.at, o.lag = now, 0
		for _, t := range due {
			o.lag = max(o.lag, now.Sub(t).Seconds())
		}
	}
	ch <- prometheus.MustNewConstMetric(o.desc, prometheus.GaugeValue, o.lag)
}
