package inbound

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

// sourceTable is a token → source table standing in for the store's SourceByToken, so the cache's
// bounds can be tested on their own.
type sourceTable struct {
	mu    sync.Mutex
	by    map[string]*store.Source
	loads int
}

func (t *sourceTable) load(_ context.Context, token string) (*store.Source, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.loads++
	s, ok := t.by[token]
	if !ok {
		return nil, fmt.Errorf("source: %w", store.ErrNotFound)
	}
	c := *s
	return &c, nil
}

func (t *sourceTable) set(token string, s *store.Source) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s == nil {
		delete(t.by, token)
		return
	}
	t.by[token] = s
}

func noneSource(id string, enabled bool) *store.Source {
	return &store.Source{ID: id, TenantID: "acme", Enabled: enabled,
		Settings: store.SourceSettings{Verification: json.RawMessage(`{"scheme":"none"}`)}}
}

func TestSourceCache_TTLAndSourceChanged(t *testing.T) {
	t.Parallel()
	tab := &sourceTable{by: map[string]*store.Source{"tok": noneSource("src_1", true)}}
	c := newSourceCache(tab.load, 5*time.Second, 100)
	now := time.Now()
	ctx := context.Background()
	if _, err := c.get(ctx, "tok", now); err != nil {
		t.Fatal(err)
	}
	tab.set("tok", noneSource("src_1", false))
	if _, err := c.get(ctx, "tok", now.Add(time.Second)); err != nil {
		t.Fatalf("within the TTL the cached source serves: %v", err)
	}
	if _, err := c.get(ctx, "tok", now.Add(6*time.Second)); err != errUnknownSource {
		t.Fatalf("after the TTL a disabled source is unknown, got %v", err)
	}
	tab.set("tok", noneSource("src_1", true))
	if _, err := c.get(ctx, "tok", now.Add(7*time.Second)); err != errUnknownSource {
		t.Fatalf("disabled is cached for the TTL too, got %v", err)
	}
	c.forget("src_1")
	if _, err := c.get(ctx, "tok", now.Add(7*time.Second)); err != nil {
		t.Fatalf("SourceChanged applies at once: %v", err)
	}
}

func TestSourceCache_ReloadKeepsCompiledSourceWhenUnchanged(t *testing.T) {
	t.Parallel()
	tab := &sourceTable{by: map[string]*store.Source{"tok": noneSource("src_1", true)}}
	c := newSourceCache(tab.load, time.Second, 100)
	now := time.Now()
	a, _ := c.get(context.Background(), "tok", now)
	b, _ := c.get(context.Background(), "tok", now.Add(2*time.Second))
	if a != b {
		t.Error("an unchanged source must not be compiled again")
	}
	s := noneSource("src_1", true)
	s.Settings.RateLimit = 5
	tab.set("tok", s)
	d, _ := c.get(context.Background(), "tok", now.Add(4*time.Second))
	if d == b || d.settings.RateLimit != 5 {
		t.Error("a changed source must be compiled again")
	}
}

func TestSourceCache_RandomTokensStayBounded(t *testing.T) {
	t.Parallel()
	tab := &sourceTable{by: map[string]*store.Source{}}
	for i := range 20 {
		tab.set(fmt.Sprint("real", i), noneSource(fmt.Sprint("src_", i), true))
	}
	c := newSourceCache(tab.load, 5*time.Second, 16)
	now := time.Now()
	ctx := context.Background()
	for i := range 20 {
		if _, err := c.get(ctx, fmt.Sprint("real", i), now); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100000 {
		if _, err := c.get(ctx, fmt.Sprint("random", i), now); err != errUnknownSource {
			t.Fatal(err)
		}
	}
	hits, misses := c.len()
	if hits > 16 || misses > 64 {
		t.Errorf("cache holds %d sources and %d misses; want at most 16 and 64", hits, misses)
	}
	if hits < 16 {
		t.Errorf("a flood of unknown tokens evicted real sources: %d left", hits)
	}
}

func TestSourceCache_RotatedTokenDropsTheOldOne(t *testing.T) {
	t.Parallel()
	tab := &sourceTable{by: map[string]*store.Source{"old": noneSource("src_1", true)}}
	c := newSourceCache(tab.load, time.Minute, 100)
	now := time.Now()
	ctx := context.Background()
	if _, err := c.get(ctx, "old", now); err != nil {
		t.Fatal(err)
	}
	tab.set("old", nil)
	tab.set("new", noneSource("src_1", true))
	if _, err := c.get(ctx, "new", now); err != nil {
		t.Fatal(err)
	}
	if _, err := c.get(ctx, "old", now); err != errUnknownSource {
		t.Errorf("the old token must stop working once the new one is loaded, got %v", err)
	}
}

func TestLimiters(t *testing.T) {
	t.Parallel()
	l := &limiters{buckets: map[string]*bucket{}}
	now := time.Now()
	for i := range 3 {
		if ok, _ := l.allow("src_1", 1, 3, now); !ok {
			t.Fatalf("request %d within the burst refused", i)
		}
	}
	ok, wait := l.allow("src_1", 1, 3, now)
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("over the burst: ok %v, wait %s", ok, wait)
	}
	if ok, _ := l.allow("src_2", 1, 3, now); !ok {
		t.Fatal("sources have their own buckets")
	}
	if ok, _ := l.allow("src_1", 1, 3, now.Add(time.Second)); !ok {
		t.Fatal("a token comes back after a second")
	}
	if ok, _ := l.allow("src_1", 0, 0, now); !ok {
		t.Fatal("no limit set: always allowed")
	}
	// Raising the limit applies to the same bucket.
	l.allow("src_1", 100, 100, now.Add(1100*time.Millisecond))
	if ok, _ := l.allow("src_1", 100, 100, now.Add(1150*time.Millisecond)); !ok {
		t.Fatal("a raised limit applies at once")
	}
	// Idle buckets go.
	l.allow("src_3", 1, 1, now.Add(10*time.Minute))
	l.mu.Lock()
	n := len(l.buckets)
	l.mu.Unlock()
	if n != 1 {
		t.Errorf("%d buckets kept, want only the one just used", n)
	}
}

