package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/api"
)

type feedPage struct {
	Data []struct {
		ID   string          `json:"id"`
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	} `json:"data"`
	Next    string `json:"next"`
	HasMore bool   `json:"has_more"`
}

func (p feedPage) ids() []string {
	var out []string
	for _, e := range p.Data {
		out = append(out, e.ID)
	}
	return out
}

// feedSetUp makes tenant acme (redacting card.number) with an endpoint on invoice.* and one on
// customer.created, and returns the tenant's key and the two endpoint ids.
func feedSetUp(t *testing.T, a *testAPI) (key, invoices, customers string) {
	t.Helper()
	key = a.tenantKey("acme")
	a.must(http.StatusOK, "PATCH", "/v1/tenants/acme", map[string]any{"redact_fields": []string{"card.number"}}, nil)
	for _, et := range []string{"invoice.paid", "invoice.voided", "customer.created"} {
		a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": et}, nil)
	}
	var ep struct {
		ID string `json:"id"`
	}
	a.must(http.StatusCreated, "POST", "/v1/tenants/acme/endpoints", map[string]any{"url": "https://hooks.example.com/a", "event_types": []string{"invoice.*"}}, &ep)
	invoices = ep.ID
	a.must(http.StatusCreated, "POST", "/v1/tenants/acme/endpoints", map[string]any{"url": "https://hooks.example.com/b", "event_types": []string{"customer.created"}}, &ep)
	return key, invoices, ep.ID
}

func (a *testAPI) publishEvent(id, typ string, data map[string]any) {
	a.t.Helper()
	a.must(http.StatusAccepted, "POST", "/v1/tenants/acme/events", map[string]any{"id": id, "type": typ, "data": data}, nil)
}

func (a *testAPI) feed(key, endpoint, after string, limit int) (answer, feedPage) {
	a.t.Helper()
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if after != "" {
		q.Set("after", after)
	}
	ans := a.do(key, "GET", "/v1/tenants/acme/endpoints/"+endpoint+"/feed?"+q.Encode(), nil)
	var p feedPage
	if ans.status == http.StatusOK {
		if err := json.Unmarshal(ans.body, &p); err != nil {
			a.t.Fatalf("decode feed %s: %v", ans.body, err)
		}
	}
	return ans, p
}

func TestFeed_PullsSubscribedEventsInOrderFromACursor(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	key, invoices, customers := feedSetUp(t, a)
	a.publishEvent("i1", "invoice.paid", map[string]any{"amount": 1, "card": map[string]any{"number": "4242424242424242"}})
	a.publishEvent("c1", "customer.created", map[string]any{})
	a.publishEvent("i2", "invoice.voided", map[string]any{})
	a.publishEvent("i3", "invoice.paid", map[string]any{})
	a.publishEvent("c2", "customer.created", map[string]any{})

	ans, p := a.feed(key, invoices, "", 2)
	if ans.status != http.StatusOK || !slices.Equal(p.ids(), []string{"i1", "i2"}) || !p.HasMore || p.Next == "" {
		t.Fatalf("first page: %d %s", ans.status, ans.body)
	}
	if got := string(p.Data[0].Data); got != `{"amount":1,"card":{"number":"[REDACTED]"}}` {
		t.Fatalf("i1's data = %s, want card.number redacted", got)
	}
	ans, p = a.feed(key, invoices, p.Next, 2)
	if ans.status != http.StatusOK || !slices.Equal(p.ids(), []string{"i3"}) || p.HasMore {
		t.Fatalf("second page: %d %s", ans.status, ans.body)
	}
	// At the end: no event, and a cursor that still works once more are published.
	end := p.Next
	if ans, p = a.feed(key, invoices, end, 2); ans.status != http.StatusOK || len(p.Data) != 0 || p.Next == "" || p.HasMore {
		t.Fatalf("at the end: %d %s", ans.status, ans.body)
	}
	a.publishEvent("i4", "invoice.paid", map[string]any{})
	a.publishEvent("c3", "customer.created", map[string]any{})
	if ans, p = a.feed(key, invoices, end, 10); !slices.Equal(p.ids(), []string{"i4"}) {
		t.Fatalf("after publishing i4: %d %s", ans.status, ans.body)
	}
	if ans, p = a.feed(key, customers, "", 10); !slices.Equal(p.ids(), []string{"c1", "c2", "c3"}) {
		t.Fatalf("the customers endpoint's feed: %d %s", ans.status, ans.body)
	}
	if ans, _ := a.feed(key, "ep_missing", "", 10); ans.status != http.StatusNotFound {
		t.Fatalf("an unknown endpoint's feed = %d %s", ans.status, ans.body)
	}
}

