package node_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/heraldhq/herald/internal/node"
)

// okServer answers every request 200 and records nothing: a sink for many deliveries.
func okServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	return srv
}

func TestFanOut_EndpointsPerTenantAreBounded(t *testing.T) {
	t.Parallel()
	endpointsPerTenantAreBounded(t, nil)
}

func TestPostgres_EndpointsPerTenantAreBounded(t *testing.T) {
	t.Parallel()
	endpointsPerTenantAreBounded(t, onPostgres(t))
}

func endpointsPerTenantAreBounded(t *testing.T, mod func(*node.Config)) {
	h := start(t, func(c *node.Config) {
		if mod != nil {
			mod(c)
		}
		c.Limits.MaxEndpoints = 3
	})
	h.setup("acme")
	key := h.tenantKey("acme")
	sink := okServer(t)
	body := `{"url":"` + sink.URL + `/x","event_types":["*"]}`
	for range 3 {
		if s, _, p := h.raw(key, "POST", "/v1/tenants/acme/endpoints", body); s != 201 {
			t.Fatalf("create: %d %+v", s, p)
		}
	}
	s, ct, p := h.raw(key, "POST", "/v1/tenants/acme/endpoints", body)
	if s != 422 || ct != "application/problem+json" || !p.has("path.tenant") || !strings.Contains(p.at("path.tenant"), "max_endpoints") {
		t.Fatalf("create past the limit: %d %s %+v, want a 422 problem naming max_endpoints", s, ct, p)
	}

	// Only an admin raises it; the tenant's own key cannot.
	if s, _, _ := h.raw(key, "PATCH", "/v1/tenants/acme", `{"max_endpoints":100}`); s != 403 {
		t.Fatalf("tenant key setting max_endpoints: %d, want 403", s)
	}
	var tenant struct {
		MaxEndpoints int `json:"max_endpoints"`
	}
	h.must(200, "PATCH", "/v1/tenants/acme", map[string]any{"max_endpoints": 8}, &tenant)
	if tenant.MaxEndpoints != 8 {
		t.Fatalf("max_endpoints %d after the admin's PATCH, want 8", tenant.MaxEndpoints)
	}
	// Concurrent creates stop at the new limit together.
	var wg sync.WaitGroup
	statuses := make([]int, 10)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i], _, _ = h.raw(key, "POST", "/v1/tenants/acme/endpoints", body)
		}()
	}
	wg.Wait()
	created := 0
	for _, s := range statuses {
		switch s {
		case 201:
			created++
		case 422:
		default:
			t.Errorf("concurrent create: %d, want 201 or 422", s)
		}
	}
	var page struct {
		Data []endpointOut `json:"data"`
	}
	h.must(200, "GET", "/v1/tenants/acme/endpoints?limit=100", nil, &page)
	if created != 5 || len(page.Data) != 8 {
		t.Fatalf("%d concurrent creates succeeded, the tenant has %d endpoints; want 5 and 8", created, len(page.Data))
	}
}

func TestFanOut_DeliveriesPerRequestAreBounded(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *node.Config) { c.Limits.MaxDeliveries = 50 })
	h.setup("acme", "order.created")
	sink := okServer(t)
	for range 10 {
		h.endpoint("acme", map[string]any{"url": sink.URL + "/x", "event_types": []string{"*"}})
	}
	batch := func(n int) string {
		evs := make([]string, n)
		for i := range evs {
			evs[i] = fmt.Sprintf(`{"id":"e%d","type":"order.created","data":{}}`, i)
		}
		return `{"events":[` + strings.Join(evs, ",") + `]}`
	}
	s, ct, p := h.raw(adminKey, "POST", "/v1/tenants/acme/events/batch", batch(6))
	if s != 422 || ct != "application/problem+json" || !strings.Contains(p.at("body.events"), "60 deliveries; the limit is 50") {
		t.Fatalf("batch of 60 deliveries: %d %s %+v, want a 422 problem at body.events with the numbers", s, ct, p)
	}
	var events struct {
		Data []struct{} `json:"data"`
	}
	h.must(200, "GET", "/v1/tenants/acme/events", nil, &events)
	if len(events.Data) != 0 {
		t.Fatalf("%d events stored by a refused batch, want none", len(events.Data))
	}
	h.must(202, "POST", "/v1/tenants/acme/events/batch", batch(5), nil)
}

