package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/broker/kafka"
	natsdest "github.com/heraldhq/herald/internal/broker/nats"
	"github.com/heraldhq/herald/internal/broker/pubsub"
	"github.com/heraldhq/herald/internal/broker/rabbitmq"
	"github.com/heraldhq/herald/internal/broker/redisstream"
	"github.com/heraldhq/herald/internal/broker/sqs"
	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/internal/ops"
	"github.com/heraldhq/herald/internal/outboxrelay"
	"github.com/heraldhq/herald/internal/source"
	"github.com/heraldhq/herald/internal/store"
)

// sourceTypeConstructors are the broker source types a node runs, one constructor each: a new
// type is a package under internal/broker and one line here.
func sourceTypeConstructors() []func(source.Env) source.Type {
	return []func(source.Env) source.Type{
		func(env source.Env) source.Type { return natsdest.NewSource(env) },
		func(env source.Env) source.Type { return rabbitmq.NewSource(env) },
		func(env source.Env) source.Type { return redisstream.NewSource(env) },
		func(env source.Env) source.Type { return kafka.NewSource(env) },
		func(env source.Env) source.Type { return pubsub.NewSource(env) },
		func(env source.Env) source.Type { return sqs.NewSource(env) },
	}
}

// defaultBrokerSourcePoll is how often a node reads the broker sources again, to follow changes
// made through other nodes (its own API's changes apply at once).
const defaultBrokerSourcePoll = 5 * time.Second

// brokerSources runs the node's consumers of broker sources (internal/source): it reads the
// enabled ones at start, when the API changes one, and every poll interval.
type brokerSources struct {
	st      store.Store
	mgr     *source.Manager
	log     *slog.Logger
	poll    time.Duration
	wake    chan struct{}
	gauge   *prometheus.GaugeVec
	ops     *ops.Publisher
	node    string
	typeOf  sync.Map // source id → type name, for the ops event
	mu      sync.Mutex
	running map[string]source.Ref // the gauge's label sets
}

// brokerPublisher stores the events of broker messages as the publish API does (api.BuildEvent
// checks them, Publish stores them with their deliveries) and wakes the dispatcher.
type brokerPublisher struct {
	st     store.Store
	build  func(context.Context, event.Input) (*store.Event, error)
	notify func(ids ...string)
	m      *metrics.Metrics
	now    func() time.Time
}

func (p *brokerPublisher) unavailable(err error) bool {
	return store.Unavailable(p.st, err) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// Publish implements source.Publisher.
func (p *brokerPublisher) Publish(ctx context.Context, src source.Ref, events []source.Event) ([]source.Outcome, error) {
	outs := make([]source.Outcome, len(events))
	var batch []*store.Event
	var at []int
	for i := range events {
		ev := &events[i]
		if ev.Quarantine != "" {
			if err := p.hold(ctx, src, ev, store.ReceiveQuarantined, ev.Quarantine); err != nil {
				return nil, err
			}
			outs[i] = source.Outcome{Status: source.Quarantined, Reason: ev.Quarantine}
			continue
		}
		sev, err := p.build(ctx, event.Input{ID: ev.ID, Type: ev.Type, Data: event.Object(ev.Data), Source: src.SourceID})
		if err != nil {
			if p.unavailable(err) {
				return nil, err
			}
			reason := "refused: " + outboxrelay.Describe(err)
			if err := p.hold(ctx, src, ev, store.ReceiveRejected, reason); err != nil {
				return nil, err
			}
			outs[i] = source.Outcome{Status: source.Refused, Reason: reason}
			continue
		}
		sev.TenantID = src.TenantID
		batch = append(batch, sev)
		at = append(at, i)
	}
	if len(batch) == 0 {
		return outs, nil
	}
	res, err := p.st.Publish(ctx, src.TenantID, batch)
	if err != nil {
		if errors.Is(err, store.ErrLimit) || errors.Is(err, store.ErrNotFound) {
			// Refused whole (too many deliveries, the tenant is gone): held one by one.
			for _, i := range at {
				reason := "refused: " + err.Error()
				if herr := p.hold(ctx, src, &events[i], store.ReceiveRejected, reason); herr != nil {
					return nil, herr
				}
				outs[i] = source.Outcome{Status: source.Refused, Reason: reason}
			}
			return outs, nil
		}
		return nil, fmt.Errorf("store the events of broker source %s: %w", src.SourceID, err)
	}
	var wake []string
	stored := 0
	for j, r := range res {
		if r.Duplicate {
			outs[at[j]] = source.Outcome{Status: source.Duplicate}
			continue
		}
		outs[at[j]] = source.Outcome{Status: source.Stored}
		stored++
		wake = append(wake, r.EndpointIDs...)
	}
	p.m.EventsPublished(src.TenantID, stored)
	if len(wake) > 0 {
		p.notify(wake...)
	}
	return outs, nil
}

// hold stores a message that did not become an event as a received message of its source:
// quarantined (replayable once fixed) or rejected (refused by Herald), so that an acknowledged
// message always leaves a trace. Its event id is its dedup key: a redelivery is a duplicate.
func (p *brokerPublisher) hold(ctx context.Context, src source.Ref, ev *source.Event, status store.ReceiveStatus, reason string) error {
	now := p.now().UTC().Truncate(time.Microsecond)
	m := ev.Message
	r := &store.ReceivedRequest{ID: receivedID(now), TenantID: src.TenantID, SourceID: src.SourceID, ReceivedAt: now,
		Method: "BROKER", Path: m.Subject, Headers: m.Header, Body: m.Body, Status: status, Reason: reason, DedupKey: ev.ID,
		DedupUntil: now.Add(store.DefaultDedupWindow), EventType: ev.Type}
	if len(r.Reason) > 2000 {
		r.Reason = r.Reason[:2000]
	}
	if status == store.ReceiveRejected {
		// A rejected message takes no key (a redelivery is stored again, and refused again
		// until fixed), but keeps its event id there: a replay publishes it under that id.
		r.DedupUntil = time.Time{}
	}
	if _, err := p.st.Receive(ctx, r, nil); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil // the source is gone: its runner is being stopped
		}
		return fmt.Errorf("hold a message of broker source %s: %w", src.SourceID, err)
	}
	return nil
}

