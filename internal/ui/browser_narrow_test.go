package ui_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The server's root redirects to the dashboard (a browser pointed at the address lands there).
func TestRoot_RedirectsToTheDashboard(t *testing.T) {
	t.Parallel()
	n := startUINode(t)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(n.URL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/ui/" {
		t.Fatalf("GET / = %d to %q, want 302 to /ui/", resp.StatusCode, resp.Header.Get("Location"))
	}

}

// On a phone (390 px wide) no page of the dashboard scrolls sideways: wide tables scroll in their
// own box. The dashboard, opened from the server's root, has a favicon.
func TestBrowser_WorksAt390PixelsWide(t *testing.T) {
	t.Parallel()
	browser := chromium(t)
	shots := screenshots(t)
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"a rather long error message from the receiver, to be shown in a narrow table cell"}`, http.StatusBadGateway)
	}))
	t.Cleanup(rc.Close)
	n := startUINode(t)

	apiCall(t, n, 201, "POST", "/v1/event-types", map[string]any{"name": "invoice.paid", "description": "An invoice was paid."}, nil)
	var ep endpointAnswer
	apiCall(t, n, 201, "POST", "/v1/tenants/acme/endpoints", map[string]any{"url": rc.URL + "/a/rather/long/path/for/the/webhooks/of/the/billing/service",
		"event_types": []string{"invoice.paid"}, "description": "Billing service", "retry_schedule": []int{0}}, &ep)
	apiCall(t, n, 202, "POST", "/v1/tenants/acme/events", map[string]any{"id": "inv-narrow-1", "type": "invoice.paid", "data": map[string]any{"invoice": "in_1"}}, nil)
	var src struct {
		ID string `json:"id"`
	}
	apiCall(t, n, 201, "POST", "/v1/tenants/acme/sources", map[string]any{"name": "github-main", "verification": map[string]any{"scheme": "github", "secrets": []string{"s3cret"}}}, &src)
	var dead struct {
		Data []delivery `json:"data"`
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(dead.Data) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the delivery did not die within 20 s")
		}
		time.Sleep(100 * time.Millisecond)
		apiCall(t, n, 200, "GET", "/v1/tenants/acme/deliveries?state=dead", nil, &dead)
	}

	b := newTab(t, browser, 390, 844)
	b.do("emulate a phone", chromedp.EmulateViewport(390, 844))
	b.do("sign in from the root", chromedp.Navigate(n.URL()+"/"), chromedp.WaitVisible(chromedp.CSS("#api-key")),
		chromedp.SendKeys(chromedp.CSS("#api-key"), adminKey), chromedp.Click(chromedp.CSS("#sign-in-submit")),
		chromedp.WaitVisible(chromedp.CSS("#failed-last-hour")))
	if got := eval[string](b, "the favicon", `(document.querySelector('link[rel="icon"]') || {}).href || ""`); !strings.HasSuffix(got, "/ui/static/favicon.svg") {
		t.Errorf("the page's icon is %q", got)
	}
	icon, err := http.Get(n.URL() + "/ui/static/favicon.svg")
	if err != nil {
		t.Fatal(err)
	}
	icon.Body.Close()
	if icon.StatusCode != 200 || icon.Header.Get("Content-Type") != "image/svg+xml" {
		t.Errorf("the favicon is served %d %q", icon.StatusCode, icon.Header.Get("Content-Type"))
	}

	for _, p := range []struct{ hash, ready string }{
		{"#/home", "#failed-last-hour"},
		{"#/endpoints", `tr[data-endpoint]`},
		{"#/endpoints/" + ep.ID, "#replay-endpoint-dead"},
		{"#/deliveries", "tr[data-delivery]"},
		{"#/deliveries/" + dead.Data[0].ID, "section.delivery"},
		{"#/failures", "tr.failure-group"},
		{"#/dead", "tr[data-delivery]"},
		{"#/events", "main table"},
		{"#/events/inv-narrow-1", "#payload"},
		{"#/event-types", "main table"},
		{"#/sources", "tr[data-source]"},
		{"#/sources/" + src.ID, "#test-request"},
		{"#/broker-sources", "main h2"},
	} {
		b.do("open "+p.hash, chromedp.Navigate(n.URL()+"/ui/"+p.hash), chromedp.WaitVisible(chromedp.CSS(p.ready)))
		b.waitFor(p.hash+" rendered", `!document.querySelector("main").classList.contains("loading")`)
		sizes := eval[[]int](b, "the page's widths", `[document.scrollingElement.scrollWidth, document.scrollingElement.clientWidth]`)
		if sizes[0] > sizes[1] {
			wide := eval[string](b, "what is too wide", `[...document.querySelectorAll("body *")].filter((e) => e.getBoundingClientRect().right > document.scrollingElement.clientWidth + 1 && !e.closest(".table-box")).slice(0, 5).map((e) => e.tagName + "." + e.className + "#" + e.id).join(", ")`)
			t.Errorf("%s scrolls sideways at 390 px: scrollWidth %d > clientWidth %d (too wide: %s)", p.hash, sizes[0], sizes[1], wide)
		}
		if p.hash == "#/failures" {
			b.shot(shots, "44-phone-what-is-failing")
		}
	}
}