func TestAllowed(t *testing.T) {
	t.Parallel()
	s := noneSource("src_1", true)
	s.Settings.AllowIPs = []string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32"}
	src, err := compile(s, fingerprint(s))
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{
		"10.1.2.3:443": true, "192.0.2.7:1": true, "192.0.2.8:1": false, "[::ffff:10.0.0.1]:5": true,
		"[2001:db8::1]:80": true, "[2001:db9::1]:80": false, "127.0.0.1:80": false, "garbage": false,
	} {
		r := httptest.NewRequest("POST", "/in/x", nil)
		r.RemoteAddr = addr
		r.Header.Set("X-Forwarded-For", "10.0.0.1")
		if got := src.allowed(remoteAddr(r)); got != want {
			t.Errorf("%s allowed = %v, want %v", addr, got, want)
		}
	}
	if !(&source{}).allowed(netip.Addr{}) {
		t.Error("no allowlist allows every address")
	}
}

func TestTokenOf(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]string{
		"/in/abc": "abc", "/in/": "", "/in/a/b": "", "/other/abc": "", "/in/" + strings.Repeat("x", 300): "",
	} {
		r := httptest.NewRequest("POST", "http://h"+path, nil)
		if got := tokenOf(r); got != want {
			t.Errorf("tokenOf(%s) = %q, want %q", path, got, want)
		}
	}
}

func TestReadBody(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest("POST", "/in/x", strings.NewReader("12345"))
	if b, err := readBody(r, 5); err != nil || string(b) != "12345" {
		t.Errorf("at the limit: %q, %v", b, err)
	}
	r = httptest.NewRequest("POST", "/in/x", strings.NewReader("123456"))
	if _, err := readBody(r, 5); err != errTooLarge {
		t.Errorf("over the limit: %v", err)
	}
	r = httptest.NewRequest("POST", "/in/x", strings.NewReader("123456"))
	r.ContentLength = -1 // chunked: only reading tells
	if _, err := readBody(r, 5); err != errTooLarge {
		t.Errorf("chunked over the limit: %v", err)
	}
}

func TestWriteProblem(t *testing.T) {
	t.Parallel()
	w := httptest.NewRecorder()
	writeProblem(w, http.StatusUnauthorized, "bad_signature", "verify github: bad_signature")
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q", ct)
	}
	want := `{"type":"about:blank","title":"Unauthorized","status":401,"detail":"verify github: bad_signature","reason":"bad_signature"}`
	if got := w.Body.String(); got != want {
		t.Errorf("body = %s", got)
	}
}

func TestSourceCache_ForgetDuringALoadIsNotUndone(t *testing.T) {
	t.Parallel()
	tab := &sourceTable{by: map[string]*store.Source{"tok": noneSource("src_1", true)}}
	var c *sourceCache
	loaded := false
	c = newSourceCache(func(ctx context.Context, token string) (*store.Source, error) {
		s, err := tab.load(ctx, token)
		if !loaded {
			loaded = true
			// The source changes, and SourceChanged is called, while this load is in flight.
			tab.set("tok", noneSource("src_1", false))
			c.forget("src_1")
		}
		return s, err
	}, time.Minute, 100)
	now := time.Now()
	if _, err := c.get(context.Background(), "tok", now); err != nil {
		t.Fatal(err)
	}
	if _, err := c.get(context.Background(), "tok", now); err != errUnknownSource {
		t.Errorf("the stale load was cached: %v", err)
	}
}
