package ui_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Deliveries name their endpoint by its description (its id on hover), show absolute UTC times on
// hover and in the delivery's page, offer the endpoints as a picker in the filter, and say why a
// pending delivery waits: its retry is scheduled, then its endpoint is disabled.
func TestBrowser_DeliveriesNameEndpointsAndSayWhyTheyWait(t *testing.T) {
	t.Parallel()
	browser := chromium(t)
	shots := screenshots(t)
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"database is down"}`, http.StatusServiceUnavailable)
	}))
	t.Cleanup(rc.Close)
	n := startUINode(t)
	apiCall(t, n, 201, "POST", "/v1/event-types", map[string]any{"name": "invoice.paid", "description": "An invoice was paid."}, nil)
	var ep endpointAnswer
	apiCall(t, n, 201, "POST", "/v1/tenants/acme/endpoints", map[string]any{"url": rc.URL + "/hooks", "event_types": []string{"invoice.paid"},
		"description": "Billing service", "retry_schedule": []int{0, 3600}}, &ep)
	apiCall(t, n, 202, "POST", "/v1/tenants/acme/events", map[string]any{"id": "evt-wait-1", "type": "invoice.paid", "data": map[string]any{"n": 1}}, nil)
	var d struct {
		ID           string `json:"id"`
		AttemptCount int    `json:"attempt_count"`
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var page struct {
			Data []struct {
				ID           string `json:"id"`
				AttemptCount int    `json:"attempt_count"`
			} `json:"data"`
		}
		apiCall(t, n, 200, "GET", "/v1/tenants/acme/deliveries?state=pending", nil, &page)
		if len(page.Data) == 1 && page.Data[0].AttemptCount == 1 {
			d = page.Data[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the delivery did not fail its first attempt within 20 s")
		}
		time.Sleep(100 * time.Millisecond)
	}

	b := signedInTab(t, browser, n)
	row := `tr[data-delivery="` + d.ID + `"]`
	b.do("open the deliveries", chromedp.Click(chromedp.CSS(`a[data-nav="deliveries"]`)), chromedp.WaitVisible(chromedp.CSS(row+" .wait-reason")))
	link := row + ` a.endpoint-link`
	if got := eval[string](b, "the endpoint's name", `document.querySelector(`+jsString(link)+`).textContent`); got != "Billing service" {
		t.Errorf("the delivery names its endpoint %q, want its description", got)
	}
	if got := eval[string](b, "the endpoint's hover", `document.querySelector(`+jsString(link)+`).title`); !strings.Contains(got, ep.ID) {
		t.Errorf("the endpoint link's title is %q, want its id", got)
	}
	if got := eval[string](b, "the wait", `document.querySelector(`+jsString(row+" .wait-reason")+`).textContent`); !strings.Contains(got, "retry 2 scheduled") {
		t.Errorf("the pending delivery says %q, want that its second attempt is scheduled", got)
	}
	if got := eval[string](b, "a time's hover", `document.querySelector(`+jsString(row+" time")+`).title`); !strings.HasSuffix(got, "Z") || !strings.Contains(got, "T") {
		t.Errorf("a time's title is %q, want an ISO UTC time", got)
	}
	if got := eval[string](b, "the endpoint picker", `[...document.querySelectorAll("#endpoint-filter option")].map((o) => o.value + "=" + o.textContent).join(",")`); got != "=any endpoint,"+ep.ID+"=Billing service" {
		t.Errorf("the endpoint filter offers %q", got)
	}
	b.shot(shots, "41-deliveries-waiting")

	apiCall(t, n, 200, "PATCH", "/v1/tenants/acme/endpoints/"+ep.ID, map[string]any{"enabled": false}, nil)
	b.do("open the delivery", chromedp.Navigate(n.URL()+"/ui/#/deliveries/"+d.ID), chromedp.WaitVisible(chromedp.CSS("section.delivery .wait-reason")))
	b.waitFor("the delivery says its endpoint is disabled", `document.querySelector("section.delivery .wait-reason").dataset.wait === "endpoint disabled"`)
	if got := eval[string](b, "the delivery's page", `document.querySelector("section.delivery").innerText`); !strings.Contains(got, " UTC") {
		t.Errorf("the delivery's page shows no absolute time: %q", got)
	}
}