func TestFanOut_LargeBatchDoesNotHoldOtherTenants(t *testing.T) {
	t.Parallel()
	largeBatchDoesNotHoldOtherTenants(t, nil)
}

func TestPostgres_LargeBatchDoesNotHoldOtherTenants(t *testing.T) {
	t.Parallel()
	largeBatchDoesNotHoldOtherTenants(t, onPostgres(t))
}

// While one tenant's batch fans out to the most deliveries a request may make, another tenant's
// single publish is answered before that batch's request is.
func largeBatchDoesNotHoldOtherTenants(t *testing.T, mod func(*node.Config)) {
	h := start(t, mod)
	h.setup("big", "order.created")
	h.setup("small")
	sink := okServer(t)
	for range 100 {
		// One delivery a second each: the test is about the batch's writes, not about the
		// dispatcher sending 20,000 requests on the same cores meanwhile.
		h.endpoint("big", map[string]any{"url": sink.URL + "/big", "event_types": []string{"*"}, "rate_limit": 1})
	}
	h.endpoint("small", map[string]any{"url": sink.URL + "/small", "event_types": []string{"*"}})
	evs := make([]string, 200) // 200 events × 100 endpoints: 20,000 deliveries, the default limit
	for i := range evs {
		evs[i] = fmt.Sprintf(`{"id":"b%d","type":"order.created","data":{}}`, i)
	}
	done := make(chan int, 1)
	go func() {
		// Not h.raw, whose t.Fatal cannot end the test from this goroutine.
		req, _ := http.NewRequest("POST", h.node.URL()+"/v1/tenants/big/events/batch", strings.NewReader(`{"events":[`+strings.Join(evs, ",")+`]}`))
		req.Header.Set("Authorization", "Bearer "+adminKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("the batch: %v", err)
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	// Once the batch's first event can be read, its request is under way.
	for {
		if s, _, _ := h.raw(adminKey, "GET", "/v1/tenants/big/events/b0", ""); s == 200 {
			break
		}
		select {
		case s := <-done:
			t.Fatalf("the batch was answered %d before any of its events could be read: it was written in one transaction", s)
		default:
		}
	}
	if p := h.publish("small", map[string]any{"type": "order.created", "data": map[string]any{}}); p.Deliveries != 1 {
		t.Fatalf("small's publish made %d deliveries, want 1", p.Deliveries)
	}
	// The batch is still being written: its last event is not stored yet (one transaction would
	// have stored it with the first).
	if s, _, _ := h.raw(adminKey, "GET", "/v1/tenants/big/events/b199", ""); s != 404 {
		t.Fatalf("the batch's last event: %d once the other tenant's publish was answered, want 404: that publish waited for the whole batch", s)
	}
	select {
	case s := <-done:
		t.Fatalf("the batch was answered (%d) before the other tenant's publish: that publish waited for it", s)
	default:
	}
	if s := <-done; s != 202 {
		t.Fatalf("the batch: %d, want 202", s)
	}
}

// A received request whose event would create more deliveries than a request may is refused
// with a 4xx problem (a retry would be refused the same way), never a 5xx.
func TestFanOut_ReceivedRequestOverTheLimitIs422(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *node.Config) { c.Limits.MaxDeliveries = 2 })
	h.setup("acme")
	sink := okServer(t)
	for range 3 {
		h.endpoint("acme", map[string]any{"url": sink.URL + "/x", "event_types": []string{"*"}})
	}
	src := h.newSource("acme", noVerification, nil)
	a := h.mustIngest(422, "/in/"+src.Token, http.Header{"Content-Type": {"application/json"}}, []byte(`{"a":1}`))
	if !strings.Contains(a.Detail, "the limit is 2") {
		t.Fatalf("problem %q, want the limit named", a.Detail)
	}
}
