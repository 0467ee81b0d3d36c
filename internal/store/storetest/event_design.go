package storetest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

// dataEvent is an event whose envelope carries data.
func dataEvent(id, typ, data string) *store.Event {
	ev := event(id, typ)
	ev.Payload = []byte(fmt.Sprintf(`{"id":%q,"type":%q,"data":%s}`, id, typ, data))
	return ev
}

func testFiltersDecideFanOut(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	big := endpoint(t, s, "acme", "big-eur", "invoice.*")
	big.Options.Filter = `data.amount > 1000 && data.currency == "EUR"`
	must(t, s.UpdateEndpoint(ctx, big))
	endpoint(t, s, "acme", "all", "invoice.*")
	typed := endpoint(t, s, "acme", "typed", "*")
	typed.Options.Filter = `type == "invoice.voided" || has(data.vip)`
	must(t, s.UpdateEndpoint(ctx, typed))

	res := publish(t, s, "acme",
		dataEvent("e1", "invoice.paid", `{"amount":1500,"currency":"EUR"}`),
		dataEvent("e2", "invoice.paid", `{"amount":500,"currency":"EUR"}`),
		dataEvent("e3", "invoice.paid", `{"amount":1500.5,"currency":"USD"}`),
		dataEvent("e4", "invoice.paid", `{"currency":"EUR"}`), // the filter fails on it: no delivery
		dataEvent("e5", "invoice.voided", `{"amount":2000.25,"currency":"EUR"}`),
		dataEvent("e6", "user.created", `{"vip":true}`),
	)
	want := [][]string{{"big-eur", "all"}, {"all"}, {"all"}, {"all"}, {"big-eur", "all", "typed"}, {"typed"}}
	for i, r := range res {
		got := slices.Clone(r.EndpointIDs)
		slices.Sort(got)
		w := slices.Clone(want[i])
		slices.Sort(w)
		if !reflect.DeepEqual(got, w) || r.Deliveries != len(w) {
			t.Errorf("event e%d went to %v (%d deliveries), want %v", i+1, got, r.Deliveries, w)
		}
	}
	ds, _, err := s.ListDeliveries(ctx, store.DeliveryFilter{TenantID: "acme", EndpointID: "big-eur"})
	must(t, err)
	var events []string
	for _, d := range ds {
		events = append(events, d.EventID)
	}
	slices.Sort(events)
	if !reflect.DeepEqual(events, []string{"e1", "e5"}) {
		t.Errorf("big-eur deliveries %v, want e1 and e5", events)
	}

	// A changed filter applies to the next publish.
	big.Options.Filter = `data.currency == "USD"`
	must(t, s.UpdateEndpoint(ctx, big))
	res = publish(t, s, "acme", dataEvent("e7", "invoice.paid", `{"amount":1,"currency":"USD"}`))
	if !slices.Contains(res[0].EndpointIDs, "big-eur") {
		t.Errorf("after the filter changed, e7 went to %v", res[0].EndpointIDs)
	}
}

func testEndpointOptionsRoundTrip(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	e := endpoint(t, s, "acme", "ep", "*")
	got, err := s.GetEndpoint(ctx, "acme", "ep")
	must(t, err)
	if !reflect.DeepEqual(got.Options, store.EndpointOptions{}) {
		t.Fatalf("new endpoint options %+v, want none", got.Options)
	}
	e.Options = store.EndpointOptions{Filter: `data.a == 1`, Transform: `{"x": data.a}`, Signature: store.SignatureStripe,
		Batch: &store.Batching{MaxEvents: 50, MaxWait: 1500 * time.Millisecond}}
	must(t, s.UpdateEndpoint(ctx, e))
	for _, read := range []func() (*store.Endpoint, error){
		func() (*store.Endpoint, error) { return s.GetEndpoint(ctx, "acme", "ep") },
		func() (*store.Endpoint, error) { return s.EndpointByID(ctx, "ep") },
		func() (*store.Endpoint, error) {
			l, _, err := s.ListEndpoints(ctx, "acme", store.Page{})
			if err != nil || len(l) != 1 {
				return nil, fmt.Errorf("list: %d endpoints, %v", len(l), err)
			}
			return &l[0], nil
		},
	} {
		got, err := read()
		must(t, err)
		if !reflect.DeepEqual(got.Options, e.Options) {
			t.Errorf("options read back %+v, want %+v", got.Options, e.Options)
		}
	}
	e.Options = store.EndpointOptions{Ordered: true}
	must(t, s.UpdateEndpoint(ctx, e))
	got, err = s.GetEndpoint(ctx, "acme", "ep")
	must(t, err)
	if !reflect.DeepEqual(got.Options, e.Options) {
		t.Errorf("options after update %+v, want %+v", got.Options, e.Options)
	}
}

func testEventTypeDocsRoundTrip(t *testing.T, s store.Store) {
	n := now()
	sunset := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	et := &store.EventType{Name: "invoice.paid", Description: "paid", CreatedAt: n, UpdatedAt: n,
		Docs: store.EventTypeDocs{Trigger: "An invoice was paid in full.", Examples: []json.RawMessage{json.RawMessage(`{"amount":1200}`)}}}
	must(t, s.CreateEventType(ctx, et))
	got, err := s.GetEventType(ctx, "invoice.paid")
	must(t, err)
	if !reflect.DeepEqual(got.Docs, et.Docs) {
		t.Fatalf("docs read back %+v, want %+v", got.Docs, et.Docs)
	}
	et.Deprecated, et.Docs.Sunset = true, &sunset
	must(t, s.UpdateEventType(ctx, et))
	l, _, err := s.ListEventTypes(ctx, store.Page{})
	must(t, err)
	if len(l) != 1 || !l[0].Deprecated || l[0].Docs.Sunset == nil || !l[0].Docs.Sunset.Equal(sunset) || l[0].Docs.Trigger != et.Docs.Trigger {
		t.Fatalf("listed %+v", l)
	}
}
