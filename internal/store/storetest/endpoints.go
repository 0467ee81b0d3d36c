package storetest

import (
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

// testEndpointInternal checks that the internal flag survives create, every read and update: the
// dispatcher picks the client that may reach internal ranges by it, so a lost flag either opens
// those ranges or closes them to an endpoint the operator opened them for.
func testEndpointInternal(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	plain := endpoint(t, s, "acme", "ep_plain", "*")
	n := now()
	inside := &store.Endpoint{
		ID: "ep_inside", TenantID: "acme", URL: "http://10.1.2.3/hooks", EventTypes: []string{"*"},
		Secrets: []store.Secret{{Key: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}, Timeout: 10 * time.Second,
		MaxConcurrency: 10, Enabled: true, Internal: true, CreatedAt: n, UpdatedAt: n,
	}
	must(t, s.CreateEndpoint(ctx, inside))

	check := func(when string, want map[string]bool) {
		t.Helper()
		for id, internal := range want {
			got, err := s.GetEndpoint(ctx, "acme", id)
			must(t, err)
			if got.Internal != internal {
				t.Errorf("%s: GetEndpoint(%s).Internal = %v, want %v", when, id, got.Internal, internal)
			}
			got, err = s.EndpointByID(ctx, id)
			must(t, err)
			if got.Internal != internal {
				t.Errorf("%s: EndpointByID(%s).Internal = %v, want %v", when, id, got.Internal, internal)
			}
		}
		list, _, err := s.ListEndpoints(ctx, "acme", store.Page{})
		must(t, err)
		if len(list) != len(want) {
			t.Fatalf("%s: listed %d endpoints, want %d", when, len(list), len(want))
		}
		for _, e := range list {
			if e.Internal != want[e.ID] {
				t.Errorf("%s: listed %s.Internal = %v, want %v", when, e.ID, e.Internal, want[e.ID])
			}
		}
	}
	check("after create", map[string]bool{plain.ID: false, inside.ID: true})

	inside.Internal, plain.Internal = false, true
	must(t, s.UpdateEndpoint(ctx, inside))
	must(t, s.UpdateEndpoint(ctx, plain))
	check("after update", map[string]bool{plain.ID: true, inside.ID: false})
}
