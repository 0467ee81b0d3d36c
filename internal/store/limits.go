package store

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of the bounds on what one tenant and one request may cost a store (Limits).
const (
	// DefaultMaxEndpoints bounds a tenant's endpoints unless an admin sets the tenant's own
	// MaxEndpoints. A thousand is far beyond what one customer of a webhook platform registers
	// (a few per integration), while one publish to all of them stays a ~1,000-row write.
	DefaultMaxEndpoints = 1000
	// DefaultMaxSources bounds a tenant's sources (receiving): each is an ingest URL with its own
	// rate limiter and dedup keys, and a customer needs one per sending provider, a few at most.
	DefaultMaxSources = 100
	// DefaultMaxBrokerSources bounds a tenant's broker sources: each holds a consumer (and its
	// connection) open on every node, so it costs even when idle.
	DefaultMaxBrokerSources = 20
	// DefaultMaxDeliveries bounds the deliveries one publish request creates: a full batch of
	// 1,000 events to 20 endpoints, or one event to every endpoint of a tenant at the default
	// endpoint limit twenty times over. Past it a request is refused whole.
	DefaultMaxDeliveries = 20000
	// ChunkDeliveries bounds the deliveries one write transaction of a publish inserts: a larger
	// publish is written in several, whole events each, so that the SQLite writer serves other
	// tenants between them and a PostgreSQL transaction never holds a connection for long.
	ChunkDeliveries = 1000
	// MatchBudget bounds the time one request may spend in its endpoints' filters (a thousand
	// filter calls at their own 5 ms bound): past it the request is refused, nothing stored.
	MatchBudget = 5 * time.Second
	// MatchConcurrency bounds how many requests of one tenant run filters at once, so that a
	// tenant with costly filters takes at most that many cores.
	MatchConcurrency = 2
)

// Limits bound what one tenant and one request may cost a store. Zero fields take the defaults.
type Limits struct {
	// MaxEndpoints bounds a tenant's endpoints (enabled or not) unless the tenant sets its own.
	MaxEndpoints int
	// MaxDeliveries bounds the deliveries one Publish (or received request) creates.
	MaxDeliveries int
	// MaxSources bounds a tenant's sources.
	MaxSources int
	// MaxBrokerSources bounds a tenant's broker sources.
	MaxBrokerSources int
}

// WithDefaults returns l with zero fields set to their defaults.
func (l Limits) WithDefaults() Limits {
	if l.MaxEndpoints <= 0 {
		l.MaxEndpoints = DefaultMaxEndpoints
	}
	if l.MaxDeliveries <= 0 {
		l.MaxDeliveries = DefaultMaxDeliveries
	}
	if l.MaxSources <= 0 {
		l.MaxSources = DefaultMaxSources
	}
	if l.MaxBrokerSources <= 0 {
		l.MaxBrokerSources = DefaultMaxBrokerSources
	}
	return l
}

// ErrLimit marks a request refused because it would exceed a limit: nothing was written, and
// the same request will be refused again. Drivers return it as a *LimitError.
var ErrLimit = errors.New("over a limit")

// LimitError tells which limit a request would exceed and by how much.
type LimitError struct {
	Limit string // the limit's name: "max_endpoints", "max_deliveries", "filter_time"
	Max   int    // the limit's value (milliseconds for filter_time)
	Got   int    // what the request would have reached
}

func (e *LimitError) Error() string {
	switch e.Limit {
	case "max_endpoints":
		return fmt.Sprintf("the tenant has %d endpoints; its limit (max_endpoints) is %d", e.Got, e.Max)
	case "max_sources":
		return fmt.Sprintf("the tenant has %d sources; the limit is %d", e.Got, e.Max)
	case "max_broker_sources":
		return fmt.Sprintf("the tenant has %d broker sources; the limit is %d", e.Got, e.Max)
	case "filter_time":
		return fmt.Sprintf("endpoint filters took more than %d ms on this request's events; publish fewer events per request", e.Max)
	}
	return fmt.Sprintf("the events would create at least %d deliveries; the limit is %d per request", e.Got, e.Max)
}

// Is makes errors.Is(err, ErrLimit) true.
func (e *LimitError) Is(target error) bool { return target == ErrLimit }

// CheckEndpoints refuses a new endpoint for a tenant that has n of them and its own limit max
// (0: l.MaxEndpoints).
func (l Limits) CheckEndpoints(max, n int) error {
	if max <= 0 {
		max = l.MaxEndpoints
	}
	if n >= max {
		return &LimitError{Limit: "max_endpoints", Max: max, Got: n}
	}
	return nil
}

// CheckSources refuses a new source for a tenant that has n of them.
func (l Limits) CheckSources(n int) error {
	if n >= l.MaxSources {
		return &LimitError{Limit: "max_sources", Max: l.MaxSources, Got: n}
	}
	return nil
}

// CheckBrokerSources refuses a new broker source for a tenant that has n of them.
func (l Limits) CheckBrokerSources(n int) error {
	if n >= l.MaxBrokerSources {
		return &LimitError{Limit: "max_broker_sources", Max: l.MaxBrokerSources, Got: n}
	}
	return nil
}
