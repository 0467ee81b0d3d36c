package api

import (
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"golang.org/x/time/rate"
)

// The API's default rate limits (herald serve's flags default to them). They are chosen so that
// a production publisher never meets them and a runaway or hostile client does:
//
//   - Publishing is the product's main path, and most applications publish one event per request
//     as things happen. It is counted per tenant, whatever key publishes, at 2,000 requests/s
//     (bursts of 4,000): thirteen times an application publishing 150 events/s one by one, and
//     under half of what one node acknowledges in single-event publishes (about 5,000/s on the
//     reference machine, docs/benchmarks.md), so one tenant cannot take a node from the others.
//     A batch (up to 1,000 events) counts as one request.
//   - Other routes of a tenant key or a portal link (reading deliveries, managing endpoints, the
//     dashboard) stay at 100 requests/s per key, bursts of 200: the dashboard makes a few requests
//     a page, an integration a handful a second.
//   - Admin keys are the operator's own automation (provisioning tenants, exports, replays across
//     tenants): 1,000 requests/s, bursts of 2,000.
//   - Failed authentications (an unknown, revoked or malformed key, a bad or expired portal link)
//     are counted per client address, 10/s in bursts of 20. Keys are 256 random bits and links
//     are signed, so guessing is hopeless at any rate; the limit answers a client that keeps
//     failing with 429 and Retry-After instead of doing its work again and again. A valid
//     credential is always admitted, from any address, so failures from an address (a NAT, a
//     proxy shared with an attacker) never lock a legitimate key out.
const (
	DefaultPublishRate      = 2000
	DefaultPublishBurst     = 4000
	DefaultTenantKeyRate    = 100
	DefaultTenantKeyBurst   = 200
	DefaultAdminKeyRate     = 1000
	DefaultAdminKeyBurst    = 2000
	DefaultAuthFailureRate  = 10
	DefaultAuthFailureBurst = 20
	// DefaultPublishBytesRate is how many bytes of publish bodies per second a tenant may send
	// (whatever key publishes), and DefaultPublishBytesBurst how many at once. A publish costs CPU
	// and store time in proportion to its bytes (reading, parsing, validating, writing, matching
	// filters), so the request rate alone does not bound what a tenant can take from the others:
	// 200 large batches a second are well within it. 8 MiB/s is 4,000 events of 2 KiB a second,
	// twice the publish request rate's worth of typical events; the burst takes the largest batch
	// body (32 MiB).
	DefaultPublishBytesRate  = 8 << 20
	DefaultPublishBytesBurst = 32 << 20
)

// maxLimiterBuckets bounds the buckets of one limiter. Keys and tenants are few; client addresses of
// failed authentications are not (an IPv6 attacker has many): past the bound, the new ones
// share one bucket, which only makes the limit stricter for them.
const maxLimiterBuckets = 100_000

// Rate is a token bucket: PerSecond requests a second, in bursts of up to Burst (0: twice
// PerSecond). A PerSecond of 0 is no limit.
type Rate struct {
	PerSecond float64
	Burst     int
}

// RateLimits are the API's request limits, each a bucket per something (ratelimit.go explains
// the defaults). Each is per process: behind several nodes a client may use each node's.
type RateLimits struct {
	// Publish limits the publish routes (single and batch) per tenant, whatever key publishes.
	Publish Rate
	// TenantKey limits every other route per tenant key or portal link.
	TenantKey Rate
	// AdminKey limits every other route per admin key.
	AdminKey Rate
	// AuthFailure limits failed authentications per client address (an IPv6 /64).
	AuthFailure Rate
	// PublishBytes counts the bytes of publish bodies per tenant (PerSecond bytes per second,
	// Burst bytes at once).
	PublishBytes Rate
}

// DefaultRateLimits are the limits herald serve applies unless told otherwise.
func DefaultRateLimits() RateLimits {
	return RateLimits{
		Publish:      Rate{DefaultPublishRate, DefaultPublishBurst},
		TenantKey:    Rate{DefaultTenantKeyRate, DefaultTenantKeyBurst},
		AdminKey:     Rate{DefaultAdminKeyRate, DefaultAdminKeyBurst},
		AuthFailure:  Rate{DefaultAuthFailureRate, DefaultAuthFailureBurst},
		PublishBytes: Rate{DefaultPublishBytesRate, DefaultPublishBytesBurst},
	}
}

// limiters are the buckets of RateLimits; a nil one is no limit.
type limiters struct {
	publish, tenantKey, adminKey, authFailure, publishBytes *keyLimiter
}

func newLimiters(l RateLimits) limiters {
	return limiters{
		publish:      newKeyLimiter(l.Publish.PerSecond, l.Publish.Burst),
		tenantKey:    newKeyLimiter(l.TenantKey.PerSecond, l.TenantKey.Burst),
		adminKey:     newKeyLimiter(l.AdminKey.PerSecond, l.AdminKey.Burst),
		authFailure:  newKeyLimiter(l.AuthFailure.PerSecond, l.AuthFailure.Burst),
		publishBytes: newKeyLimiter(l.PublishBytes.PerSecond, l.PublishBytes.Burst),
	}
}

