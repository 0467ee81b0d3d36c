package store

import (
	"context"
	"strings"
	"sync"

	"github.com/heraldhq/herald/internal/expr"
)

// Subscriber is an enabled endpoint as fan-out sees it: what it subscribes to and its filter.
// Drivers load a tenant's subscribers with each publish (or cache them until an endpoint
// changes) and ask a Matcher which of them get each event.
type Subscriber struct {
	ID       string
	Patterns []string
	Filter   *expr.Filter // nil: every subscribed event
	// broken: the stored filter no longer compiles (it was checked when saved, so only a change
	// of the expression language could do it): the endpoint gets nothing rather than everything.
	broken bool
}

// NewSubscriber makes a subscriber of an endpoint's id, subscriptions and stored options
// (EncodeEndpointOptions), compiling its filter through cache.
func NewSubscriber(id string, patterns []string, options string, cache *expr.Cache) (Subscriber, error) {
	sub := Subscriber{ID: id, Patterns: patterns}
	if !strings.Contains(options, `"filter"`) {
		// No filter (most endpoints): PostgreSQL reads subscribers with every publish, so their
		// options are not decoded for nothing.
		return sub, nil
	}
	o, err := DecodeEndpointOptions(options)
	if err != nil {
		return sub, err
	}
	if o.Filter != "" {
		if sub.Filter, err = cache.Filter(o.Filter); err != nil {
			sub.broken = true
		}
	}
	return sub, nil
}

// Matcher decides which subscribers get one event, decoding its envelope for filters at most
// once.
type Matcher struct {
	ev      *Event
	in      *expr.Input
	decoded bool
}

// NewMatcher makes the matcher of one event.
func NewMatcher(ev *Event) Matcher { return Matcher{ev: ev} }

// Wants reports whether sub gets the event: it subscribes to the event's type and its filter,
// if any, is true for the envelope. A filter that fails on the event (a missing field, a type
// mismatch) is false: a filter narrows what an endpoint receives, and an error must not widen it.
func (m *Matcher) Wants(ctx context.Context, sub Subscriber) bool {
	if sub.broken || !MatchAny(sub.Patterns, m.ev.Type) {
		return false
	}
	if sub.Filter == nil {
		return true
	}
	if !m.decoded {
		m.decoded = true
		m.in, _ = expr.NewInput(m.ev.Payload) // nil for an envelope that is not an object: no filter matches it
	}
	if m.in == nil {
		return false
	}
	ok, err := sub.Filter.Match(ctx, m.in)
	return ok && err == nil
}

// Plan is where each event of one publish goes: Targets[i] are the ids of the subscribers that
// want events[i], matched before anything is written. Drivers insert a delivery for a target
// only if that endpoint is still enabled when they write (it may have been disabled or deleted
// meanwhile); an endpoint created while a publish is matched may miss that publish's events, as
// if it had been created just after.
type Plan struct {
	Targets    [][]string
	Deliveries int // total of len(Targets[i])
}

// Chunks cuts the plan's events into consecutive ranges [from, to) of whole events with at most
// max deliveries each (an event with more is a range of its own), so that a large publish is
// written in several short transactions.
func (p *Plan) Chunks(max int) [][2]int {
	var out [][2]int
	from, rows := 0, 0
	for i, t := range p.Targets {
		if i > from && rows+len(t) > max {
			out = append(out, [2]int{from, i})
			from, rows = i, 0
		}
		rows += len(t)
	}
	return append(out, [2]int{from, len(p.Targets)})
}

// Fanout matches the events of publishes to a tenant's subscribers, before and outside any write,
// within the Limits: a request that would create more than MaxDeliveries deliveries, or whose
// filters run longer than MatchBudget, is refused; at most MatchConcurrency requests of one
// tenant run filters at once, so that one tenant's costly filters slow that tenant only.
type Fanout struct {
	limits Limits
	mu     sync.Mutex
	gates  map[string]*gate // tenants with requests running filters
}

type gate struct {
	users int
	slots chan struct{}
}

// NewFanout makes a Fanout with limits (zero fields: the defaults).
func NewFanout(limits Limits) *Fanout {
	return &Fanout{limits: limits.WithDefaults(), gates: map[string]*gate{}}
}

// Limits are the limits in force.
func (f *Fanout) Limits() Limits { return f.limits }

// Plan decides which of subs get each event. It fails with a *LimitError (ErrLimit) when the
// events would create more than MaxDeliveries deliveries or their filters take longer than
// MatchBudget, and with ctx's error when ctx ends first.
func (f *Fanout) Plan(ctx context.Context, tenantID string, subs []Subscriber, events []*Event) (*Plan, error) {
	filtered := false
	for _, sub := range subs {
		filtered = filtered || sub.Filter != nil
	}
	mctx := ctx
	if filtered {
		release, err := f.enter(ctx, tenantID)
		if err != nil {
			return nil, err
		}
		defer release()
		var cancel context.CancelFunc
		mctx, cancel = context.WithTimeout(ctx, MatchBudget)
		defer cancel()
	}
	p := &Plan{Targets: make([][]string, len(events))}
	for i, ev := range events {
		m := NewMatcher(ev)
		for _, sub := range subs {
			if m.Wants(mctx, sub) {
				p.Targets[i] = append(p.Targets[i], sub.ID)
			}
		}
		p.Deliveries += len(p.Targets[i])
		if p.Deliveries > f.limits.MaxDeliveries {
			return nil, &LimitError{Limit: "max_deliveries", Max: f.limits.MaxDeliveries, Got: p.Deliveries}
		}
		if filtered && mctx.Err() != nil {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			return nil, &LimitError{Limit: "filter_time", Max: int(MatchBudget.Milliseconds())}
		}
	}
	return p, nil
}

// enter waits for one of the tenant's matching slots; release gives it back.
func (f *Fanout) enter(ctx context.Context, tenantID string) (release func(), err error) {
	f.mu.Lock()
	g := f.gates[tenantID]
	if g == nil {
		g = &gate{slots: make(chan struct{}, MatchConcurrency)}
		f.gates[tenantID] = g
	}
	g.users++
	f.mu.Unlock()
	leave := func() {
		f.mu.Lock()
		if g.users--; g.users == 0 {
			delete(f.gates, tenantID)
		}
		f.mu.Unlock()
	}
	select {
	case g.slots <- struct{}{}:
		return func() { <-g.slots; leave() }, nil
	case <-ctx.Done():
		leave()
		return nil, ctx.Err()
	}
}
