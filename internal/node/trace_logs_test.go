package node_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/node"
)

// jsonLines decodes a JSON log.
func jsonLines(t *testing.T, logs *lockedBuffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader([]byte(logs.String())))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q: %v", sc.Bytes(), err)
		}
		out = append(out, m)
	}
	return out
}

// Every log line about a delivery says which event, tenant, endpoint and attempt it is about.
func TestLogs_DeliveryLinesNameEventTenantEndpointAttempt(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	h := start(t, func(c *node.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	h.setup("acme", "invoice.paid")
	ok := newReceiver(t, nil)
	failing := newReceiver(t, func(int, *http.Request) int { return http.StatusServiceUnavailable })
	gone := newReceiver(t, func(int, *http.Request) int { return http.StatusGone })
	h.endpoint("acme", map[string]any{"url": ok.URL, "event_types": []string{"*"}})
	h.endpoint("acme", map[string]any{"url": failing.URL, "event_types": []string{"*"}, "retry_schedule": []int{0, 0}})
	h.endpoint("acme", map[string]any{"url": gone.URL, "event_types": []string{"*"}})
	h.publish("acme", map[string]any{"type": "invoice.paid", "data": map[string]any{}})

	delivery := map[string]bool{"attempt succeeded": true, "attempt failed": true, "delivery dead-lettered": true,
		"endpoint disabled": true, "endpoint failing": true}
	seen := map[string]int{}
	eventually(t, 15*time.Second, "the delivery path's log lines", func() bool {
		clear(seen)
		for _, l := range jsonLines(t, &logs) {
			if msg, _ := l["msg"].(string); delivery[msg] {
				seen[msg]++
			}
		}
		return seen["attempt succeeded"] == 1 && seen["attempt failed"] == 3 && seen["delivery dead-lettered"] == 2 && seen["endpoint disabled"] == 1
	})
	for _, l := range jsonLines(t, &logs) {
		if msg, _ := l["msg"].(string); delivery[msg] {
			for _, k := range []string{"event", "tenant", "endpoint", "attempt"} {
				if v, ok := l[k]; !ok || v == "" || v == nil {
					t.Errorf("%q has no %s: %v", msg, k, l)
				}
			}
		}
	}
}
