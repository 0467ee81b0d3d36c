package httpsend

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/heraldhq/herald/internal/destination"
)

// HTTPClient, for requests made on an endpoint's behalf (an OAuth2 token), applies the
// endpoint's rules: the URL checks, the guard at dial time (a name resolving to a blocked
// address), no redirects followed; and Classify words its failures as Send would.
func TestHTTPClient_GuardedAndNoRedirects(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
	}))
	t.Cleanup(target.Close)
	var agent string
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		agent = r.Header.Get("User-Agent")
		http.Redirect(w, r, target.URL, http.StatusFound)
	}))
	t.Cleanup(redirector.Close)

	dev := New(devConfig())
	t.Cleanup(dev.Close)
	resp, err := dev.HTTPClient().Post(redirector.URL, "application/x-www-form-urlencoded", strings.NewReader("a=1"))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusFound || hits.Load() != 0 || agent != DefaultUserAgent {
		t.Fatalf("status %d, %d requests at the redirect's target, User-Agent %q; want the 302 itself and Herald's agent",
			resp.StatusCode, hits.Load(), agent)
	}

	u, _ := url.Parse(target.URL)
	production := New(Config{AllowHTTP: true, Resolver: staticResolver(map[string][]string{"token.example": {"127.0.0.1"}})})
	t.Cleanup(production.Close)
	httpsOnly := New(Config{})
	t.Cleanup(httpsOnly.Close)
	cases := []struct {
		name  string
		c     *Client
		url   string
		class destination.Class
		kind  string
	}{
		{"http where https only", httpsOnly, "http://token.example/token", destination.Permanent, destination.KindInvalidURL},
		{"blocked literal", production, target.URL, destination.Permanent, destination.KindBlocked},
		{"name resolving to a blocked address", production, "http://token.example:" + u.Port() + "/token", destination.Permanent, destination.KindBlocked},
		{"connection refused", dev, "http://127.0.0.1:1/token", destination.Retryable, destination.KindConnRefused},
	}
	for _, c := range cases {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, c.url, strings.NewReader("a=1"))
		resp, err := c.c.HTTPClient().Do(req)
		if err == nil {
			_ = resp.Body.Close()
			t.Errorf("%s: answered %d, want an error", c.name, resp.StatusCode)
			continue
		}
		if class, kind := Classify(err); class != c.class || kind != c.kind {
			t.Errorf("%s: %v classified %s %s, want %s %s", c.name, err, class, kind, c.class, c.kind)
		}
	}
	if hits.Load() != 0 {
		t.Fatal("a refused request reached the server")
	}
}
