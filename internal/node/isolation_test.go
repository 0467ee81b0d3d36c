package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/internal/store"
)

// isolationBodies lists every tenant-scoped route, with a request body that would be valid for
// the tenant the route names. {endpoint} in a body becomes the victim's endpoint id. The route
// list is checked against the OpenAPI document: a new tenant route fails the test until it is
// added here.
var isolationBodies = map[string]string{
	"GET /v1/tenants/{tenant}":                                "",
	"PATCH /v1/tenants/{tenant}":                              `{"name":"taken over","redact_fields":[]}`,
	"DELETE /v1/tenants/{tenant}":                             "",
	"GET /v1/tenants/{tenant}/audit":                          "",
	"GET /v1/tenants/{tenant}/export":                         "",
	"GET /v1/tenants/{tenant}/limits":                         "",
	"GET /v1/tenants/{tenant}/usage":                          "",
	"POST /v1/tenants/{tenant}/endpoints":                     `{"url":"http://127.0.0.1:9/stolen","event_types":["*"]}`,
	"GET /v1/tenants/{tenant}/endpoints":                      "",
	"GET /v1/tenants/{tenant}/endpoints/{id}":                 "",
	"PATCH /v1/tenants/{tenant}/endpoints/{id}":               `{"url":"http://127.0.0.1:9/stolen","enabled":false}`,
	"DELETE /v1/tenants/{tenant}/endpoints/{id}":              "",
	"GET /v1/tenants/{tenant}/endpoints/{id}/secret":          "",
	"GET /v1/tenants/{tenant}/endpoints/{id}/feed":            "",
	"GET /v1/tenants/{tenant}/listen":                         "",
	"POST /v1/tenants/{tenant}/endpoints/{id}/secret/rotate":  `{"overlap_seconds":0}`,
	"POST /v1/tenants/{tenant}/events":                        `{"type":"a.happened","data":{"x":1}}`,
	"POST /v1/tenants/{tenant}/events/batch":                  `{"events":[{"type":"a.happened","data":{"x":1}}]}`,
	"GET /v1/tenants/{tenant}/events":                         "",
	"GET /v1/tenants/{tenant}/events/{id}":                    "",
	"GET /v1/tenants/{tenant}/events/{id}/deliveries":         "",
	"POST /v1/tenants/{tenant}/events/{id}/resend":            `{"endpoint_id":"{endpoint}"}`,
	"GET /v1/tenants/{tenant}/deliveries":                     "",
	"GET /v1/tenants/{tenant}/deliveries/{id}":                "",
	"POST /v1/tenants/{tenant}/deliveries/{id}/retry":         "",
	"GET /v1/tenants/{tenant}/attempts":                       "",
	"POST /v1/tenants/{tenant}/replays":                       `{"states":["pending","succeeded","dead"]}`,
	"GET /v1/tenants/{tenant}/failures":                       "",
	"POST /v1/tenants/{tenant}/failures/replay":               `{"endpoint_id":"{endpoint}","class":"http_500"}`,
	"GET /v1/tenants/{tenant}/stats":                          "",
	"GET /v1/tenants/{tenant}/stats/timeseries":               "",
	"POST /v1/tenants/{tenant}/portal-links":                  `{"expires_in_seconds":600}`,
	"POST /v1/tenants/{tenant}/sources":                       `{"name":"stolen","verification":{"scheme":"none"}}`,
	"GET /v1/tenants/{tenant}/sources":                        "",
	"GET /v1/tenants/{tenant}/sources/{id}":                   "",
	"PATCH /v1/tenants/{tenant}/sources/{id}":                 `{"name":"taken over","enabled":false,"verification":{"scheme":"none"}}`,
	"DELETE /v1/tenants/{tenant}/sources/{id}":                "",
	"POST /v1/tenants/{tenant}/sources/{id}/rotate-token":     "",
	"GET /v1/tenants/{tenant}/received-requests":              "",
	"GET /v1/tenants/{tenant}/received-requests/{id}":         "",
	"POST /v1/tenants/{tenant}/received-requests/{id}/replay": `{"force":true}`,
	"POST /v1/tenants/{tenant}/broker-sources":                `{"type":"jstest","settings":{"url":"nats://127.0.0.1:9","stream":"S"}}`,
	"GET /v1/tenants/{tenant}/broker-sources":                 "",
	"GET /v1/tenants/{tenant}/broker-sources/{id}":            "",
	"PATCH /v1/tenants/{tenant}/broker-sources/{id}":          `{"name":"taken over","enabled":false}`,
	"DELETE /v1/tenants/{tenant}/broker-sources/{id}":         "",
}

