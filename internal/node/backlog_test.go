package node_test

import (
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The backlog lives in the store, not in memory. The heap is measured after half of a backlog of
// 4 KiB events to an endpoint that never answers is queued, and again after all of it: the second
// half (20 MB of payload for the default 10,000 events) must add well under 8 MB. Measuring the
// difference between the two halves leaves out what any run allocates once (caches, pools,
// connection buffers) and counts only what grows with the backlog.
// HERALD_BACKLOG_EVENTS sets another size (docs/benchmarks.md records a run with 1,000,000).
// Not parallel, so that other tests' allocations do not blur the measurement.
func TestBacklog_MemoryStaysFlat(t *testing.T) {
	events := 10000
	if v := os.Getenv("HERALD_BACKLOG_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2000 {
			t.Fatalf("HERALD_BACKLOG_EVENTS=%q: want a number of at least 2000", v)
		}
		events = n - n%2000
	}
	h := start(t, nil)
	hang := make(chan struct{})
	defer close(hang)
	rc := newReceiver(t, func(n int, r *http.Request) int {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
		return 200
	})
	h.setup("acme", "a.happened")
	h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"*"}, "max_concurrency": 2, "timeout_seconds": 30})
	blob := strings.Repeat("x", 4096)
	const batch = 1000
	publish := func(n int) {
		for range n / batch {
			var evs []map[string]any
			for range batch {
				evs = append(evs, map[string]any{"type": "a.happened", "data": map[string]any{"blob": blob}})
			}
			h.must(202, "POST", "/v1/tenants/acme/events/batch", map[string]any{"events": evs}, nil)
		}
	}
	began := time.Now()
	publish(events / 2)
	eventually(t, 5*time.Second, "the hanging endpoint to hold its slots", func() bool { return rc.count() >= 2 })
	half := heapInUse()
	publish(events / 2)
	full := heapInUse()
	t.Logf("published %d events in %s", events, time.Since(began).Round(time.Millisecond))
	var stats struct {
		Pending int `json:"pending"`
	}
	h.must(200, "GET", "/v1/tenants/acme/stats?since=1h", nil, &stats)
	if stats.Pending != events {
		t.Fatalf("pending = %d, want %d", stats.Pending, events)
	}
	growth := float64(int64(full)-int64(half)) / (1 << 20)
	t.Logf("heap in use: %.1f MB with %d pending deliveries, %.1f MB with %d (%+.1f MB for %d MB of payload)",
		float64(half)/(1<<20), events/2, float64(full)/(1<<20), events, growth, events/2*4096>>20)
	limit := 8.0
	if raceEnabled {
		limit = 12 // the race detector keeps more alive between GCs; the payload is still 19 MB
	}
	if growth > limit {
		t.Fatalf("the second half of the backlog grew the heap by %.1f MB; the backlog must stay in the store", growth)
	}
}

func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}
