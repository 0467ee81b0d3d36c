package store

import (
	"context"
	"strings"

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
