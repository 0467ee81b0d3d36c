package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/api"
)

// An export whose client does not read holds a page and a connection; a tenant runs at most two
// at once (429 with Retry-After past that), another tenant is not counted against it, and an
// export that ends frees its place.
func TestExport_RunningExportsAreLimitedPerTenant(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	a.tenantKey("acme")
	a.tenantKey("other")
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "big.thing"}, nil)
	// 24 MiB of events: more than the loopback socket buffers hold, so an export nobody reads
	// blocks in a write.
	big := strings.Repeat("x", 200<<10)
	for range 12 {
		events := make([]map[string]any, 10)
		for i := range events {
			events[i] = map[string]any{"type": "big.thing", "data": map[string]any{"s": big}}
		}
		a.must(http.StatusAccepted, "POST", "/v1/tenants/acme/events/batch", map[string]any{"events": events}, nil)
	}
	export := func(tenant string) *http.Response {
		t.Helper()
		req, err := http.NewRequest("GET", a.srv.URL+"/v1/tenants/"+tenant+"/export", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+a.admin)
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = resp.Body.Close() })
		return resp
	}
	first := export("acme")
	second := export("acme")
	for _, r := range []*http.Response{first, second} {
		if r.StatusCode != http.StatusOK {
			t.Fatalf("export: %d, want 200", r.StatusCode)
		}
	}
	third := export("acme")
	if third.StatusCode != http.StatusTooManyRequests || third.Header.Get("Retry-After") == "" {
		t.Fatalf("a third export of the tenant: %d (Retry-After %q), want 429 with Retry-After", third.StatusCode, third.Header.Get("Retry-After"))
	}
	if r := export("other"); r.StatusCode != http.StatusOK {
		t.Fatalf("another tenant's export: %d, want 200", r.StatusCode)
	}
	// Closing an export's connection ends it on the server, which frees its place.
	_ = first.Body.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := export("acme")
		if r.StatusCode == http.StatusOK {
			break
		}
		_ = r.Body.Close()
		if r.StatusCode != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("after an export ended: %d, want 200", r.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
