// Package ops publishes Herald's operational webhooks: events about Herald itself (an endpoint
// disabled or failing, a delivery dead-lettered, a source whose requests keep failing
// verification), published through the same engine as any other event, to a tenant the
// operator chooses (--ops-tenant). The operator subscribes that tenant's endpoints to them like
// to any other event type.
//
// Publishing is off the delivery path: the engine hands an event to a bounded queue and goes on;
// one goroutine (Run) stores the queued events in batches. When the queue is full an event is
// dropped and logged, so a storm of failures never slows deliveries.
package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/store"
)

// The operational event types, registered in the catalog at start when an ops tenant is set.
const (
	EndpointDisabled            = "endpoint.disabled"
	EndpointFailing             = "endpoint.failing"
	DeliveryDeadLettered        = "delivery.dead_lettered"
	SourceVerificationFailing   = "source.verification_failing"
	SourceBrokerUnreachable     = "source.broker_unreachable"
	EndpointCertificateExpiring = "endpoint.certificate_expiring"
)

// EventTypes lists the operational event types with their catalog descriptions.
func EventTypes() []store.EventType {
	return []store.EventType{
		{Name: EndpointDisabled, Description: "Herald disabled an endpoint: it answered 410 Gone, or failed without a success for --disable-after."},
		{Name: EndpointFailing, Description: "An endpoint has failed without a success for 50 %, 90 % or 100 % of --disable-after."},
		{Name: DeliveryDeadLettered, Description: "A delivery has no attempt left: it is dead-lettered and can be replayed."},
		{Name: SourceVerificationFailing, Description: "A source keeps rejecting requests that fail verification, with no verified request in between."},
		{Name: SourceBrokerUnreachable, Description: "A broker source's consumer could not reach its broker; Herald keeps reconnecting with backoff."},
		{Name: EndpointCertificateExpiring, Description: "A webhook endpoint's mutual TLS client certificate expires within 14 days (or has expired): replace it before deliveries fail."},
	}
}

// EventSource is the envelope's "source" of every operational event.
const EventSource = "herald"

// Notifier wakes the delivery engine for endpoints that got new deliveries.
type Notifier interface {
	Notify(endpointIDs ...string)
}

// Config holds a Publisher's settings; zero values take the defaults.
type Config struct {
	// Tenant receives the events. Empty turns operational events off (New returns nil).
	Tenant string
	Store  store.Store
	Logger *slog.Logger
	// Queue bounds the events waiting to be stored (default 1024).
	Queue int
	// SourceRejections and SourceWindow tune source.verification_failing: that many requests
	// of one source rejected by verification within SourceWindow, with no verified request
	// between (defaults 10 and 10 minutes).
	SourceRejections int
	SourceWindow     time.Duration
	// Now is the clock; tests may set it.
	Now func() time.Time
}

// Publisher queues operational events and stores them. A nil *Publisher is valid and publishes
// nothing, so callers need not check whether operational events are on.
type Publisher struct {
	cfg     Config
	log     *slog.Logger
	queue   chan *store.Event
	sources sourceWatch
}

// New makes a Publisher, or returns nil when cfg names no tenant.
func New(cfg Config) *Publisher {
	if cfg.Tenant == "" {
		return nil
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 1024
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SourceRejections <= 0 {
		cfg.SourceRejections = DefaultSourceRejections
	}
	if cfg.SourceWindow <= 0 {
		cfg.SourceWindow = DefaultSourceWindow
	}
	return &Publisher{cfg: cfg, log: cfg.Logger, queue: make(chan *store.Event, cfg.Queue),
		sources: sourceWatch{streaks: map[string]*sourceStreak{}}}
}

// Tenant is the ops tenant ("" for a nil Publisher).
func (p *Publisher) Tenant() string {
	if p == nil {
		return ""
	}
	return p.cfg.Tenant
}

// Register adds the operational event types to the catalog (those missing), and warns when the
// ops tenant does not exist yet: its events cannot be stored until it does.
func (p *Publisher) Register(ctx context.Context) error {
	if p == nil {
		return nil
	}
	now := p.cfg.Now().UTC()
	for _, et := range EventTypes() {
		_, err := p.cfg.Store.GetEventType(ctx, et.Name)
		if err == nil {
			continue
		}
		if !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("read event type %s: %w", et.Name, err)
		}
		et.CreatedAt, et.UpdatedAt = now, now
		if err := p.cfg.Store.CreateEventType(ctx, &et); err != nil && !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("register event type %s: %w", et.Name, err)
		}
	}
	if _, err := p.cfg.Store.GetTenant(ctx, p.cfg.Tenant); errors.Is(err, store.ErrNotFound) {
		p.log.Warn("ops tenant does not exist: operational events are dropped until it is created", "ops_tenant", p.cfg.Tenant)
	} else if err != nil {
		return fmt.Errorf("read ops tenant: %w", err)
	}
	return nil
}

