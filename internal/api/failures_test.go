package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/store"
)

// Failed attempts are grouped by endpoint and failure class with their counts, first and last
// seen, the newest as an example and how many deliveries of the group are dead; replaying a group
// queues exactly its dead deliveries; a window beyond 7 days is a 422 naming since.
func TestFailures_GroupedByEndpointAndClassAndReplayedByGroup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := newTestAPI(t, api.Config{})
	key := a.tenantKey("acme")
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "invoice.paid"}, nil)
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "invoice.voided"}, nil)
	var ep1, ep2 struct {
		ID string `json:"id"`
	}
	a.must(http.StatusCreated, "POST", "/v1/tenants/acme/endpoints", map[string]any{"url": "https://hooks.example.com/a", "event_types": []string{"invoice.paid"}}, &ep1)
	a.must(http.StatusCreated, "POST", "/v1/tenants/acme/endpoints", map[string]any{"url": "https://hooks.example.com/b", "event_types": []string{"invoice.voided"}}, &ep2)
	for _, ev := range []struct{ id, typ string }{{"e1", "invoice.paid"}, {"e2", "invoice.paid"}, {"e3", "invoice.paid"}, {"e4", "invoice.voided"}} {
		a.must(http.StatusAccepted, "POST", "/v1/tenants/acme/events", map[string]any{"id": ev.id, "type": ev.typ, "data": map[string]any{}}, nil)
	}
	now := time.Now()
	claims, err := a.sqlite.ClaimDue(ctx, now.Add(time.Minute), now.Add(time.Hour), []store.ClaimRequest{{EndpointID: ep1.ID, Limit: 10}, {EndpointID: ep2.ID, Limit: 10}})
	if err != nil {
		t.Fatal(err)
	}
	byEvent := map[string]store.Claimed{}
	for _, c := range claims {
		for _, cl := range c.Claimed {
			byEvent[cl.EventID] = cl
		}
	}
	if len(byEvent) != 4 {
		t.Fatalf("claimed %d deliveries, want 4", len(byEvent))
	}
	status := func(code int, body string) store.Attempt {
		return store.Attempt{At: time.Now(), StatusCode: code, ErrorKind: "http_status", Error: "status", Response: body}
	}
	results := []store.Result{
		// e1: 503 then dead; e2: 503, pending; e3: a timeout, dead; e4 (ep2): 500, dead.
		{DeliveryID: byEvent["e1"].DeliveryID, EndpointID: ep1.ID, State: store.StateDead, Attempt: status(503, `{"error":"down"}`)},
		{DeliveryID: byEvent["e2"].DeliveryID, EndpointID: ep1.ID, State: store.StatePending, NextAttemptAt: now.Add(time.Hour), Attempt: status(503, `{"error":"still down"}`)},
		{DeliveryID: byEvent["e3"].DeliveryID, EndpointID: ep1.ID, State: store.StateDead, Attempt: store.Attempt{At: time.Now(), ErrorKind: "timeout", Error: "no answer in 10s"}},
		{DeliveryID: byEvent["e4"].DeliveryID, EndpointID: ep2.ID, State: store.StateDead, Attempt: status(500, "boom")},
	}
	if err := a.sqlite.RecordResults(ctx, results); err != nil {
		t.Fatal(err)
	}

	// The tenant's own key (and so a portal link) reads its failures.
	var got api.FailuresBody
	ans := a.do(key, "GET", "/v1/tenants/acme/failures?since=1h", nil)
	if ans.status != http.StatusOK {
		t.Fatalf("the tenant key's GET /failures = %d: %s", ans.status, ans.body)
	}
	if err := json.Unmarshal(ans.body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Truncated || len(got.Groups) != 3 {
		t.Fatalf("groups: %+v", got)
	}
	find := func(ep, class string) api.FailureGroup {
		t.Helper()
		for _, g := range got.Groups {
			if g.EndpointID == ep && g.Class == class {
				return g
			}
		}
		t.Fatalf("no group %s × %s in %+v", ep, class, got.Groups)
		return api.FailureGroup{}
	}
	g := find(ep1.ID, "http_503")
	if g.Attempts != 2 || g.Deliveries != 2 || g.Dead != 1 || g.StatusCode != 503 || g.FirstSeen.After(g.LastSeen) || g.Example.Response != `{"error":"still down"}` {
		t.Errorf("503 group of ep1: %+v", g)
	}
	if got.Groups[0].Class != "http_503" {
		t.Errorf("the group with most attempts is not first: %+v", got.Groups)
	}
	if g := find(ep1.ID, "timeout"); g.Attempts != 1 || g.Dead != 1 || g.ErrorKind != "timeout" || g.Example.Error != "no answer in 10s" {
		t.Errorf("timeout group of ep1: %+v", g)
	}
	if g := find(ep2.ID, "http_500"); g.Attempts != 1 || g.Dead != 1 {
		t.Errorf("500 group of ep2: %+v", g)
	}
	var one api.FailuresBody
	a.must(http.StatusOK, "GET", "/v1/tenants/acme/failures?endpoint_id="+ep2.ID, nil, &one)
	if len(one.Groups) != 1 || one.Groups[0].EndpointID != ep2.ID {
		t.Errorf("one endpoint's groups: %+v", one.Groups)
	}

	var queued struct {
		Queued int `json:"queued"`
	}
	a.must(http.StatusAccepted, "POST", "/v1/tenants/acme/failures/replay", map[string]any{"endpoint_id": ep1.ID, "class": "http_503"}, &queued)
	if queued.Queued != 1 {
		t.Fatalf("replaying the 503 group queued %d, want 1 (e1: e2 is pending)", queued.Queued)
	}
	for ev, want := range map[string]store.DeliveryState{"e1": store.StatePending, "e2": store.StatePending, "e3": store.StateDead, "e4": store.StateDead} {
		d, err := a.sqlite.GetDelivery(ctx, "acme", byEvent[ev].DeliveryID)
		if err != nil {
			t.Fatal(err)
		}
		if d.State != want {
			t.Errorf("after the replay %s is %s, want %s", ev, d.State, want)
		}
	}

	for _, q := range []string{"since=8d", "since=nonsense"} {
		ans := a.do(a.admin, "GET", "/v1/tenants/acme/failures?"+q, nil)
		if ans.status != http.StatusUnprocessableEntity {
			t.Errorf("%s = %d, want 422", q, ans.status)
			continue
		}
		if _, ok := ans.problem(t).find("query.since"); !ok {
			t.Errorf("%s: the problem does not name query.since: %s", q, ans.body)
		}
	}
	if ans := a.do(a.admin, "POST", "/v1/tenants/acme/failures/replay", map[string]any{"class": "http_503"}); ans.status != http.StatusUnprocessableEntity {
		t.Errorf("a replay without endpoint_id = %d, want 422", ans.status)
	}
	if ans := a.do(a.admin, "GET", "/v1/tenants/nope/failures", nil); ans.status != http.StatusNotFound {
		t.Errorf("unknown tenant = %d, want 404", ans.status)
	}
}
