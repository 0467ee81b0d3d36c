package api_test

import (
	"bytes"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/httpsend"
)

func TestAPI_RateLimitIsPerKeyAnd429WithRetryAfter(t *testing.T) {
	t.Parallel()
	// One token every 5 s, so none comes back while the test runs; bursts of 4.
	slow := api.Rate{PerSecond: 0.2, Burst: 4}
	a := newTestAPI(t, api.Config{RateLimits: api.RateLimits{TenantKey: slow, AdminKey: slow}})
	tenant := a.tenantKey("acme") // the admin key spends two tokens here

	for i := range 2 {
		if ans := a.do(a.admin, "GET", "/v1/tenants", nil); ans.status != http.StatusOK {
			t.Fatalf("admin request %d within the burst = %d: %s", i+3, ans.status, ans.body)
		}
	}
	ans := a.do(a.admin, "GET", "/v1/tenants", nil)
	if ans.status != http.StatusTooManyRequests {
		t.Fatalf("admin request past the burst = %d, want 429: %s", ans.status, ans.body)
	}
	p := ans.problem(t)
	if !strings.Contains(p.Detail, "rate limit") {
		t.Errorf("problem detail %q does not say it is the rate limit", p.Detail)
	}
	ra, err := strconv.Atoi(ans.header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 5 {
		t.Errorf("Retry-After = %q, want whole seconds in 1..5 (one token per 5 s)", ans.header.Get("Retry-After"))
	}

	// Another key has a bucket of its own.
	for i := range 4 {
		if ans := a.do(tenant, "GET", "/v1/tenants/acme", nil); ans.status != http.StatusOK {
			t.Fatalf("tenant key request %d = %d while the admin key is limited: %s", i+1, ans.status, ans.body)
		}
	}
	if ans := a.do(tenant, "GET", "/v1/tenants/acme", nil); ans.status != http.StatusTooManyRequests {
		t.Errorf("tenant key past its own burst = %d, want 429", ans.status)
	}

	// Unauthenticated requests are answered 401, never counted against a key.
	if ans := a.do("hk_admin_not_a_key_at_all_0000", "GET", "/v1/tenants", nil); ans.status != http.StatusUnauthorized {
		t.Errorf("unknown key = %d, want 401", ans.status)
	}
	// Unauthenticated routes are not limited.
	if ans := a.do("", "GET", "/healthz", nil); ans.status != http.StatusOK {
		t.Errorf("/healthz = %d while the key is limited, want 200", ans.status)
	}
}

func TestAPI_RateLimitZeroDisables(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{RateLimits: api.RateLimits{AdminKey: api.Rate{PerSecond: 0, Burst: 1}}})
	for i := range 300 {
		if ans := a.do(a.admin, "GET", "/v1/tenants", nil); ans.status != http.StatusOK {
			t.Fatalf("request %d = %d with the rate limit off: %s", i+1, ans.status, ans.body)
		}
	}
}

// nested returns an event body whose deepest point is depth levels of arrays and objects deep,
// counting the body itself.
func nested(depth int) string {
	// {"type":..,"data":{"x": [[...[1]...]] }}: the body and data are two levels; x adds depth-2.
	inner := strings.Repeat("[", depth-2) + "1" + strings.Repeat("]", depth-2)
	return `{"type":"invoice.paid","data":{"x":` + inner + `, "s":"[[[[{{{{ brackets in a string do not count \" [[["}}`
}

