package api_test

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/api"
)

// mintPortalLink makes a portal link to tenant with the admin key and returns its token.
func mintPortalLink(t *testing.T, a *testAPI, tenant string) string {
	t.Helper()
	var l portalLink
	a.must(http.StatusCreated, "POST", "/v1/tenants/"+tenant+"/portal-links", nil, &l)
	return l.token(t)
}

// A portal link and a tenant key are bound to the tenant they were made for: deleting the
// tenant voids them, and a tenant created later with the same id does not revive them.
func TestCredentials_DieWithTheirTenantEvenIfItsIDIsReused(t *testing.T) {
	t.Parallel()
	a, _ := newPortalAPI(t, 41)
	key := a.tenantKey("initech")
	link := mintPortalLink(t, a, "initech")
	a.must(http.StatusCreated, "POST", "/v1/tenants/initech/endpoints", map[string]any{"url": "https://hooks.example.com/old", "event_types": []string{"*"}}, nil)
	for _, cred := range []string{key, link} {
		if ans := a.do(cred, "GET", "/v1/tenants/initech/endpoints", nil); ans.status != http.StatusOK {
			t.Fatalf("credential before the delete = %d: %s", ans.status, ans.body)
		}
	}

	a.must(http.StatusOK, "DELETE", "/v1/tenants/initech", nil, nil)
	a.must(http.StatusCreated, "POST", "/v1/tenants", map[string]any{"id": "initech", "name": "Another Initech"}, nil)
	a.must(http.StatusCreated, "POST", "/v1/tenants/initech/endpoints", map[string]any{"url": "https://hooks.example.com/new", "event_types": []string{"*"}}, nil)

	for name, cred := range map[string]string{"tenant key": key, "portal link": link} {
		for _, path := range []string{"/v1/tenants/initech/endpoints", "/v1/tenants/initech", "/v1/me"} {
			ans := a.do(cred, "GET", path, nil)
			if ans.status != http.StatusUnauthorized {
				t.Errorf("%s of the deleted tenant, GET %s on the new one = %d, want 401: %.300s", name, path, ans.status, ans.body)
				continue
			}
			if strings.Contains(string(ans.body), "whsec_") {
				t.Errorf("%s: the refusal shows a signing secret", name)
			}
		}
	}
	// The new tenant's own credentials work.
	for name, cred := range map[string]string{"new tenant key": newTenantKey(t, a, "initech"), "new portal link": mintPortalLink(t, a, "initech")} {
		if ans := a.do(cred, "GET", "/v1/tenants/initech/endpoints", nil); ans.status != http.StatusOK {
			t.Errorf("%s = %d: %s", name, ans.status, ans.body)
		}
	}
}

// newTenantKey makes a key for an existing tenant.
func newTenantKey(t *testing.T, a *testAPI, tenant string) string {
	t.Helper()
	var k struct {
		Key string `json:"key"`
	}
	a.must(http.StatusCreated, "POST", "/v1/api-keys", map[string]any{"role": "tenant", "tenant_id": tenant}, &k)
	return k.Key
}

// While the store is down, a credential that cannot be checked is answered 503 with
// Retry-After, never 401, 403 or 404, which a client takes as final; a key checked moments
// before (cached) keeps working for what needs no store.
func TestCredentials_StoreOutageIs503NeverUnauthorized(t *testing.T) {
	t.Parallel()
	a, _ := newPortalAPI(t, 43)
	cached := newTenantKey(t, a, "acme")
	unchecked := newTenantKey(t, a, "acme")
	link := mintPortalLink(t, a, "acme")
	if ans := a.do(cached, "GET", "/v1/me", nil); ans.status != http.StatusOK {
		t.Fatalf("GET /v1/me = %d: %s", ans.status, ans.body)
	}

	if err := a.sqlite.Close(); err != nil {
		t.Fatal(err)
	}
	for name, cred := range map[string]string{
		"a valid key not checked yet":    unchecked,
		"a key the store cannot look up": "hk_tenant_unknownunknownunknownunknownunknown00",
		"a portal link":                  link,
	} {
		ans := a.do(cred, "GET", "/v1/me", nil)
		if ans.status != http.StatusServiceUnavailable {
			t.Errorf("%s while the store is closed = %d, want 503: %.300s", name, ans.status, ans.body)
			continue
		}
		if ra, err := strconv.Atoi(ans.header.Get("Retry-After")); err != nil || ra < 1 {
			t.Errorf("%s: Retry-After = %q, want whole seconds", name, ans.header.Get("Retry-After"))
		}
		ans.problem(t)
	}
	if ans := a.do(cached, "GET", "/v1/me", nil); ans.status != http.StatusOK {
		t.Errorf("cached key while the store is closed = %d, want 200: %s", ans.status, ans.body)
	}
}

