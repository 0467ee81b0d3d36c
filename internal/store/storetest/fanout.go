package storetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

// events makes n events of one type, ids prefix_0 … prefix_n-1.
func events(prefix, typ string, n int) []*store.Event {
	evs := make([]*store.Event, n)
	for i := range evs {
		evs[i] = event(fmt.Sprintf("%s_%d", prefix, i), typ)
	}
	return evs
}

// A publish that fans out to many deliveries is written in several transactions: another
// tenant's publish is answered while it is still being written, not after it.
func testLargeFanOutDoesNotHoldOthers(t *testing.T, s store.Store) {
	tenant(t, s, "big")
	tenant(t, s, "small")
	for i := range 100 {
		endpoint(t, s, "big", fmt.Sprintf("big_%d", i), "*")
	}
	endpoint(t, s, "small", "small_0", "*")
	batch := events("b", "order.created", 200) // 20,000 deliveries

	done := make(chan error, 1)
	go func() {
		res, err := s.Publish(ctx, "big", batch)
		if err == nil && (len(res) != len(batch) || res[len(res)-1].Deliveries != 100) {
			err = fmt.Errorf("got %d results, the last with %d deliveries; want %d with 100", len(res), res[len(res)-1].Deliveries, len(batch))
		}
		done <- err
	}()
	// Once the batch's first event is visible, its publish is under way (and is not one
	// transaction: that would make it visible only as the publish ends).
	for {
		if _, err := s.GetEvent(ctx, "big", batch[0].ID); err == nil {
			break
		} else if !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			t.Fatalf("the large publish ended (err %v) before any of its events was visible: it was written in one transaction", err)
		case <-time.After(time.Millisecond):
		}
	}
	res := publish(t, s, "small", event("s_0", "order.created"))
	if res[0].Deliveries != 1 {
		t.Errorf("the small publish made %d deliveries, want 1", res[0].Deliveries)
	}
	// The large publish is still being written: its last event is not stored yet (one transaction
	// would have stored it with the first).
	if _, err := s.GetEvent(ctx, "big", batch[len(batch)-1].ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the large publish's last event once the small one was answered: %v, want not found: the small one waited for it", err)
	}
	select {
	case err := <-done:
		t.Fatalf("the large publish ended (err %v) before the small one was answered: the small one waited for it", err)
	default:
	}
	must(t, <-done)
	st, err := s.Stats(ctx, "big", time.Time{})
	must(t, err)
	if st.Events != 200 || st.Deliveries != 20000 {
		t.Errorf("big has %d events and %d deliveries, want 200 and 20000", st.Events, st.Deliveries)
	}
	// Published again, every event is a duplicate and nothing more fans out.
	again, err := s.Publish(ctx, "big", events("b", "order.created", 200))
	must(t, err)
	for i, r := range again {
		if !r.Duplicate || r.Deliveries != 0 || r.Event.ID != batch[i].ID {
			t.Fatalf("republished event %d: %+v, want a duplicate of %s with no deliveries", i, r, batch[i].ID)
		}
	}
}

// slowFilter runs a comprehension over every pair of the event's items: each evaluation takes
// the filter's whole time bound.
const slowFilter = `data.items.all(x, data.items.all(y, x + y >= 0))`

func slowEvents(prefix string, n int) []*store.Event {
	items := make([]string, 300)
	for i := range items {
		items[i] = fmt.Sprint(i)
	}
	evs := make([]*store.Event, n)
	for i := range evs {
		evs[i] = dataEvent(fmt.Sprintf("%s_%d", prefix, i), "order.created", `{"items":[`+strings.Join(items, ",")+`]}`)
	}
	return evs
}

// Filters run before the write: while one tenant's publishes spend seconds in slow filters,
// another tenant's publish neither waits for the writer (SQLite) nor for a connection held by
// their transactions (PostgreSQL).
func testSlowFiltersRunOutsideTheWrite(t *testing.T, s store.Store) {
	tenant(t, s, "slow")
	tenant(t, s, "quick")
	for i := range 5 {
		e := endpoint(t, s, "slow", fmt.Sprintf("slow_%d", i), "*")
		e.Options.Filter = slowFilter
		must(t, s.UpdateEndpoint(ctx, e))
	}
	endpoint(t, s, "quick", "quick_0", "*")

	const publishes = 6 // more than a PostgreSQL pool's connections on a small machine
	done := make(chan error, publishes)
	for p := range publishes {
		go func() {
			_, err := s.Publish(ctx, "slow", slowEvents(fmt.Sprintf("p%d", p), 20))
			if errors.Is(err, store.ErrLimit) {
				err = nil // over its filter time on a slow machine: refused, which is its own business
			}
			done <- err
		}()
	}
	// A head start, so that the slow publishes are matching when the quick one comes; if they
	// were not yet, the test would only be weaker, never wrong.
	time.Sleep(300 * time.Millisecond)
	res := publish(t, s, "quick", event("q_0", "order.created"))
	if res[0].Deliveries != 1 {
		t.Errorf("the quick publish made %d deliveries, want 1", res[0].Deliveries)
	}
	select {
	case err := <-done:
		t.Fatalf("a slow publish ended (err %v) before the quick one was answered: the quick one waited for its filters", err)
	default:
	}
	for range publishes {
		must(t, <-done)
	}
}

// PublishBetween publishes events as the driver's Publish does, but runs between after the
// events are matched to endpoints and before they are written.
type PublishBetween func(s store.Store, tenantID string, events []*store.Event, between func()) ([]store.PublishResult, error)

// ChangedWhileMatched checks that an endpoint disabled or deleted after a publish's events were
// matched and before they were written gets no delivery from it.
func ChangedWhileMatched(t *testing.T, s store.Store, publish PublishBetween) {
	tenant(t, s, "acme")
	endpoint(t, s, "acme", "kept", "*")
	endpoint(t, s, "acme", "disabled", "*")
	endpoint(t, s, "acme", "deleted", "*")
	res, err := publish(s, "acme", events("e", "order.created", 2), func() {
		_, err := s.DisableEndpoint(ctx, "disabled", "test", false)
		must(t, err)
		must(t, s.DeleteEndpoint(ctx, "acme", "deleted"))
	})
	must(t, err)
	for _, r := range res {
		if r.Deliveries != 1 || len(r.EndpointIDs) != 1 || r.EndpointIDs[0] != "kept" {
			t.Errorf("event %s went to %v (%d deliveries), want only kept", r.Event.ID, r.EndpointIDs, r.Deliveries)
		}
	}
	ds, _, err := s.ListDeliveries(ctx, store.DeliveryFilter{TenantID: "acme"})
	must(t, err)
	for _, d := range ds {
		if d.EndpointID != "kept" {
			t.Errorf("a delivery of %s to %s, which was disabled or deleted before the write", d.EventID, d.EndpointID)
		}
	}
	if len(ds) != 2 {
		t.Errorf("%d deliveries, want 2", len(ds))
	}
}
