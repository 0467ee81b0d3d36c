package node_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/node"
)

// lockedBuffer collects log output written from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestHygiene_NoSecretsInLogsOrAttempts runs deliveries to a receiver that echoes every request
// header back, fails once and then succeeds, with debug logging on. Neither the logs nor the
// recorded attempts may contain the endpoint's secret, a signature, the receiver's credential
// header or the API key; the logs do not contain the event's payload either.
func TestHygiene_NoSecretsInLogsOrAttempts(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	h := start(t, func(c *node.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	var (
		n    atomic.Int32
		mu   sync.Mutex
		sigs []string
	)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		sigs = append(sigs, strings.Fields(r.Header.Get("Webhook-Signature"))...)
		mu.Unlock()
		if n.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(r.Header)
	}))
	t.Cleanup(rcv.Close)

	h.setup("acme", "invoice.paid")
	const receiverToken = "Bearer rcv-token-4c8d2e9f1a7b"
	ep := h.endpoint("acme", map[string]any{
		"url": rcv.URL + "/hook", "event_types": []string{"*"}, "retry_schedule": []int{0, 1},
		"headers": map[string]string{"Authorization": receiverToken},
	})
	const payloadMarker = "card-ending-4242-do-not-log"
	ev := h.publish("acme", map[string]any{"type": "invoice.paid", "data": map[string]any{"note": payloadMarker}})

	var ds []deliveryOut
	eventually(t, 15*time.Second, "the delivery to succeed on its second attempt", func() bool {
		ds = h.deliveries("/v1/tenants/acme/events/" + ev.ID + "/deliveries")
		return len(ds) == 1 && ds[0].State == "succeeded" && len(ds[0].Attempts) == 2
	})
	attempts, err := json.Marshal(ds)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	secrets := append([]string{ep.Secret, strings.TrimPrefix(ep.Secret, "whsec_"), receiverToken, adminKey}, sigs...)
	mu.Unlock()
	if len(secrets) < 6 {
		t.Fatalf("receiver saw %d signatures, want 2", len(secrets)-4)
	}
	for _, s := range secrets {
		if _, sig, ok := strings.Cut(s, ","); ok {
			s = sig // the base64 part of "v1,<sig>"
		}
		if strings.Contains(logs.String(), s) {
			t.Errorf("logs contain %q", s)
		}
		if strings.Contains(string(attempts), s) {
			t.Errorf("recorded attempts contain %q: %s", s, attempts)
		}
	}
	if strings.Contains(logs.String(), payloadMarker) {
		t.Error("logs contain the event's payload")
	}
	if !strings.Contains(string(attempts), "[redacted]") {
		t.Errorf("the receiver echoed its headers, but no attempt shows a redaction: %s", attempts)
	}
	if logs.String() == "" {
		t.Error("no logs were written at all; the test would prove nothing")
	}
}
