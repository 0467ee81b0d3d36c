package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/dispatch"
	"github.com/heraldhq/herald/internal/node"
)

const adminKey = "hk_admin_test_0123456789abcdef"

type harness struct {
	t    *testing.T
	node *node.Node
	dir  string
	cfg  node.Config
}

// start runs a Herald node on a random port with a fresh SQLite store, in dev mode unless the
// config says otherwise.
func start(t *testing.T, mod func(*node.Config)) *harness {
	t.Helper()
	cfg := node.Config{
		Addr: "127.0.0.1:0", DataDir: t.TempDir(), Dev: true, APIKey: adminKey,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Dispatch: dispatch.Config{Rescan: time.Second},
	}
	if os.Getenv("HERALD_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if mod != nil {
		mod(&cfg)
	}
	h := &harness{t: t, dir: cfg.DataDir, cfg: cfg}
	h.boot()
	t.Cleanup(func() { h.stop() })
	return h
}

func (h *harness) boot() {
	h.t.Helper()
	n, err := node.Start(context.Background(), h.cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.node = n
}

func (h *harness) stop() {
	if h.node == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.node.Close(ctx); err != nil {
		h.t.Errorf("close node: %v", err)
	}
	h.node = nil
}

// call makes an API request with the admin key and decodes a JSON answer into out (if not nil).
func (h *harness) call(method, path string, body any, out any) int {
	h.t.Helper()
	return h.callAs(adminKey, method, path, body, out)
}

func (h *harness) callAs(key, method, path string, body any, out any) int {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, h.node.URL()+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			h.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
}

// must makes a call that must answer want.
func (h *harness) must(want int, method, path string, body any, out any) {
	h.t.Helper()
	var raw json.RawMessage
	got := h.call(method, path, body, &raw)
	if got != want {
		h.t.Fatalf("%s %s = %d, want %d: %s", method, path, got, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			h.t.Fatalf("decode %s: %v", raw, err)
		}
	}
}

type endpointOut struct {
	ID       string `json:"id"`
	Secret   string `json:"secret"`
	Enabled  bool   `json:"enabled"`
	Disabled string `json:"disabled_reason"`
}

// setup creates a tenant and the event types.
func (h *harness) setup(tenant string, types ...string) {
	h.t.Helper()
	h.must(201, "POST", "/v1/tenants", map[string]any{"id": tenant, "name": "Tenant " + tenant}, nil)
	for _, et := range types {
		var existing json.RawMessage
		if h.call("GET", "/v1/event-types/"+et, nil, &existing) == 200 {
			continue
		}
		h.must(201, "POST", "/v1/event-types", map[string]any{"name": et, "description": "test type"}, nil)
	}
}

func (h *harness) endpoint(tenant string, body map[string]any) endpointOut {
	h.t.Helper()
	var ep endpointOut
	h.must(201, "POST", "/v1/tenants/"+tenant+"/endpoints", body, &ep)
	return ep
}

type published struct {
	ID         string `json:"id"`
	Deliveries int    `json:"deliveries"`
	Duplicate  bool   `json:"duplicate"`
}

func (h *harness) publish(tenant string, body map[string]any) published {
	h.t.Helper()
	var p published
	h.must(202, "POST", "/v1/tenants/"+tenant+"/events", body, &p)
	return p
}

type attemptOut struct {
	StatusCode int     `json:"status_code"`
	LatencyMS  float64 `json:"latency_ms"`
	Error      string  `json:"error"`
	ErrorKind  string  `json:"error_kind"`
	Response   string  `json:"response"`
	Success    bool    `json:"success"`
	At         string  `json:"at"`
}

type deliveryOut struct {
	ID            string       `json:"id"`
	EventID       string       `json:"event_id"`
	EndpointID    string       `json:"endpoint_id"`
	State         string       `json:"state"`
	AttemptCount  int          `json:"attempt_count"`
	NextAttemptAt *time.Time   `json:"next_attempt_at"`
	LastError     string       `json:"last_error"`
	Attempts      []attemptOut `json:"attempts"`
}

func (h *harness) deliveries(path string) []deliveryOut {
	h.t.Helper()
	var page struct {
		Data []deliveryOut `json:"data"`
	}
	h.must(200, "GET", path, nil, &page)
	return page.Data
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// receiver is a real HTTP server that records what it gets and answers with a programmable status.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	requests []received
	answer   func(n int, r *http.Request) int // n counts requests from 1
}

type received struct {
	header http.Header
	body   []byte
	at     time.Time
}

func newReceiver(t *testing.T, answer func(n int, r *http.Request) int) *receiver {
	rc := &receiver{answer: answer}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.requests = append(rc.requests, received{header: r.Header.Clone(), body: body, at: time.Now()})
		n := len(rc.requests)
		answer := rc.answer
		rc.mu.Unlock()
		status := 200
		if answer != nil {
			status = answer(n, r)
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, "answer %d", status)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.requests)
}

func (rc *receiver) got() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.requests...)
}

// newSwitchableReceiver answers failing (a 5xx) until setHealthy(true), then 200.
func newSwitchableReceiver(t *testing.T, failing int) (*receiver, func(healthy bool)) {
	var healthy atomic.Bool
	rc := newReceiver(t, func(n int, r *http.Request) int {
		if healthy.Load() {
			return 200
		}
		return failing
	})
	return rc, healthy.Store
}