// Run stores queued events until ctx ends, then stores what is queued at that moment (for up to
// 5 s) and returns. Each batch is one Publish; n is woken for the deliveries it makes.
func (p *Publisher) Run(ctx context.Context, n Notifier) {
	if p == nil {
		return
	}
	batch := make([]*store.Event, 0, 100)
	for {
		select {
		case <-ctx.Done():
			flush, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			for {
				batch = p.take(batch[:0])
				if len(batch) == 0 {
					return
				}
				p.store(flush, n, batch)
			}
		case ev := <-p.queue:
			batch = p.take(append(batch[:0], ev))
			p.store(ctx, n, batch)
		}
	}
}

// take appends what is queued, up to the batch's capacity.
func (p *Publisher) take(batch []*store.Event) []*store.Event {
	for len(batch) < cap(batch) {
		select {
		case ev := <-p.queue:
			batch = append(batch, ev)
		default:
			return batch
		}
	}
	return batch
}

// store publishes a batch. While the store cannot take it (store.ErrUnavailable: the database is
// down or restarting) it tries again, the pause doubling from storeRetryFirst to storeRetryMax,
// until ctx ends: an outage delays operational events instead of losing them (the queue fills
// meanwhile, and what does not fit is dropped as always).
func (p *Publisher) store(ctx context.Context, n Notifier, batch []*store.Event) {
	res, err := p.cfg.Store.Publish(ctx, p.cfg.Tenant, batch)
	for pause := storeRetryFirst; errors.Is(err, store.ErrUnavailable) && ctx.Err() == nil; pause = min(2*pause, storeRetryMax) {
		p.log.Warn("store operational events: the store is unavailable; trying again", "ops_tenant", p.cfg.Tenant,
			"events", len(batch), "retry_in", pause, "err", err)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
			res, err = p.cfg.Store.Publish(ctx, p.cfg.Tenant, batch)
		}
	}
	if err != nil {
		ids := make([]string, len(batch))
		for i, ev := range batch {
			ids[i] = ev.ID
		}
		p.log.Error("store operational events", "ops_tenant", p.cfg.Tenant, "events", ids, "err", err)
		return
	}
	var wake []string
	for _, r := range res {
		wake = append(wake, r.EndpointIDs...)
	}
	if len(wake) > 0 && n != nil {
		n.Notify(wake...)
	}
}

// storeRetryFirst and storeRetryMax pace the tries of a batch while the store is unavailable.
const (
	storeRetryFirst = 500 * time.Millisecond
	storeRetryMax   = 30 * time.Second
)

// publish queues one event; id "" gets a random one. A stable id makes the event idempotent:
// the store keeps the first of several publishes of it (two nodes, or a restart, that notice
// the same thing). The body endpoints receive is the event package's envelope, the same as a
// published event's.
func (p *Publisher) publish(id, typ string, res *event.Resource, data any) {
	now := event.Timestamp(p.cfg.Now().UTC())
	if id == "" {
		id = event.NewPrefixedID("ops", now)
	}
	raw, err := event.Marshal(data)
	if err != nil {
		p.log.Error("encode operational event", "type", typ, "err", err)
		return
	}
	env := event.Envelope{ID: id, Type: typ, Timestamp: now, Data: raw, Source: EventSource, Resource: res}
	payload, err := env.Encode()
	if err != nil {
		p.log.Error("encode operational event", "type", typ, "err", err)
		return
	}
	ev := &store.Event{ID: id, Type: typ, Timestamp: now, Source: EventSource, Payload: payload, CreatedAt: now}
	select {
	case p.queue <- ev:
	default:
		p.log.Warn("operational event dropped: the queue is full", "type", typ, "id", id)
	}
}

