package node_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/node"
)

// loopbackOnlyInternal starts a node in production mode (the SSRF guard on) whose operator opened
// 127.0.0.0/8 to internal endpoints only, with mod applied after.
func loopbackOnlyInternal(t *testing.T, mod func(*node.Config)) *harness {
	return start(t, func(c *node.Config) {
		c.Dev = false
		c.InternalCIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		if mod != nil {
			mod(c)
		}
	})
}

// tenantKey creates an API key of the tenant.
func (h *harness) tenantKey(tenant string) string {
	h.t.Helper()
	var key struct {
		Key string `json:"key"`
	}
	h.must(201, "POST", "/v1/api-keys", map[string]any{"role": "tenant", "tenant_id": tenant, "name": tenant + "'s key"}, &key)
	return key.Key
}

// The ranges --internal-cidr opens are reachable by endpoints an admin marked internal, over
// plain http, and by no other endpoint; only admin keys may mark one.
func TestInternalEndpoints_OnlyMarkedEndpointsReachInternalRanges(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, nil) // http://127.0.0.1:port
	h := loopbackOnlyInternal(t, nil)
	h.setup("acme", "a.happened")
	url := rc.URL + "/hook"

	var ep struct {
		ID       string `json:"id"`
		Internal bool   `json:"internal"`
	}
	h.must(201, "POST", "/v1/tenants/acme/endpoints", map[string]any{"url": url, "event_types": []string{"*"}, "internal": true}, &ep)
	if !ep.Internal {
		t.Fatalf("the created endpoint does not say internal: %+v", ep)
	}
	p := h.publish("acme", map[string]any{"type": "a.happened", "data": map[string]any{"n": 1}})
	eventually(t, 20*time.Second, "the internal endpoint to get the event", func() bool {
		ds := h.deliveries("/v1/tenants/acme/events/" + p.ID + "/deliveries")
		return len(ds) == 1 && ds[0].State == "succeeded"
	})
	if got := rc.got(); len(got) != 1 || !strings.Contains(string(got[0].body), p.ID) {
		t.Fatalf("the receiver got %d requests, want the event %s", len(got), p.ID)
	}

	// The same URL for an endpoint not marked internal is refused, as in production mode.
	body := `{"url":"` + url + `","event_types":["*"]}`
	if s, _, pr := h.raw(adminKey, "POST", "/v1/tenants/acme/endpoints", body); s != 422 || !pr.has("body.url") {
		t.Errorf("a non-internal endpoint on loopback: %d %+v, want 422 at body.url", s, pr)
	}
	// Internal opens --internal-cidr, not the rest of the private address space.
	for _, u := range []string{"http://10.0.0.1/hook", "http://169.254.169.254/latest", "https://[::1]/hook", "http://192.168.1.1/"} {
		body := `{"url":"` + u + `","event_types":["*"],"internal":true}`
		if s, _, pr := h.raw(adminKey, "POST", "/v1/tenants/acme/endpoints", body); s != 422 || !pr.has("body.url") {
			t.Errorf("an internal endpoint at %s: %d %+v, want 422 at body.url", u, s, pr)
		}
	}
	// Turning the flag off while the URL needs it is refused too.
	if s, _, pr := h.raw(adminKey, "PATCH", "/v1/tenants/acme/endpoints/"+ep.ID, `{"internal":false}`); s != 422 || !pr.has("body.internal") {
		t.Errorf("turning internal off on a loopback URL: %d %+v, want 422 at body.internal", s, pr)
	}

	// A tenant key may not mark an endpoint internal, nor move an internal one elsewhere.
	key := h.tenantKey("acme")
	for _, c := range []struct {
		name, method, path, body, location string
	}{
		{"create internal", "POST", "/v1/tenants/acme/endpoints", `{"url":"` + url + `","event_types":["*"],"internal":true}`, "body.internal"},
		{"create internal at a public URL", "POST", "/v1/tenants/acme/endpoints", `{"url":"https://example.com/hook","event_types":["*"],"internal":true}`, "body.internal"},
		{"move an internal endpoint", "PATCH", "/v1/tenants/acme/endpoints/" + ep.ID, `{"url":"http://127.0.0.1:1/other"}`, "body.url"},
	} {
		if s, _, pr := h.raw(key, c.method, c.path, c.body); s != 403 || !pr.has(c.location) {
			t.Errorf("tenant key, %s: %d %+v, want 403 at %s", c.name, s, pr, c.location)
		}
	}
	var plain struct {
		ID string `json:"id"`
	}
	if s := h.callAs(key, "POST", "/v1/tenants/acme/endpoints", map[string]any{"url": "https://example.com/hook", "event_types": []string{"*"}}, &plain); s != 201 {
		t.Fatalf("tenant key, ordinary endpoint: %d", s)
	}
	if s, _, pr := h.raw(key, "PATCH", "/v1/tenants/acme/endpoints/"+plain.ID, `{"internal":true}`); s != 403 || !pr.has("body.internal") {
		t.Errorf("tenant key, marking an endpoint internal: %d %+v, want 403 at body.internal", s, pr)
	}
	// Other changes of an internal endpoint stay the tenant's.
	if s, _, pr := h.raw(key, "PATCH", "/v1/tenants/acme/endpoints/"+ep.ID, `{"description":"ours","internal":true}`); s != 200 {
		t.Errorf("tenant key, describing an internal endpoint: %d %+v", s, pr)
	}

	// The audit log shows who marked it.
	entries := h.auditAs(adminKey, "/v1/audit?resource_type=endpoint&action=endpoint.create").Data
	var marked bool
	for _, e := range entries {
		var after struct {
			ID       string `json:"id"`
			Internal bool   `json:"internal"`
		}
		if err := json.Unmarshal(e.After, &after); err != nil {
			t.Fatal(err)
		}
		if after.ID == ep.ID {
			marked = after.Internal && e.Actor.Role == "admin"
		}
	}
	if !marked {
		t.Errorf("no endpoint.create entry by an admin shows %s internal: %+v", ep.ID, entries)
	}
}

