package api

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
)

// Large publishes (a batch, or one event of hundreds of KiB) cost CPU in proportion to their
// bytes: reading, parsing, validating, building envelopes, matching. A tenant that sends them
// back to back would otherwise keep every core busy, and every other tenant's small publishes
// would wait for a CPU behind them. So large publishes take a bulk lane: at most BulkSlots of
// them, over all tenants, are handled at once, and waiting tenants take turns (one request of
// each tenant in its turn), so that a tenant with a queue of large publishes gets its share and
// no more. Small publishes (the common case: one event as it happens) never wait here.
//
// One slot still lets large publishes take a whole core, and on a small machine the small
// publishes beside them then wait for a CPU often enough to move their tail (the hostile-tenant
// scenario of docs/benchmarks.md: a tenant within its allowances moved another's p99 3–12×).
// So while small publishes flow (one came in the last second), the lane is open only for a share
// of the time (Config.BulkShare, DefaultBulkShare): after a large publish that took d, it stays
// closed for d × (1/share − 1), and the large publishes that arrive meanwhile wait their turn as
// before. With no small publish about, the lane is always open: a node busy only with large
// publishes loses nothing.

const (
	// BulkBodyBytes is the body size above which a publish takes the bulk lane (a body of unknown
	// size too). 64 KiB is far above a typical event and below a batch of any size.
	BulkBodyBytes = 64 << 10
	// BulkSlots is how many large publishes run at once over all tenants: one, so that the other
	// cores stay free for small publishes, deliveries and the store.
	BulkSlots = 1
	// maxBulkWaiting bounds the large publishes of one tenant waiting for the bulk lane; past
	// it, 429 with Retry-After.
	maxBulkWaiting = 32
	// DefaultBulkShare is the share of the time the bulk lane is open while small publishes flow.
	DefaultBulkShare = 0.1
	// smallFlowing is how recent a small publish must be for the lane's share to apply.
	smallFlowing = time.Second
)

// bulkLane admits large publishes BulkSlots at a time, tenants in turn, and while small
// publishes flow only for share of the time.
type bulkLane struct {
	share   float64      // 0 < share < 1; otherwise always open
	smallAt atomic.Int64 // unix nanoseconds of the last small publish

	mu          sync.Mutex
	running     int
	queues      map[string][]chan struct{} // waiting requests by tenant, oldest first
	turn        []string                   // tenants with waiting requests, in the order they are served
	closedUntil time.Time                  // closed for the share until then (while small publishes flow)
	timer       *time.Timer                // reopens the lane at closedUntil for those waiting
}

func newBulkLane(share float64) *bulkLane {
	return &bulkLane{share: share, queues: map[string][]chan struct{}{}}
}

// noteSmall records a small publish.
func (b *bulkLane) noteSmall(now time.Time) { b.smallAt.Store(now.UnixNano()) }

// closed reports whether the lane is closed at now for its share. Call with mu held.
func (b *bulkLane) closed(now time.Time) bool {
	return now.Before(b.closedUntil) && now.Sub(time.Unix(0, b.smallAt.Load())) < smallFlowing
}

// open reports whether a request may start now. Call with mu held.
func (b *bulkLane) open(now time.Time) bool { return b.running < BulkSlots && !b.closed(now) }

// enter waits for a place in the lane for a request of tenant; release gives it back. It fails
// when the tenant already has maxBulkWaiting requests waiting, or done closes first.
func (b *bulkLane) enter(tenant string, done <-chan struct{}) (release func(), ok bool, full bool) {
	b.mu.Lock()
	if len(b.turn) == 0 && b.open(time.Now()) {
		b.running++
		b.mu.Unlock()
		return b.releaser(), true, false
	}
	q := b.queues[tenant]
	if len(q) >= maxBulkWaiting {
		b.mu.Unlock()
		return nil, false, true
	}
	ch := make(chan struct{})
	if len(q) == 0 {
		b.turn = append(b.turn, tenant)
	}
	b.queues[tenant] = append(q, ch)
	b.next() // the lane may be open with nobody running (it reopened with nobody waiting)
	b.mu.Unlock()
	select {
	case <-ch:
		return b.releaser(), true, false
	case <-done:
		b.mu.Lock()
		defer b.mu.Unlock()
		select {
		case <-ch: // admitted meanwhile: hand the place on
			b.running--
			b.next()
		default:
			b.remove(tenant, ch)
		}
		return nil, false, false
	}
}

