package node_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/node"
)

// Under a backlog, high priority events overtake the normal ones still waiting, and low
// priority ones are not starved: they arrive too.
func TestPriority_HighOvertakesBacklogLowArrives(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			mod := b.mod(t)
			h := start(t, func(c *node.Config) {
				if mod != nil {
					mod(c)
				}
				c.Dispatch.QueueDepth = 8 // the lane claims up to 8 ahead
			})
			release := make(chan struct{})
			var once sync.Once
			var mu sync.Mutex
			var order []string // priority of each event received, in arrival order
			rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				<-release // the endpoint is stuck until the backlog is there
				var prio string
				switch i := envelopeI(t, body); {
				case i < 1000:
					prio = "normal"
				case i < 2000:
					prio = "high"
				default:
					prio = "low"
				}
				mu.Lock()
				order = append(order, prio)
				mu.Unlock()
			}))
			t.Cleanup(rc.Close)
			t.Cleanup(func() { once.Do(func() { close(release) }) })
			h.setup("acme", "job.queued")
			h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"job.*"}, "max_concurrency": 1})
			publish := func(prio string, from, to int) {
				var events []map[string]any
				for i := from; i < to; i++ {
					events = append(events, map[string]any{"type": "job.queued", "data": map[string]any{"i": i}, "priority": prio})
				}
				h.must(202, "POST", "/v1/tenants/acme/events/batch", map[string]any{"events": events}, nil)
			}
			publish("normal", 0, 200)
			publish("low", 2000, 2010)
			publish("high", 1000, 1020)
			once.Do(func() { close(release) })
			eventually(t, 60*time.Second, "every event", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(order) == 230
			})
			mu.Lock()
			defer mu.Unlock()
			// The lane had claimed some normal events ahead before the high ones were published
			// (its queue, and the one in flight); the rest of the backlog waits for the high ones.
			lastHigh, normalsBefore := -1, 0
			for i, p := range order {
				if p == "high" {
					lastHigh = i
				}
			}
			for _, p := range order[:lastHigh] {
				if p == "normal" {
					normalsBefore++
				}
			}
			if normalsBefore > 9 {
				t.Fatalf("%d normal events arrived before the last high one (%v…), want at most the lane's queue", normalsBefore, order[:lastHigh+1])
			}
			// Low ones are ranked 50 s behind normal ones published with them: they come last
			// here, but they come.
			lows := 0
			for _, p := range order[len(order)-10:] {
				if p == "low" {
					lows++
				}
			}
			if lows != 10 {
				t.Fatalf("the last 10 events = %v, want the 10 low ones", order[len(order)-10:])
			}
		})
	}
}
