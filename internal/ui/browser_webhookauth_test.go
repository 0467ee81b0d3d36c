package ui_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The endpoint form offers a webhook's own settings (authentication, client certificate,
// proxy), folded away: a browser creates a webhook endpoint with a bearer token, the token is
// set but never shown, and the receiver gets it with the delivery.
func TestBrowser_WebhookAuthThroughTheForm(t *testing.T) {
	t.Parallel()
	browser := chromium(t)
	var mu sync.Mutex
	var auths []string
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	n := startUINode(t)
	apiCall(t, n, 201, "POST", "/v1/event-types", map[string]any{"name": "invoice.paid"}, nil)

	b := signedInTab(t, browser, n)
	b.do("open the endpoints", chromedp.Click(chromedp.CSS(`a[data-nav="endpoints"]`)), chromedp.WaitVisible(chromedp.CSS("#new-endpoint-url")))
	if eval[bool](b, "settings folded", `document.querySelector("#new-endpoint-settings").open`) {
		t.Error("a new webhook endpoint's settings are unfolded")
	}
	b.do("unfold the settings", chromedp.Click(chromedp.CSS("#new-endpoint-settings summary")), chromedp.WaitVisible(chromedp.CSS("#new-cfg-auth")))
	if got := eval[string](b, "the PEM field", `document.querySelector("#new-cfg-tls_client_certificate").tagName`); got != "TEXTAREA" {
		t.Errorf("the client certificate is entered in a %s, want a text area", got)
	}
	eval[bool](b, "choose bearer", `(() => { const s = document.querySelector("#new-cfg-auth"); s.value = "bearer"; return true; })()`)
	const token = "tok_browser_0123456789abcdef"
	b.do("create the endpoint", chromedp.SendKeys(chromedp.CSS("#new-cfg-bearer_token"), token),
		chromedp.SendKeys(chromedp.CSS("#new-endpoint-url"), rc.URL+"/hook"),
		chromedp.Click(chromedp.CSS("#new-endpoint-submit")), chromedp.WaitVisible(chromedp.CSS("#credentials")))
	if got := eval[string](b, "the credentials row", `document.querySelector("#credentials").textContent`); got != "bearer_token: set" {
		t.Errorf("the endpoint page shows credentials %q", got)
	}
	if eval[bool](b, "the token on the page", `document.body.innerHTML.includes("`+token+`")`) {
		t.Error("the endpoint page shows the token")
	}
	var eps struct {
		Data []struct {
			Config        map[string]any `json:"config"`
			ConfigSecrets []string       `json:"config_secrets"`
		} `json:"data"`
	}
	apiCall(t, n, 200, "GET", "/v1/tenants/acme/endpoints", nil, &eps)
	if len(eps.Data) != 1 || eps.Data[0].Config["auth"] != "bearer" || !slices.Contains(eps.Data[0].ConfigSecrets, "bearer_token") {
		t.Fatalf("endpoints after the form: %+v", eps.Data)
	}
	if _, ok := eps.Data[0].Config["oauth2_auth_style"]; ok {
		t.Errorf("the form sent another scheme's default: %+v", eps.Data[0].Config)
	}
	apiCall(t, n, 202, "POST", "/v1/tenants/acme/events", map[string]any{"type": "invoice.paid", "data": map[string]any{"n": 1}}, nil)
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		got := slices.Clone(auths)
		mu.Unlock()
		if len(got) > 0 {
			if got[0] != "Bearer "+token {
				t.Errorf("the receiver got Authorization %q", got[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no delivery reached the receiver")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
