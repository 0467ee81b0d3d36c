package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/httpsend"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/sqlite"
)

// nopNotifier stands in for the delivery engine, which these tests do not run: nothing is sent.
type nopNotifier struct{}

func (nopNotifier) Notify(...string)       {}
func (nopNotifier) EndpointChanged(string) {}
func (nopNotifier) Rescan()                {}

// testAPI is the real API on a real SQLite store, served by an httptest server on 127.0.0.1.
type testAPI struct {
	t   testing.TB
	srv *httptest.Server
	api *api.Server
	// sqlite is the store newTestAPI opened (nil for newTestAPIOn).
	sqlite *sqlite.Store
	admin  string // an admin key's secret
}

// newTestAPI starts the API with cfg (store, notifier and, unless set, a production URL check
// filled in) and an admin key.
func newTestAPI(t testing.TB, cfg api.Config) *testAPI {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "herald.db"), sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	a := newTestAPIOn(t, st, cfg)
	a.sqlite = st
	return a
}

// newTestAPIOn is newTestAPI on a store the test opened.
func newTestAPIOn(t testing.TB, st store.Store, cfg api.Config) *testAPI {
	t.Helper()
	ctx := context.Background()
	secret, key, err := api.NewKey(store.RoleAdmin, "", "test admin", time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAPIKey(ctx, key); err != nil {
		t.Fatalf("store admin key: %v", err)
	}
	cfg.Store = st
	cfg.Notifier = nopNotifier{}
	if cfg.URLCheck == nil {
		cfg.URLCheck = httpsend.New(httpsend.Config{})
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a := api.New(cfg)
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return &testAPI{t: t, srv: srv, api: a, admin: secret}
}

// answer is a response read in full.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// problem is an RFC 9457 problem document as Herald writes it.
type problem struct {
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Location string `json:"location"`
		Message  string `json:"message"`
		Value    any    `json:"value"`
	} `json:"errors"`
}

func (a answer) problem(t testing.TB) problem {
	t.Helper()
	if ct := a.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json (status %d, body %.300s)", ct, a.status, a.body)
	}
	var p problem
	if err := json.Unmarshal(a.body, &p); err != nil {
		t.Fatalf("decode problem %.300s: %v", a.body, err)
	}
	if p.Status != a.status {
		t.Errorf("problem status %d, response status %d", p.Status, a.status)
	}
	return p
}

// find returns the message of the error at location, and whether there is one.
func (p problem) find(location string) (string, bool) {
	for _, e := range p.Errors {
		if e.Location == location {
			return e.Message, true
		}
	}
	return "", false
}

// do sends a request with key (none if empty) and a body that is sent as is when it is a string
// or []byte, and as JSON otherwise.
func (a *testAPI) do(key, method, path string, body any) answer {
	a.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			a.t.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, a.srv.URL+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := a.srv.Client().Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatalf("%s %s: read answer: %v", method, path, err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// must makes a call with the admin key that must answer want, and decodes the answer into out.
func (a *testAPI) must(want int, method, path string, body, out any) {
	a.t.Helper()
	ans := a.do(a.admin, method, path, body)
	if ans.status != want {
		a.t.Fatalf("%s %s = %d, want %d: %.500s", method, path, ans.status, want, ans.body)
	}
	if out != nil {
		if err := json.Unmarshal(ans.body, out); err != nil {
			a.t.Fatalf("decode %.300s: %v", ans.body, err)
		}
	}
}

// tenantKey creates tenant id and returns a new key scoped to it.
func (a *testAPI) tenantKey(id string) string {
	a.t.Helper()
	a.must(http.StatusCreated, "POST", "/v1/tenants", map[string]any{"id": id, "name": "Tenant " + id}, nil)
	var k struct {
		Key string `json:"key"`
	}
	a.must(http.StatusCreated, "POST", "/v1/api-keys", map[string]any{"role": "tenant", "tenant_id": id}, &k)
	return k.Key
}
