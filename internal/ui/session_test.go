package ui_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heraldhq/herald/internal/dispatch"
	"github.com/heraldhq/herald/internal/node"
)

// startUINode starts a node in dev mode with the admin key and a tenant "acme", closed when the
// test ends.
func startUINode(t *testing.T) *node.Node {
	t.Helper()
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
	return n
}

// newTab starts Chromium (browser) for the test with a window width × height; the browser stops
// when the test ends.
func newTab(t *testing.T, browser string, width, height int) tab {
	t.Helper()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), chromedp.ExecPath(browser),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(width, height))
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(alloc)
	t.Cleanup(cancelTab)
	if err := chromedp.Do(ctx); err != nil { // starts Chromium under ctx, not a step's timeout
		t.Fatalf("start Chromium: %v", err)
	}
	return tab{t: t, ctx: ctx}
}

// signedInTab starts Chromium (browser) for the test and signs in to n's dashboard with the
// admin key; the browser stops when the test ends.
func signedInTab(t *testing.T, browser string, n *node.Node) tab {
	t.Helper()
	b := newTab(t, browser, 1280, 1000)
	b.do("sign in", chromedp.Navigate(n.URL()+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#api-key")),
		chromedp.SendKeys(chromedp.CSS("#api-key"), adminKey), chromedp.Click(chromedp.CSS("#sign-in-submit")),
		chromedp.WaitVisible(chromedp.CSS(`a[data-nav="endpoints"]`)))
	return b
}

// portalTab opens a portal link of tenant in a new browser (width × height), as the tenant's
// user would, and waits for its overview.
func portalTab(t *testing.T, browser string, n *node.Node, tenant string, width, height int) tab {
	t.Helper()
	var link struct {
		URL string `json:"url"`
	}
	apiCall(t, n, 201, "POST", "/v1/tenants/"+tenant+"/portal-links", map[string]any{"expires_in_seconds": 600}, &link)
	b := newTab(t, browser, width, height)
	b.do("open the portal link", chromedp.Navigate(link.URL), chromedp.WaitVisible(chromedp.CSS(`a[data-nav="endpoints"]`)))
	return b
}

// shot saves a full-page screenshot of the tab as name.png in dir.
func (b tab) shot(dir, name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	img, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), img, 0o644); err != nil {
		b.t.Fatal(err)
	}
}
