package api

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"golang.org/x/time/rate"
)

// keyLimiter is one token bucket per API key. Buckets live only while they are in use: a bucket
// left alone long enough to refill completely behaves exactly like a new one, so it is dropped,
// and memory is bounded by the keys active in the last few minutes (only authenticated key ids
// ever get a bucket, so a caller cannot make up new ones).
type keyLimiter struct {
	limit rate.Limit
	burst int
	// idle is how long a bucket may go unused before it is dropped: at least the time it takes to
	// refill, so dropping it never grants more than the bucket would have held.
	idle time.Duration

	mu        sync.Mutex
	buckets   map[string]*keyBucket
	lastSweep time.Time
}

type keyBucket struct {
	lim  *rate.Limiter
	used time.Time
}

// newKeyLimiter returns nil (no limit) when perSecond is not positive. A burst below 1 becomes
// twice the rate, and at least 1.
func newKeyLimiter(perSecond float64, burst int) *keyLimiter {
	if perSecond <= 0 || math.IsNaN(perSecond) || math.IsInf(perSecond, 0) {
		return nil
	}
	if burst < 1 {
		burst = max(1, int(math.Min(2*perSecond, math.MaxInt32)))
	}
	refill := time.Duration(float64(burst) / perSecond * float64(time.Second))
	return &keyLimiter{
		limit:   rate.Limit(perSecond),
		burst:   burst,
		idle:    max(refill, time.Minute),
		buckets: make(map[string]*keyBucket),
	}
}

// allow takes a token from key's bucket. When none is left it takes nothing and says how long
// until one will be there.
func (k *keyLimiter) allow(key string, now time.Time) (bool, time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if now.Sub(k.lastSweep) >= k.idle {
		for id, b := range k.buckets {
			if now.Sub(b.used) >= k.idle {
				delete(k.buckets, id)
			}
		}
		k.lastSweep = now
	}
	b := k.buckets[key]
	if b == nil {
		b = &keyBucket{lim: rate.NewLimiter(k.limit, k.burst)}
		k.buckets[key] = b
	}
	b.used = now
	r := b.lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second // cannot happen with burst ≥ 1; refuse rather than wait forever
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now) // a refused request must not use up tokens of the requests after it
		return false, d
	}
	return true, 0
}

// size is the number of buckets held, for tests.
func (k *keyLimiter) size() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.buckets)
}

// rateLimit is the middleware that applies the per-key limit. It runs after authenticate, so it
// sees only authenticated keys, and limits each key by its id: a tenant's key cannot spend
// another's allowance, and revoking a key does not free its bucket for anyone else.
func (s *Server) rateLimit(ctx huma.Context, next func(huma.Context)) {
	p, ok := ctx.Context().Value(principalKey{}).(principal)
	if !ok || s.limiter == nil {
		next(ctx)
		return
	}
	allowed, wait := s.limiter.allow(p.key.ID, time.Now())
	if allowed {
		next(ctx)
		return
	}
	secs := max(1, int(math.Ceil(wait.Seconds())))
	ctx.SetHeader("Retry-After", strconv.Itoa(secs))
	_ = huma.WriteErr(s.api, ctx, http.StatusTooManyRequests,
		fmt.Sprintf("rate limit exceeded: this API key may make %g requests per second (bursts of %d); retry after %d s",
			float64(s.limiter.limit), s.limiter.burst, secs))
}
