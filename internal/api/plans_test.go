package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/store"
)

type limitsAnswer struct {
	TenantID string `json:"tenant_id"`
	Plan     string `json:"plan"`
	Limits   map[string]struct {
		Value any    `json:"value"`
		From  string `json:"from"`
	} `json:"limits"`
}

// limit asserts one effective limit's value (as JSON text) and source.
func (l limitsAnswer) limit(t *testing.T, name, value, from string) {
	t.Helper()
	got, ok := l.Limits[name]
	if !ok {
		t.Fatalf("no limit %s in %+v", name, l.Limits)
	}
	b, _ := json.Marshal(got.Value)
	if string(b) != value || got.From != from {
		t.Errorf("limit %s = %s from %s, want %s from %s", name, b, got.From, value, from)
	}
}

// A tenant's limits come from its own, else its plan's, else the node's defaults, and every
// reader (admin, tenant key, portal link) sees them with where each comes from.
func TestPlans_EffectiveLimitsAndTheirSources(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	a := newTestAPI(t, api.Config{Now: c.now, PortalKey: []byte("0123456789abcdef0123456789abcdef"), Retention: 30 * 24 * time.Hour,
		Limits: store.Limits{MaxEndpoints: 50}})
	key := a.tenantKey("acme")

	// No plan: the node's defaults, today's behaviour.
	var l limitsAnswer
	a.must(http.StatusOK, "GET", "/v1/tenants/acme/limits", nil, &l)
	l.limit(t, "max_endpoints", "50", "node")
	l.limit(t, "max_sources", "100", "node")
	l.limit(t, "retention_hours", "720", "node")
	l.limit(t, "max_event_bytes", "262144", "node")
	l.limit(t, "events_per_second", "null", "node")
	l.limit(t, "batching", "true", "node")

	a.must(http.StatusCreated, "POST", "/v1/plans", map[string]any{"name": "starter", "description": "Starter",
		"limits": map[string]any{"events_per_second": 10, "max_endpoints": 5, "batching": false, "retention_hours": 168}}, nil)
	// A plan's limits may not pass the node's.
	ans := a.do(a.admin, "POST", "/v1/plans", map[string]any{"name": "big", "limits": map[string]any{"retention_hours": 10000, "max_event_bytes": 1 << 20}})
	if ans.status != http.StatusUnprocessableEntity {
		t.Fatalf("plan over the node's limits = %d: %s", ans.status, ans.body)
	}
	p := ans.problem(t)
	for _, loc := range []string{"body.limits.retention_hours", "body.limits.max_event_bytes"} {
		if _, ok := p.find(loc); !ok {
			t.Errorf("no problem at %s: %+v", loc, p.Errors)
		}
	}
	// Tenants are put on plans that exist.
	ans = a.do(a.admin, "PATCH", "/v1/tenants/acme", map[string]any{"plan": "nope"})
	if msg, ok := ans.problem(t).find("body.plan"); ans.status != http.StatusUnprocessableEntity || !ok {
		t.Fatalf("unknown plan = %d %q", ans.status, msg)
	}
	var ten struct {
		Plan      string         `json:"plan"`
		OwnLimits map[string]any `json:"own_limits"`
		Limits    map[string]struct {
			Value any    `json:"value"`
			From  string `json:"from"`
		} `json:"limits"`
		MaxEndpoints int `json:"max_endpoints"`
	}
	a.must(http.StatusOK, "PATCH", "/v1/tenants/acme", map[string]any{"plan": "starter", "limits": map[string]any{"max_endpoints": 8}}, &ten)
	if ten.Plan != "starter" || ten.MaxEndpoints != 8 || ten.Limits["max_endpoints"].From != "tenant" || ten.Limits["events_per_second"].From != "plan" {
		t.Fatalf("tenant after the change = %+v", ten)
	}
	// The tenant's key and a portal link read the same.
	for _, who := range []string{"tenant key", "portal link"} {
		cred := key
		if who == "portal link" {
			var link portalLink
			a.must(http.StatusCreated, "POST", "/v1/tenants/acme/portal-links", map[string]any{"expires_in_seconds": 600}, &link)
			cred = link.token(t)
		}
		ans := a.do(cred, "GET", "/v1/tenants/acme/limits", nil)
		if ans.status != http.StatusOK {
			t.Fatalf("%s reads limits = %d: %s", who, ans.status, ans.body)
		}
		var l limitsAnswer
		if err := json.Unmarshal(ans.body, &l); err != nil {
			t.Fatal(err)
		}
		if l.Plan != "starter" {
			t.Errorf("%s: plan %q", who, l.Plan)
		}
		l.limit(t, "max_endpoints", "8", "tenant")
		l.limit(t, "events_per_second", "10", "plan")
		l.limit(t, "retention_hours", "168", "plan")
		l.limit(t, "batching", "false", "plan")
		l.limit(t, "max_sources", "100", "node")
		// Neither may change them, nor read plans.
		if ans := a.do(cred, "PATCH", "/v1/tenants/acme", map[string]any{"limits": map[string]any{}}); ans.status != http.StatusForbidden {
			t.Errorf("%s changes its limits = %d", who, ans.status)
		}
		if ans := a.do(cred, "GET", "/v1/plans", nil); ans.status != http.StatusForbidden {
			t.Errorf("%s lists plans = %d", who, ans.status)
		}
	}
	// A plan in use cannot be deleted; a plan changed applies to its tenants at once.
	if ans := a.do(a.admin, "DELETE", "/v1/plans/starter", nil); ans.status != http.StatusConflict {
		t.Fatalf("delete a plan in use = %d: %s", ans.status, ans.body)
	}
	a.must(http.StatusOK, "PATCH", "/v1/plans/starter", map[string]any{"limits": map[string]any{"events_per_second": 20}}, nil)
	a.must(http.StatusOK, "GET", "/v1/tenants/acme/limits", nil, &l)
	l.limit(t, "events_per_second", "20", "plan")
	l.limit(t, "batching", "true", "node")
	a.must(http.StatusOK, "PATCH", "/v1/tenants/acme", map[string]any{"plan": "", "max_endpoints": 0}, nil)
	a.must(http.StatusNoContent, "DELETE", "/v1/plans/starter", nil, nil)
	a.must(http.StatusOK, "GET", "/v1/tenants/acme/limits", nil, &l)
	l.limit(t, "max_endpoints", "50", "node")
	l.limit(t, "events_per_second", "null", "node")
}