// With the default limits, an application publishing 150 events a second one by one is never
// refused. The API's clock is advanced 1/150 s a request, so the test sends the load of ten
// seconds at 150/s (the old per-key default, 100/s in bursts of 200, refused it after about
// four) without taking ten seconds.
func TestRateLimits_DefaultsLetABusyPublisherThrough(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Now().UTC()}
	a := newTestAPI(t, api.Config{RateLimits: api.DefaultRateLimits(), Now: c.now})
	key := a.tenantKey("acme")
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "invoice.paid"}, nil)
	for i := range 1500 {
		c.add(time.Second / 150)
		ans := a.do(key, "POST", "/v1/tenants/acme/events", map[string]any{"type": "invoice.paid", "data": map[string]any{"n": i}})
		if ans.status != http.StatusAccepted {
			t.Fatalf("publish %d at 150/s = %d, want 202: %.300s", i+1, ans.status, ans.body)
		}
	}
	// The same key's other routes have their own allowance.
	if ans := a.do(key, "GET", "/v1/tenants/acme", nil); ans.status != http.StatusOK {
		t.Errorf("GET after the publishes = %d: %s", ans.status, ans.body)
	}
}

// Publishing is counted per tenant, whatever key publishes: a tenant over its limit gets 429
// with Retry-After, while another tenant publishes and the first one's other routes answer.
func TestRateLimits_PublishIsCountedPerTenant(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Now().UTC()}
	a := newTestAPI(t, api.Config{Now: c.now, RateLimits: api.RateLimits{
		Publish: api.Rate{PerSecond: 1, Burst: 3}, TenantKey: api.Rate{PerSecond: 1, Burst: 3}}})
	acme, globex := a.tenantKey("acme"), a.tenantKey("globex")
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "invoice.paid"}, nil)
	ev := map[string]any{"type": "invoice.paid", "data": map[string]any{}}
	batch := map[string]any{"events": []any{ev}}

	a.must(http.StatusAccepted, "POST", "/v1/tenants/acme/events", ev, nil) // the admin key counts for acme too
	if ans := a.do(acme, "POST", "/v1/tenants/acme/events/batch", batch); ans.status != http.StatusAccepted {
		t.Fatalf("batch within the limit = %d: %s", ans.status, ans.body)
	}
	if ans := a.do(acme, "POST", "/v1/tenants/acme/events", ev); ans.status != http.StatusAccepted {
		t.Fatalf("third publish within the burst = %d: %s", ans.status, ans.body)
	}
	for _, key := range []string{acme, a.admin} {
		ans := a.do(key, "POST", "/v1/tenants/acme/events", ev)
		if ans.status != http.StatusTooManyRequests {
			t.Fatalf("publish past acme's burst = %d, want 429: %s", ans.status, ans.body)
		}
		if ra, err := strconv.Atoi(ans.header.Get("Retry-After")); err != nil || ra != 1 {
			t.Errorf("Retry-After = %q, want 1 (one publish a second)", ans.header.Get("Retry-After"))
		}
		if p := ans.problem(t); !strings.Contains(p.Detail, "publishing to this tenant") {
			t.Errorf("problem detail %q does not say which limit", p.Detail)
		}
	}
	for i := range 3 {
		if ans := a.do(globex, "POST", "/v1/tenants/globex/events", ev); ans.status != http.StatusAccepted {
			t.Errorf("globex publish %d while acme is limited = %d: %s", i+1, ans.status, ans.body)
		}
	}
	if ans := a.do(acme, "GET", "/v1/tenants/acme", nil); ans.status != http.StatusOK {
		t.Errorf("acme's other routes while its publishing is limited = %d: %s", ans.status, ans.body)
	}
	c.add(time.Second)
	if ans := a.do(acme, "POST", "/v1/tenants/acme/events", ev); ans.status != http.StatusAccepted {
		t.Errorf("publish a second later = %d: %s", ans.status, ans.body)
	}
}

// clientFrom is an HTTP client whose connections come from the loopback address ip.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	}}
}

