package dispatch

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/webhook"
)

// lane is one endpoint's share of the engine: its settings, signer, limits and what it has in
// flight. Only the loop goroutine touches a lane.
type lane struct {
	id        string
	tenantID  string          // the endpoint's tenant, once loaded (it never changes)
	ep        *store.Endpoint // nil until loaded, or after a change
	loadedAt  time.Time
	signer    *webhook.Signer
	keys      []string // the active secrets, for the signature schemes other than Standard Webhooks
	transform transformFunc
	// sender delivers to the endpoint's destination, opened from its type for destKey (the
	// endpoint's type, URL, settings and internal flag as last loaded); reopened when that changes.
	sender       destination.Sender
	destKey      string
	signerUntil  time.Time // when a rotated-out secret expires and the signer must be rebuilt
	schedule     []time.Duration
	limiter      *rate.Limiter
	breaker      *gobreaker.TwoStepCircuitBreaker[struct{}]
	openUntil    time.Time
	breakerOpen  bool // for the open-breakers gauge
	failingSince time.Time
	// streakFailures counts the failed attempts this process has seen since failingSince, and
	// streakReported how many of the thresholds of reportFailing the streak has been reported at.
	streakFailures int
	streakReported int

	queue      []store.Claimed // claimed, waiting for a free slot; a batch's members are adjacent
	requests   int             // requests in queue: a batch is one
	batch      *store.Batching // the endpoint's batching with its defaults, nil if it does not batch
	claiming   bool            // part of the claim under way
	tenantWait bool            // waits in tenantWaiting for its tenant's claims to fall
	inFlight   int
	ready      bool
	nextDue    time.Time
	heapIndex  int
	lastActive time.Time
	// laneWaitSince is when the endpoint started waiting for its lane (PostgreSQL: another
	// node holds it, or this node may not take it now; store.ClaimResult.LaneWait), zero when it
	// is not waiting; laneWaitLogged says the wait was logged at Info.
	laneWaitSince  time.Time
	laneWaitLogged bool
}

// reloadEvery bounds how stale a lane's settings may be when another process changed them.
const reloadEvery = 30 * time.Second

// load reads the endpoint's settings when the lane has none, they are old, or a secret expired.
func (d *Dispatcher) load(ctx context.Context, l *lane, now time.Time) error {
	if l.ep != nil && now.Sub(l.loadedAt) < reloadEvery && (l.signerUntil.IsZero() || now.Before(l.signerUntil)) {
		return nil
	}
	ep, err := d.st.EndpointByID(ctx, l.id)
	if err != nil {
		return err
	}
	keys := ep.ActiveSecrets(now)
	if len(keys) == 0 {
		return fmt.Errorf("endpoint %s has no active secret", ep.ID)
	}
	signer, err := webhook.NewSigner(keys...)
	if err != nil {
		return fmt.Errorf("endpoint %s secrets: %w", ep.ID, err)
	}
	transform, err := d.transformFor(ep)
	if err != nil {
		return fmt.Errorf("endpoint %s transformation: %w", ep.ID, err)
	}
	if key := destKey(ep); l.sender == nil || key != l.destKey {
		sender, err := d.dests.Open(ep.DestinationType(), destination.Target{
			EndpointID: ep.ID, TenantID: ep.TenantID, URL: ep.URL, Settings: ep.Settings, Internal: ep.Internal,
			Format: ep.Options.Format,
		})
		if err != nil {
			return err
		}
		l.sender, l.destKey = sender, key
	}
	l.signer, l.keys, l.transform, l.signerUntil = signer, keys, transform, time.Time{}
	l.tenantID = ep.TenantID
	for _, s := range ep.Secrets {
		if s.ExpiresAt != nil && s.ExpiresAt.After(now) && (l.signerUntil.IsZero() || s.ExpiresAt.Before(l.signerUntil)) {
			l.signerUntil = *s.ExpiresAt
		}
	}
	l.schedule = ep.RetrySchedule
	if len(l.schedule) == 0 {
		l.schedule = DefaultSchedule
	}
	l.setLimiter(ep.RateLimit)
	if l.breaker == nil {
		l.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
			Name:        l.id,
			MaxRequests: 1,
			Timeout:     d.cfg.BreakerCooldown,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= d.cfg.BreakerFailures },
			OnStateChange: func(name string, from, to gobreaker.State) {
				if to == gobreaker.StateOpen {
					l.openUntil = time.Now().Add(d.cfg.BreakerCooldown)
				}
				l.setBreakerOpen(to == gobreaker.StateOpen, d.cfg.Metrics)
				if to == gobreaker.StateClosed {
					d.breakers.Delete(name)
				} else {
					d.breakers.Store(name, to.String())
				}
				d.log.Info("endpoint circuit breaker", "endpoint", name, "tenant", l.tenant(), "from", from.String(), "to", to.String())
			},
		})
	}
	if l.ep == nil {
		// First load, or the endpoint changed: the store's streak is the truth. Re-enabling an
		// endpoint clears it, and a new streak is reported (endpoint.failing) afresh.
		switch {
		case ep.FailingSince == nil:
			l.failingSince, l.streakFailures, l.streakReported = time.Time{}, 0, 0
		case !ep.FailingSince.Equal(l.failingSince):
			l.failingSince, l.streakFailures, l.streakReported = *ep.FailingSince, 0, 0
		}
	}
	l.ep, l.loadedAt = ep, now
	l.batch = batching(ep.Options)
	if _, ok := l.sender.(destination.BatchSender); !ok && ep.Options.Format == store.FormatCloudEventsBinary {
		l.batch = nil // binary CloudEvents have no batch form over HTTP (the API refuses the pair)
	}
	return nil
}