// Publishing past the tenant's events_per_second answers 429 with Retry-After, per tenant; a
// larger event than the tenant's max_event_bytes answers 413 naming it.
func TestPlans_PublishRateAndEventSize(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	a := newTestAPI(t, api.Config{Now: c.now})
	a.tenantKey("acme")
	a.tenantKey("globex")
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "order.created"}, nil)
	a.must(http.StatusOK, "PATCH", "/v1/tenants/acme", map[string]any{"limits": map[string]any{"events_per_second": 3, "max_event_bytes": 200}}, nil)

	small := map[string]any{"type": "order.created", "data": map[string]any{"n": 1}}
	for i := range 3 {
		if ans := a.do(a.admin, "POST", "/v1/tenants/acme/events", small); ans.status != http.StatusAccepted {
			t.Fatalf("publish %d within the rate = %d: %s", i, ans.status, ans.body)
		}
	}
	ans := a.do(a.admin, "POST", "/v1/tenants/acme/events", small)
	if ans.status != http.StatusTooManyRequests {
		t.Fatalf("publish past the rate = %d, want 429: %s", ans.status, ans.body)
	}
	if p := ans.problem(t); !strings.Contains(p.Detail, "events_per_second") {
		t.Errorf("detail %q does not name the limit", p.Detail)
	}
	if ra, err := strconv.Atoi(ans.header.Get("Retry-After")); err != nil || ra != 1 {
		t.Errorf("Retry-After = %q, want 1 (3 events a second)", ans.header.Get("Retry-After"))
	}
	// Another tenant is not limited by acme's rate.
	for range 5 {
		if ans := a.do(a.admin, "POST", "/v1/tenants/globex/events", small); ans.status != http.StatusAccepted {
			t.Fatalf("globex publish = %d: %s", ans.status, ans.body)
		}
	}
	// A second later there is room again; a batch counts its events.
	c.add(time.Second)
	a.must(http.StatusAccepted, "POST", "/v1/tenants/acme/events/batch", map[string]any{"events": []any{small, small}}, nil)
	if ans := a.do(a.admin, "POST", "/v1/tenants/acme/events/batch", map[string]any{"events": []any{small, small}}); ans.status != http.StatusTooManyRequests {
		t.Fatalf("batch past the rate = %d", ans.status)
	}
	c.add(time.Second)
	big := map[string]any{"type": "order.created", "data": map[string]any{"pad": strings.Repeat("x", 300)}}
	ans = a.do(a.admin, "POST", "/v1/tenants/acme/events/batch", map[string]any{"events": []any{small, big}})
	if ans.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("event over max_event_bytes = %d: %s", ans.status, ans.body)
	}
	if msg, ok := ans.problem(t).find("body.events[1].data"); !ok || !strings.Contains(msg, "limit is 200") {
		t.Errorf("problem at body.events[1].data = %q", msg)
	}
	// globex has the node's size.
	a.must(http.StatusAccepted, "POST", "/v1/tenants/globex/events", big, nil)
}

