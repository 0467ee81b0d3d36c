package ui_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The endpoint form offers the body format: a browser creates a CloudEvents (binary) webhook
// endpoint, its page shows the format, and the edit form changes it to structured.
func TestBrowser_EndpointFormatThroughTheForm(t *testing.T) {
	t.Parallel()
	browser := chromium(t)
	shots := screenshots(t)
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(rc.Close)
	n := startUINode(t)

	b := signedInTab(t, browser, n)
	b.do("open the endpoints", chromedp.Click(chromedp.CSS(`a[data-nav="endpoints"]`)), chromedp.WaitVisible(chromedp.CSS("#new-endpoint-format")))
	if got := eval[string](b, "the formats", `[...document.querySelectorAll("#new-endpoint-format option")].map((o) => o.value).join(",")`); got != "herald,cloudevents-structured,cloudevents-binary" {
		t.Fatalf("the format selector offers %q", got)
	}
	eval[bool](b, "choose binary", `(() => { const s = document.querySelector("#new-endpoint-format"); s.value = "cloudevents-binary"; return true; })()`)
	b.do("create the endpoint", chromedp.SendKeys(chromedp.CSS("#new-endpoint-url"), rc.URL+"/ce"),
		chromedp.Click(chromedp.CSS("#new-endpoint-submit")), chromedp.WaitVisible(chromedp.CSS("#endpoint-format")))
	if got := eval[string](b, "the page's format", `document.querySelector("#endpoint-format").textContent`); got != "cloudevents-binary" {
		t.Errorf("the endpoint page shows format %q", got)
	}
	var eps struct {
		Data []struct {
			ID     string `json:"id"`
			Format string `json:"format"`
		} `json:"data"`
	}
	apiCall(t, n, 200, "GET", "/v1/tenants/acme/endpoints", nil, &eps)
	if len(eps.Data) != 1 || eps.Data[0].Format != "cloudevents-binary" {
		t.Fatalf("endpoints after the form: %+v", eps.Data)
	}
	sctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	img, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	cancel()
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(filepath.Join(shots, "20-endpoint-format.png"), img, 0o644); err != nil {
		t.Fatal(err)
	}

	b.do("open the edit form", chromedp.Click(chromedp.CSS("#edit-destination summary")), chromedp.WaitVisible(chromedp.CSS("#edit-endpoint-format")))
	eval[bool](b, "choose structured", `(() => { const s = document.querySelector("#edit-endpoint-format"); s.value = "cloudevents-structured"; return true; })()`)
	b.do("save", chromedp.Click(chromedp.CSS("#edit-endpoint-submit")))
	b.waitFor("the page to show structured", `document.querySelector("#endpoint-format") && document.querySelector("#endpoint-format").textContent === "cloudevents-structured"`)
	apiCall(t, n, 200, "GET", "/v1/tenants/acme/endpoints", nil, &eps)
	if eps.Data[0].Format != "cloudevents-structured" || strings.TrimSpace(eps.Data[0].ID) == "" {
		t.Errorf("after the edit: %+v", eps.Data)
	}
}
