package api

import (
	"fmt"
	"sync"

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
)

// bulkLane admits large publishes BulkSlots at a time, tenants in turn.
type bulkLane struct {
	mu      sync.Mutex
	running int
	queues  map[string][]chan struct{} // waiting requests by tenant, oldest first
	turn    []string                   // tenants with waiting requests, in the order they are served
}

func newBulkLane() *bulkLane { return &bulkLane{queues: map[string][]chan struct{}{}} }

// enter waits for a place in the lane for a request of tenant; release gives it back. It fails
// when the tenant already has maxBulkWaiting requests waiting, or done closes first.
func (b *bulkLane) enter(tenant string, done <-chan struct{}) (release func(), ok bool, full bool) {
	b.mu.Lock()
	if b.running < BulkSlots && len(b.turn) == 0 {
		b.running++
		b.mu.Unlock()
		return b.release, true, false
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
	b.mu.Unlock()
	select {
	case <-ch:
		return b.release, true, false
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

func (b *bulkLane) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.running--
	b.next()
}

// next admits the first waiting request of the tenant whose turn it is, while there is room;
// the tenant goes to the back of the turn if it has more waiting.
func (b *bulkLane) next() {
	for b.running < BulkSlots && len(b.turn) > 0 {
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