// An endpoint save that uses a feature the tenant's plan does not allow is refused naming the
// field; its rate limit and retry schedule are held to the tenant's ceilings.
func TestPlans_EndpointLimits(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	key := a.tenantKey("acme")
	a.must(http.StatusCreated, "POST", "/v1/plans", map[string]any{"name": "basic", "limits": map[string]any{
		"filters": false, "transformations": false, "batching": false, "max_endpoint_rate": 5, "max_attempts": 4, "max_retry_seconds": 600}}, nil)
	a.must(http.StatusOK, "PATCH", "/v1/tenants/acme", map[string]any{"plan": "basic"}, nil)

	base := map[string]any{"url": "https://hooks.example.com/a", "event_types": []string{"*"}}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for kk, vv := range base {
			m[kk] = vv
		}
		m[k] = v
		return m
	}
	for _, c := range []struct {
		field string
		value any
		loc   string
	}{
		{"filter", `data.total > 10`, "body.filter"},
		{"transform", `{"id": id}`, "body.transform"},
		{"batch", map[string]any{"enabled": true}, "body.batch"},
		{"rate_limit", 50, "body.rate_limit"},
		{"retry_schedule", []int{0, 5, 30, 120, 600}, "body.retry_schedule"},
		{"retry_schedule", []int{0, 300, 600}, "body.retry_schedule"},
	} {
		ans := a.do(key, "POST", "/v1/tenants/acme/endpoints", with(c.field, c.value))
		if ans.status != http.StatusUnprocessableEntity {
			t.Errorf("%s %v = %d, want 422: %s", c.field, c.value, ans.status, ans.body)
			continue
		}
		if msg, ok := ans.problem(t).find(c.loc); !ok {
			t.Errorf("%s: no problem at %s: %s", c.field, c.loc, ans.body)
		} else if msg == "" {
			t.Errorf("%s: empty message", c.field)
		}
	}
	// Within the limits: an endpoint without a rate gets the ceiling, the default schedule is cut.
	var ep struct {
		ID            string  `json:"id"`
		RateLimit     float64 `json:"rate_limit"`
		RetrySchedule []int   `json:"retry_schedule"`
	}
	a.must(http.StatusCreated, "POST", "/v1/tenants/acme/endpoints", base, &ep)
	if ep.RateLimit != 5 || fmt.Sprint(ep.RetrySchedule) != "[0 5 30 120]" {
		t.Fatalf("endpoint = %+v, want rate 5 and the default schedule cut to 4 attempts", ep)
	}
	ok := with("rate_limit", 2)
	ok["retry_schedule"] = []int{0, 60, 300}
	a.must(http.StatusCreated, "POST", "/v1/tenants/acme/endpoints", ok, &ep)
	if ep.RateLimit != 2 {
		t.Fatalf("rate = %v, want 2", ep.RateLimit)
	}
	// The tenant's own override allows filters again.
	a.must(http.StatusOK, "PATCH", "/v1/tenants/acme", map[string]any{"limits": map[string]any{"filters": true}}, nil)
	a.must(http.StatusOK, "PATCH", "/v1/tenants/acme/endpoints/"+ep.ID, map[string]any{"filter": `data.total > 10`}, nil)
}

