package ui_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heraldhq/herald/internal/dispatch"
	"github.com/heraldhq/herald/internal/node"
)

// The endpoint form offers the body format: a browser creates a CloudEvents (binary) webhook
// endpoint, its page shows the format, and the edit form changes it to structured.
func TestBrowser_EndpointFormatThroughTheForm(t *testing.T) {
	t.Parallel()
	browser := chromium(t)
	shots := screenshots(t)
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
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
