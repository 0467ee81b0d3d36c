package ui_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// A tenant's user edits an endpoint in the portal: a filter that does not compile and a header
// Herald sets itself are refused, each problem of the API next to its field and nothing saved; the
// fixed form saves every setting (subscriptions, description, headers, rate limit, concurrency,
// retry schedule, filter, transformation); deleting asks first, and the endpoint is gone.
func TestBrowser_PortalEditsAndDeletesAnEndpoint(t *testing.T) {
	t.Parallel()
	browser := chromium(t)
	shots := screenshots(t)
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(rc.Close)
	n := startUINode(t)
	apiCall(t, n, 201, "POST", "/v1/event-types", map[string]any{"name": "invoice.paid", "description": "An invoice was paid."}, nil)
	apiCall(t, n, 201, "POST", "/v1/event-types", map[string]any{"name": "invoice.voided", "description": "An invoice was voided."}, nil)
	var ep endpointAnswer
	apiCall(t, n, 201, "POST", "/v1/tenants/acme/endpoints", map[string]any{"url": rc.URL + "/hooks", "event_types": []string{"invoice.paid"},
		"description": "Billing"}, &ep)

	b := portalTab(t, browser, n, "acme", 1280, 1000)
	b.do("open the endpoint", chromedp.Navigate(n.URL()+"/ui/#/endpoints/"+ep.ID), chromedp.WaitVisible(chromedp.CSS("#edit-settings")),
		chromedp.Click(chromedp.CSS("#edit-settings summary")), chromedp.WaitVisible(chromedp.CSS("#ep-filter")))
	setValue := func(sel, v string) {
		eval[bool](b, "set "+sel, `(() => { document.querySelector(`+jsString(sel)+`).value = `+jsString(v)+`; return true; })()`)
	}
	setValue("#ep-filter", "data.amount >")
	setValue("#ep-headers", "Content-Type: text/plain")
	b.do("save the wrong settings", chromedp.Click(chromedp.CSS("#endpoint-settings-submit")))
	filterErr := `document.querySelector('#endpoint-settings-form .field-error[data-field="filter"]').textContent`
	headersErr := `document.querySelector('#endpoint-settings-form .field-error[data-field="headers"]').textContent`
	b.waitFor("the filter's problem shows at the filter", filterErr)
	b.waitFor("the header's problem shows at the headers", headersErr)
	if got := eval[string](b, "the headers' problem", headersErr); !strings.Contains(got, "Content-Type") || !strings.Contains(got, "set by Herald") {
		t.Errorf("the headers field's error is %q, want the header and the API's reason", got)
	}
	b.shot(shots, "40-endpoint-settings-errors")
	var got struct {
		endpointAnswer
		Description    string            `json:"description"`
		EventTypes     []string          `json:"event_types"`
		Headers        map[string]string `json:"headers"`
		RateLimit      float64           `json:"rate_limit"`
		MaxConcurrency int               `json:"max_concurrency"`
		RetrySchedule  []int             `json:"retry_schedule"`
		Filter         string            `json:"filter"`
		Transform      string            `json:"transform"`
	}
	apiCall(t, n, 200, "GET", "/v1/tenants/acme/endpoints/"+ep.ID, nil, &got)
	if got.Filter != "" || len(got.Headers) != 0 {
		t.Fatalf("a refused form changed the endpoint: %+v", got)
	}

	setValue("#ep-filter", "data.amount > 100")
	setValue("#ep-headers", "X-Team: billing")
	setValue("#ep-description", "Billing service (EU)")
	setValue("#ep-event-types", "invoice.paid, invoice.voided")
	setValue("#ep-rate-limit", "5")
	setValue("#ep-max-concurrency", "3")
	setValue("#ep-retry-schedule", "0, 30s, 5m, 1h")
	setValue("#ep-transform", `omit(event, ["data.card"])`)
	b.do("save the fixed settings", chromedp.Click(chromedp.CSS("#endpoint-settings-submit")))
	b.waitFor("the page shows the new description", `document.querySelector("main h1") && document.querySelector("main").innerText.includes("Billing service (EU)")`)
	apiCall(t, n, 200, "GET", "/v1/tenants/acme/endpoints/"+ep.ID, nil, &got)
	if got.Description != "Billing service (EU)" || strings.Join(got.EventTypes, ",") != "invoice.paid,invoice.voided" ||
		got.Headers["X-Team"] != "billing" || got.RateLimit != 5 || got.MaxConcurrency != 3 ||
		fmt.Sprint(got.RetrySchedule) != "[0 30 300 3600]" ||
		got.Filter != "data.amount > 100" || got.Transform != `omit(event, ["data.card"])` {
		t.Fatalf("after saving, the endpoint is %+v", got)
	}

	b.do("ask to delete", chromedp.Click(chromedp.CSS("#delete-endpoint")), chromedp.WaitVisible(chromedp.CSS("#confirm-text")))
	b.do("cancel", chromedp.Click(chromedp.CSS("#confirm-cancel")))
	apiCall(t, n, 200, "GET", "/v1/tenants/acme/endpoints/"+ep.ID, nil, nil)
	b.do("delete it", chromedp.Click(chromedp.CSS("#delete-endpoint")), chromedp.WaitVisible(chromedp.CSS("#confirm-text")),
		chromedp.Click(chromedp.CSS("#confirm-ok")))
	b.waitFor("the endpoints page", `location.hash === "#/endpoints" && document.querySelector("main h1").textContent === "Endpoints"`)
	apiCall(t, n, 404, "GET", "/v1/tenants/acme/endpoints/"+ep.ID, nil, nil)
}
