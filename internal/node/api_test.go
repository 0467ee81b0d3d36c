package node_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/node"
)

type problem struct {
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Location string `json:"location"`
		Message  string `json:"message"`
	} `json:"errors"`
}

// raw sends a request with a raw body and returns status, content type and the decoded problem.
func (h *harness) raw(key, method, path, body string) (int, string, problem) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.node.URL()+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var p problem
	_ = json.Unmarshal(b, &p)
	return resp.StatusCode, resp.Header.Get("Content-Type"), p
}

func (p problem) has(location string) bool {
	for _, e := range p.Errors {
		if e.Location == location {
			return true
		}
	}
	return false
}

func TestAPI_BadInputGetsProblemNamingTheField(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	h.setup("acme", "invoice.paid")
	h.endpoint("acme", map[string]any{"url": "http://127.0.0.1:9/none", "event_types": []string{"*"}})
	big := `{"type":"invoice.paid","data":{"blob":"` + strings.Repeat("x", 300<<10) + `"}}`
	cases := []struct {
		name, method, path, body string
		status                   int
		location                 string
	}{
		{"malformed JSON", "POST", "/v1/tenants/acme/events", `{"type": "invoice.paid", "data": {`, 400, ""},
		{"data not an object", "POST", "/v1/tenants/acme/events", `{"type":"invoice.paid","data":[1,2]}`, 422, "body.data"},
		{"data missing", "POST", "/v1/tenants/acme/events", `{"type":"invoice.paid"}`, 422, "body"},
		{"unknown field", "POST", "/v1/tenants/acme/events", `{"type":"invoice.paid","data":{},"colour":"red"}`, 422, "body.colour"},
		{"unknown event type", "POST", "/v1/tenants/acme/events", `{"type":"invoice.lost","data":{}}`, 422, "body.type"},
		{"unknown tenant", "POST", "/v1/tenants/nobody/events", `{"type":"invoice.paid","data":{}}`, 404, ""},
		{"event too large", "POST", "/v1/tenants/acme/events", big, 413, ""},
		{"bad event id", "POST", "/v1/tenants/acme/events", `{"id":"has space","type":"invoice.paid","data":{}}`, 422, "body.id"},
		{"batch names the bad event", "POST", "/v1/tenants/acme/events/batch", `{"events":[{"type":"invoice.paid","data":{}},{"type":"nope.never","data":{}}]}`, 422, "body.events[1].type"},
		{"empty batch", "POST", "/v1/tenants/acme/events/batch", `{"events":[]}`, 422, "body.events"},
		{"bad tenant id", "POST", "/v1/tenants", `{"id":"no spaces allowed","name":"x"}`, 422, "body.id"},
		{"duplicate tenant", "POST", "/v1/tenants", `{"id":"acme","name":"again"}`, 409, ""},
		{"bad event type name", "POST", "/v1/event-types", `{"name":"InvoicePaid"}`, 422, "body.name"},
		{"endpoint URL not a URL", "POST", "/v1/tenants/acme/endpoints", `{"url":"not a url","event_types":["*"]}`, 422, "body.url"},
		{"endpoint URL with credentials", "POST", "/v1/tenants/acme/endpoints", `{"url":"https://user:pw@example.com/","event_types":["*"]}`, 422, "body.url"},
		{"endpoint timeout out of range", "POST", "/v1/tenants/acme/endpoints", `{"url":"https://example.com/","event_types":["*"],"timeout_seconds":31}`, 422, "body.timeout_seconds"},
		{"endpoint subscribes to unknown type", "POST", "/v1/tenants/acme/endpoints", `{"url":"https://example.com/","event_types":["invoice.lost"]}`, 422, "body.event_types[0]"},
		{"endpoint reserved header", "POST", "/v1/tenants/acme/endpoints", `{"url":"https://example.com/","event_types":["*"],"headers":{"webhook-id":"x"}}`, 422, "body.headers.webhook-id"},
		{"endpoint without event types", "POST", "/v1/tenants/acme/endpoints", `{"url":"https://example.com/"}`, 422, "body.event_types"},
		{"bad cursor", "GET", "/v1/tenants/acme/events?cursor=zzz", ``, 422, "query.cursor"},
		{"bad since", "GET", "/v1/tenants/acme/stats?since=yesterday", ``, 422, "query.since"},
		{"NUL in a tenant name", "POST", "/v1/tenants", `{"id":"nul","name":"a\u0000b"}`, 422, "body.name"},
		{"NUL in an event source", "POST", "/v1/tenants/acme/events", `{"type":"invoice.paid","data":{},"source":"x\u0000"}`, 422, "body.source"},
		{"bad state filter", "GET", "/v1/tenants/acme/deliveries?state=lost", ``, 422, "query.state[0]"},
		{"unknown delivery", "POST", "/v1/tenants/acme/deliveries/dlv_999/retry", ``, 404, ""},
		{"garbage delivery id", "GET", "/v1/tenants/acme/deliveries/xyz", ``, 404, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, ct, p := h.raw(adminKey, c.method, c.path, c.body)
			if status != c.status {
				t.Fatalf("status %d, want %d (%+v)", status, c.status, p)
			}
			if ct != "application/problem+json" {
				t.Fatalf("content-type %q", ct)
			}
			if p.Status != c.status || p.Title == "" {
				t.Fatalf("problem = %+v", p)
			}
			if c.location != "" && !p.has(c.location) {
				t.Fatalf("problem does not name %s: %+v", c.location, p)
			}
		})
	}
	// Nothing was stored by the bad requests.
	var evs struct {
		Data []json.RawMessage `json:"data"`
	}
	h.must(200, "GET", "/v1/tenants/acme/events", nil, &evs)
	if len(evs.Data) != 0 {
		t.Fatalf("bad requests stored %d events", len(evs.Data))
	}
}