// setLimiter limits the lane to the lower of the endpoint's rate limit (per second, 0 for none)
// and the rate its receiver allows (destination.RateAdvisor: the CloudEvents handshake's
// WebHook-Allowed-Rate), keeping the limiter when the rate is unchanged.
func (l *lane) setLimiter(configured float64) {
	limit := configured
	if a, ok := l.sender.(destination.RateAdvisor); ok {
		if allowed := a.AllowedRate(); allowed > 0 && (limit <= 0 || allowed < limit) {
			limit = allowed
		}
	}
	switch {
	case limit <= 0:
		l.limiter = nil
	case l.limiter == nil || float64(l.limiter.Limit()) != limit:
		burst := max(1, int(math.Ceil(limit/10))) // at most 100 ms worth at once
		l.limiter = rate.NewLimiter(rate.Limit(limit), burst)
	}
}

// destKey is what a lane's sender is opened for: a change of any part opens a new one.
func destKey(ep *store.Endpoint) string {
	internal := "0"
	if ep.Internal {
		internal = "1"
	}
	return ep.DestinationType() + "\x00" + internal + "\x00" + ep.Options.Format + "\x00" + ep.URL + "\x00" + string(ep.Settings)
}

// Batching defaults, for an endpoint that enables batching without saying how much.
const (
	DefaultBatchEvents = 100
	DefaultBatchWait   = 5 * time.Second
)

// batching is how an endpoint batches, with the defaults; nil when it does not. An ordered
// endpoint does not batch: its deliveries go one at a time, in publish order.
func batching(o store.EndpointOptions) *store.Batching {
	if o.Batch == nil || o.Ordered {
		return nil
	}
	b := *o.Batch
	if b.MaxEvents <= 0 {
		b.MaxEvents = DefaultBatchEvents
	}
	if b.MaxWait <= 0 {
		b.MaxWait = DefaultBatchWait
	}
	return &b
}

// An ordered endpoint (store.EndpointOptions.Ordered) gets its events in publish order, one
// request at a time: its lane claims only the endpoint's first pending delivery (by id), only
// once the previous one's result is written, and the store gives nothing while that delivery is
// leased or waiting for its retry. The trade-off is deliberate: one failing event holds the
// lane until it succeeds or is dead-lettered (or the endpoint is disabled). Priorities do not
// apply. A delivery made pending again (retry, replay, resend) is, by id, earlier than the
// deliveries still pending after it, so it goes before them: publish order, not requeue order.

// concurrency is how many requests the lane may have in flight: one for an ordered endpoint.
func (l *lane) concurrency() int {
	if l.ep.Options.Ordered {
		return 1
	}
	return l.ep.MaxConcurrency
}

// requests counts the requests claimed deliveries make: a batch's members (adjacent, with one
// BatchID) are one.
func requests(cs []store.Claimed) int {
	n := 0
	for i, c := range cs {
		if c.BatchID == 0 || i == 0 || cs[i-1].BatchID != c.BatchID {
			n++
		}
	}
	return n
}

// tenant is the lane's endpoint's tenant, for the logs ("" before it is loaded).
// hold counts n claims more (or fewer) held by l, for the node and for l's tenant; when the
// tenant's count falls below its bound, the lanes that waited for it become ready.
func (d *Dispatcher) hold(l *lane, n int) {
	d.held += n
	t := l.tenant()
	h := d.tenantHeld[t] + n
	if h <= 0 {
		delete(d.tenantHeld, t)
	} else {
		d.tenantHeld[t] = h
	}
	if n < 0 {
		d.wakeTenant(t)
	}
}

// wakeTenant makes the lanes that wait for tenant ready if it holds fewer claims than its bound.
func (d *Dispatcher) wakeTenant(tenant string) {
	waiting := d.tenantWaiting[tenant]
	if len(waiting) == 0 || d.tenantHeld[tenant] >= d.cfg.MaxInFlightPerTenant {
		return
	}
	delete(d.tenantWaiting, tenant)
	for _, w := range waiting {
		w.tenantWait = false
		d.markReady(w)
	}
}

// waitForTenant parks l until its tenant holds fewer claims (see hold).
func (d *Dispatcher) waitForTenant(l *lane, tenant string) {
	if !l.tenantWait {
		l.tenantWait = true
		d.tenantWaiting[tenant] = append(d.tenantWaiting[tenant], l)
	}
}

func (l *lane) tenant() string { return l.tenantID }

func (l *lane) snapshot() laneSnapshot {
	return laneSnapshot{lane: l, ep: l.ep, signer: l.signer, keys: l.keys, transform: l.transform, schedule: l.schedule, sender: l.sender}
}

// laneHeap orders lanes by when they are next due.
type laneHeap []*lane

func (h laneHeap) Len() int           { return len(h) }
func (h laneHeap) Less(i, j int) bool { return h[i].nextDue.Before(h[j].nextDue) }
func (h laneHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIndex = i
	h[j].heapIndex = j
}
func (h *laneHeap) Push(x any) {
	l := x.(*lane)
	l.heapIndex = len(*h)
	*h = append(*h, l)
}
func (h *laneHeap) Pop() any {
	old := *h
	l := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	l.heapIndex = -1
	return l
}