// keyLimiter is one token bucket per key (an API key's id, a tenant, a client address). Buckets
// live only while they are in use: a bucket left alone long enough to refill completely behaves
// exactly like a new one, so it is dropped, and memory is bounded by the keys active in the last
// few minutes, and by maxLimiterBuckets.
type keyLimiter struct {
	limit rate.Limit
	burst int
	// idle is how long a bucket may go unused before it is dropped: at least the time it takes to
	// refill, so dropping it never grants more than the bucket would have held.
	idle time.Duration
	// max is the most buckets held (maxLimiterBuckets; tests lower it).
	max int

	mu        sync.Mutex
	buckets   map[string]*keyBucket
	lastSweep time.Time
}

type keyBucket struct {
	lim  *rate.Limiter
	used time.Time
}

// overflowBucket is the bucket shared by the keys that come when the limiter holds max buckets.
const overflowBucket = "\x00overflow"

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
		max:     maxLimiterBuckets,
		buckets: make(map[string]*keyBucket),
	}
}

// sweep drops the buckets unused for idle.
func (k *keyLimiter) sweep(now time.Time) {
	for id, b := range k.buckets {
		if now.Sub(b.used) >= k.idle {
			delete(k.buckets, id)
		}
	}
	k.lastSweep = now
}

// allow takes a token from key's bucket. When none is left it takes nothing and says how long
// until one will be there.
func (k *keyLimiter) allow(key string, now time.Time) (bool, time.Duration) {
	return k.allowN(key, 1, now)
}

// allowN is allow for n tokens at once (n above the burst is taken as the burst).
func (k *keyLimiter) allowN(key string, n int, now time.Time) (bool, time.Duration) {
	n = min(max(n, 1), k.burst)
	k.mu.Lock()
	defer k.mu.Unlock()
	if now.Sub(k.lastSweep) >= k.idle {
		k.sweep(now)
	}
	b := k.buckets[key]
	if b == nil {
		if len(k.buckets) >= k.max {
			k.sweep(now)
		}
		if len(k.buckets) >= k.max {
			key = overflowBucket
			b = k.buckets[key]
		}
	}
	if b == nil {
		b = &keyBucket{lim: rate.NewLimiter(k.limit, k.burst)}
		k.buckets[key] = b
	}
	b.used = now
	r := b.lim.ReserveN(now, n)
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

// isPublish says whether an operation is one of the publish routes, which are counted per
// tenant rather than per key.
func isPublish(op *huma.Operation) bool {
	switch op.OperationID {
	case "publish-event", "publish-events":
		return true
	}
	return false
}

// rateLimit is the middleware that applies the request limits. It runs after authenticate, so
// it sees only authenticated callers: the publish routes count against the tenant published to
// (authenticate has already refused a tenant key another tenant's), every other route against
// the key's own bucket, by its id, so that a key cannot spend another's allowance and revoking a
// key does not free its bucket for anyone else.
func (s *Server) rateLimit(ctx huma.Context, next func(huma.Context)) {
	p, ok := ctx.Context().Value(principalKey{}).(principal)
	if !ok {
		next(ctx)
		return
	}
	lim, bucket, who := s.limits.adminKey, p.key.ID, "this API key"
	switch {
	case isPublish(ctx.Operation()) && ctx.Param("tenant") != "":
		lim, bucket, who = s.limits.publish, ctx.Param("tenant"), "publishing to this tenant"
	case !p.expires.IsZero():
		lim, who = s.limits.tenantKey, "this portal link"
	case !p.admin():
		lim = s.limits.tenantKey
	}
	if lim == nil {
		next(ctx)
		return
	}
	allowed, wait := lim.allow(bucket, s.now())
	if allowed {
		next(ctx)
		return
	}
	s.tooManyRequests(ctx, wait, fmt.Sprintf("rate limit exceeded: %s may make %g requests per second (bursts of %d)",
		who, float64(lim.limit), lim.burst))
}

// authFailed answers a request whose credential was refused: 401, or 429 once the client's
// address has failed more than RateLimits.AuthFailure allows.
func (s *Server) authFailed(ctx huma.Context, detail string) {
	if lim := s.limits.authFailure; lim != nil {
		if ok, wait := lim.allow(clientAddr(ctx.RemoteAddr()), s.now()); !ok {
			s.tooManyRequests(ctx, wait, fmt.Sprintf("too many failed authentications from this address: at most %g per second (bursts of %d)",
				float64(lim.limit), lim.burst))
			return
		}
	}
	ctx.SetHeader("WWW-Authenticate", `Bearer realm="herald", error="invalid_token"`)
	_ = huma.WriteErr(s.api, ctx, http.StatusUnauthorized, detail)
}

// tooManyRequests answers 429 with Retry-After in whole seconds.
func (s *Server) tooManyRequests(ctx huma.Context, wait time.Duration, detail string) {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	ctx.SetHeader("Retry-After", strconv.Itoa(secs))
	_ = huma.WriteErr(s.api, ctx, http.StatusTooManyRequests, fmt.Sprintf("%s; retry after %d s", detail, secs))
}

// clientAddr is the bucket of a client's address: the IP, or its /64 for IPv6, where one
// client holds a whole /64. X-Forwarded-For is never read: anyone can send it.
func clientAddr(remote string) string {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return remote
	}
	a := ap.Addr().Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64) // cannot fail for an IPv6 address
		return p.String()
	}
	return a.String()
}