func TestAPI_AuthAndTenantScoping(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	h.setup("acme", "a.happened")
	h.setup("globex")
	if s, _, _ := h.raw("", "GET", "/v1/tenants", ""); s != 401 {
		t.Fatalf("no key: %d", s)
	}
	if s, _, _ := h.raw("hk_admin_wrong", "GET", "/v1/tenants", ""); s != 401 {
		t.Fatalf("wrong key: %d", s)
	}
	var key struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}
	h.must(201, "POST", "/v1/api-keys", map[string]any{"role": "tenant", "tenant_id": "acme", "name": "acme's key"}, &key)
	if !strings.HasPrefix(key.Key, "hk_tenant_") {
		t.Fatalf("tenant key = %q", key.Key)
	}
	if s := h.callAs(key.Key, "GET", "/v1/tenants/acme/endpoints", nil, nil); s != 200 {
		t.Fatalf("own tenant: %d", s)
	}
	if s, _, _ := h.raw(key.Key, "GET", "/v1/tenants/globex/endpoints", ""); s != 404 {
		t.Fatalf("another tenant: %d, want 404", s)
	}
	if s, _, _ := h.raw(key.Key, "GET", "/v1/tenants", ""); s != 403 {
		t.Fatalf("admin-only list with a tenant key: %d, want 403", s)
	}
	if s, _, _ := h.raw(key.Key, "POST", "/v1/tenants/acme/events", `{"type":"a.happened","data":{}}`); s != 202 {
		t.Fatalf("tenant key publishing to its tenant: %d", s)
	}
	h.must(204, "DELETE", "/v1/api-keys/"+key.ID, nil, nil)
	if s, _, _ := h.raw(key.Key, "GET", "/v1/tenants/acme/endpoints", ""); s != 401 {
		t.Fatalf("revoked key: %d, want 401", s)
	}
}

func TestAPI_PublishIsIdempotentAndBatched(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	rc := newReceiver(t, nil)
	h.setup("acme", "a.happened")
	h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"*"}})
	first := h.publish("acme", map[string]any{"id": "order-42", "type": "a.happened", "data": map[string]any{"v": 1}})
	again := h.publish("acme", map[string]any{"id": "order-42", "type": "a.happened", "data": map[string]any{"v": 2}})
	if first.Duplicate || !again.Duplicate || again.Deliveries != 0 || again.ID != "order-42" {
		t.Fatalf("first %+v again %+v", first, again)
	}
	var ev struct {
		Data map[string]any `json:"data"`
	}
	h.must(200, "GET", "/v1/tenants/acme/events/order-42", nil, &ev)
	if ev.Data["v"] != float64(1) {
		t.Fatalf("the duplicate changed the stored event: %v", ev.Data)
	}
	var batch struct {
		Events []published `json:"events"`
	}
	var events []map[string]any
	for range 1000 {
		events = append(events, map[string]any{"type": "a.happened", "data": map[string]any{}})
	}
	h.must(202, "POST", "/v1/tenants/acme/events/batch", map[string]any{"events": events}, &batch)
	if len(batch.Events) != 1000 || batch.Events[999].Deliveries != 1 {
		t.Fatalf("batch answer has %d events", len(batch.Events))
	}
	eventually(t, 20*time.Second, "1001 deliveries", func() bool { return rc.count() == 1001 })
	if s, _, _ := h.raw(adminKey, "POST", "/v1/tenants/acme/events/batch", `{"events":[`+strings.Repeat(`{"type":"a.happened","data":{}},`, 1000)+`{"type":"a.happened","data":{}}]}`); s != 422 {
		t.Fatalf("1001 events in a batch: %d", s)
	}
}