// suppressed reports whether an event about the ops tenant's own deliveries must not be
// published: an ops endpoint that fails would otherwise make an event that goes to itself,
// fails, and makes another, forever.
func (p *Publisher) suppressed(tenant, typ string, args ...any) bool {
	if tenant != p.cfg.Tenant {
		return false
	}
	p.log.Warn("operational event about the ops tenant not published", append([]any{"type", typ, "tenant", tenant}, args...)...)
	return true
}

// DisabledData is the data of endpoint.disabled.
type DisabledData struct {
	Tenant   string `json:"tenant"`
	Endpoint string `json:"endpoint"`
	Reason   string `json:"reason"`
	// Gone is true when the endpoint answered 410 Gone.
	Gone bool `json:"gone"`
	// DeadLettered counts the pending deliveries dead-lettered with it (after 410 Gone; after
	// --disable-after they stay pending for when it is enabled again).
	DeadLettered int        `json:"dead_lettered"`
	FailingSince *time.Time `json:"failing_since,omitempty"`
}

// EndpointDisabled publishes endpoint.disabled. It is published for ops-tenant endpoints too:
// a disabled endpoint gets no more deliveries, so it happens at most once per (re-)enabling.
func (p *Publisher) EndpointDisabled(d DisabledData) {
	if p == nil {
		return
	}
	p.publish("", EndpointDisabled, &event.Resource{ID: d.Endpoint, Type: "endpoint"}, d)
}

// FailingData is the data of endpoint.failing.
type FailingData struct {
	Tenant   string `json:"tenant"`
	Endpoint string `json:"endpoint"`
	// ThresholdPercent is the share of --disable-after the streak has reached: 50, 90 or 100.
	ThresholdPercent    int       `json:"threshold_percent"`
	FailingSince        time.Time `json:"failing_since"`
	FailingForSeconds   int64     `json:"failing_for_seconds"`
	DisableAfterSeconds int64     `json:"disable_after_seconds"`
	// FailedAttempts counts the failed attempts this node has seen in the streak.
	FailedAttempts int    `json:"failed_attempts"`
	LastErrorKind  string `json:"last_error_kind,omitempty"`
	LastStatus     int    `json:"last_status,omitempty"`
}

// EndpointFailing publishes endpoint.failing, once per endpoint, streak and threshold: its id
// is made of them, so that another node or a restart noticing the same crossing adds nothing.
func (p *Publisher) EndpointFailing(d FailingData) {
	if p == nil || p.suppressed(d.Tenant, EndpointFailing, "endpoint", d.Endpoint) {
		return
	}
	id := fmt.Sprintf("ops_failing_%s_%d_%d", d.Endpoint, d.FailingSince.UnixMicro(), d.ThresholdPercent)
	p.publish(id, EndpointFailing, &event.Resource{ID: d.Endpoint, Type: "endpoint"}, d)
}

// DeadLetterData is the data of delivery.dead_lettered.
type DeadLetterData struct {
	Tenant    string `json:"tenant"`
	Endpoint  string `json:"endpoint"`
	EventID   string `json:"event_id"`
	EventType string `json:"event_type"`
	// Delivery is the delivery's id as the API shows it (dlv_…).
	Delivery string `json:"delivery"`
	// Attempts counts the delivery's attempts, all told.
	Attempts   int    `json:"attempts"`
	LastStatus int    `json:"last_status,omitempty"`
	ErrorKind  string `json:"error_kind,omitempty"`
	Reason     string `json:"reason"`
}