func TestAPI_JSONNestingDepthIsLimited(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	a.tenantKey("acme")
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "invoice.paid"}, nil)

	if ans := a.do(a.admin, "POST", "/v1/tenants/acme/events", nested(api.DefaultMaxJSONDepth)); ans.status != http.StatusAccepted {
		t.Fatalf("body %d levels deep = %d, want 202: %.300s", api.DefaultMaxJSONDepth, ans.status, ans.body)
	}
	cases := []struct{ name, path, body string }{
		{"event one level too deep", "/v1/tenants/acme/events", nested(api.DefaultMaxJSONDepth + 1)},
		{"event far too deep", "/v1/tenants/acme/events", nested(100000)},
		{"batch too deep", "/v1/tenants/acme/events/batch", `{"events":[` + nested(api.DefaultMaxJSONDepth) + `]}`},
		{"other route too deep", "/v1/tenants", `{"id":"x","name":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`},
	}
	for _, c := range cases {
		ans := a.do(a.admin, "POST", c.path, c.body)
		if ans.status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400: %.300s", c.name, ans.status, ans.body)
			continue
		}
		p := ans.problem(t)
		msg, ok := p.find("body")
		if !ok || !strings.Contains(msg, fmt.Sprintf("deeper than %d levels", api.DefaultMaxJSONDepth)) {
			t.Errorf("%s: problem %+v does not name the nesting limit at body", c.name, p)
		}
		if len(ans.body) > 2048 {
			t.Errorf("%s: problem is %d bytes; the echoed body should be cut short", c.name, len(ans.body))
		}
	}
}

func TestAPI_ConfiguredJSONDepth(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{MaxJSONDepth: 3})
	ans := a.do(a.admin, "POST", "/v1/tenants", `{"id":"x","name":[[[1]]]}`)
	if msg, _ := ans.problem(t).find("body"); ans.status != http.StatusBadRequest || !strings.Contains(msg, "deeper than 3 levels") {
		t.Errorf("4 levels with MaxJSONDepth 3 = %d %q, want 400 naming the limit", ans.status, msg)
	}
	// Three levels pass the depth check and reach the schema, which refuses a list as a name.
	if ans := a.do(a.admin, "POST", "/v1/tenants", `{"id":"x","name":[[1]]}`); ans.status != http.StatusUnprocessableEntity {
		t.Errorf("3 levels with MaxJSONDepth 3 = %d, want the schema's 422: %s", ans.status, ans.body)
	}
	if ans := a.do(a.admin, "POST", "/v1/tenants", `{"id":"ok","name":"fine"}`); ans.status != http.StatusCreated {
		t.Errorf("flat body = %d, want 201: %s", ans.status, ans.body)
	}
}

// TestAPI_ErrorAnswersAreBounded sends a large body that is not JSON: the problem names the
// error without echoing the body whole.
func TestAPI_ErrorAnswersAreBounded(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	body := append([]byte(`{"id":"x","name":"`), bytes.Repeat([]byte{1}, 500<<10)...)
	ans := a.do(a.admin, "POST", "/v1/tenants", body)
	if ans.status != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", ans.status)
	}
	p := ans.problem(t)
	if _, ok := p.find("body"); !ok {
		t.Errorf("problem %+v has no error at body", p)
	}
	if len(ans.body) > 4096 {
		t.Errorf("problem is %d bytes for a %d-byte body; want it bounded", len(ans.body), len(body))
	}
}

var pathParam = regexp.MustCompile(`\{[^}]+\}`)

// TestAPI_EveryRequestBodyIsBounded walks the OpenAPI document: every operation that takes a body
// has a limit, and a body of that size is refused with 413 before it is decoded.
func TestAPI_EveryRequestBodyIsBounded(t *testing.T) {
	t.Parallel()
	// Small events keep the batch route's limit (1000 events) at 4 MiB rather than 32 MiB, which a
	// race-instrumented test would take longer to send than huma's 5 s body read timeout.
	a := newTestAPI(t, api.Config{MaxEventBytes: 4096})
	checked := 0
	for path, item := range a.api.OpenAPI().Paths {
		for _, m := range []struct {
			method string
			op     *huma.Operation
		}{{"POST", item.Post}, {"PUT", item.Put}, {"PATCH", item.Patch}, {"DELETE", item.Delete}} {
			o := m.op
			if o == nil || o.RequestBody == nil {
				continue
			}
			if o.MaxBodyBytes <= 0 || o.MaxBodyBytes > 32<<20 {
				t.Errorf("%s %s: body limit %d, want 1..32 MiB", m.method, path, o.MaxBodyBytes)
				continue
			}
			url := pathParam.ReplaceAllString(path, "acme")
			body := make([]byte, o.MaxBodyBytes)
			for i := range body {
				body[i] = ' '
			}
			ans := a.do(a.admin, m.method, url, body)
			if ans.status != http.StatusRequestEntityTooLarge {
				t.Errorf("%s %s with a %d-byte body = %d, want 413: %.200s", m.method, path, len(body), ans.status, ans.body)
				continue
			}
			ans.problem(t)
			checked++
		}
	}
	if checked < 8 {
		t.Errorf("checked %d operations with a body, want every one (at least 8)", checked)
	}
}