// Failed authentications are limited per client address: after the burst, one address's bad
// keys and links get 429, while another address is unaffected and a valid key is admitted from
// both, so that nobody can lock a legitimate key out.
func TestRateLimits_FailedAuthenticationsPerAddress(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Now().UTC()}
	a := newTestAPI(t, api.Config{Now: c.now, PortalKey: []byte("0123456789abcdef0123456789abcdef"), RateLimits: api.DefaultRateLimits()})
	key := a.tenantKey("acme")
	get := func(from, cred string) *http.Response {
		t.Helper()
		req, err := http.NewRequest("GET", a.srv.URL+"/v1/tenants/acme", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+cred)
		resp, err := clientFrom(from).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	bad := []string{"hk_tenant_guess", api.PortalTokenPrefix + "e30.c2ln", "not-even-a-key"}
	var refused, limited int
	for i := range 50 {
		resp := get("127.0.0.1", bad[i%len(bad)]+strconv.Itoa(i))
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			if limited > 0 {
				t.Fatalf("bad key %d = 401 after a 429: the limit let it through", i+1)
			}
			refused++
		case http.StatusTooManyRequests:
			if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
				t.Errorf("Retry-After = %q, want whole seconds", resp.Header.Get("Retry-After"))
			}
			limited++
		default:
			t.Fatalf("bad key %d = %d", i+1, resp.StatusCode)
		}
	}
	if refused != api.DefaultAuthFailureBurst || limited != 50-api.DefaultAuthFailureBurst {
		t.Errorf("50 bad keys from one address: %d answered 401, %d 429; want %d then 429", refused, limited, api.DefaultAuthFailureBurst)
	}
	if s := get("127.0.0.2", "hk_tenant_guess").StatusCode; s != http.StatusUnauthorized {
		t.Errorf("bad key from another address = %d, want 401 (its own allowance)", s)
	}
	for _, from := range []string{"127.0.0.2", "127.0.0.1"} {
		if s := get(from, key).StatusCode; s != http.StatusOK {
			t.Errorf("valid key from %s while 127.0.0.1 is limited = %d, want 200", from, s)
		}
	}
}

// A listen stream is bound to the tenant it was opened for: when the tenant is deleted it ends
// with a close event, and never sends the events of a tenant created later with the same id,
// even to a key (an admin's) that may read the new tenant.
func TestListen_StreamEndsWhenItsTenantIsDeleted(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{ListenHeartbeat: 200 * time.Millisecond})
	a.tenantKey("acme")
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "invoice.paid"}, nil)
	s, ans := listen(t, a.srv.URL, a.admin, "", nil)
	if s == nil {
		t.Fatalf("listen: %d %s", ans.status, ans.body)
	}
	if ev := s.next(5 * time.Second); ev.name != "ready" {
		t.Fatalf("first event = %+v, want ready", ev)
	}
	a.must(http.StatusOK, "DELETE", "/v1/tenants/acme", nil, nil)
	a.must(http.StatusCreated, "POST", "/v1/tenants", map[string]any{"id": "acme", "name": "Another Acme"}, nil)
	a.must(http.StatusAccepted, "POST", "/v1/tenants/acme/events", map[string]any{"type": "invoice.paid", "data": map[string]any{"secret": "new tenant's"}}, nil)
	ev := s.next(10 * time.Second)
	if ev.name != "close" || !strings.Contains(ev.data, "the tenant was deleted") {
		t.Fatalf("event after the tenant was deleted and created again = %+v, want close saying so", ev)
	}
	select {
	case <-s.ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end")
	}
}

// Publish bodies count against their tenant's bandwidth: a large publish past it is refused
// with 429 before its body is read, while another tenant publishes on, and the bandwidth comes
// back with time.
func TestRateLimits_PublishBytesPerTenant(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Now().UTC()}
	a := newTestAPI(t, api.Config{Now: c.now, RateLimits: api.RateLimits{
		PublishBytes: api.Rate{PerSecond: 100 << 10, Burst: 200 << 10}}})
	acme, globex := a.tenantKey("acme"), a.tenantKey("globex")
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "report.ready"}, nil)
	big := map[string]any{"type": "report.ready", "data": map[string]any{"s": strings.Repeat("x", 90<<10)}}

	for i := range 2 {
		if ans := a.do(acme, "POST", "/v1/tenants/acme/events", big); ans.status != http.StatusAccepted {
			t.Fatalf("large publish %d within the burst = %d: %s", i+1, ans.status, ans.body)
		}
	}
	ans := a.do(acme, "POST", "/v1/tenants/acme/events", big)
	if ans.status != http.StatusTooManyRequests || ans.header.Get("Retry-After") == "" {
		t.Fatalf("large publish past the bandwidth = %d (Retry-After %q), want 429 with Retry-After: %s",
			ans.status, ans.header.Get("Retry-After"), ans.body)
	}
	if p := ans.problem(t); !strings.Contains(p.Detail, "publish bandwidth") {
		t.Errorf("problem detail %q does not say which limit", p.Detail)
	}
	if ans := a.do(globex, "POST", "/v1/tenants/globex/events", big); ans.status != http.StatusAccepted {
		t.Errorf("globex's large publish while acme is limited = %d: %s", ans.status, ans.body)
	}
	c.add(time.Second)
	if ans := a.do(acme, "POST", "/v1/tenants/acme/events", big); ans.status != http.StatusAccepted {
		t.Errorf("large publish a second later = %d: %s", ans.status, ans.body)
	}
}
