package source

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Outcome statuses of a published event.
const (
	Stored      = "stored"      // a new event, with its deliveries
	Duplicate   = "duplicate"   // the tenant had an event of that id: nothing new fans out
	Refused     = "refused"     // Herald refuses the event (unknown type, too large, …): Reason
	Quarantined = "quarantined" // held as a quarantined message of the source: Reason
)

// Outcome is what became of one event.
type Outcome struct {
	Status string
	Reason string
}

// Ref names a source to a Publisher.
type Ref struct {
	TenantID, SourceID string
}

// Publisher stores the events of a batch, each with its deliveries, and wakes the delivery
// engine. Every event gets an Outcome; an error means the store could not take them (nothing, or
// not all, of the batch is known to be stored): the runner gives the batch back to the broker
// and pauses. A refused or quarantined event is stored as a received message of the source, so
// that nothing acknowledged is lost without a trace.
type Publisher interface {
	Publish(ctx context.Context, src Ref, events []Event) ([]Outcome, error)
}

// Health states, as store.BrokerHealth has them.
const (
	StateHealthy   = "healthy"
	StateUnhealthy = "unhealthy"
)

// Reporter learns what the runners find of their brokers: Report is called when a source's
// state or its error changes (err "" when healthy). err never holds a secret setting's value.
type Reporter interface {
	Report(src Ref, state, err string)
}

// Spec is a broker source as a runner runs it.
type Spec struct {
	ID, TenantID, Type string
	// Settings are the type's settings, secrets unsealed.
	Settings json.RawMessage
	Mapping  Mapping
	Schema   json.RawMessage
	Internal bool
	// Version changes whenever the source does (its UpdatedAt): a new version restarts its runner.
	Version time.Time
	// Created is when the source was created: Target.Created.
	Created time.Time
}

// Config is what a Manager needs.
type Config struct {
	Types     map[string]Type
	Publisher Publisher
	Reporter  Reporter
	// Member names this node in consumer groups.
	Member string
	Logger *slog.Logger
	// FetchMax and FetchWait bound one Fetch (defaults 100 and 1 s).
	FetchMax  int
	FetchWait time.Duration
	// BackoffMin and BackoffMax pace reconnections and retries of a store that could not take a
	// batch (defaults 500 ms and 30 s).
	BackoffMin, BackoffMax time.Duration
}

// Manager runs one consumer loop per enabled broker source on this node.
type Manager struct {
	cfg Config
	mu  sync.Mutex
	run map[string]*running
	wg  sync.WaitGroup
}

type running struct {
	spec   Spec
	cancel context.CancelFunc
	done   chan struct{}
}

// NewManager makes a Manager; Sync starts its runners.
func NewManager(cfg Config) *Manager {
	if cfg.FetchMax <= 0 {
		cfg.FetchMax = 100
	}
	if cfg.FetchWait <= 0 {
		cfg.FetchWait = time.Second
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = 500 * time.Millisecond
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Manager{cfg: cfg, run: map[string]*running{}}
}

// Sync makes the running set the given specs: new ones start, changed ones restart, gone ones
// stop (each stopped runner's consumer is closed before Sync returns, so its unacknowledged
// messages go back to the broker). ctx bounds the runners started.
func (m *Manager) Sync(ctx context.Context, specs []Spec) {
	want := make(map[string]Spec, len(specs))
	for _, s := range specs {
		want[s.ID] = s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, r := range m.run {
		if s, ok := want[id]; !ok || !s.Version.Equal(r.spec.Version) {
			r.cancel()
			<-r.done
			delete(m.run, id)
		}
	}
	for id, s := range want {
		if _, ok := m.run[id]; ok {
			continue
		}
		rctx, cancel := context.WithCancel(ctx)
		r := &running{spec: s, cancel: cancel, done: make(chan struct{})}
		m.run[id] = r
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			defer close(r.done)
			m.runSource(rctx, s)
		}()
	}
}

// Stop stops every runner and waits for them.
func (m *Manager) Stop() {
	m.mu.Lock()
	for id, r := range m.run {
		r.cancel()
		delete(m.run, id)
	}
	m.mu.Unlock()
	m.wg.Wait()
}

// runner is one source's loop.
type runner struct {
	m       *Manager
	spec    Spec
	ref     Ref
	log     *slog.Logger
	mapper  *Mapper
	secrets []string
	state   string
	lastErr string
}

func (m *Manager) runSource(ctx context.Context, s Spec) {
	r := &runner{m: m, spec: s, ref: Ref{TenantID: s.TenantID, SourceID: s.ID},
		log: m.cfg.Logger.With("tenant", s.TenantID, "broker_source", s.ID, "type", s.Type)}
	typ, ok := m.cfg.Types[s.Type]
	if !ok {
		r.report(StateUnhealthy, fmt.Sprintf("this node has no broker source type %q", s.Type))
		<-ctx.Done()
		return
	}
	r.secrets = secretValues(s.Settings, typ.Secrets())
	mapper, err := NewMapper(s.ID, s.Mapping, s.Schema)
	if err != nil {
		r.report(StateUnhealthy, err.Error())
		<-ctx.Done()
		return
	}
	r.mapper = mapper
	target := Target{SourceID: s.ID, TenantID: s.TenantID, Group: "herald-" + s.ID, Member: m.cfg.Member, Settings: s.Settings, Internal: s.Internal, Created: s.Created}
	backoff := newBackoff(m.cfg.BackoffMin, m.cfg.BackoffMax)
	for ctx.Err() == nil {
		c, err := typ.Open(ctx, target)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.brokerFailed("open", err)
			if !sleep(ctx, backoff.next()) {
				return
			}
			continue
		}
		err = r.consume(ctx, c, backoff)
		if cerr := c.Close(); cerr != nil && ctx.Err() == nil {
			r.log.Debug("close broker consumer", "err", r.scrub(cerr.Error()))
		}
		if ctx.Err() != nil {
			return
		}
		r.brokerFailed("fetch", err)
		if !sleep(ctx, backoff.next()) {
			return
		}
	}
}