// The plan's endpoint count is enforced by the store; the problem names the limit.
func TestPlans_MaxEndpointsFromThePlan(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	a.tenantKey("acme")
	a.must(http.StatusCreated, "POST", "/v1/plans", map[string]any{"name": "one", "limits": map[string]any{"max_endpoints": 1}}, nil)
	a.must(http.StatusOK, "PATCH", "/v1/tenants/acme", map[string]any{"plan": "one"}, nil)
	a.must(http.StatusCreated, "POST", "/v1/tenants/acme/endpoints", map[string]any{"url": "https://hooks.example.com/a", "event_types": []string{"*"}}, nil)
	ans := a.do(a.admin, "POST", "/v1/tenants/acme/endpoints", map[string]any{"url": "https://hooks.example.com/b", "event_types": []string{"*"}})
	if ans.status != http.StatusUnprocessableEntity || !strings.Contains(string(ans.body), "max_endpoints") {
		t.Fatalf("second endpoint = %d: %s", ans.status, ans.body)
	}
}

// The usage routes refuse a bad range naming the parameter, answer a tenant key its own tenant's
// usage (buckets aligned to the granularity), and the export is admin-only.
func TestUsage_RangesAndAccess(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Date(2026, 5, 10, 12, 30, 0, 0, time.UTC)}
	a := newTestAPI(t, api.Config{Now: c.now})
	key := a.tenantKey("acme")
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "order.created"}, nil)
	a.must(http.StatusCreated, "POST", "/v1/tenants/acme/endpoints", map[string]any{"url": "https://hooks.example.com/a", "event_types": []string{"*"}}, nil)
	a.must(http.StatusAccepted, "POST", "/v1/tenants/acme/events", map[string]any{"type": "order.created", "data": map[string]any{}}, nil)
	for _, c := range []struct{ query, loc string }{
		{"from=yesterday", "query.from"},
		{"to=2026-13-01", "query.to"},
		{"from=2026-05-10&to=2026-05-01", "query.to"},
		{"from=2026-01-01&to=2026-05-01&granularity=hour", "query.from"},
		{"granularity=week", "query.granularity"},
		{"by=event", "query.by"},
	} {
		ans := a.do(key, "GET", "/v1/tenants/acme/usage?"+c.query, nil)
		if ans.status != http.StatusUnprocessableEntity {
			t.Errorf("%s = %d, want 422: %s", c.query, ans.status, ans.body)
			continue
		}
		if _, ok := ans.problem(t).find(c.loc); !ok {
			t.Errorf("%s: no problem at %s: %s", c.query, c.loc, ans.body)
		}
	}
	var u struct {
		From    time.Time `json:"from"`
		To      time.Time `json:"to"`
		Totals  struct{ Events, Deliveries int64 }
		Buckets []struct {
			Start time.Time `json:"start"`
		} `json:"buckets"`
	}
	ans := a.do(key, "GET", "/v1/tenants/acme/usage?granularity=hour&from=2026-05-10T03:20:00Z", nil)
	if ans.status != http.StatusOK {
		t.Fatalf("usage = %d: %s", ans.status, ans.body)
	}
	if err := json.Unmarshal(ans.body, &u); err != nil {
		t.Fatal(err)
	}
	if !u.From.Equal(time.Date(2026, 5, 10, 3, 0, 0, 0, time.UTC)) || !u.To.Equal(time.Date(2026, 5, 10, 13, 0, 0, 0, time.UTC)) {
		t.Errorf("range %s – %s, want whole hours around it", u.From, u.To)
	}
	if u.Totals.Events != 1 || u.Totals.Deliveries != 1 || len(u.Buckets) != 1 || !u.Buckets[0].Start.Equal(time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("usage = %s", ans.body)
	}
	if ans := a.do(key, "GET", "/v1/usage", nil); ans.status != http.StatusForbidden {
		t.Errorf("a tenant key exports every tenant's usage: %d", ans.status)
	}
	ans = a.do(a.admin, "GET", "/v1/usage?from=2026-05-01", nil)
	if ans.status != http.StatusOK || ans.header.Get("Content-Type") != "application/x-ndjson" ||
		!strings.Contains(string(ans.body), `"tenant_id":"acme","start":"2026-05-10T00:00:00Z"`) {
		t.Errorf("export = %d %s: %s", ans.status, ans.header.Get("Content-Type"), ans.body)
	}
}
