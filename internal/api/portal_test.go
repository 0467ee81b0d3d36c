package api_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/api"
)

// clock is a settable clock for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type portalLink struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// token is the credential in a link's fragment.
func (l portalLink) token(t *testing.T) string {
	t.Helper()
	_, tok, ok := strings.Cut(l.URL, "/ui/#portal=")
	if !ok || !strings.HasPrefix(tok, api.PortalTokenPrefix) {
		t.Fatalf("portal URL %q does not carry a token in its fragment", l.URL)
	}
	return tok
}

// newPortalAPI starts the API with a portal key made of seed, and tenants acme and globex.
func newPortalAPI(t *testing.T, seed byte) (*testAPI, *clock) {
	t.Helper()
	c := &clock{t: time.Now().UTC()}
	key := make([]byte, 32)
	for i := range key {
		key[i] = seed + byte(i)
	}
	a := newTestAPI(t, api.Config{PortalKey: key, Now: c.now, PublicURL: "https://hooks.example.com"})
	a.tenantKey("acme")
	a.tenantKey("globex")
	return a, c
}

// A portal link opens one tenant's routes, with a tenant key's powers and no more, until it
// expires; the link's creation is audited without the token.
func TestPortalLink_ActsAsTenantKeyUntilExpiry(t *testing.T) {
	t.Parallel()
	a, c := newPortalAPI(t, 1)
	var link portalLink
	a.must(http.StatusCreated, "POST", "/v1/tenants/acme/portal-links", map[string]any{"expires_in_seconds": 600}, &link)
	if !strings.HasPrefix(link.URL, "https://hooks.example.com/ui/#portal=") {
		t.Fatalf("url = %q, want the public URL's dashboard with the token in the fragment", link.URL)
	}
	if d := link.ExpiresAt.Sub(c.now()); d < 599*time.Second || d > 600*time.Second {
		t.Fatalf("expires_at is %v from now, want 600 s", d)
	}
	tok := link.token(t)

	var me api.Caller
	if ans := a.do(tok, "GET", "/v1/me", nil); ans.status != 200 {
		t.Fatalf("GET /v1/me with the portal token = %d %s", ans.status, ans.body)
	} else if err := json.Unmarshal(ans.body, &me); err != nil {
		t.Fatal(err)
	}
	if me.Role != "tenant" || me.TenantID != "acme" || !me.Portal || me.KeyID != link.ID || me.ExpiresAt == nil || !me.ExpiresAt.Equal(link.ExpiresAt) {
		t.Fatalf("me = %+v, want tenant acme by portal link %s until %v", me, link.ID, link.ExpiresAt)
	}

	for _, c := range []struct {
		method, path string
		body         any
		want         int
	}{
		{"GET", "/v1/tenants/acme", nil, 200},
		{"GET", "/v1/tenants/acme/endpoints", nil, 200},
		{"GET", "/v1/tenants/acme/stats?since=1h", nil, 200},
		{"GET", "/v1/tenants/globex", nil, 404},
		{"GET", "/v1/tenants/globex/endpoints", nil, 404},
		{"POST", "/v1/tenants/globex/portal-links", map[string]any{}, 404},
		{"GET", "/v1/tenants", nil, 403},
		{"GET", "/v1/api-keys", nil, 403},
		{"POST", "/v1/api-keys", map[string]any{"role": "admin"}, 403},
		{"POST", "/v1/tenants/acme/portal-links", map[string]any{}, 403},
		{"PATCH", "/v1/tenants/acme", map[string]any{"name": "taken over"}, 403},
	} {
		ans := a.do(tok, c.method, c.path, c.body)
		if ans.status != c.want {
			t.Errorf("portal token: %s %s = %d, want %d: %.300s", c.method, c.path, ans.status, c.want, ans.body)
		}
		if c.want >= 400 {
			ans.problem(t)
		}
	}

	// A change made through the link is audited with the link as actor.
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "invoice.paid"}, nil)
	if ans := a.do(tok, "POST", "/v1/tenants/acme/endpoints", map[string]any{"url": "https://hooks.example.com/in", "event_types": []string{"*"}}); ans.status != 201 {
		t.Fatalf("create an endpoint through the portal = %d %s", ans.status, ans.body)
	}
	var audit struct {
		Data []api.AuditEntry `json:"data"`
	}
	a.must(200, "GET", "/v1/tenants/acme/audit", nil, &audit)
	var created, changed bool
	for _, e := range audit.Data {
		raw, _ := json.Marshal(e)
		if strings.Contains(string(raw), api.PortalTokenPrefix) {
			t.Errorf("audit entry %s holds a portal token: %s", e.Action, raw)
		}
		switch {
		case e.Action == "portal_link.create" && e.Resource.ID == link.ID && e.Actor.Role == "admin":
			created = true
		case e.Action == "endpoint.create" && e.Actor.KeyID == link.ID && e.Actor.Role == "tenant" && e.Actor.TenantID == "acme":
			changed = true
		}
	}
	if !created || !changed {
		t.Fatalf("audit log lacks the link's creation (%v) or the change made through it (%v): %+v", created, changed, audit.Data)
	}

	// Expiry is checked on every request.
	c.add(601 * time.Second)
	ans := a.do(tok, "GET", "/v1/tenants/acme", nil)
	if ans.status != 401 || ans.header.Get("WWW-Authenticate") == "" {
		t.Fatalf("expired portal token = %d %s, want 401 with WWW-Authenticate", ans.status, ans.body)
	}
	ans.problem(t)
}

