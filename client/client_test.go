package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/client"
	"github.com/heraldhq/herald/internal/node"
)

const adminKey = "hk_admin_test_0123456789abcdef"

// startHerald runs a real Herald node (SQLite) with tenant acme, event type order.created and an
// endpoint subscribed to it, and returns its URL.
func startHerald(t *testing.T) string {
	t.Helper()
	n, err := node.Start(context.Background(), node.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Dev: true, APIKey: adminKey,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := n.Close(ctx); err != nil {
			t.Errorf("close node: %v", err)
		}
	})
	rc := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(rc.Close)
	for _, call := range []struct {
		path string
		body any
	}{
		{"/v1/tenants", map[string]any{"id": "acme", "name": "Acme"}},
		{"/v1/event-types", map[string]any{"name": "order.created", "description": "An order was placed."}},
		{"/v1/tenants/acme/endpoints", map[string]any{"url": rc.URL, "event_types": []string{"*"}}},
	} {
		buf, _ := json.Marshal(call.body)
		req, _ := http.NewRequest("POST", n.URL()+call.path, bytes.NewReader(buf))
		req.Header.Set("Authorization", "Bearer "+adminKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 201 {
			t.Fatalf("POST %s = %d", call.path, resp.StatusCode)
		}
	}
	return n.URL()
}

func TestClient_PublishIsIdempotentByID(t *testing.T) {
	t.Parallel()
	c := client.New(startHerald(t), adminKey)
	ctx := context.Background()
	p, err := c.Publish(ctx, "acme", client.Event{Type: "order.created", Data: map[string]any{"total": 42}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.ID) != 30 || p.Type != "order.created" || p.Deliveries != 1 || p.Duplicate || p.Timestamp.IsZero() {
		t.Fatalf("published %+v, want a new event with one delivery", p)
	}
	again, err := c.Publish(ctx, "acme", client.Event{ID: p.ID, Type: "order.created", Data: map[string]any{"total": 42}})
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != p.ID || !again.Duplicate || again.Deliveries != 0 || !again.Timestamp.Equal(p.Timestamp) {
		t.Fatalf("published again %+v, want the original %+v as a duplicate", again, p)
	}
}

// lostAnswers is a transport whose first answer is lost after Herald has acted on the request,
// as when a connection drops: the client tries again, with the same event id.
type lostAnswers struct {
	mu     sync.Mutex
	lost   int
	bodies [][]byte
}

func (l *lostAnswers) RoundTrip(req *http.Request) (*http.Response, error) {
	body, _ := io.ReadAll(req.Body)
	req.Body = io.NopCloser(bytes.NewReader(body))
	resp, err := http.DefaultTransport.RoundTrip(req)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bodies = append(l.bodies, body)
	if err == nil && l.lost == 0 {
		l.lost++
		resp.Body.Close()
		return nil, errors.New("connection reset by peer")
	}
	return resp, err
}

func TestClient_RetryAfterLostAnswerIsDuplicate(t *testing.T) {
	t.Parallel()
	tr := &lostAnswers{}
	c := client.New(startHerald(t), adminKey, client.WithHTTPClient(&http.Client{Transport: tr}), client.WithRetries(3, 10*time.Millisecond))
	p, err := c.Publish(context.Background(), "acme", client.Event{Type: "order.created"})
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.bodies) != 2 || !bytes.Equal(tr.bodies[0], tr.bodies[1]) {
		t.Fatalf("sent %q, want the same request twice", tr.bodies)
	}
	// The first try stored the event; the retry found it.
	if !p.Duplicate {
		t.Fatalf("published %+v, want the retry to be a duplicate of the first try", p)
	}
}

func TestClient_ProblemDetails(t *testing.T) {
	t.Parallel()
	base := startHerald(t)
	c := client.New(base, adminKey)
	ctx := context.Background()
	_, err := c.Publish(ctx, "acme", client.Event{Type: "order.unknown"})
	apiErr, ok := errors.AsType[*client.APIError](err)
	if !ok || apiErr.Status != 422 || len(apiErr.Errors) != 1 || apiErr.Errors[0].Location != "body.type" || client.StatusCode(err) != 422 {
		t.Fatalf("error %#v, want a 422 problem at body.type", err)
	}
	if apiErr.Temporary() {
		t.Fatal("a 422 is not temporary")
	}
	_, err = c.PublishBatch(ctx, "acme", []client.Event{{Type: "order.created"}, {Type: "order.unknown"}})
	if apiErr, ok := errors.AsType[*client.APIError](err); !ok || apiErr.Status != 422 || apiErr.Errors[0].Location != "body.events[1].type" {
		t.Fatalf("batch error %v, want a 422 problem at body.events[1].type", err)
	}
	_, err = client.New(base, "hk_wrong_key_0123456789").Publish(ctx, "acme", client.Event{Type: "order.created"})
	if client.StatusCode(err) != 401 {
		t.Fatalf("error %v, want 401", err)
	}
}