// DeliveryDeadLettered publishes delivery.dead_lettered, once per delivery and attempt count.
// Deliveries of the ops tenant are never reported: see suppressed.
func (p *Publisher) DeliveryDeadLettered(d DeadLetterData) {
	if p == nil || p.suppressed(d.Tenant, DeliveryDeadLettered, "endpoint", d.Endpoint, "event", d.EventID) {
		return
	}
	id := fmt.Sprintf("ops_dead_%s_%d", strings.TrimPrefix(d.Delivery, "dlv_"), d.Attempts)
	p.publish(id, DeliveryDeadLettered, &event.Resource{ID: d.Delivery, Type: "delivery"}, d)
}

// VerificationData is the data of source.verification_failing.
type VerificationData struct {
	Tenant string `json:"tenant"`
	Source string `json:"source"`
	// Rejections counts the rejected requests of the streak so far (the threshold).
	Rejections      int       `json:"rejections"`
	WindowSeconds   int64     `json:"window_seconds"`
	FirstRejectedAt time.Time `json:"first_rejected_at"`
	LastReason      string    `json:"last_reason"`
}

// SourceVerificationFailing publishes source.verification_failing. Sources of the ops tenant
// are reported too: the event goes to endpoints, never to a source, so it cannot loop.
func (p *Publisher) SourceVerificationFailing(d VerificationData) {
	if p == nil {
		return
	}
	p.publish("", SourceVerificationFailing, &event.Resource{ID: d.Source, Type: "source"}, d)
}

// BrokerUnreachableData is the data of source.broker_unreachable.
type BrokerUnreachableData struct {
	Tenant string `json:"tenant"`
	// Source is the broker source (bsrc_…), Type its broker type.
	Source string    `json:"source"`
	Type   string    `json:"type"`
	Error  string    `json:"error"`
	Since  time.Time `json:"since"`
	// Node is the node whose consumer could not reach the broker.
	Node string `json:"node,omitempty"`
}

// BrokerUnreachable publishes source.broker_unreachable: a node's consumer of a broker source
// could not open or read its broker. Published once per outage and node (its id is made of
// them); the node keeps reconnecting with backoff.
func (p *Publisher) BrokerUnreachable(d BrokerUnreachableData) {
	if p == nil {
		return
	}
	id := fmt.Sprintf("ops_broker_%s_%s_%d", strings.TrimPrefix(d.Source, "bsrc_"), d.Node, d.Since.UnixMicro())
	p.publish(id, SourceBrokerUnreachable, &event.Resource{ID: d.Source, Type: "broker_source"}, d)
}

// CertificateExpiringData is the data of endpoint.certificate_expiring.
type CertificateExpiringData struct {
	Tenant   string `json:"tenant"`
	Endpoint string `json:"endpoint"`
	// The client certificate (its leaf): subject, issuer, SHA-256 fingerprint of its DER.
	Subject           string    `json:"subject"`
	Issuer            string    `json:"issuer"`
	FingerprintSHA256 string    `json:"fingerprint_sha256"`
	NotAfter          time.Time `json:"not_after"`
	// DaysLeft is the whole days until NotAfter when it was noticed (negative once expired).
	DaysLeft int `json:"days_left"`
}

// CertificateExpiringWithin is how long before its expiry an endpoint's client certificate is
// reported.
const CertificateExpiringWithin = 14 * 24 * time.Hour

// CertificateExpiring publishes endpoint.certificate_expiring, once per endpoint and
// certificate: its id is made of them, so that later checks, other nodes and restarts add
// nothing (for as long as the event is kept, --retention).
func (p *Publisher) CertificateExpiring(d CertificateExpiringData) {
	if p == nil {
		return
	}
	fp := d.FingerprintSHA256
	if len(fp) > 32 {
		fp = fp[:32]
	}
	id := fmt.Sprintf("ops_certexp_%s_%s", d.Endpoint, fp)
	p.publish(id, EndpointCertificateExpiring, &event.Resource{ID: d.Endpoint, Type: "endpoint"}, d)
}