// consume fetches, publishes and acknowledges until the broker fails (its error is returned) or
// ctx ends.
func (r *runner) consume(ctx context.Context, c Consumer, brokerBackoff *backoff) error {
	cfg := r.m.cfg
	storeBackoff := newBackoff(cfg.BackoffMin, cfg.BackoffMax)
	for {
		b, err := c.Fetch(ctx, cfg.FetchMax, cfg.FetchWait)
		if err != nil {
			return err
		}
		r.report(StateHealthy, "")
		brokerBackoff.reset()
		msgs := b.Messages()
		if len(msgs) == 0 {
			continue
		}
		events := make([]Event, len(msgs))
		for i := range msgs {
			events[i] = r.mapper.Map(&msgs[i])
		}
		outs, err := cfg.Publisher.Publish(ctx, r.ref, events)
		if err != nil {
			// The store could not take them: give the messages back (the broker keeps them) and
			// pause fetching, so that nothing piles up in memory while the store is away.
			delay := storeBackoff.next()
			r.log.Warn("broker source paused: the store could not take its events; the broker keeps the messages",
				"messages", len(msgs), "retry_in", delay, "err", err)
			nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if nerr := b.Nak(nctx, delay); nerr != nil {
				r.log.Warn("give messages back to the broker", "err", r.scrub(nerr.Error()))
			}
			cancel()
			if !sleep(ctx, delay) {
				return nil
			}
			continue
		}
		storeBackoff.reset()
		for i, o := range outs {
			if o.Status == Refused || o.Status == Quarantined {
				r.log.Warn("broker message not published", "status", o.Status, "event", events[i].ID, "reason", o.Reason)
			}
		}
		// Only now, with every event committed: the broker may forget the messages.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err = b.Ack(actx)
		cancel()
		if err != nil {
			// Stored but not acknowledged: the broker delivers them again, and their stable event
			// ids make those deliveries duplicates that fan out nothing.
			r.log.Warn("acknowledge messages to the broker; they will come again as duplicates", "messages", len(msgs), "err", r.scrub(err.Error()))
		}
	}
}

func (r *runner) brokerFailed(op string, err error) {
	msg := "broker unreachable"
	if err != nil {
		msg = r.scrub(err.Error())
	}
	r.log.Warn("broker source unhealthy; reconnecting", "op", op, "err", msg)
	r.report(StateUnhealthy, msg)
}

func (r *runner) report(state, msg string) {
	if state == r.state && msg == r.lastErr {
		return
	}
	r.state, r.lastErr = state, msg
	if r.m.cfg.Reporter != nil {
		r.m.cfg.Reporter.Report(r.ref, state, msg)
	}
}

// scrub removes the values of the source's secret settings from a broker's error message.
func (r *runner) scrub(s string) string {
	for _, v := range r.secrets {
		s = strings.ReplaceAll(s, v, "[redacted]")
	}
	return s
}

// secretValues are the string values of the settings' secret fields (at least 4 bytes long:
// shorter ones would scrub ordinary words).
func secretValues(settings json.RawMessage, fields []string) []string {
	var doc map[string]any
	if json.Unmarshal(settings, &doc) != nil {
		return nil
	}
	var out []string
	for _, f := range fields {
		if v, ok := doc[f].(string); ok && len(v) >= 4 {
			out = append(out, v)
		}
	}
	return out
}

// backoff doubles a delay from min up to max.
type backoff struct {
	min, max, cur time.Duration
}

func newBackoff(min, max time.Duration) *backoff { return &backoff{min: min, max: max} }

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(b.cur*2, b.max)
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }

// sleep waits d; false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