// releaser is the release of a request admitted now: it closes the lane for the share of the
// time the request took, if small publishes flow.
func (b *bulkLane) releaser() func() {
	start := time.Now()
	return func() { b.release(start) }
}

func (b *bulkLane) release(start time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.running--
	now := time.Now()
	if b.share > 0 && b.share < 1 && now.Sub(time.Unix(0, b.smallAt.Load())) < smallFlowing {
		if until := now.Add(time.Duration(float64(now.Sub(start)) * (1/b.share - 1))); until.After(b.closedUntil) {
			b.closedUntil = until
		}
	}
	b.next()
}

// next admits the first waiting request of the tenant whose turn it is, while the lane is open;
// the tenant goes to the back of the turn if it has more waiting. When the lane is closed for its
// share with requests waiting, a timer calls it again when it reopens. Call with mu held.
func (b *bulkLane) next() {
	now := time.Now()
	if len(b.turn) > 0 && b.running < BulkSlots && b.closed(now) {
		if b.timer == nil {
			b.timer = time.AfterFunc(b.closedUntil.Sub(now), b.reopen)
		} else {
			b.timer.Reset(b.closedUntil.Sub(now))
		}
		return
	}
	for b.open(now) && len(b.turn) > 0 {
		tenant := b.turn[0]
		b.turn = b.turn[1:]
		q := b.queues[tenant]
		ch := q[0]
		if q = q[1:]; len(q) == 0 {
			delete(b.queues, tenant)
		} else {
			b.queues[tenant] = q
			b.turn = append(b.turn, tenant)
		}
		b.running++
		close(ch)
	}
}

func (b *bulkLane) reopen() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.next()
}

// remove takes a request that gave up out of its tenant's queue.
func (b *bulkLane) remove(tenant string, ch chan struct{}) {
	q := b.queues[tenant]
	for i, c := range q {
		if c == ch {
			q = append(q[:i], q[i+1:]...)
			break
		}
	}
	if len(q) > 0 {
		b.queues[tenant] = q
		return
	}
	delete(b.queues, tenant)
	for i, t := range b.turn {
		if t == tenant {
			b.turn = append(b.turn[:i], b.turn[i+1:]...)
			break
		}
	}
}

// bulk is the middleware that puts large publishes in the bulk lane (see above). It runs after
// the rate limit and before the body is read, so a waiting request holds no body.
func (s *Server) bulk(ctx huma.Context, next func(huma.Context)) {
	op := ctx.Operation()
	tenant := ctx.Param("tenant")
	if op == nil || !isPublish(op) || tenant == "" {
		next(ctx)
		return
	}
	r, _ := humago.Unwrap(ctx)
	if r.ContentLength >= 0 && !s.chargePublishBytes(ctx, int(r.ContentLength)) {
		return // refused before the body is read
	}
	if r.ContentLength >= 0 && r.ContentLength <= BulkBodyBytes {
		s.bulkLane.noteSmall(time.Now())
		next(ctx)
		return
	}
	release, ok, full := s.bulkLane.enter(tenant, ctx.Context().Done())
	switch {
	case full:
		s.tooManyRequests(ctx, 0, "too many large publishes of this tenant are waiting for their turn")
		return
	case !ok:
		_ = huma.WriteErr(s.api, ctx, 499, "client closed request")
		return
	}
	defer release()
	next(ctx)
}

// chargePublishBytes counts n bytes of a publish body against its tenant's publish bandwidth
// (RateLimits.PublishBytes), or answers 429 and reports false: what the rest of a publish costs
// grows with its bytes, which the request rate alone does not bound.
func (s *Server) chargePublishBytes(ctx huma.Context, n int) bool {
	lim, tenant := s.limits.publishBytes, ctx.Param("tenant")
	if lim == nil || !isPublish(ctx.Operation()) || tenant == "" {
		return true
	}
	ok, wait := lim.allowN(tenant, n, s.now())
	if !ok {
		// The body is not read: the connection cannot carry another request, and a client that
		// ignores Retry-After must open a new one rather than have Herald read and drop its
		// bodies.
		ctx.SetHeader("Connection", "close")
		s.tooManyRequests(ctx, wait, fmt.Sprintf("publish bandwidth exceeded: a tenant may publish %d KiB of bodies per second (bursts of %d KiB)",
			int(lim.limit)>>10, lim.burst>>10))
	}
	return ok
}
