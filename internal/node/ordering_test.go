package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/internal/store"
)

// backends are the stores an end-to-end test of the event design runs on: SQLite always,
// PostgreSQL when HERALD_TEST_DATABASE_URL is set.
var backends = []struct {
	name string
	mod  func(t *testing.T) func(*node.Config)
}{
	{"sqlite", func(*testing.T) func(*node.Config) { return nil }},
	{"postgres", onPostgres},
}

// configure changes an endpoint's settings through the store, as the API does, and tells the
// dispatcher; it also reaches what the API cannot set, such as sub-second retry schedules.
func (h *harness) configure(tenant, id string, mod func(*store.Endpoint)) {
	h.t.Helper()
	ctx := context.Background()
	ep, err := h.node.Store.GetEndpoint(ctx, tenant, id)
	if err != nil {
		h.t.Fatal(err)
	}
	mod(ep)
	ep.UpdatedAt = time.Now()
	if err := h.node.Store.UpdateEndpoint(ctx, ep); err != nil {
		h.t.Fatal(err)
	}
	h.node.Dispatcher.EndpointChanged(id)
}

// fastRetries is a retry schedule of 100 ms steps.
var fastRetries = []time.Duration{0, 100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond}

// envelopeI reads data.i of an envelope.
func envelopeI(t *testing.T, body []byte) int {
	var env struct {
		Data struct {
			I int `json:"i"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		t.Errorf("envelope %s: %v", body, err)
	}
	return env.Data.I
}

// An ordered endpoint gets its events in publish order, one at a time: while event 3 fails
// and waits for its retries, 4 and later wait too, and nothing overtakes it.
func TestOrdering_FailingEventHoldsTheLane(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			h := start(t, b.mod(t))
			var mu sync.Mutex
			var seen []string
			var inFlight, most atomic.Int64
			failures := 0
			rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				cur := inFlight.Add(1)
				defer inFlight.Add(-1)
				for m := most.Load(); cur > m && !most.CompareAndSwap(m, cur); m = most.Load() {
				}
				body, _ := io.ReadAll(r.Body)
				i := envelopeI(t, body)
				time.Sleep(5 * time.Millisecond) // long enough for a second request to overlap, were one sent
				mu.Lock()
				status := 200
				if i == 3 && failures < 2 {
					failures++
					status = 500
				}
				seen = append(seen, fmt.Sprintf("%d:%d", i, status))
				mu.Unlock()
				w.WriteHeader(status)
			}))
			t.Cleanup(rc.Close)
			h.setup("acme", "order.placed")
			ep := h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"order.*"}, "max_concurrency": 10})
			h.configure("acme", ep.ID, func(e *store.Endpoint) {
				e.Options.Ordered = true
				e.RetrySchedule = fastRetries
			})
			const n = 8
			for i := 1; i <= n; i++ {
				// Priorities do not reorder an ordered endpoint's events.
				prio := []string{"low", "normal", "high"}[i%3]
				h.publish("acme", map[string]any{"type": "order.placed", "data": map[string]any{"i": i}, "priority": prio})
			}
			eventually(t, 20*time.Second, "every event delivered", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(seen) == n+2
			})
			mu.Lock()
			got := fmt.Sprint(seen)
			mu.Unlock()
			want := "[1:200 2:200 3:500 3:500 3:200 4:200 5:200 6:200 7:200 8:200]"
			if got != want {
				t.Fatalf("the receiver saw %s, want %s", got, want)
			}
			if most.Load() != 1 {
				t.Fatalf("%d requests were in flight at once, want 1", most.Load())
			}
		})
	}
}
