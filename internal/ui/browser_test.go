package ui_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heraldhq/herald/internal/dispatch"
	"github.com/heraldhq/herald/internal/node"
)

const adminKey = "hk_admin_browser-test-key-0123456789"

// chromium finds the browser: /usr/bin/chromium (Debian's package), else one on PATH. The test
// skips without one, unless HERALD_REQUIRE_BROWSER is set (CI sets it), when it fails instead.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("HERALD_REQUIRE_BROWSER") != "" {
		t.Fatal("no Chromium found and HERALD_REQUIRE_BROWSER is set: apt-get install chromium")
	}
	t.Skip("no Chromium found (apt-get install chromium); set HERALD_REQUIRE_BROWSER=1 to fail instead")
	return ""
}

// screenshots is where the test saves its screenshots: HERALD_UI_SCREENSHOTS, or a temporary
// directory.
func screenshots(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("HERALD_UI_SCREENSHOTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// apiCall makes an admin API request to the node and decodes the answer into out.
func apiCall(t *testing.T, n *node.Node, want int, method, path string, body, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, n.URL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminKey)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s = %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
	}
}

type delivery struct {
	ID    string `json:"id"`
	State string `json:"state"`
}

// A real browser signs in with an admin key, reads the overview (one failed delivery in the last
// hour), finds the dead delivery in the dead-letter view, replays it after the receiver is fixed,
// and sees it succeed; a portal link then opens the same UI limited to the tenant. Screenshots
// of each step are saved (see screenshots).
func TestBrowser_SignInFindDeadDeliveryReplayIt(t *testing.T) {
	t.Parallel()
	browser := chromium(t)
	shots := screenshots(t)

	var healthy atomic.Bool
	var received atomic.Int32
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received.Add(1)
		if !healthy.Load() {
			http.Error(w, `{"error":"database is down"}`, http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(rc.Close)

	n, err := node.Start(context.Background(), node.Config{
		Addr: "127.0.0.1:0", DataDir: t.TempDir(), Dev: true, APIKey: adminKey, NoMetrics: true,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Dispatch: dispatch.Config{Rescan: time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := n.Close(ctx); err != nil {
			t.Errorf("close node: %v", err)
		}
	})

	apiCall(t, n, 201, "POST", "/v1/tenants", map[string]any{"id": "acme", "name": "Acme Inc"}, nil)
	apiCall(t, n, 201, "POST", "/v1/tenants", map[string]any{"id": "globex", "name": "Globex"}, nil)
	apiCall(t, n, 201, "POST", "/v1/event-types", map[string]any{"name": "invoice.paid", "description": "An invoice was paid in full."}, nil)
	// A version transition: v2 beside v1, v1 deprecated with a sunset date.
	apiCall(t, n, 201, "POST", "/v1/event-types", map[string]any{"name": "invoice.paid.v2", "description": "An invoice was paid (amounts in minor units).",
		"trigger": "The last payment of an invoice settled."}, nil)
	apiCall(t, n, 200, "PATCH", "/v1/event-types/invoice.paid", map[string]any{"deprecated": true, "sunset": "2027-03-01"}, nil)
	var ep struct {
		ID string `json:"id"`
	}
	// One attempt, then dead: the receiver's failure dead-letters the delivery at once.
	apiCall(t, n, 201, "POST", "/v1/tenants/acme/endpoints", map[string]any{
		"url": rc.URL + "/webhooks", "event_types": []string{"invoice.*"}, "retry_schedule": []int{0}, "description": "Acme billing service",
		"filter": `data.amount > 100`,
	}, &ep)
	apiCall(t, n, 202, "POST", "/v1/tenants/acme/events", map[string]any{
		"id": "inv_1001-paid", "type": "invoice.paid", "data": map[string]any{"invoice": "in_1001", "amount": 12000, "currency": "eur"},
		"resource": map[string]any{"id": "in_1001", "type": "invoice"},
	}, nil)
	var dead delivery
	deadline := time.Now().Add(15 * time.Second)
	for {
		var page struct {
			Data []delivery `json:"data"`
		}
		apiCall(t, n, 200, "GET", "/v1/tenants/acme/deliveries?state=dead", nil, &page)
		if len(page.Data) == 1 {
			dead = page.Data[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the delivery did not go dead within 15 s")
		}
		time.Sleep(100 * time.Millisecond)
	}

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(browser),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(alloc)
	defer cancelTab()
	// The first Run starts the browser, which lives as long as ctx: bound the steps separately.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	step := func(ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// text reads an element's text in one evaluation: pages re-render (a pending delivery
	// refreshes its page), so a node found by one query may be gone by the next.
	text := func(ctx context.Context, sel string) string {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
			t.Fatalf("wait for %s: %v", sel, err)
		}
		js, _ := json.Marshal(sel)
		s, err := chromedp.Run(sctx, chromedp.Evaluate[string](`(document.querySelector(`+string(js)+`) || {}).innerText || ""`))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	shot := func(ctx context.Context, name string) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Sign in.
	step(ctx, "open the sign-in page", chromedp.Navigate(n.URL()+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#api-key")))
	shot(ctx, "01-sign-in")
	// The page never reloads from here on: collect what the policy blocks and what throws.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.problems = [];
		document.addEventListener("securitypolicyviolation", (e) => window.problems.push("CSP blocked " + e.violatedDirective + " " + e.blockedURI));
		window.addEventListener("error", (e) => window.problems.push("error: " + e.message));
		window.addEventListener("unhandledrejection", (e) => window.problems.push("unhandled: " + e.reason));
		true`)); err != nil {
		t.Fatal(err)
	}
	step(ctx, "sign in", chromedp.SendKeys(chromedp.CSS("#api-key"), adminKey), chromedp.Click(chromedp.CSS("#sign-in-submit")),
		chromedp.WaitVisible(chromedp.CSS("#failed-last-hour")), chromedp.WaitVisible(chromedp.CSS("#chart rect.fail")))
	if got := text(ctx, "#failed-last-hour .value"); got != "1" {
		t.Fatalf("failed in the last hour shows %q, want 1", got)
	}
	if got := text(ctx, "#stat-dead .value"); got != "1" {
		t.Fatalf("dead shows %q, want 1", got)
	}
	step(ctx, "the failing endpoint is listed", chromedp.WaitVisible(chromedp.CSS(`a[href="#/endpoints/`+ep.ID+`"]`)))
	shot(ctx, "02-home")

	// The endpoint's health, then its page.
	step(ctx, "open the endpoints", chromedp.Click(chromedp.CSS(`a[data-nav="endpoints"]`)), chromedp.WaitVisible(chromedp.CSS(`a[href="#/endpoints/`+ep.ID+`"]`)))
	shot(ctx, "03-endpoints")
	step(ctx, "open the endpoint", chromedp.Click(chromedp.CSS(`a[href="#/endpoints/`+ep.ID+`"]`)), chromedp.WaitVisible(chromedp.CSS("#reveal-secret")),
		chromedp.WaitVisible(chromedp.CSS("#attempt-chart circle.fail")),
		chromedp.Click(chromedp.CSS("#reveal-secret")), chromedp.WaitVisible(chromedp.CSS("#secret code")))
	if got := text(ctx, "#secret code"); !strings.HasPrefix(got, "whsec_") {
		t.Fatalf("revealed secret %q, want whsec_…", got)
	}
	if got := text(ctx, "main"); !strings.Contains(got, "data.amount > 100") {
		t.Fatalf("the endpoint page does not show its filter: %q", got)
	}
	shot(ctx, "04-endpoint")

	// The dead letter, found and replayed once the receiver is fixed.
	row := fmt.Sprintf(`tr[data-delivery=%q]`, dead.ID)
	step(ctx, "open the dead letters", chromedp.Click(chromedp.CSS(`a[data-nav="dead"]`)), chromedp.WaitVisible(chromedp.CSS(row+`[data-state="dead"]`)))
	if got := text(ctx, row); !strings.Contains(got, "inv_1001-paid") || !strings.Contains(got, "500") {
		t.Fatalf("dead-letter row %q lacks the event id or the status", got)
	}
	shot(ctx, "05-dead-letters")
	healthy.Store(true)
	step(ctx, "ask to replay", chromedp.Click(chromedp.CSS("#replay-all")), chromedp.WaitVisible(chromedp.CSS("#confirm-text")))
	if got := text(ctx, "#confirm-text"); !strings.Contains(got, "queue 1 dead delivery") {
		t.Fatalf("the confirmation says %q, want how many deliveries it queues (1)", got)
	}
	shot(ctx, "06-replay-confirmation")
	step(ctx, "confirm the replay; the delivery succeeds", chromedp.Click(chromedp.CSS("#confirm-ok")),
		chromedp.WaitVisible(chromedp.CSS(row+`[data-state="succeeded"]`)))
	step(ctx, "open the event", chromedp.Click(chromedp.CSS(row+` a[href="#/events/inv_1001-paid"]`)),
		chromedp.WaitVisible(chromedp.CSS(`section.delivery[data-state="succeeded"]`)), chromedp.WaitVisible(chromedp.CSS("#payload")))
	if got := text(ctx, "#payload"); !strings.Contains(got, `"amount": 12000`) {
		t.Fatalf("payload shows %q, want the pretty JSON", got)
	}
	shot(ctx, "07-event")

	// The catalog: versions, the deprecation with its sunset date, the generated documentation.
	step(ctx, "open the event types", chromedp.Click(chromedp.CSS(`a[data-nav="event-types"]`)), chromedp.WaitVisible(chromedp.CSS("#show-event-type-docs")))
	if got := text(ctx, "main"); !strings.Contains(got, "deprecated · sunset 2027-03-01") || !strings.Contains(got, "invoice.paid.v2") ||
		!strings.Contains(got, "The last payment of an invoice settled.") {
		t.Fatalf("the event types page shows %q, want v2, its trigger and v1's sunset date", got)
	}
	step(ctx, "show the generated documentation", chromedp.Click(chromedp.CSS("#show-event-type-docs")), chromedp.WaitVisible(chromedp.CSS("#event-type-docs")))
	if got := text(ctx, "#event-type-docs"); !strings.Contains(got, "invoice.paid.v2") || !strings.Contains(got, "2027-03-01") {
		t.Fatalf("the generated documentation shows %q", got)
	}
	shot(ctx, "09-event-types")

	if problems, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.problems`)); err != nil || len(problems) > 0 {
		t.Fatalf("the page had problems: %q %v", problems, err)
	}

	var after delivery
	apiCall(t, n, 200, "GET", "/v1/tenants/acme/deliveries/"+dead.ID, nil, &after)
	if after.State != "succeeded" || received.Load() != 2 {
		t.Fatalf("after the replay the delivery is %s and the receiver got %d requests; want succeeded, 2", after.State, received.Load())
	}

	// A portal link opens the UI in a new tab (its own sessionStorage) limited to acme.
	var link struct {
		URL string `json:"url"`
	}
	apiCall(t, n, 201, "POST", "/v1/tenants/acme/portal-links", map[string]any{"expires_in_seconds": 600}, &link)
	portal, cancelPortal := chromedp.NewContext(ctx)
	defer cancelPortal()
	// As for the browser, the tab lives as long as the context of its first Run: no timeout there.
	if err := chromedp.Do(portal); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	step(portal, "open the portal link", chromedp.Navigate(link.URL), chromedp.WaitVisible(chromedp.CSS("#failed-last-hour")))
	if who := text(portal, "#tenant-name"); who != "acme" {
		t.Fatalf("the portal shows tenant %q, want acme", who)
	}
	if role := text(portal, "#role"); !strings.HasPrefix(role, "portal") {
		t.Fatalf("the portal's role badge is %q", role)
	}
	loc, err := chromedp.Run(portal, chromedp.Evaluate[string]("location.href"))
	if err != nil || strings.Contains(loc, "hk_portal_") {
		t.Fatalf("the token stays in the address bar: %q %v", loc, err)
	}
	hidden, err := chromedp.Run(portal, chromedp.Evaluate[bool](`document.querySelector("#tenant-pick-label").hidden && document.querySelector("#portal-link").hidden`))
	if err != nil || !hidden {
		t.Fatalf("the portal offers the tenant picker or portal links (%v)", err)
	}
	shot(portal, "08-portal")
}
