package ui_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heraldhq/herald/internal/dispatch"
	"github.com/heraldhq/herald/internal/node"
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
	bg := context.Background()
	n, err := node.Start(bg, node.Config{
		Addr: "127.0.0.1:0", DataDir: t.TempDir(), Dev: true, APIKey: adminKey, NoMetrics: true,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Dispatch: dispatch.Config{Rescan: time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(bg, 20*time.Second)
		defer cancel()
		if err := n.Close(ctx); err != nil {
			t.Errorf("close node: %v", err)
		}
	})
	apiCall(t, n, 201, "POST", "/v1/tenants", map[string]any{"id": "acme", "name": "Acme Inc"}, nil)
	apiCall(t, n, 201, "POST", "/v1/event-types", map[string]any{"name": "invoice.paid"}, nil)

	alloc, cancelAlloc := chromedp.NewExecAllocator(bg, chromedp.ExecPath(browser),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1000))
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(alloc)
	defer cancelTab()
	if err := chromedp.Do(ctx); err != nil { // starts Chromium under ctx, not a step's timeout
		t.Fatalf("start Chromium: %v", err)
	}
	b := tab{t: t, ctx: ctx}
	b.do("sign in", chromedp.Navigate(n.URL()+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#api-key")),
		chromedp.SendKeys(chromedp.CSS("#api-key"), adminKey), chromedp.Click(chromedp.CSS("#sign-in-submit")),
		chromedp.WaitVisible(chromedp.CSS(`a[data-nav="endpoints"]`)))
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