func TestAPI_ProductionModeRefusesPlainHTTPAndLoopback(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *node.Config) { c.Dev = false })
	h.setup("acme")
	for _, u := range []string{"http://example.com/hook", "https://127.0.0.1/hook", "https://[::1]/hook", "https://169.254.169.254/latest", "https://10.0.0.1/"} {
		status, _, p := h.raw(adminKey, "POST", "/v1/tenants/acme/endpoints", `{"url":"`+u+`","event_types":["*"]}`)
		if status != 422 || !p.has("body.url") {
			t.Errorf("%s: status %d %+v", u, status, p)
		}
	}
	h.must(201, "POST", "/v1/tenants/acme/endpoints", map[string]any{"url": "https://example.com/hook", "event_types": []string{"*"}}, nil)
}

func TestAPI_OpenAPIAndHealth(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	resp, err := http.Get(h.node.URL() + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	for _, p := range []string{"/v1/tenants", "/v1/tenants/{tenant}/events", "/v1/tenants/{tenant}/events/batch", "/v1/tenants/{tenant}/replays", "/v1/tenants/{tenant}/deliveries/{id}/retry", "/v1/tenants/{tenant}/stats"} {
		if doc.Paths[p] == nil {
			t.Errorf("openapi.json lacks %s", p)
		}
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		r, err := http.Get(h.node.URL() + p)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != 200 {
			t.Fatalf("%s = %d", p, r.StatusCode)
		}
	}
}

func TestAPI_AdminKeyFromEnvironmentCanBeReplaced(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	h.stop()
	const newKey = "hk_admin_replaced_0123456789"
	h.cfg.APIKey = newKey
	h.boot()
	if s, _, _ := h.raw(adminKey, "GET", "/v1/tenants", ""); s != 401 {
		t.Fatalf("the previous HERALD_API_KEY still works: %d", s)
	}
	if s, _, _ := h.raw(newKey, "GET", "/v1/tenants", ""); s != 200 {
		t.Fatalf("the new HERALD_API_KEY: %d", s)
	}
	// Without any key configured and every admin key revoked, a start creates and reports one.
	var keys struct {
		Data []struct {
			ID        string  `json:"id"`
			Role      string  `json:"role"`
			RevokedAt *string `json:"revoked_at"`
		} `json:"data"`
	}
	h.callAs(newKey, "GET", "/v1/api-keys", nil, &keys)
	h.stop()
	var printed string
	h.cfg.APIKey = ""
	h.cfg.OnAdminKey = func(k string) { printed = k }
	h.boot()
	if printed != "" {
		t.Fatal("a new admin key was created although one is valid")
	}
	for _, k := range keys.Data {
		if k.RevokedAt == nil {
			if s := h.callAs(newKey, "DELETE", "/v1/api-keys/"+k.ID, nil, nil); s != 204 {
				t.Fatalf("revoke %s: %d", k.ID, s)
			}
		}
	}
	h.stop()
	h.boot()
	if !strings.HasPrefix(printed, "hk_admin_") {
		t.Fatalf("no admin key left, and none was created: %q", printed)
	}
	if s, _, _ := h.raw(printed, "GET", "/v1/tenants", ""); s != 200 {
		t.Fatalf("the created key: %d", s)
	}
}

func TestAPI_StoreDownGets503(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	h.setup("acme", "a.happened")
	h.publish("acme", map[string]any{"type": "a.happened", "data": map[string]any{}})
	// The store stops taking writes (as when the disk is full or read-only).
	if err := h.node.Store.Close(); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("POST", h.node.URL()+"/v1/tenants/acme/events", strings.NewReader(`{"type":"a.happened","data":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The key lookup is a read and fails first, or the write does: either way a 503 to retry.
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("publish with the store down: %d, want 503", resp.StatusCode)
	}
	if s, _ := http.Get(h.node.URL() + "/readyz"); s.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz with the store down: %d", s.StatusCode)
	}
}
