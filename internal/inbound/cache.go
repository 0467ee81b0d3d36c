package inbound

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/heraldhq/herald/internal/inbound/schema"
	"github.com/heraldhq/herald/internal/inbound/verify"
	"github.com/heraldhq/herald/internal/store"
)

// source is a store.Source compiled for the hot path: its verifier, its schema and its allowlist,
// built once per cache load rather than once per request.
type source struct {
	id       string
	tenantID string
	enabled  bool
	settings store.SourceSettings
	verifier *verify.Verifier
	schema   *schema.Schema // nil: no schema
	allow    []netip.Prefix // empty: every address
	// fingerprint identifies the settings compiled, so that a reload that finds them unchanged
	// keeps the compiled verifier and schema.
	fingerprint [sha256.Size]byte
}

// errMisconfigured marks a source whose stored settings do not compile, which the API's
// validation should make impossible: its requests get 500 until it is fixed.
var errMisconfigured = errors.New("source settings do not compile")

// compile builds a source from what the store holds. Its errors wrap errMisconfigured.
func compile(s *store.Source, fp [sha256.Size]byte) (*source, error) {
	src, err := compileSettings(s, fp)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errMisconfigured, err)
	}
	return src, nil
}

func compileSettings(s *store.Source, fp [sha256.Size]byte) (*source, error) {
	var vc verify.Config
	if err := json.Unmarshal(s.Settings.Verification, &vc); err != nil {
		return nil, fmt.Errorf("source %s: decode verification: %w", s.ID, err)
	}
	v, err := verify.New(vc)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", s.ID, err)
	}
	c := &source{id: s.ID, tenantID: s.TenantID, enabled: s.Enabled, settings: s.Settings, verifier: v, fingerprint: fp}
	if c.settings.Dedup.By == "" {
		c.settings.Dedup.By = defaultDedupBy(&vc)
	}
	if doc := bytes.TrimSpace(s.Settings.Schema); len(doc) > 0 && !bytes.Equal(doc, []byte("null")) {
		if c.schema, err = schema.Compile(doc); err != nil {
			return nil, fmt.Errorf("source %s: %w", s.ID, err)
		}
	}
	for _, a := range s.Settings.AllowIPs {
		p, err := parsePrefix(a)
		if err != nil {
			return nil, fmt.Errorf("source %s: allow_ips: %w", s.ID, err)
		}
		c.allow = append(c.allow, p)
	}
	return c, nil
}

// parsePrefix accepts a CIDR or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither a CIDR nor an address", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// fingerprint hashes what compile reads of a source.
func fingerprint(s *store.Source) [sha256.Size]byte {
	doc, err := json.Marshal(s.Settings)
	if err != nil {
		// Settings is plain data that the store just decoded; treat it as always changed.
		return [sha256.Size]byte{}
	}
	return sha256.Sum256(doc)
}

