package ui_test

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// The tenant's overview shows its limits, with where each comes from, in the dashboard and in
// the tenant's portal.
func TestBrowser_LimitsPanelOnTheTenantPageAndThePortal(t *testing.T) {
	browser := chromium(t)
	n := startUINode(t)
	apiCall(t, n, 201, "POST", "/v1/plans", map[string]any{"name": "starter", "limits": map[string]any{"events_per_second": 50, "batching": false}}, nil)
	apiCall(t, n, 200, "PATCH", "/v1/tenants/acme", map[string]any{"plan": "starter", "limits": map[string]any{"max_endpoints": 7}}, nil)

	check := func(b tab, where string) {
		t.Helper()
		b.do("show the limits in "+where, chromedp.WaitVisible(chromedp.CSS(`#limits tr[data-limit="filters"]`)))
		for _, c := range []struct{ limit, value, from string }{
			{"events_per_second", "50", "plan"},
			{"batching", "not allowed", "plan"},
			{"max_endpoints", "7", "tenant"},
			{"filters", "allowed", "node"},
			{"max_attempts", "no limit", "node"},
		} {
			got := eval[string](b, c.limit, `document.querySelector('#limits tr[data-limit="`+c.limit+`"] td.value').textContent + "|" +
				document.querySelector('#limits tr[data-limit="`+c.limit+`"] .badge').textContent`)
			if got != c.value+"|"+c.from {
				t.Errorf("%s: limit %s shows %q, want %q", where, c.limit, got, c.value+"|"+c.from)
			}
		}
		if plan := eval[string](b, "the plan", `document.querySelector('#limits-plan').textContent`); plan != "Plan: starter" {
			t.Errorf("%s: plan line %q", where, plan)
		}
	}
	b := signedInTab(t, browser, n)
	check(b, "the dashboard")

	var link struct {
		URL string `json:"url"`
	}
	apiCall(t, n, 201, "POST", "/v1/tenants/acme/portal-links", map[string]any{"expires_in_seconds": 600}, &link)
	portal, cancel := chromedp.NewContext(b.ctx)
	defer cancel()
	if err := chromedp.Do(portal); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	p := tab{t: t, ctx: portal}
	p.do("open the portal link", chromedp.Navigate(link.URL), chromedp.WaitVisible(chromedp.CSS(`a[data-nav="endpoints"]`)))
	check(p, "the portal")
}
