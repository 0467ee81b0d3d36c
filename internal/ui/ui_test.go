package ui_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/ui"
)

func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	h, err := ui.New(ui.Config{Version: "1.2.3-test"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, srv *httptest.Server, method, path string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// Every answer carries the strict policy; the page loads its code from this origin only and has
// no inline script or style to allow.
func TestHandler_ServesThePageUnderAStrictPolicy(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	for _, path := range []string{"/ui/", "/ui/static/app.js", "/ui/static/app.css", "/ui/nope"} {
		resp, _ := get(t, srv, "GET", path)
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "connect-src 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: Content-Security-Policy %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") {
			t.Errorf("%s: Content-Security-Policy %q allows unsafe code", path, csp)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: missing nosniff or no-referrer: %v", path, resp.Header)
		}
	}

	resp, body := get(t, srv, "GET", "/ui/")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET /ui/ = %d %v", resp.StatusCode, resp.Header)
	}
	if !strings.Contains(body, "Herald 1.2.3-test") {
		t.Errorf("the page does not show the version")
	}
	scripts := regexp.MustCompile(`<script[^>]*>`).FindAllString(body, -1)
	if len(scripts) != 1 || !regexp.MustCompile(`src="/ui/static/app\.js\?v=[0-9a-f]{12}"`).MatchString(scripts[0]) {
		t.Errorf("scripts = %q, want only app.js from this origin, with a version hash", scripts)
	}
	if regexp.MustCompile(`(?i)\son[a-z]+=|style=`).MatchString(body) {
		t.Errorf("the page has inline event handlers or styles, which the policy would block")
	}

	for path, ct := range map[string]string{"/ui/static/app.js": "text/javascript", "/ui/static/app.css": "text/css"} {
		resp, body := get(t, srv, "GET", path+"?v=1")
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), ct) || len(body) < 100 {
			t.Errorf("GET %s = %d %q (%d bytes)", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
		if !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
			t.Errorf("GET %s with a version: Cache-Control %q, want immutable", path, resp.Header.Get("Cache-Control"))
		}
	}
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/ui/nope", 404},
		{"GET", "/ui/static/", 404},
		{"GET", "/ui/static/nope.js", 404},
		{"GET", "/ui/templates/index.html", 404},
		{"POST", "/ui/", 405},
	} {
		if resp, _ := get(t, srv, c.method, c.path); resp.StatusCode != c.want {
			t.Errorf("%s %s = %d, want %d", c.method, c.path, resp.StatusCode, c.want)
		}
	}
}

// The script builds the page with DOM methods: data from the API (payloads, receivers' answers)
// must never be parsed as markup.
func TestAppJS_NeverParsesDataAsMarkup(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	_, js := get(t, srv, "GET", "/ui/static/app.js")
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "localStorage"} {
		if strings.Contains(js, bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
}
