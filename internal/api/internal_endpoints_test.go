package api_test

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/httpsend"
)

// The URL of an internal endpoint is checked by the internal client; without one, an internal
// endpoint may reach no more than any other. Only admins are told that a refused URL would
// pass as internal: the operator's ranges are not the tenants' business.
func TestAPI_InternalEndpointURLCheck(t *testing.T) {
	t.Parallel()
	internal := httpsend.New(httpsend.Config{AllowHTTP: true, AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}})
	for _, c := range []struct {
		name      string
		check     *httpsend.Client
		wantAdmin int // status of an internal endpoint at http://10.20.0.5/ created by an admin
	}{
		{"with an internal client", internal, http.StatusCreated},
		{"without one", nil, http.StatusUnprocessableEntity},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, api.Config{InternalURLCheck: c.check})
			tenant := a.tenantKey("acme")
			create := func(key string, body map[string]any) answer {
				t.Helper()
				body["event_types"] = []string{"*"}
				return a.do(key, "POST", "/v1/tenants/acme/endpoints", body)
			}
			ans := create(a.admin, map[string]any{"url": "http://10.20.0.5/hook", "internal": true})
			if ans.status != c.wantAdmin {
				t.Fatalf("internal endpoint in --internal-cidr: %d, want %d: %s", ans.status, c.wantAdmin, ans.body)
			}
			if ans.status != http.StatusCreated {
				if _, ok := ans.problem(t).find("body.url"); !ok {
					t.Errorf("refusal does not name body.url: %s", ans.body)
				}
			}

			// Not internal: the ordinary check, with a hint for admins only when it would pass.
			ans = create(a.admin, map[string]any{"url": "https://10.20.0.5/hook"})
			msg, ok := ans.problem(t).find("body.url")
			if ans.status != http.StatusUnprocessableEntity || !ok || !strings.Contains(msg, "private") {
				t.Fatalf("non-internal endpoint in --internal-cidr: %d %s", ans.status, ans.body)
			}
			if hint := strings.Contains(msg, "internal"); hint != (c.check != nil) {
				t.Errorf("admin message %q: hint about internal %v, want %v", msg, hint, c.check != nil)
			}
			ans = a.do(tenant, "POST", "/v1/tenants/acme/endpoints", map[string]any{"url": "https://10.20.0.5/hook", "event_types": []string{"*"}})
			if msg, _ := ans.problem(t).find("body.url"); ans.status != http.StatusUnprocessableEntity || strings.Contains(msg, "internal") {
				t.Errorf("tenant key, URL in --internal-cidr: %d %q, want 422 without a hint", ans.status, msg)
			}

			// Outside every opened range an internal endpoint is refused like any other.
			ans = create(a.admin, map[string]any{"url": "http://10.21.0.5/hook", "internal": true})
			if _, ok := ans.problem(t).find("body.url"); ans.status != http.StatusUnprocessableEntity || !ok {
				t.Errorf("internal endpoint outside --internal-cidr: %d %s", ans.status, ans.body)
			}
			ans = create(tenant, map[string]any{"url": "https://hooks.example.com/", "internal": true})
			if _, ok := ans.problem(t).find("body.internal"); ans.status != http.StatusForbidden || !ok {
				t.Errorf("tenant key marking an endpoint internal: %d %s, want 403 at body.internal", ans.status, ans.body)
			}
		})
	}
}

// A broker endpoint's destination is its config: a tenant key may not move an internal one to
// another broker, queue or type (which would take the operator's internal ranges along), as it
// may not change an internal webhook's URL; it may change its credentials, or turn internal off.
func TestAPI_InternalBrokerEndpointConfig(t *testing.T) {
	t.Parallel()
	a := destAPI(t)
	tenant := a.tenantKey("acme")
	ans := a.do(a.admin, "POST", "/v1/tenants/acme/endpoints", map[string]any{"type": "memory", "internal": true,
		"event_types": []string{"*"}, "config": map[string]any{"queue": "orders", "password": "first-pw"}})
	if ans.status != http.StatusCreated {
		t.Fatalf("admin creating an internal broker endpoint: %d %s", ans.status, ans.body)
	}
	path := "/v1/tenants/acme/endpoints/" + decodeEndpoint(t, ans).ID
	for _, c := range []struct {
		name string
		body map[string]any
		loc  string
	}{
		{"another queue", map[string]any{"config": map[string]any{"queue": "elsewhere"}}, "body.config"},
		{"another setting", map[string]any{"config": map[string]any{"queue": "orders", "priority": 9}}, "body.config"},
		{"another type", map[string]any{"type": "webhook", "url": "https://hooks.example.com/"}, "body.url"},
	} {
		ans := a.do(tenant, "PATCH", path, c.body)
		if _, ok := ans.problem(t).find(c.loc); ans.status != http.StatusForbidden || !ok {
			t.Errorf("tenant key, %s: %d %s, want 403 at %s", c.name, ans.status, ans.body, c.loc)
		}
	}
	if e, err := a.sqlite.GetEndpoint(t.Context(), "acme", strings.TrimPrefix(path, "/v1/tenants/acme/endpoints/")); err != nil ||
		!strings.Contains(string(e.Settings), `"queue":"orders"`) || e.Type != "memory" || !e.Internal {
		t.Fatalf("after the refusals the endpoint is %+v (%v)", e, err)
	}
	for _, c := range []struct {
		name string
		key  string
		body map[string]any
	}{
		{"tenant key, same config, new password", tenant, map[string]any{"config": map[string]any{"queue": "orders", "password": "second-pw"}}},
		{"tenant key, the config it read", tenant, map[string]any{"config": map[string]any{"queue": "orders", "priority": 5}, "description": "x"}},
		{"admin key, another queue", a.admin, map[string]any{"config": map[string]any{"queue": "orders-2"}}},
		{"tenant key, internal off and another queue", tenant, map[string]any{"internal": false, "config": map[string]any{"queue": "orders-3"}}},
	} {
		if ans := a.do(c.key, "PATCH", path, c.body); ans.status != http.StatusOK {
			t.Errorf("%s: %d %s, want 200", c.name, ans.status, ans.body)
		}
	}
}
