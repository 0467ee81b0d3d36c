package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/heraldhq/herald/internal/store"
)

// OpenLimits returns a fresh, empty store with the given limits.
type OpenLimits func(t *testing.T, limits store.Limits) store.Store

// RunLimits runs the conformance tests of store.Limits against the driver.
func RunLimits(t *testing.T, open OpenLimits) {
	tests := map[string]func(*testing.T, OpenLimits){
		"DeliveriesPerRequestBounded":     testMaxDeliveries,
		"EndpointsPerTenantFromTheLimits": testMaxEndpointsDefault,
		"SourcesPerTenant":                testMaxSources,
		"BrokerSourcesPerTenant":          testMaxBrokerSources,
	}
	for name, fn := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, open)
		})
	}
}

// limitError asserts that err is a *store.LimitError of the named limit and value.
func limitError(t *testing.T, err error, limit string, max int) {
	t.Helper()
	var le *store.LimitError
	if !errors.As(err, &le) || !errors.Is(err, store.ErrLimit) {
		t.Fatalf("got %v, want a %s limit error", err, limit)
	}
	if le.Limit != limit || le.Max != max {
		t.Fatalf("got limit %s = %d, want %s = %d", le.Limit, le.Max, limit, max)
	}
}

func endpointCount(t *testing.T, s store.Store, tenantID string) int {
	t.Helper()
	eps, _, err := s.ListEndpoints(ctx, tenantID, store.Page{Limit: store.MaxLimit})
	must(t, err)
	return len(eps)
}

// A tenant's own MaxEndpoints bounds its endpoints; raising it allows more.
func testTenantMaxEndpoints(t *testing.T, s store.Store) {
	n := now()
	must(t, s.CreateTenant(ctx, &store.Tenant{ID: "acme", Name: "Acme", Limits: store.TenantLimits{MaxEndpoints: ptr(3)}, CreatedAt: n, UpdatedAt: n}))
	for i := range 3 {
		endpoint(t, s, "acme", fmt.Sprintf("ep_%d", i), "*")
	}
	e := &store.Endpoint{ID: "ep_3", TenantID: "acme", URL: "https://example.com/", EventTypes: []string{"*"}, Enabled: true, CreatedAt: n, UpdatedAt: n}
	limitError(t, s.CreateEndpoint(ctx, e), "max_endpoints", 3)
	if got := endpointCount(t, s, "acme"); got != 3 {
		t.Fatalf("%d endpoints after a refused create, want 3", got)
	}
	got, err := s.GetTenant(ctx, "acme")
	must(t, err)
	if got.Limits.MaxEndpoints == nil || *got.Limits.MaxEndpoints != 3 {
		t.Fatalf("tenant's MaxEndpoints %v, want 3", got.Limits.MaxEndpoints)
	}
	got.Limits.MaxEndpoints = ptr(4)
	must(t, s.UpdateTenant(ctx, got))
	must(t, s.CreateEndpoint(ctx, e))
	e.ID = "ep_4"
	limitError(t, s.CreateEndpoint(ctx, e), "max_endpoints", 4)
}

// Concurrent creates are counted one after the other: together they never exceed the limit.
func testConcurrentCreatesRespectMaxEndpoints(t *testing.T, s store.Store) {
	n := now()
	must(t, s.CreateTenant(ctx, &store.Tenant{ID: "acme", Name: "Acme", Limits: store.TenantLimits{MaxEndpoints: ptr(5)}, CreatedAt: n, UpdatedAt: n}))
	created := createConcurrently(t, 20, "max_endpoints", 5, func(i int) error {
		return s.CreateEndpoint(ctx, &store.Endpoint{ID: fmt.Sprintf("ep_%d", i), TenantID: "acme", URL: "https://example.com/",
			EventTypes: []string{"*"}, Enabled: true, CreatedAt: n, UpdatedAt: n})
	})
	if got := endpointCount(t, s, "acme"); created != 5 || got != 5 {
		t.Fatalf("%d creates succeeded and the tenant has %d endpoints, want 5 and 5", created, got)
	}
}

// Limits.MaxEndpoints bounds a tenant that has no limit of its own.
func testMaxEndpointsDefault(t *testing.T, open OpenLimits) {
	s := open(t, store.Limits{MaxEndpoints: 2})
	tenant(t, s, "acme")
	endpoint(t, s, "acme", "ep_0", "*")
	endpoint(t, s, "acme", "ep_1", "*")
	n := now()
	limitError(t, s.CreateEndpoint(ctx, &store.Endpoint{ID: "ep_2", TenantID: "acme", URL: "https://example.com/", EventTypes: []string{"*"},
		Enabled: true, CreatedAt: n, UpdatedAt: n}), "max_endpoints", 2)
}

// A publish that would create more deliveries than Limits.MaxDeliveries is refused whole.
func testMaxDeliveries(t *testing.T, open OpenLimits) {
	s := open(t, store.Limits{MaxDeliveries: 10})
	tenant(t, s, "acme")
	for i := range 3 {
		endpoint(t, s, "acme", fmt.Sprintf("ep_%d", i), "order.*")
	}
	_, err := s.Publish(ctx, "acme", append(events("e", "order.created", 4), event("other", "user.created")))
	limitError(t, err, "max_deliveries", 10)
	evs, _, err := s.ListEvents(ctx, store.EventFilter{TenantID: "acme"})
	must(t, err)
	if len(evs) != 0 {
		t.Fatalf("%d events stored by a refused publish, want none", len(evs))
	}
	// Events no endpoint subscribes to cost nothing; 9 deliveries pass.
	res := publish(t, s, "acme", append(events("e", "order.created", 3), events("u", "user.created", 20)...)...)
	if res[0].Deliveries != 3 || res[3].Deliveries != 0 {
		t.Fatalf("deliveries %d and %d, want 3 and 0", res[0].Deliveries, res[3].Deliveries)
	}
}

// Limits.MaxSources bounds a tenant's sources, concurrent creates included; another tenant is
// not counted against it.
func testMaxSources(t *testing.T, open OpenLimits) {
	s := open(t, store.Limits{MaxSources: 5})
	tenant(t, s, "acme")
	tenant(t, s, "other")
	source(t, s, "acme", "src_first")
	n := now()
	created := createConcurrently(t, 12, "max_sources", 5, func(i int) error {
		return s.CreateSource(ctx, &store.Source{ID: fmt.Sprintf("src_%d", i), TenantID: "acme", Name: "s", Token: fmt.Sprintf("tok_acme_%d", i),
			Enabled: true, Settings: sourceSettings(), CreatedAt: n, UpdatedAt: n})
	})
	srcs, _, err := s.ListSources(ctx, "acme", store.Page{Limit: store.MaxLimit})
	must(t, err)
	if created != 4 || len(srcs) != 5 {
		t.Fatalf("%d concurrent creates succeeded and the tenant has %d sources, want 4 and 5", created, len(srcs))
	}
	source(t, s, "other", "src_other")
}

// createConcurrently runs create(0) … create(n-1) at once and counts those that succeeded; each
// other one must be refused by limit, whose value is max.
func createConcurrently(t *testing.T, n int, limit string, max int, create func(i int) error) int {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = create(i)
		}()
	}
	wg.Wait()
	created := 0
	for _, err := range errs {
		switch {
		case err == nil:
			created++
		case errors.Is(err, store.ErrLimit):
			limitError(t, err, limit, max)
		default:
			t.Errorf("create: %v, want success or a %s limit error", err, limit)
		}
	}
	return created
}