// allowed reports whether addr may post to the source.
func (s *source) allowed(addr netip.Addr) bool {
	if len(s.allow) == 0 {
		return true
	}
	if !addr.IsValid() {
		return false
	}
	addr = addr.Unmap()
	for _, p := range s.allow {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// errUnknownSource is what the cache answers for a token that names no enabled source.
var errUnknownSource = errors.New("no enabled source has this token")

// cacheEntry is one token's cached lookup.
type cacheEntry struct {
	src     *source
	expires time.Time
}

// sourceCache maps tokens to compiled sources for a short time, so that a request costs no store
// read while changes made on other nodes still apply within ttl; SourceChanged drops an entry at
// once on this node. Both maps are bounded: hits by size, misses (any caller can make up tokens)
// by missSize, with a shorter life, so that a flood of random tokens neither grows memory nor
// evicts the real sources.
type sourceCache struct {
	load     func(ctx context.Context, token string) (*store.Source, error)
	ttl      time.Duration
	missTTL  time.Duration
	size     int
	missSize int

	mu       sync.Mutex
	hits     map[string]cacheEntry
	misses   map[string]time.Time // token → until when it is known to be unknown
	bySource map[string]string    // source id → token, for SourceChanged
	// gen counts forgets: a load that began before one may have read what it dropped, so its
	// result is used but not cached.
	gen uint64
}

func newSourceCache(load func(context.Context, string) (*store.Source, error), ttl time.Duration, size int) *sourceCache {
	return &sourceCache{
		load: load, ttl: ttl, missTTL: min(ttl, time.Second), size: size, missSize: max(size/8, 64),
		hits: make(map[string]cacheEntry), misses: make(map[string]time.Time), bySource: make(map[string]string),
	}
}

// get returns the enabled source of token, errUnknownSource, or the store's error.
func (c *sourceCache) get(ctx context.Context, token string, now time.Time) (*source, error) {
	c.mu.Lock()
	e, ok := c.hits[token]
	if ok && now.Before(e.expires) {
		c.mu.Unlock()
		if !e.src.enabled {
			return nil, errUnknownSource
		}
		return e.src, nil
	}
	if until, miss := c.misses[token]; miss && now.Before(until) {
		c.mu.Unlock()
		return nil, errUnknownSource
	}
	gen := c.gen
	c.mu.Unlock()
	// Concurrent misses of one token each read the store: rare (a source's first requests, once
	// per ttl), and cheaper than making every request wait behind one.
	st, err := c.load(ctx, token)
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.remember(token, nil, now, gen)
		return nil, errUnknownSource
	case err != nil:
		return nil, err
	}
	fp := fingerprint(st)
	src := e.src
	if src == nil || src.id != st.ID || src.fingerprint != fp || src.enabled != st.Enabled {
		if src, err = compile(st, fp); err != nil {
			return nil, err
		}
	}
	c.remember(token, src, now, gen)
	if !src.enabled {
		return nil, errUnknownSource
	}
	return src, nil
}

// remember caches a lookup made at generation gen: src, or a miss when src is nil.
func (c *sourceCache) remember(token string, src *source, now time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if src == nil {
		if len(c.misses) >= c.missSize {
			for t, until := range c.misses {
				if !now.Before(until) {
					delete(c.misses, t)
				}
			}
			if len(c.misses) >= c.missSize {
				clear(c.misses) // a flood: forgetting misses only costs store reads
			}
		}
		c.misses[token] = now.Add(c.missTTL)
		delete(c.hits, token)
		return
	}
	delete(c.misses, token)
	if _, ok := c.hits[token]; !ok && len(c.hits) >= c.size {
		c.evict(now)
	}
	// A source has one token: a rotated one leaves its old entry behind, dropped here.
	if old, ok := c.bySource[src.id]; ok && old != token {
		delete(c.hits, old)
	}
	c.hits[token] = cacheEntry{src: src, expires: now.Add(c.ttl)}
	c.bySource[src.id] = token
}

// evict makes room: expired entries first, then arbitrary ones (map order is random).
func (c *sourceCache) evict(now time.Time) {
	for t, e := range c.hits {
		if !now.Before(e.expires) {
			c.drop(t, e)
		}
	}
	for t, e := range c.hits {
		if len(c.hits) < c.size {
			break
		}
		c.drop(t, e)
	}
}

func (c *sourceCache) drop(token string, e cacheEntry) {
	delete(c.hits, token)
	if c.bySource[e.src.id] == token {
		delete(c.bySource, e.src.id)
	}
}

// forget drops what is cached about a source.
func (c *sourceCache) forget(sourceID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if token, ok := c.bySource[sourceID]; ok {
		delete(c.hits, token)
		delete(c.bySource, sourceID)
	}
}

// len is how many tokens are cached, hits and misses, for tests.
func (c *sourceCache) len() (hits, misses int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.hits), len(c.misses)
}

// limiters holds one token bucket per source id, kept across cache reloads so that a reload
// does not refill a bucket. A bucket unused long enough to refill behaves like a new one, so it
// is dropped; only ids of real sources get one, so the map is bounded by the sources in use.
type limiters struct {
	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	used time.Time
	idle time.Duration
}

// limiterIdle is the least time a bucket is kept unused.
const limiterIdle = time.Minute

// allow takes a token from the source's bucket, shaped by its current settings. When none is
// left it takes nothing and says how long until one will be.
func (l *limiters) allow(sourceID string, perSecond float64, burst int, now time.Time) (bool, time.Duration) {
	if !(perSecond > 0) || math.IsInf(perSecond, 0) {
		return true, 0
	}
	if burst < 1 {
		burst = max(1, int(math.Min(math.Ceil(perSecond), math.MaxInt32)))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= limiterIdle {
		for id, b := range l.buckets {
			if now.Sub(b.used) >= b.idle {
				delete(l.buckets, id)
			}
		}
		l.lastSweep = now
	}
	b := l.buckets[sourceID]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(rate.Limit(perSecond), burst)}
		l.buckets[sourceID] = b
	}
	if b.lim.Limit() != rate.Limit(perSecond) {
		b.lim.SetLimitAt(now, rate.Limit(perSecond))
	}
	if b.lim.Burst() != burst {
		b.lim.SetBurstAt(now, burst)
	}
	b.used = now
	b.idle = max(limiterIdle, time.Duration(float64(burst)/perSecond*float64(time.Second)))
	r := b.lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now) // a refused request must not use up the tokens of the ones after it
		return false, d
	}
	return true, 0
}
