package ui_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The what-failed → why → fix → replay loop on one screen: two deliveries die on a receiver
// answering 500; "What is failing" shows them as one group (endpoint × HTTP 500) with its counts,
// first and last seen and the receiver's answer; the endpoint's page offers "Replay 2 dead"; once
// the receiver is fixed, replaying the group delivers both. All of it through a portal link.
func TestBrowser_WhatIsFailingReplaysAGroup(t *testing.T) {
	t.Parallel()
	browser := chromium(t)
	shots := screenshots(t)
	var healthy atomic.Bool
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			http.Error(w, `{"error":"database is down"}`, http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	n := startUINode(t)
	apiCall(t, n, 201, "POST", "/v1/event-types", map[string]any{"name": "invoice.paid", "description": "An invoice was paid."}, nil)
	var ep endpointAnswer
	apiCall(t, n, 201, "POST", "/v1/tenants/acme/endpoints", map[string]any{"url": rc.URL + "/hooks", "event_types": []string{"invoice.paid"},
		"description": "Billing service", "retry_schedule": []int{0}}, &ep)
	for _, id := range []string{"inv-1", "inv-2"} {
		apiCall(t, n, 202, "POST", "/v1/tenants/acme/events", map[string]any{"id": id, "type": "invoice.paid", "data": map[string]any{"n": 1}}, nil)
	}
	countState := func(state string) int {
		var page struct {
			Data []delivery `json:"data"`
		}
		apiCall(t, n, 200, "GET", "/v1/tenants/acme/deliveries?state="+state, nil, &page)
		return len(page.Data)
	}
	waitState := func(state string, want int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for countState(state) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%d deliveries %s after 20 s, want %d", countState(state), state, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitState("dead", 2)

	// As a tenant's user would, through a portal link.
	b := portalTab(t, browser, n, "acme", 1280, 1000)
	b.do("open the endpoint", chromedp.Navigate(n.URL()+"/ui/#/endpoints/"+ep.ID), chromedp.WaitVisible(chromedp.CSS("#replay-endpoint-dead")),
		chromedp.WaitVisible(chromedp.CSS("#endpoint-failures tr.failure-group")))
	if got := eval[string](b, "the replay button", `document.querySelector("#replay-endpoint-dead").textContent`); got != "Replay 2 dead" {
		t.Errorf("the endpoint's replay button says %q, want Replay 2 dead", got)
	}

	group := `tr.failure-group[data-endpoint="` + ep.ID + `"][data-class="http_500"]`
	b.do("open what is failing", chromedp.Click(chromedp.CSS(`a[data-nav="failures"]`)), chromedp.WaitVisible(chromedp.CSS("#failure-groups "+group)))
	row := eval[string](b, "the group's row", `document.querySelector(`+jsString("#failure-groups "+group)+`).innerText`)
	for _, want := range []string{"Billing service", "HTTP 500", "database is down", "UTC"} {
		if !strings.Contains(row, want) {
			t.Errorf("the group's row lacks %q: %q", want, row)
		}
	}
	if got := eval[string](b, "the group's dead count", `document.querySelector(`+jsString("#failure-groups "+group+" .dead-count")+`).textContent`); got != "2" {
		t.Errorf("the group counts %s dead, want 2", got)
	}
	if eval[int](b, "the actions", `document.querySelectorAll(`+jsString("#failure-groups "+group+" .disable-endpoint")+`).length`) != 1 {
		t.Error("the group offers no way to disable its endpoint")
	}
	b.shot(shots, "42-what-is-failing")

	healthy.Store(true)
	b.do("ask to replay the group", chromedp.Click(chromedp.CSS("#failure-groups "+group+" .replay-group")), chromedp.WaitVisible(chromedp.CSS("#confirm-text")))
	if got := eval[string](b, "the confirmation", `document.querySelector("#confirm-text").textContent`); !strings.Contains(got, "Replay 2 dead deliveries of Billing service") {
		t.Errorf("the confirmation says %q", got)
	}
	b.do("confirm", chromedp.Click(chromedp.CSS("#confirm-ok")))
	waitState("succeeded", 2)
	b.do("open the endpoint again", chromedp.Navigate(n.URL()+"/ui/#/endpoints/"+ep.ID), chromedp.WaitVisible(chromedp.CSS("#replay-endpoint-dead")))
	b.waitFor("nothing left to replay", `document.querySelector("#replay-endpoint-dead").textContent === "Replay 0 dead" && document.querySelector("#replay-endpoint-dead").disabled`)
}