// A cursor is signed and bound to its endpoint: changed, made up, or taken to another endpoint
// or another server's key, it is refused with a problem naming query.after.
func TestFeed_RefusesCursorsItDidNotIssueForThisEndpoint(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	key, invoices, customers := feedSetUp(t, a)
	a.publishEvent("i1", "invoice.paid", map[string]any{})
	a.publishEvent("c1", "customer.created", map[string]any{})
	_, p := a.feed(key, invoices, "", 10)
	good := p.Next

	other := newTestAPI(t, api.Config{}) // another key: its cursors do not open here
	okey, oinv, _ := feedSetUp(t, other)
	other.publishEvent("i1", "invoice.paid", map[string]any{})
	_, op := other.feed(okey, oinv, "", 10)

	tampered := []byte(good)
	tampered[len(tampered)-3] ^= 1
	for name, c := range map[string]struct{ endpoint, cursor string }{
		"another endpoint's":   {customers, good},
		"changed":              {invoices, string(tampered)},
		"made up":              {invoices, "0000000a.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
		"not a cursor":         {invoices, "42"},
		"another server's key": {invoices, op.Next},
	} {
		ans, _ := a.feed(key, c.endpoint, c.cursor, 10)
		if ans.status != http.StatusUnprocessableEntity {
			t.Errorf("%s cursor: %d %s, want 422", name, ans.status, ans.body)
			continue
		}
		if _, ok := ans.problem(t).find("query.after"); !ok {
			t.Errorf("%s cursor: the problem does not name query.after: %s", name, ans.body)
		}
	}
	if ans, p := a.feed(key, invoices, good, 10); ans.status != http.StatusOK || len(p.Data) != 0 {
		t.Fatalf("the good cursor: %d %s", ans.status, ans.body)
	}
}

// The feed holds what the endpoint receives: with a filter, the events it refuses are passed
// over, and the cursor moves past them.
func TestFeed_AppliesTheEndpointsFilter(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	key, invoices, _ := feedSetUp(t, a)
	a.must(http.StatusOK, "PATCH", "/v1/tenants/acme/endpoints/"+invoices, map[string]any{"filter": `data.amount > 100`}, nil)
	a.publishEvent("i1", "invoice.paid", map[string]any{"amount": 500})
	a.publishEvent("i2", "invoice.paid", map[string]any{"amount": 5})
	a.publishEvent("i3", "invoice.voided", map[string]any{})
	a.publishEvent("i4", "invoice.paid", map[string]any{"amount": 101})

	ans, p := a.feed(key, invoices, "", 3)
	if ans.status != http.StatusOK || !slices.Equal(p.ids(), []string{"i1"}) || !p.HasMore {
		t.Fatalf("first page of 3 read: %d %s, want i1 only (i2 and i3 filtered out) and more to come", ans.status, ans.body)
	}
	if ans, p = a.feed(key, invoices, p.Next, 3); !slices.Equal(p.ids(), []string{"i4"}) || p.HasMore {
		t.Fatalf("second page: %d %s, want i4", ans.status, ans.body)
	}
	a.must(http.StatusOK, "PATCH", "/v1/tenants/acme/endpoints/"+invoices, map[string]any{"filter": ""}, nil)
	if ans, p = a.feed(key, invoices, "", 10); !slices.Equal(p.ids(), []string{"i1", "i2", "i3", "i4"}) {
		t.Fatalf("without the filter: %d %s", ans.status, ans.body)
	}
}

func TestPublish_PriorityReachesTheDeliveries(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	feedSetUp(t, a)
	a.must(http.StatusAccepted, "POST", "/v1/tenants/acme/events", map[string]any{"id": "hi", "type": "invoice.paid", "data": map[string]any{}, "priority": "high"}, nil)
	a.must(http.StatusAccepted, "POST", "/v1/tenants/acme/events", map[string]any{"id": "plain", "type": "invoice.paid", "data": map[string]any{}}, nil)
	a.must(http.StatusAccepted, "POST", "/v1/tenants/acme/events/batch", map[string]any{"events": []map[string]any{
		{"id": "lo", "type": "invoice.paid", "data": map[string]any{}, "priority": "low"}}}, nil)
	var page struct {
		Data []struct {
			EventID  string `json:"event_id"`
			Priority string `json:"priority"`
		} `json:"data"`
	}
	a.must(http.StatusOK, "GET", "/v1/tenants/acme/deliveries", nil, &page)
	got := map[string]string{}
	for _, d := range page.Data {
		got[d.EventID] = d.Priority
	}
	if got["hi"] != "high" || got["plain"] != "normal" || got["lo"] != "low" {
		t.Fatalf("delivery priorities %v", got)
	}
	ans := a.do(a.admin, "POST", "/v1/tenants/acme/events", map[string]any{"type": "invoice.paid", "data": map[string]any{}, "priority": "urgent"})
	if ans.status != http.StatusUnprocessableEntity || !strings.Contains(string(ans.body), "body.priority") {
		t.Fatalf("priority urgent: %d %s, want 422 at body.priority", ans.status, ans.body)
	}
}

// A page of large events ends at 1 MiB of events, whatever the limit, with has_more, and the
// pages that follow carry on where it ended: one answer stays small.
func TestFeed_PageIsBoundedByItsBytes(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, api.Config{})
	key, invoices, _ := feedSetUp(t, a)
	a.publishLarge("big", 8) // 8 × 240 KiB

	var got []string
	pages := 0
	for after := ""; ; {
		ans, p := a.feed(key, invoices, after, 100)
		pages++
		if ans.status != http.StatusOK {
			t.Fatalf("feed: %d %s", ans.status, ans.body)
		}
		if len(ans.body) > 2<<20 {
			t.Fatalf("a feed page of %d bytes, want at most about 1 MiB and one event", len(ans.body))
		}
		got = append(got, p.ids()...)
		if !p.HasMore {
			break
		}
		after = p.Next
	}
	var want []string
	for i := range 8 {
		want = append(want, "big"+strconv.Itoa(i))
	}
	if !slices.Equal(got, want) || pages < 2 {
		t.Fatalf("read %v in %d pages, want %v in more than one", got, pages, want)
	}
}
