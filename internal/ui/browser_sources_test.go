package ui_test

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// Sources managed in the dashboard: a GitHub and a Standard Webhooks source are created with the
// provider presets; the copy-paste test request each page shows, run by bash as a user would,
// is accepted (so it is signed right); an unsigned request is rejected and counted on Home beside
// the failed deliveries; rotating the token changes the ingest URL; disabling is asked first.
func TestBrowser_SourcesCreatedTestedRotatedDisabled(t *testing.T) {
	t.Parallel()
	browser := chromium(t)
	shots := screenshots(t)
	for _, tool := range []string{"bash", "curl", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the test request needs %s: %v", tool, err)
		}
	}
	n := startUINode(t)
	b := signedInTab(t, browser, n)
	setValue := func(sel, v string) {
		eval[bool](b, "set "+sel, `(() => { const e = document.querySelector(`+jsString(sel)+`); e.value = `+jsString(v)+`; e.dispatchEvent(new Event("change")); return true; })()`)
	}
	b.do("open the sources", chromedp.Click(chromedp.CSS(`a[data-nav="sources"]`)), chromedp.WaitVisible(chromedp.CSS("#source-form")))
	if got := eval[string](b, "the empty state", `document.querySelector("main p.empty").textContent`); !strings.Contains(got, "Add one below") {
		t.Errorf("the empty sources page says %q, want what to do next", got)
	}

	key := make([]byte, 32)
	_, _ = rand.Read(key)
	for _, c := range []struct{ provider, secret string }{
		{"github", "gh-secret-" + base64.RawURLEncoding.EncodeToString(key[:8])},
		{"standard_webhooks", "whsec_" + base64.StdEncoding.EncodeToString(key)},
	} {
		b.do("open the sources", chromedp.Navigate(n.URL()+"/ui/#/sources"), chromedp.WaitVisible(chromedp.CSS("#source-form")))
		setValue("#src-provider", c.provider)
		setValue("#src-secret", c.secret)
		b.do("create the "+c.provider+" source", chromedp.Click(chromedp.CSS("#src-submit")), chromedp.WaitVisible(chromedp.CSS("#test-request")))
		snippet := eval[string](b, "the test request", `document.querySelector("#test-request").textContent`)
		if !strings.Contains(snippet, c.secret) || !strings.Contains(snippet, n.URL()+"/in/") {
			t.Fatalf("the %s test request lacks the secret or the ingest URL:\n%s", c.provider, snippet)
		}
		out, err := exec.Command("bash", "-euo", "pipefail", "-c", snippet).CombinedOutput()
		if err != nil {
			t.Fatalf("run the %s test request: %v\n%s\n%s", c.provider, err, snippet, out)
		}
		b.do("show what arrived", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`tr[data-received]`)))
		if got := eval[string](b, "the received status", `document.querySelector("tr[data-received]").dataset.status`); got != "accepted" {
			t.Fatalf("the %s test request was %s, want accepted (answer %s)", c.provider, got, out)
		}
		if c.provider == "github" {
			b.shot(shots, "43-source-test-request")
		}
	}

	// An unsigned request to the last source is rejected: Home counts it.
	ingest := eval[string](b, "the ingest URL", `document.querySelector("#ingest-url").textContent`)
	resp, err := http.Post(ingest, "application/json", strings.NewReader(`{"type":"test.ping"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 400 {
		t.Fatalf("an unsigned request was answered %d", resp.StatusCode)
	}
	b.do("open the overview", chromedp.Click(chromedp.CSS(`a[data-nav="home"]`)), chromedp.WaitVisible(chromedp.CSS("#rejected-last-hour")))
	b.waitFor("one rejected request on Home", `document.querySelector("#rejected-last-hour .value").textContent === "1"`)

	b.do("back to the source", chromedp.NavigateBack(), chromedp.WaitVisible(chromedp.CSS("#rotate-source-token")))
	b.do("rotate the URL", chromedp.Click(chromedp.CSS("#rotate-source-token")), chromedp.WaitVisible(chromedp.CSS("#confirm-text")), chromedp.Click(chromedp.CSS("#confirm-ok")))
	b.waitFor("a new ingest URL", `document.querySelector("#ingest-url") && document.querySelector("#ingest-url").textContent !== `+jsString(ingest))
	b.do("disable the source", chromedp.Click(chromedp.CSS("#toggle-source")), chromedp.WaitVisible(chromedp.CSS("#confirm-text")), chromedp.Click(chromedp.CSS("#confirm-ok")))
	b.waitFor("the source shows disabled", `document.querySelector("#toggle-source") && document.querySelector("#toggle-source").textContent === "Enable"`)
	var list struct {
		Data []struct {
			Enabled bool `json:"enabled"`
		} `json:"data"`
	}
	apiCall(t, n, 200, "GET", "/v1/tenants/acme/sources", nil, &list)
	if len(list.Data) != 2 || list.Data[0].Enabled == list.Data[1].Enabled {
		t.Fatalf("sources after the dashboard: %+v, want two, one disabled", list.Data)
	}
}
