package node_test

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/node"
)

// TestEndpoint_BreakerStateIsShown: the endpoint's answer tells whether this node's circuit
// breaker holds its deliveries back, so that the API and the dashboard can say why nothing is
// being sent: closed while it is healthy, open after consecutive failures, closed again after a
// probe succeeds.
func TestEndpoint_BreakerStateIsShown(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *node.Config) {
		c.Dispatch.BreakerFailures = 2
		c.Dispatch.BreakerCooldown = 500 * time.Millisecond
	})
	var failing atomic.Bool
	failing.Store(true)
	rc := newReceiver(t, func(int, *http.Request) int {
		if failing.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	h.setup("acme", "a.happened")
	ep := h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"a.happened"}, "retry_schedule": []int{0, 1, 1, 1, 1, 1, 1, 1}})
	state := func() string {
		var out struct {
			BreakerState string `json:"breaker_state"`
		}
		h.must(200, "GET", "/v1/tenants/acme/endpoints/"+ep.ID, nil, &out)
		return out.BreakerState
	}
	if s := state(); s != "closed" {
		t.Fatalf("a new endpoint's breaker is %q, want closed", s)
	}
	for range 3 {
		h.publish("acme", map[string]any{"type": "a.happened", "data": map[string]any{}})
	}
	eventually(t, 10*time.Second, "the breaker open", func() bool { return state() == "open" })
	var list struct {
		Data []struct {
			ID           string `json:"id"`
			BreakerState string `json:"breaker_state"`
		} `json:"data"`
	}
	h.must(200, "GET", "/v1/tenants/acme/endpoints", nil, &list)
	if len(list.Data) != 1 || list.Data[0].BreakerState == "closed" || list.Data[0].BreakerState == "" {
		t.Errorf("the endpoint list shows %+v, want the breaker not closed", list.Data)
	}
	failing.Store(false)
	eventually(t, 15*time.Second, "the breaker closed after a successful probe", func() bool { return state() == "closed" })
}
