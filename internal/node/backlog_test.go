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

// The backlog lives in the store, not in memory: 20,000 pending deliveries of 2 KiB events (40 MB
// of payload) to an endpoint that never answers must leave the heap about where it was.
// HERALD_BACKLOG_EVENTS sets another size (docs/benchmarks.md records a run with 1,000,000).
// Not parallel, so that other tests' allocations do not blur the measurement.
func TestBacklog_MemoryStaysFlat(t *testing.T) {
	events := 20000
	if v := os.Getenv("HERALD_BACKLOG_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1000 {
			t.Fatalf("HERALD_BACKLOG_EVENTS=%q: want a number of at least 1000", v)
		}
		events = n - n%1000
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
	before := heapInUse()
	blob := strings.Repeat("x", 2048)
	began := time.Now()
	const batch = 1000
	for range events / batch {
		var evs []map[string]any
		for range batch {
			evs = append(evs, map[string]any{"type": "a.happened", "data": map[string]any{"blob": blob}})
		}
		h.must(202, "POST", "/v1/tenants/acme/events/batch", map[string]any{"events": evs}, nil)
	}
	t.Logf("published %d events in %s", events, time.Since(began).Round(time.Millisecond))
	eventually(t, 5*time.Second, "the hanging endpoint to hold its slots", func() bool { return rc.count() >= 2 })
	var stats struct {
		Pending int `json:"pending"`
	}
	h.must(200, "GET", "/v1/tenants/acme/stats?since=1h", nil, &stats)
	if stats.Pending != events {
		t.Fatalf("pending = %d, want %d", stats.Pending, events)
	}
	after := heapInUse()
	growth := float64(int64(after)-int64(before)) / (1 << 20)
	t.Logf("heap in use: %.1f MB before, %.1f MB with %d pending deliveries (%+.1f MB)", float64(before)/(1<<20), float64(after)/(1<<20), events, growth)
	if growth > 8 {
		t.Fatalf("heap grew by %.1f MB with a backlog of %d deliveries; the backlog must stay in the store", growth, events)
	}
}

func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}