// TestAPI_EndpointURLsAreCheckedAtRegistration registers URLs in production settings: each must be
// refused with 422 problem+json at body.url naming the reason, on create and on update. Nothing is
// resolved or dialled: the check works on the URL alone.
func TestAPI_EndpointURLsAreCheckedAtRegistration(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{URLCheck: httpsend.New(httpsend.Config{})})
	a.tenantKey("acme")
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "invoice.paid"}, nil)
	var ep struct {
		ID string `json:"id"`
	}
	a.must(http.StatusCreated, "POST", "/v1/tenants/acme/endpoints",
		map[string]any{"url": "https://hooks.example.com/in", "event_types": []string{"*"}}, &ep)

	cases := []struct{ url, reason string }{
		{"http://hooks.example.com/in", "must use https"},
		{"https://user:pass@hooks.example.com/", "credentials"},
		{"https://token@hooks.example.com/", "credentials"},
		{"ftp://hooks.example.com/", "not supported"},
		{"hooks.example.com/in", "absolute"},
		{"https://127.0.0.1/", "loopback"},
		{"https://localhost:8080/", "loopback"},
		{"https://2130706433/", "loopback"},
		{"https://0177.0.0.1/", "loopback"},
		{"https://0x7f.1/", "loopback"},
		{"https://127.1/", "loopback"},
		{"https://[::1]/", "loopback"},
		{"https://[::ffff:127.0.0.1]/", "IPv4-mapped 127.0.0.1"},
		{"https://[::127.0.0.1]/", "IPv4-compatible 127.0.0.1"},
		{"https://[64:ff9b::a9fe:a9fe]/", "NAT64 169.254.169.254"},
		{"https://[2002:a00:1::]/", "6to4 10.0.0.1"},
		{"https://0.0.0.0/", "unspecified"},
		{"https://[::]/", "unspecified"},
		{"https://169.254.169.254/latest/meta-data/", "link-local"},
		{"https://[fe80::1%25eth0]/", "link-local"},
		{"https://10.1.2.3/", "private"},
		{"https://172.16.0.1/", "private"},
		{"https://192.168.1.1/", "private"},
		{"https://100.64.0.1/", "CGNAT"},
		{"https://[fd00::1]/", "unique local"},
		{"https://224.0.0.1/", "multicast"},
		{"https://[ff02::1]/", "multicast"},
		{"https://255.255.255.255/", "broadcast"},
		{"https://240.0.0.1/", "reserved"},
		{"https://192.0.2.1/", "documentation"},
		{"https://198.18.0.1/", "benchmarking"},
		{"https://192.0.0.8/", "IETF protocol assignments"},
	}
	for _, c := range cases {
		for _, call := range []struct{ method, path string }{
			{"POST", "/v1/tenants/acme/endpoints"},
			{"PATCH", "/v1/tenants/acme/endpoints/" + ep.ID},
		} {
			ans := a.do(a.admin, call.method, call.path, map[string]any{"url": c.url, "event_types": []string{"*"}})
			if ans.status != http.StatusUnprocessableEntity {
				t.Errorf("%s %s: status %d, want 422: %.300s", call.method, c.url, ans.status, ans.body)
				continue
			}
			msg, ok := ans.problem(t).find("body.url")
			if !ok || !strings.Contains(msg, c.reason) {
				t.Errorf("%s %s: body.url message %q, want it to contain %q", call.method, c.url, msg, c.reason)
			}
		}
	}
}
