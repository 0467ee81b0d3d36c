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