// tenantRoutes lists "METHOD path" of every operation in the OpenAPI document whose path names a
// tenant.
func tenantRoutes(doc *huma.OpenAPI) []string {
	var out []string
	for path, item := range doc.Paths {
		if !strings.Contains(path, "{tenant}") {
			continue
		}
		for method, op := range map[string]*huma.Operation{
			http.MethodGet: item.Get, http.MethodPost: item.Post, http.MethodPut: item.Put, http.MethodPatch: item.Patch,
			http.MethodDelete: item.Delete, http.MethodHead: item.Head, http.MethodOptions: item.Options,
		} {
			if op != nil {
				out = append(out, method+" "+path)
			}
		}
	}
	slices.Sort(out)
	return out
}

// world is what a tenant's data looks like from the store, secrets included, to compare before
// and after: read directly, so that looking changes nothing (some API reads are audited).
func world(t *testing.T, st store.Store, tenants ...string) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	dump := func(what string, v any, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("read %s: %v", what, err)
		}
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s: %s\n", what, j)
	}
	for _, tn := range tenants {
		ten, err := st.GetTenant(ctx, tn)
		dump(tn+" tenant", ten, err)
		eps, _, err := st.ListEndpoints(ctx, tn, store.Page{Limit: store.MaxLimit})
		dump(tn+" endpoints", eps, err)
		evs, _, err := st.ListEvents(ctx, store.EventFilter{TenantID: tn, Page: store.Page{Limit: store.MaxLimit}})
		dump(tn+" events", evs, err)
		ds, _, err := st.ListDeliveries(ctx, store.DeliveryFilter{TenantID: tn, Page: store.Page{Limit: store.MaxLimit}})
		dump(tn+" deliveries", ds, err)
		as, _, err := st.ListAttempts(ctx, store.AttemptFilter{TenantID: tn, Page: store.Page{Limit: store.MaxLimit}})
		dump(tn+" attempts", as, err)
		// Sources with their tokens and secrets.
		srcs, _, err := st.ListSources(ctx, tn, store.Page{Limit: store.MaxLimit})
		dump(tn+" sources", srcs, err)
		// Each read whole: a list gives bodies' sizes, not the bodies.
		rs, _, err := st.ListReceived(ctx, store.ReceivedFilter{TenantID: tn, Page: store.Page{Limit: store.MaxLimit}})
		for i := range rs {
			if err == nil {
				var full *store.ReceivedRequest
				if full, err = st.GetReceived(ctx, tn, rs[i].ID); err == nil {
					rs[i] = *full
				}
			}
		}
		dump(tn+" received requests", rs, err)
	}
	keys, err := st.ListAPIKeys(ctx)
	dump("api keys", keys, err)
	audit, _, err := st.ListAudit(ctx, store.AuditFilter{Page: store.Page{Limit: store.MaxLimit}})
	dump("audit log", audit, err)
	return b.String()
}

// Every tenant-scoped route, called with another tenant's key, answers 404 (as if the tenant did
// not exist, not 403) and changes nothing; so does naming one's own tenant with another's ids.
func TestAPI_TenantIsolationOnEveryRoute(t *testing.T) {
	t.Parallel()
	tenantIsolationOnEveryRoute(t, nil)
}

func TestPostgres_TenantIsolationOnEveryRoute(t *testing.T) {
	t.Parallel()
	tenantIsolationOnEveryRoute(t, onPostgres(t))
}