// An endpoint whose flag is turned off after creation is sent with the ordinary client, whose
// guard refuses the internal address at dial time: the attempt fails as blocked and nothing
// reaches the receiver. A host name passes registration either way (names are checked when
// dialled), so only the dial-time guard stands in the way.
func TestInternalEndpoints_FlagTurnedOffIsBlockedAtDial(t *testing.T) {
	t.Parallel()
	const host = "hooks.internal.test"
	ca := newTestCA(t)
	var hits atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.leaf(t, host, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	port := srv.URL[strings.LastIndexByte(srv.URL, ':')+1:]

	h := loopbackOnlyInternal(t, func(c *node.Config) {
		c.HTTPSend.TLSConfig = &tls.Config{RootCAs: ca.pool}
		c.HTTPSend.Resolver = resolveTo(host, netip.MustParseAddr("127.0.0.1"))
	})
	h.setup("acme", "a.happened")
	var ep struct {
		ID string `json:"id"`
	}
	h.must(201, "POST", "/v1/tenants/acme/endpoints", map[string]any{
		"url": "https://" + host + ":" + port + "/hook", "event_types": []string{"*"}, "internal": true, "retry_schedule": []int{0, 1},
	}, &ep)
	first := h.publish("acme", map[string]any{"type": "a.happened", "data": map[string]any{"n": 1}})
	eventually(t, 20*time.Second, "delivery while internal", func() bool {
		ds := h.deliveries("/v1/tenants/acme/events/" + first.ID + "/deliveries")
		return len(ds) == 1 && ds[0].State == "succeeded"
	})
	if hits.Load() != 1 {
		t.Fatalf("the receiver got %d requests while internal, want 1", hits.Load())
	}

	h.must(200, "PATCH", "/v1/tenants/acme/endpoints/"+ep.ID, map[string]any{"internal": false}, nil)
	second := h.publish("acme", map[string]any{"type": "a.happened", "data": map[string]any{"n": 2}})
	// The schedule allows two attempts; both must be refused before any connection is made.
	eventually(t, 20*time.Second, "the delivery to run out of attempts", func() bool {
		ds := h.deliveries("/v1/tenants/acme/events/" + second.ID + "/deliveries")
		return len(ds) == 1 && ds[0].State == "dead"
	})
	var atts struct {
		Data []attemptOut `json:"data"`
	}
	h.must(200, "GET", "/v1/tenants/acme/attempts?event_id="+second.ID, nil, &atts)
	if len(atts.Data) == 0 {
		t.Fatal("no attempt recorded after the flag went off")
	}
	for _, a := range atts.Data {
		// "resolves to" is the dial-time guard's message: registration never resolves names.
		if a.ErrorKind != "blocked_destination" || !strings.Contains(a.Error, "resolves to 127.0.0.1") || a.StatusCode != 0 {
			t.Errorf("attempt after the flag went off: %+v, want blocked_destination at dial, without a status", a)
		}
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("the receiver got %d requests in all, want only the one from before", n)
	}
}

// resolveTo resolves name to addr, and every other name to nothing.
type resolveToFunc func(ctx context.Context, network, host string) ([]netip.Addr, error)

func (f resolveToFunc) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return f(ctx, network, host)
}

func resolveTo(name string, addr netip.Addr) resolveToFunc {
	return func(_ context.Context, _, host string) ([]netip.Addr, error) {
		if host == name {
			return []netip.Addr{addr}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
}