// A token is only as good as its signature: changed claims, another server's key, truncation
// and garbage are all refused with 401.
func TestPortalLink_ForgedTokensAreRefused(t *testing.T) {
	t.Parallel()
	a, _ := newPortalAPI(t, 1)
	var link portalLink
	a.must(http.StatusCreated, "POST", "/v1/tenants/acme/portal-links", nil, &link)
	tok := link.token(t)
	body, sig, _ := strings.Cut(tok, ".")
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(body, api.PortalTokenPrefix))
	if err != nil {
		t.Fatal(err)
	}
	retarget := api.PortalTokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"acme"`, `"globex"`, 1))) + "." + sig

	other, _ := newPortalAPI(t, 2) // another server, another key
	other.must(http.StatusCreated, "POST", "/v1/tenants/acme/portal-links", nil, &link)
	foreign := link.token(t)

	for name, forged := range map[string]string{
		"another tenant in the claims": retarget,
		"another server's link":        foreign,
		"no signature":                 body,
		"empty signature":              body + ".",
		"bad base64":                   api.PortalTokenPrefix + "!!!." + sig,
		"prefix only":                  api.PortalTokenPrefix,
	} {
		ans := a.do(forged, "GET", "/v1/tenants/acme", nil)
		if ans.status != 401 {
			t.Errorf("%s: %d %.200s, want 401", name, ans.status, ans.body)
			continue
		}
		ans.problem(t)
	}
	if ans := a.do(retarget, "GET", "/v1/tenants/globex", nil); ans.status != 401 {
		t.Fatalf("retargeted token on its new tenant = %d, want 401", ans.status)
	}
}

func TestPortalLink_Validation(t *testing.T) {
	t.Parallel()
	a, c := newPortalAPI(t, 1)
	var link portalLink
	a.must(http.StatusCreated, "POST", "/v1/tenants/acme/portal-links", nil, &link)
	if d := link.ExpiresAt.Sub(c.now()); d < 3599*time.Second || d > 3600*time.Second {
		t.Fatalf("default lifetime is %v, want 1 h", d)
	}
	for _, body := range []map[string]any{{"expires_in_seconds": 86401}, {"expires_in_seconds": 10}, {"expires_in": 60}} {
		ans := a.do(a.admin, "POST", "/v1/tenants/acme/portal-links", body)
		if ans.status != 422 {
			t.Errorf("body %v = %d, want 422", body, ans.status)
			continue
		}
		ans.problem(t)
	}
	if ans := a.do(a.admin, "POST", "/v1/tenants/nope/portal-links", nil); ans.status != 404 {
		t.Errorf("unknown tenant = %d, want 404", ans.status)
	}
	tenant := a.tenantKey("initech")
	if ans := a.do(tenant, "POST", "/v1/tenants/initech/portal-links", nil); ans.status != 403 {
		t.Errorf("tenant key = %d, want 403", ans.status)
	}

	// Without a key the route exists but answers 503, and no portal token is accepted.
	plain := newTestAPI(t, api.Config{})
	plain.must(http.StatusCreated, "POST", "/v1/tenants", map[string]any{"id": "acme", "name": "Acme"}, nil)
	if ans := plain.do(plain.admin, "POST", "/v1/tenants/acme/portal-links", nil); ans.status != 503 {
		t.Errorf("no portal key: create = %d, want 503", ans.status)
	}
	if ans := plain.do(link.token(t), "GET", "/v1/tenants/acme", nil); ans.status != 401 {
		t.Errorf("no portal key: a token = %d, want 401", ans.status)
	}
}
