package dispatch_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/dispatch"
	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/internal/store"
)

// A node cut off from the database with attempts in flight to an endpoint (whose timeout, and
// so whose leases, are long) stops them when its heartbeat ends, and another node takes the
// endpoint over by the missed heartbeats, long before the leases would have ended; the
// endpoint never has more requests open at once than its max_concurrency, across both nodes.
func TestHeartbeat_ACutOffNodeStopsAndAnotherTakesOverBeforeItsLeasesEnd(t *testing.T) {
	t.Parallel()
	url, schema := pgtest.Schema(t, "herald_heartbeat_")
	stA, stB := openNode(t, url, schema), openNode(t, url, schema)

	const (
		n           = 6
		concurrency = 2
		timeout     = 30 * time.Second // the lease: timeout + LeaseMargin = 60 s
		margin      = 30 * time.Second
		ttl         = 2 * time.Second // the heartbeat
	)
	var (
		mu        sync.Mutex
		open, top int // requests open at once, and the most ever
		aborted   int // node A's requests cut short by A
		byB       = map[string]int{}
		firstB    time.Time
		aHolding  = make(chan struct{}, n)
		cut       = &atomic.Bool{}
		lastAOpen time.Time
	)
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		node := r.Header.Get("User-Agent")
		// Read to the end: only then does the server notice the client going away.
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		open++
		top = max(top, open)
		if node == "node-b" {
			byB[r.Header.Get("webhook-id")]++
			if firstB.IsZero() {
				firstB = time.Now()
			}
		} else {
			lastAOpen = time.Now()
		}
		mu.Unlock()
		defer func() {
			mu.Lock()
			open--
			mu.Unlock()
		}()
		if node == "node-a" {
			// A's attempts hang until A gives them up: A "dies" holding them.
			aHolding <- struct{}{}
			<-r.Context().Done()
			mu.Lock()
			aborted++
			mu.Unlock()
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)

	seedEndpoint(t, stA, rc.URL+"/ep", timeout, concurrency, n)

	logA := &testLog{}
	run := func(st store.Store, name string, log io.Writer) {
		runNamedDispatcher(t, st, name, dispatch.Config{Rescan: 200 * time.Millisecond, LeaseMargin: margin, HeartbeatTTL: ttl,
			Logger: slog.New(slog.NewTextHandler(log, nil))})
	}
	writes := make(chan struct{})
	run(cutOff{Store: stA, cut: cut, claimed: &atomic.Int64{}, want: 1 << 30, writes: writes}, "node-a", logA)
	t.Cleanup(func() { close(writes) })
	// A holds the endpoint's lane, with max_concurrency attempts open and the rest queued.
	for range concurrency {
		<-aHolding
	}
	cutAt := time.Now()
	cut.Store(true)
	leaseEnd := cutAt.Add(timeout + margin)
	run(stB, "node-b", io.Discard)

	waitUntil(t, "node B delivers every event", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(byB) == n
	})
	mu.Lock()
	defer mu.Unlock()
	if !firstB.Before(leaseEnd) {
		t.Errorf("node B's first request at %v, not before node A's leases ended (%v): the takeover waited for the leases", firstB, leaseEnd)
	}
	t.Logf("node B took over %v after node A was cut off (heartbeat TTL %v, leases %v)", firstB.Sub(cutAt).Round(time.Millisecond), ttl, timeout+margin)
	if aborted != concurrency {
		t.Errorf("node A gave up %d of its %d attempts in flight", aborted, concurrency)
	}
	if !lastAOpen.Before(firstB) {
		t.Errorf("node A opened a request at %v, after node B's first at %v", lastAOpen, firstB)
	}
	if top > concurrency {
		t.Errorf("%d requests were open at once, over the endpoint's max_concurrency %d", top, concurrency)
	}
	for id, k := range byB {
		if k != 1 {
			t.Errorf("node B sent %s %d times", id, k)
		}
	}
	if !strings.Contains(logA.String(), "heartbeat ended: attempts in flight are cut short") {
		t.Errorf("node A's log does not say it cut its attempts short:\n%s", logA.String())
	}
}