func tenantIsolationOnEveryRoute(t *testing.T, mod func(*node.Config)) {
	h := start(t, mod)
	rc := newReceiver(t, nil)
	h.setup("victim", "a.happened")
	h.setup("mallory")

	routes := tenantRoutes(h.node.API.OpenAPI())
	for _, r := range routes {
		if _, ok := isolationBodies[r]; !ok {
			t.Errorf("tenant route %s is not in the isolation table: add it to isolationBodies", r)
		}
	}
	for r := range isolationBodies {
		if !slices.Contains(routes, r) {
			t.Errorf("isolation table lists %s, which the OpenAPI document does not have", r)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	key := func(tenant string) string {
		var k struct {
			Key string `json:"key"`
		}
		h.must(201, "POST", "/v1/api-keys", map[string]any{"role": "tenant", "tenant_id": tenant}, &k)
		return k.Key
	}
	victimKey, malloryKey := key("victim"), key("mallory")
	ep := h.endpoint("victim", map[string]any{"url": rc.URL, "event_types": []string{"*"}})
	h.endpoint("mallory", map[string]any{"url": rc.URL, "event_types": []string{"*"}})
	evt := h.publish("victim", map[string]any{"id": "victim-only-event", "type": "a.happened", "data": map[string]any{"secret": "victim's"}})
	h.publish("mallory", map[string]any{"id": "mallory-event", "type": "a.happened", "data": map[string]any{}})
	var dlv string
	eventually(t, 10*time.Second, "both deliveries", func() bool {
		v := h.deliveries("/v1/tenants/victim/deliveries?state=succeeded")
		m := h.deliveries("/v1/tenants/mallory/deliveries?state=succeeded")
		if len(v) == 1 {
			dlv = v[0].ID
		}
		return len(v) == 1 && len(m) == 1
	})
	// A source with a received request that failed its schema: replayable, and no event yet, so
	// that nothing more reaches the receiver.
	var src struct {
		ID string `json:"id"`
	}
	h.must(201, "POST", "/v1/tenants/victim/sources", map[string]any{
		"name": "victim's source", "verification": map[string]any{"scheme": "bearer", "secrets": []string{"victim-bearer-token"}},
		"schema": map[string]any{"type": "object", "required": []string{"id"}},
	}, &src)
	h.must(201, "POST", "/v1/tenants/mallory/sources", map[string]any{"name": "mallory's source", "verification": map[string]any{"scheme": "none"}}, nil)
	now := time.Now().UTC()
	rr := &store.ReceivedRequest{
		ID: "req_victim", TenantID: "victim", SourceID: src.ID, ReceivedAt: now, Method: "POST", Path: "/in/[REDACTED]",
		Headers: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{"secret":"victim's"}`), RemoteAddr: "192.0.2.1:1234",
		Status: store.ReceiveQuarantined, Reason: "schema: /: missing property id", DedupKey: "victim-key", DedupUntil: now.Add(time.Hour),
	}
	if _, err := h.node.Store.Receive(context.Background(), rr, nil); err != nil {
		t.Fatalf("store a received request: %v", err)
	}
	// A disabled broker source of the victim, stored directly: no node runs it.
	bnow := time.Now().UTC().Truncate(time.Microsecond)
	bsrc := &store.BrokerSource{ID: "bsrc_victim", TenantID: "victim", Type: "jstest", Settings: json.RawMessage(`{"url":"nats://127.0.0.1:9","stream":"S"}`),
		Mapping: json.RawMessage(`{}`), CreatedAt: bnow, UpdatedAt: bnow}
	if err := h.node.Store.CreateBrokerSource(context.Background(), bsrc); err != nil {
		t.Fatalf("store a broker source: %v", err)
	}
	ids := map[string]string{"endpoints": ep.ID, "events": evt.ID, "deliveries": dlv, "sources": src.ID, "received-requests": rr.ID,
		"broker-sources": bsrc.ID}
	url := func(route, tenant string) (method, path, body string) {
		method, path, _ = strings.Cut(route, " ")
		path = strings.ReplaceAll(path, "{tenant}", tenant)
		if strings.Contains(path, "{id}") {
			for collection, id := range ids {
				path = strings.ReplaceAll(path, "/"+collection+"/{id}", "/"+collection+"/"+id)
			}
		}
		body = strings.ReplaceAll(isolationBodies[route], "{endpoint}", ep.ID)
		return method, path, body
	}
	// The ids are real: the victim's own key reads every one of its resources.
	for _, r := range routes {
		if method, path, _ := url(r, "victim"); method == "GET" && !strings.HasSuffix(path, "/secret") && !strings.HasSuffix(path, "/export") && !strings.HasSuffix(path, "/listen") {
			if s, _, p := h.raw(victimKey, method, path, ""); s != 200 {
				t.Fatalf("control: the victim's key on %s %s = %d %+v", method, path, s, p)
			}
		}
	}

	before := world(t, h.node.Store, "victim", "mallory")
	for _, r := range routes {
		t.Run(r, func(t *testing.T) {
			method, path, body := url(r, "victim")
			s, ct, p := h.raw(malloryKey, method, path, body)
			if s != 404 || ct != "application/problem+json" {
				t.Errorf("another tenant's key on %s %s = %d %s %+v, want a 404 problem", method, path, s, ct, p)
			}
			if !strings.Contains(r, "{id}") {
				return
			}
			// Its own tenant in the path, the victim's resource ids.
			method, path, body = url(r, "mallory")
			if s, ct, p := h.raw(malloryKey, method, path, body); s != 404 || ct != "application/problem+json" {
				t.Errorf("the victim's ids under the caller's tenant, %s %s = %d %s %+v, want a 404 problem", method, path, s, ct, p)
			}
		})
	}
	// A resend of the caller's own event to the victim's endpoint.
	if s, _, p := h.raw(malloryKey, "POST", "/v1/tenants/mallory/events/mallory-event/resend", `{"endpoint_id":"`+ep.ID+`"}`); s != 404 {
		t.Errorf("resend to another tenant's endpoint = %d %+v, want 404", s, p)
	}
	if after := world(t, h.node.Store, "victim", "mallory"); after != before {
		t.Fatalf("requests refused with 404 changed the store:\nbefore %s\nafter  %s", before, after)
	}
	if n := rc.count(); n != 2 {
		t.Fatalf("the receiver got %d requests, want the 2 deliveries only", n)
	}
}
