package api_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/internal/store/postgres"
	"github.com/jackc/pgx/v5"
)

// While the store cannot be read, a lookup that fails is no answer about what exists: a publish of
// a registered type whose cache entry is gone is answered 503 with Retry-After (the client tries
// again), never the permanent 422 "unknown event type". The API key is still cached, as it was in
// the outage this reproduces.
func TestOutage_LookupsThatFailAre503NotAbsent(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	key := a.tenantKey("acme")
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "order.created"}, nil)
	if ans := a.do(key, "GET", "/v1/tenants/acme", nil); ans.status != http.StatusOK {
		t.Fatalf("warm the key cache: %d %s", ans.status, ans.body)
	}
	if err := a.sqlite.Close(); err != nil {
		t.Fatal(err)
	}
	event := map[string]any{"type": "order.created", "data": map[string]any{"n": 1}}
	for _, c := range []struct {
		name, method, path string
		body               any
	}{
		{"publish", "POST", "/v1/tenants/acme/events", event},
		{"batch", "POST", "/v1/tenants/acme/events/batch", map[string]any{"events": []any{event, event}}},
		{"endpoint subscribing to the type", "POST", "/v1/tenants/acme/endpoints",
			map[string]any{"url": "https://hooks.example.com/a", "event_types": []string{"order.created"}}},
		// Reads of one thing: a failed lookup is not a 404.
		{"event", "GET", "/v1/tenants/acme/events/evt_1", nil},
		{"endpoint", "GET", "/v1/tenants/acme/endpoints/ep_1", nil},
		{"event type", "GET", "/v1/event-types/order.created", nil},
		{"delivery", "GET", "/v1/tenants/acme/deliveries/dlv_1", nil},
		{"source", "GET", "/v1/tenants/acme/sources/src_1", nil},
		{"received request", "GET", "/v1/tenants/acme/received-requests/rcv_1", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			ans := a.do(key, c.method, c.path, c.body)
			p := ans.problem(t)
			if ans.status != http.StatusServiceUnavailable || ans.header.Get("Retry-After") == "" {
				t.Fatalf("%s %s with the store down = %d (Retry-After %q) %+v, want 503 with Retry-After",
					c.method, c.path, ans.status, ans.header.Get("Retry-After"), p)
			}
		})
	}
}

// The same on PostgreSQL cut off by the network (every connection closed, new ones refused), with
// the lists too: no lookup, read or write is answered anything but 503 with Retry-After.
func TestOutage_PostgresCutOffIs503Everywhere(t *testing.T) {
	t.Parallel()
	raw, schema := pgtest.Schema(t, "herald_api_outage_")
	proxy, through := pgtest.Through(t, raw)
	ctx := context.Background()
	st, err := postgres.Open(ctx, through, postgres.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	a := newTestAPIOn(t, st, api.Config{})
	key := a.tenantKey("acme")
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "order.created"}, nil)
	if ans := a.do(key, "GET", "/v1/tenants/acme", nil); ans.status != http.StatusOK {
		t.Fatalf("warm the key cache: %d %s", ans.status, ans.body)
	}
	proxy.Cut()
	event := map[string]any{"type": "order.created", "data": map[string]any{"n": 1}}
	for _, c := range []struct{ method, path string }{
		{"POST", "/v1/tenants/acme/events"},
		{"GET", "/v1/tenants/acme/events/evt_1"},
		{"GET", "/v1/tenants/acme/events"},
		{"GET", "/v1/tenants/acme/deliveries"},
		{"GET", "/v1/tenants/acme/endpoints"},
		{"GET", "/v1/event-types"},
		{"GET", "/v1/tenants/acme/sources"},
		{"GET", "/v1/tenants/acme/received-requests"},
	} {
		var body any
		if c.method == "POST" {
			body = event
		}
		ans := a.do(key, c.method, c.path, body)
		if ans.status != http.StatusServiceUnavailable || ans.header.Get("Retry-After") == "" {
			t.Errorf("%s %s with PostgreSQL cut off = %d (Retry-After %q) %.300s, want 503 with Retry-After",
				c.method, c.path, ans.status, ans.header.Get("Retry-After"), ans.body)
		}
	}
}

// A server that ends its sessions (PostgreSQL restarting, an operator's pg_terminate_backend)
// answers the next query on each pooled connection with an error of its own (57P01
// admin_shutdown), not a network error: lists and reads answer it 503 with Retry-After too, never
// 500.
func TestOutage_PostgresEndingSessionsIs503NotInternalError(t *testing.T) {
	t.Parallel()
	raw, schema := pgtest.Schema(t, "herald_api_57p01_")
	app := "herald_57p01_" + schema
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	ctx := context.Background()
	st, err := postgres.Open(ctx, u.String(), postgres.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	admin, err := pgx.Connect(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	a := newTestAPIOn(t, st, api.Config{})
	key := a.tenantKey("acme")
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "order.created"}, nil)
	paths := []string{"/v1/tenants/acme/events", "/v1/tenants/acme/deliveries", "/v1/tenants/acme/endpoints",
		"/v1/event-types", "/v1/tenants/acme/sources", "/v1/tenants/acme/received-requests", "/v1/tenants/acme"}
	var unavailable int
	for round := 0; round < 5; round++ {
		// Every pooled connection is used, then ended by the server.
		for _, p := range paths {
			if ans := a.do(key, "GET", p, nil); ans.status != http.StatusOK && ans.status != http.StatusServiceUnavailable {
				t.Fatalf("GET %s before the sessions end = %d %.300s", p, ans.status, ans.body)
			}
		}
		if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", app); err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			ans := a.do(key, "GET", p, nil)
			switch {
			case ans.status == http.StatusServiceUnavailable && ans.header.Get("Retry-After") != "":
				unavailable++
			case ans.status != http.StatusOK:
				t.Errorf("GET %s after the server ended its sessions = %d (Retry-After %q) %.300s, want 200 or 503 with Retry-After",
					p, ans.status, ans.header.Get("Retry-After"), ans.body)
			}
		}
	}
	t.Logf("%d reads answered 503 after the server ended the sessions", unavailable)
}
