package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/expr"
	"github.com/heraldhq/herald/internal/store"
)

// benchEvent is an invoice.paid envelope of about 2 KiB.
func benchEvent() *store.Event {
	lines := make([]string, 12)
	for i := range lines {
		lines[i] = fmt.Sprintf(`{"sku":"sku_%04d","description":"line item number %d of the invoice","quantity":%d,"unit_amount":%d}`, i, i, i+1, 100*i+99)
	}
	payload := `{"id":"evt_01jd2x","type":"invoice.paid","timestamp":"2026-11-30T10:00:00Z","data":{"id":"in_1","amount":1500,"currency":"EUR",` +
		`"customer":{"id":"cus_1","email":"a@example.com","name":"Ada"},"lines":[` + strings.Join(lines, ",") + `]},"source":"billing","resource":{"id":"in_1","type":"invoice"}}`
	return &store.Event{ID: "evt_01jd2x", Type: "invoice.paid", Payload: []byte(payload)}
}

func subscribers(b testing.TB, n int, filter string) []store.Subscriber {
	cache := expr.NewCache(16)
	options := "{}"
	if filter != "" {
		o, err := store.EncodeEndpointOptions(store.EndpointOptions{Filter: filter})
		if err != nil {
			b.Fatal(err)
		}
		options = o
	}
	subs := make([]store.Subscriber, n)
	for i := range subs {
		sub, err := store.NewSubscriber(fmt.Sprintf("ep_%d", i), []string{"invoice.*"}, options, cache)
		if err != nil {
			b.Fatal(err)
		}
		subs[i] = sub
	}
	return subs
}

func TestMatcher_FilterDecidesAndErrorsDoNotMatch(t *testing.T) {
	ev := benchEvent()
	for _, c := range []struct {
		filter string
		want   bool
	}{
		{"", true},
		{`data.amount > 1000 && data.currency == "EUR"`, true},
		{`data.amount > 1000 && data.currency == "USD"`, false},
		{`data.missing > 1`, false}, // fails: no such key
		{`data.lines.exists(l, l.sku == "sku_0011")`, true},
	} {
		m := store.NewMatcher(ev)
		if got := m.Wants(context.Background(), subscribers(t, 1, c.filter)[0]); got != c.want {
			t.Errorf("filter %q: %v, want %v", c.filter, got, c.want)
		}
	}
	other := &store.Event{ID: "e", Type: "user.created", Payload: ev.Payload}
	m := store.NewMatcher(other)
	if m.Wants(context.Background(), subscribers(t, 1, "")[0]) {
		t.Error("a subscriber of invoice.* wants user.created")
	}
	broken := &store.Event{ID: "e", Type: "invoice.paid", Payload: []byte(`[1,2]`)}
	m = store.NewMatcher(broken)
	if m.Wants(context.Background(), subscribers(t, 1, `true`)[0]) {
		t.Error("a filter matched an envelope that is not an object")
	}
}

// BenchmarkFanOut is what deciding the deliveries of one 2 KiB event costs at publish, for ten
// subscribed endpoints: without filters, and with the same filter on each (the envelope is
// decoded once per event, then each filter runs).
func BenchmarkFanOut(b *testing.B) {
	ev := benchEvent()
	ctx := context.Background()
	for _, c := range []struct{ name, filter string }{
		{"no-filter", ""},
		{"filter", `data.amount > 1000 && data.currency == "EUR"`},
		{"filter-exists", `data.lines.exists(l, l.quantity > 11)`},
	} {
		subs := subscribers(b, 10, c.filter)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m := store.NewMatcher(ev)
				n := 0
				for _, s := range subs {
					if m.Wants(ctx, s) {
						n++
					}
				}
				if n != 10 {
					b.Fatalf("%d of 10 matched", n)
				}
			}
		})
	}
}

func TestPlan_ChunksHoldWholeEventsWithinTheBound(t *testing.T) {
	t.Parallel()
	ids := func(n int) []string { return make([]string, n) }
	for _, c := range []struct {
		targets [][]string
		want    [][2]int
	}{
		{nil, [][2]int{{0, 0}}},
		{[][]string{ids(3), ids(3), ids(3)}, [][2]int{{0, 3}}},
		{[][]string{ids(4), ids(4), ids(4)}, [][2]int{{0, 2}, {2, 3}}},
		{[][]string{ids(12), ids(1), ids(0), ids(9)}, [][2]int{{0, 1}, {1, 4}}}, // an event over the bound is alone
		{[][]string{ids(0), ids(0)}, [][2]int{{0, 2}}},
	} {
		p := store.Plan{Targets: c.targets}
		if got := p.Chunks(10); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("chunks of %d events: %v, want %v", len(c.targets), got, c.want)
		}
	}
}

func TestFanout_RefusesOverTheDeliveryLimit(t *testing.T) {
	t.Parallel()
	f := store.NewFanout(store.Limits{MaxDeliveries: 5})
	subs := subscribers(t, 2, "")
	evs := []*store.Event{benchEvent(), benchEvent(), benchEvent()}
	_, err := f.Plan(context.Background(), "acme", subs, evs)
	var le *store.LimitError
	if !errors.As(err, &le) || le.Limit != "max_deliveries" || le.Max != 5 || le.Got != 6 {
		t.Fatalf("plan of 6 deliveries over a limit of 5: %v", err)
	}
	p, err := f.Plan(context.Background(), "acme", subs, evs[:2])
	if err != nil || p.Deliveries != 4 || len(p.Targets[1]) != 2 {
		t.Fatalf("plan of 4 deliveries: %+v, %v", p, err)
	}
}