func TestClient_PublishBatch(t *testing.T) {
	t.Parallel()
	c := client.New(startHerald(t), adminKey)
	out, err := c.PublishBatch(context.Background(), "acme", []client.Event{
		{ID: "ord_1.created", Type: "order.created", Data: map[string]any{"i": 1}},
		{Type: "order.created", Data: json.RawMessage(`{"i":2}`), Priority: "low", Resource: &client.Resource{ID: "ord_2"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].ID != "ord_1.created" || out[1].ID == "" || out[0].Deliveries != 1 || out[1].Deliveries != 1 {
		t.Fatalf("published %+v", out)
	}
}

// A 503 with Retry-After is tried again after the pause the server asked for, with the same
// request; a server that keeps refusing gets the bounded number of tries.
func TestClient_HonoursRetryAfter(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	var mu sync.Mutex
	var bodies [][]byte
	var at []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies, at = append(bodies, body), append(at, time.Now())
		mu.Unlock()
		if calls.Add(1) == 1 || r.URL.Path == "/v1/tenants/busy/events" {
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(503)
			_, _ = w.Write([]byte(`{"status":503,"title":"Service Unavailable","detail":"the store is unavailable"}`))
			return
		}
		var ev client.Event
		_ = json.Unmarshal(body, &ev)
		w.WriteHeader(202)
		_ = json.NewEncoder(w).Encode(client.Published{ID: ev.ID, Type: ev.Type, Timestamp: time.Now(), Deliveries: 1})
	}))
	t.Cleanup(srv.Close)
	c := client.New(srv.URL, adminKey, client.WithRetries(2, time.Millisecond))
	p, err := c.Publish(context.Background(), "acme", client.Event{Type: "order.created"})
	if err != nil {
		t.Fatal(err)
	}
	if len(bodies) != 2 || !bytes.Equal(bodies[0], bodies[1]) || p.ID == "" {
		t.Fatalf("requests %q, answer %+v: want the same request twice", bodies, p)
	}
	if wait := at[1].Sub(at[0]); wait < 900*time.Millisecond {
		t.Fatalf("retried after %s, want the 1 s Retry-After", wait)
	}

	_, err = c.Publish(context.Background(), "busy", client.Event{Type: "order.created"})
	apiErr, ok := errors.AsType[*client.APIError](err)
	if !ok || apiErr.Status != 503 || apiErr.RetryAfter != time.Second || !apiErr.Temporary() || apiErr.Detail != "the store is unavailable" {
		t.Fatalf("error %#v, want the last 503", err)
	}
	if n := calls.Load(); n != 4 {
		t.Fatalf("%d requests, want 2 + 2 tries", n)
	}
}

// A cancelled context ends the retries at once.
func TestClient_ContextEndsRetries(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(429)
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := client.New(srv.URL, adminKey).Publish(ctx, "acme", client.Event{Type: "order.created"})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("error %v after %s, want the deadline, soon", err, time.Since(start))
	}
}

// What Herald answers when it could not take an event now (503: the store is down; 408: the body
// came too slowly) is tried again; a refusal (422) is not.
func TestClient_RetriesWhatIsNotARefusal(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		status int
		tries  int32
	}{{http.StatusServiceUnavailable, 3}, {http.StatusRequestTimeout, 3}, {http.StatusUnprocessableEntity, 1}} {
		var calls atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(c.status)
			_, _ = w.Write([]byte(`{"title":"refused or unavailable"}`))
		}))
		cl := client.New(srv.URL, adminKey, client.WithRetries(3, time.Millisecond))
		_, err := cl.Publish(context.Background(), "acme", client.Event{Type: "order.created"})
		srv.Close()
		if client.StatusCode(err) != c.status || calls.Load() != c.tries {
			t.Errorf("answer %d: error %v after %d requests, want %d requests", c.status, err, calls.Load(), c.tries)
		}
	}
}
