package api

import (
	"fmt"
	"testing"
	"time"
)

func TestKeyLimiter_BurstThenRefill(t *testing.T) {
	t.Parallel()
	l := newKeyLimiter(10, 3) // a token every 100 ms
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		if ok, _ := l.allow("key_a", now); !ok {
			t.Fatalf("request %d within the burst refused", i+1)
		}
	}
	ok, wait := l.allow("key_a", now)
	if ok || wait <= 0 || wait > 100*time.Millisecond {
		t.Fatalf("request past the burst: allowed %v, wait %v; want refused with a wait in (0, 100ms]", ok, wait)
	}
	// Refused requests take no tokens: after the wait exactly one more request passes.
	for range 5 {
		l.allow("key_a", now)
	}
	if ok, _ := l.allow("key_a", now.Add(wait)); !ok {
		t.Fatal("request after the announced wait refused: refused requests used up tokens")
	}
	if ok, _ := l.allow("key_a", now.Add(wait)); ok {
		t.Fatal("second request after one token's wait allowed")
	}
	if ok, _ := l.allow("key_b", now); !ok {
		t.Fatal("another key refused: buckets must be per key")
	}
}

func TestKeyLimiter_DropsIdleBuckets(t *testing.T) {
	t.Parallel()
	l := newKeyLimiter(100, 200) // refills in 2 s, so idle buckets go after a minute
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 1000 {
		l.allow(fmt.Sprintf("key_%d", i), now)
	}
	if n := l.size(); n != 1000 {
		t.Fatalf("%d buckets after 1000 keys, want 1000", n)
	}
	l.allow("key_recent", now.Add(30*time.Second))
	l.allow("key_recent", now.Add(61*time.Second))
	if n := l.size(); n != 1 {
		t.Errorf("%d buckets a minute later, want only the key still in use", n)
	}
	// A dropped bucket comes back full, as the old one would have been by now.
	for i := range 200 {
		if ok, _ := l.allow("key_7", now.Add(61*time.Second)); !ok {
			t.Fatalf("request %d of a fresh burst refused", i+1)
		}
	}
}

// Past its bound on buckets, a limiter puts new keys into one shared bucket instead of growing:
// an attacker with many addresses cannot make it hold more, and only limits itself further.
func TestKeyLimiter_BoundedBuckets(t *testing.T) {
	t.Parallel()
	l := newKeyLimiter(10, 2)
	l.max = 100
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 1000 {
		l.allow(fmt.Sprintf("addr_%d", i), now)
	}
	if n := l.size(); n > 101 {
		t.Fatalf("%d buckets, want at most the bound and the shared one", n)
	}
	if ok, _ := l.allow("addr_0", now); !ok {
		t.Error("a key that had a bucket before the bound was reached lost it")
	}
	if ok, _ := l.allow("addr_new", now); ok {
		t.Error("a new key past the bound was allowed: it should share the spent overflow bucket")
	}
	if ok, _ := l.allow("addr_newer", now.Add(2*time.Minute)); !ok {
		t.Error("once idle buckets are dropped, a new key must get a bucket of its own")
	}
}

func TestClientAddr(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"127.0.0.1:4242":                "127.0.0.1",
		"[::ffff:10.1.2.3]:80":          "10.1.2.3",
		"[2001:db8:1:2:3:4:5:6]:443":    "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff:4:5:6]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:3::1]:443":         "2001:db8:1:3::/64",
		"not an address":                "not an address",
	} {
		if got := clientAddr(in); got != want {
			t.Errorf("clientAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewKeyLimiter_Settings(t *testing.T) {
	t.Parallel()
	if l := newKeyLimiter(0, 10); l != nil {
		t.Error("rate 0 must mean no limiter")
	}
	if l := newKeyLimiter(-1, 10); l != nil {
		t.Error("a negative rate must mean no limiter")
	}
	if l := newKeyLimiter(100, 0); l.burst != 200 {
		t.Errorf("default burst = %d, want twice the rate (200)", l.burst)
	}
	if l := newKeyLimiter(0.1, 0); l.burst != 1 {
		t.Errorf("burst for 0.1/s = %d, want at least 1", l.burst)
	}
	if l := newKeyLimiter(0.01, 5); l.idle != 500*time.Second {
		t.Errorf("idle for a slow bucket = %v, want its refill time (500s)", l.idle)
	}
}

func TestTooDeep(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		max  int
		want bool
	}{
		{`{}`, 1, false},
		{`{"a":{}}`, 1, true},
		{`[[[]]]`, 3, false},
		{`[[[[]]]]`, 3, true},
		{`{"a":"[[[[[[[["}`, 1, false},
		{`{"a":"\"[[[[[[[["}`, 1, false},
		{`{"a":"\\"}`, 1, false},
		{`{"a":"\\",  "b":[[1]]}`, 2, true},
		{`[1,[2],[3],[4]]`, 2, false},
		{`"unterminated [[[[`, 1, false},
		{`]]]]][[[`, 2, false}, // invalid: the decoder refuses it; the scan must only not crash
	}
	for _, tt := range tests {
		if got := tooDeep([]byte(tt.in), tt.max); got != tt.want {
			t.Errorf("tooDeep(%s, %d) = %v, want %v", tt.in, tt.max, got, tt.want)
		}
	}
}