// Report implements source.Reporter: the health goes to the store (the API shows it), the
// metric herald_broker_source_up, and, when a source becomes unhealthy, the operational webhook
// source.broker_unreachable.
func (b *brokerSources) Report(src source.Ref, state, msg string) {
	up := 0.0
	if state == source.StateHealthy {
		up = 1
	}
	if b.gauge != nil {
		b.gauge.WithLabelValues(src.TenantID, src.SourceID).Set(up)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := store.BrokerHealth{State: state, LastError: msg, Since: now}
	prev, err := b.st.GetBrokerSource(ctx, src.TenantID, src.SourceID)
	if err := b.st.SetBrokerSourceHealth(ctx, src.TenantID, src.SourceID, h); err != nil && !errors.Is(err, store.ErrNotFound) {
		b.log.Warn("record broker source health", "tenant", src.TenantID, "broker_source", src.SourceID, "err", err)
	}
	if state == source.StateUnhealthy && (err != nil || prev.Health.State != store.BrokerUnhealthy) {
		typ, _ := b.typeOf.Load(src.SourceID)
		name, _ := typ.(string)
		b.ops.BrokerUnreachable(ops.BrokerUnreachableData{Tenant: src.TenantID, Source: src.SourceID, Type: name, Error: msg, Since: now, Node: b.node})
	}
}

// changed asks for a new read of the broker sources, now.
func (b *brokerSources) changed() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// run keeps the runners in step with the store until ctx ends, then stops them.
func (b *brokerSources) run(ctx context.Context) {
	defer b.mgr.Stop()
	t := time.NewTicker(b.poll)
	defer t.Stop()
	for {
		b.sync(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-b.wake:
		}
	}
}

func (b *brokerSources) sync(ctx context.Context) {
	list, err := b.st.EnabledBrokerSources(ctx)
	if err != nil {
		if ctx.Err() == nil {
			b.log.Warn("read broker sources; the running consumers go on", "err", err)
		}
		return
	}
	specs := make([]source.Spec, 0, len(list))
	seen := map[string]bool{}
	for _, bs := range list {
		m, _ := source.CheckMapping(bs.Mapping)
		specs = append(specs, source.Spec{ID: bs.ID, TenantID: bs.TenantID, Type: bs.Type, Settings: bs.Settings, Mapping: m,
			Schema: bs.Schema, Version: bs.UpdatedAt, Created: bs.CreatedAt})
		b.typeOf.Store(bs.ID, bs.Type)
		seen[bs.ID] = true
	}
	b.mgr.Sync(ctx, specs)
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, ref := range b.running {
		if !seen[id] {
			delete(b.running, id)
			b.typeOf.Delete(id)
			if b.gauge != nil {
				b.gauge.DeleteLabelValues(ref.TenantID, ref.SourceID)
			}
		}
	}
	for _, s := range specs {
		b.running[s.ID] = source.Ref{TenantID: s.TenantID, SourceID: s.ID}
	}
}

// nodeName names this node in consumer groups: the host name, process id and a random part
// (two nodes of one process, in tests, are two members).
func nodeName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "herald"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", h, os.Getpid(), hex.EncodeToString(b[:]))
}

// receivedID is the id of a held message, as received requests have them (req_…): time-ordered.
func receivedID(now time.Time) string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("req_%012x%s", now.UnixMilli(), hex.EncodeToString(b[:]))
}

// startBrokerSources builds the node's broker source types and starts their runners.
func startBrokerSources(cfg Config, st store.Store, env source.Env, m *metrics.Metrics, opsPub *ops.Publisher, log *slog.Logger) (*brokerSources, *source.Registry, error) {
	var types []source.Type
	for _, newType := range append(sourceTypeConstructors(), cfg.Sources...) {
		types = append(types, newType(env))
	}
	reg, err := source.NewRegistry(types...)
	if err != nil {
		return nil, nil, err
	}
	poll := cfg.BrokerSourcePoll
	if poll <= 0 {
		poll = defaultBrokerSourcePoll
	}
	b := &brokerSources{st: st, log: log, poll: poll, wake: make(chan struct{}, 1), ops: opsPub, node: nodeName(), running: map[string]source.Ref{}}
	if m != nil {
		b.gauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_broker_source_up",
			Help: "1 while this node's consumer of a broker source reads its broker, 0 while it cannot (it reconnects with backoff).",
		}, []string{"tenant", "source"})
		if err := m.Registry().Register(b.gauge); err != nil {
			return nil, nil, fmt.Errorf("register broker source metric: %w", err)
		}
	}
	return b, reg, nil
}
