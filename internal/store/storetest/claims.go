package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

// The claim modes of store.ClaimRequest: priority ranking (the default), ordered endpoints and
// batching endpoints. Times are explicit: every claim passes its own now, and retries are set
// with RecordResults, so nothing sleeps.

func claimAt(t *testing.T, s store.Store, at time.Time, req store.ClaimRequest) store.ClaimResult {
	t.Helper()
	res, err := s.ClaimDue(ctx, at, at.Add(time.Minute), []store.ClaimRequest{req})
	must(t, err)
	return res[0]
}

func eventIDs(cs []store.Claimed) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.EventID
	}
	return out
}

func withPriority(id string, p int) *store.Event {
	ev := event(id, "a.b")
	ev.Priority = p
	return ev
}

// failAt records a failed attempt of each claimed delivery that leaves it pending until next,
// in batch (0: none).
func failAt(t *testing.T, s store.Store, endpointID string, cs []store.Claimed, next time.Time, batch int64) {
	t.Helper()
	rs := make([]store.Result, len(cs))
	for i, c := range cs {
		rs[i] = store.Result{DeliveryID: c.DeliveryID, EndpointID: endpointID, State: store.StatePending, NextAttemptAt: next, BatchID: batch,
			Attempt: store.Attempt{At: time.Now(), StatusCode: 503, ErrorKind: "http_status", Error: "status 503"}}
	}
	must(t, s.RecordResults(ctx, rs))
}

func succeed(t *testing.T, s store.Store, endpointID string, cs []store.Claimed) {
	t.Helper()
	rs := make([]store.Result, len(cs))
	for i, c := range cs {
		rs[i] = store.Result{DeliveryID: c.DeliveryID, EndpointID: endpointID, State: store.StateSucceeded,
			Attempt: store.Attempt{At: time.Now(), StatusCode: 200, Success: true}}
	}
	must(t, s.RecordResults(ctx, rs))
}

func wantIDs(t *testing.T, what string, got []store.Claimed, want ...string) {
	t.Helper()
	if fmt.Sprint(eventIDs(got)) != fmt.Sprint(want) {
		t.Fatalf("%s: claimed %v, want %v", what, eventIDs(got), want)
	}
}

// A delivery's rank is its due time plus its priority's delay: a high priority delivery goes
// before normal ones due less than 10 s earlier, a normal one due more than 10 s before a high
// one goes first, and a low one is not starved: once it has waited long enough it goes before
// both. NextDue looks at every priority.
func testClaimPriority(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	endpoint(t, s, "acme", "ep", "*")
	publish(t, s, "acme", withPriority("n0", store.PriorityNormal), withPriority("n1", store.PriorityNormal), withPriority("n2", store.PriorityNormal))
	publish(t, s, "acme", withPriority("h", store.PriorityHigh))
	publish(t, s, "acme", withPriority("l", store.PriorityLow))

	// Published last, due at once: the high one goes first, the low one last.
	all := claimAll(t, s, "ep", 10)
	wantIDs(t, "fresh deliveries", all.Claimed, "h", "n0", "n1", "n2", "l")
	// A delivery reads back with its priority.
	wantPriority := map[string]int{"h": store.PriorityHigh, "n0": store.PriorityNormal, "n1": store.PriorityNormal, "n2": store.PriorityNormal, "l": store.PriorityLow}
	for _, c := range all.Claimed {
		d, err := s.GetDelivery(ctx, "acme", c.DeliveryID)
		must(t, err)
		if d.Priority != wantPriority[c.EventID] {
			t.Fatalf("delivery of %s has priority %d, want %d", c.EventID, d.Priority, wantPriority[c.EventID])
		}
	}

	// The same deliveries due again at chosen times (after a failed attempt each).
	base := now().Add(time.Hour)
	byID := map[string]store.Claimed{}
	for _, c := range all.Claimed {
		byID[c.EventID] = c
	}
	at := map[string]time.Time{
		"n0": base,                       // rank base+10s
		"h":  base.Add(11 * time.Second), // rank base+11s: after n0, due 11 s earlier
		"n1": base.Add(2 * time.Second),  // rank base+12s: after h, due 9 s later
		"l":  base.Add(-55 * time.Second),
		// rank base+5s: waited 55 s, so it goes before all of them
		"n2": base.Add(25 * time.Second), // not due at base+20s
	}
	for id, next := range at {
		failAt(t, s, "ep", []store.Claimed{byID[id]}, next, 0)
	}
	c := claimAt(t, s, base.Add(20*time.Second), store.ClaimRequest{EndpointID: "ep", Limit: 2})
	wantIDs(t, "first two by rank", c.Claimed, "l", "n0")
	c = claimAt(t, s, base.Add(20*time.Second), store.ClaimRequest{EndpointID: "ep", Limit: 10})
	wantIDs(t, "the rest by rank", c.Claimed, "h", "n1")
	// n2 (normal) is next due; a low one due earlier than it is found too.
	if !c.NextDue.Equal(base.Add(25 * time.Second)) {
		t.Fatalf("next due = %v, want %v", c.NextDue, base.Add(25*time.Second))
	}
	publish(t, s, "acme", withPriority("l2", store.PriorityLow))
	l2 := claimAll(t, s, "ep", 10)
	wantIDs(t, "the new low one", l2.Claimed, "l2")
	failAt(t, s, "ep", l2.Claimed, base.Add(22*time.Second), 0)
	c = claimAt(t, s, base.Add(20*time.Second), store.ClaimRequest{EndpointID: "ep", Limit: 10})
	if len(c.Claimed) != 0 || !c.NextDue.Equal(base.Add(22*time.Second)) {
		t.Fatalf("nothing due: claimed %v, next due %v, want %v (the low one)", eventIDs(c.Claimed), c.NextDue, base.Add(22*time.Second))
	}
}

// An ordered endpoint's claim takes only its first pending delivery in publish order, and only
// when it is due and not leased: a later delivery never overtakes it, even while it waits for
// its retry. A retried older delivery is pending again, and goes first.
func testClaimOrdered(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	endpoint(t, s, "acme", "ep", "*")
	// Priorities are ignored: publish order is what counts.
	publish(t, s, "acme", withPriority("e1", store.PriorityLow), withPriority("e2", store.PriorityHigh), withPriority("e3", store.PriorityHigh))
	req := store.ClaimRequest{EndpointID: "ep", Limit: 1, Ordered: true}
	t0 := time.Now()
	c := claimAt(t, s, t0, req)
	wantIDs(t, "first claim", c.Claimed, "e1")
	e1 := c.Claimed
	// While e1 is in flight (leased), nothing.
	if c := claimAt(t, s, t0, req); len(c.Claimed) != 0 {
		t.Fatalf("claimed %v while the first delivery is leased", eventIDs(c.Claimed))
	}
	// e1 failed and waits for its retry: still nothing, and NextDue is its retry.
	retry := now().Add(time.Hour)
	failAt(t, s, "ep", e1, retry, 0)
	c = claimAt(t, s, t0, req)
	if len(c.Claimed) != 0 || !c.NextDue.Equal(retry) {
		t.Fatalf("while the first waits for its retry: claimed %v, next due %v, want nothing and %v", eventIDs(c.Claimed), c.NextDue, retry)
	}
	later := retry.Add(time.Second)
	c = claimAt(t, s, later, req)
	wantIDs(t, "the retry", c.Claimed, "e1")
	succeed(t, s, "ep", c.Claimed)
	c = claimAt(t, s, later, req)
	wantIDs(t, "after the first succeeded", c.Claimed, "e2")
	succeed(t, s, "ep", c.Claimed)
	// Retrying e1 makes it the first pending delivery again: it goes before e3.
	d, err := s.GetDelivery(ctx, "acme", e1[0].DeliveryID)
	must(t, err)
	_, err = s.Retry(ctx, "acme", d.ID)
	must(t, err)
	c = claimAt(t, s, later, req)
	wantIDs(t, "the retried older one", c.Claimed, "e1")
	succeed(t, s, "ep", c.Claimed)
	c = claimAt(t, s, later, req)
	wantIDs(t, "then the next in publish order", c.Claimed, "e3")
	succeed(t, s, "ep", c.Claimed)
	if c := claimAt(t, s, later, req); len(c.Claimed) != 0 || !c.NextDue.IsZero() {
		t.Fatalf("nothing pending: %+v", c)
	}
}

// A batching endpoint's claim takes a batch when MaxEvents are due or the oldest has waited
// MaxWait; a failed batch is claimed again with exactly its members, even after new deliveries
// arrived, and a batch's members carry its id (the smallest delivery id in it).
func testClaimBatches(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	endpoint(t, s, "acme", "ep", "*")
	batch := &store.Batching{MaxEvents: 3, MaxWait: 10 * time.Second}
	req := store.ClaimRequest{EndpointID: "ep", Limit: 2, Batch: batch}
	before := time.Now()
	publish(t, s, "acme", withPriority("e1", store.PriorityNormal), withPriority("e2", store.PriorityNormal))
	after := time.Now()

	// Two of three, young: nothing, until the oldest has waited MaxWait.
	c := claimAt(t, s, after, req)
	if len(c.Claimed) != 0 || c.NextDue.Before(before.Add(batch.MaxWait).Truncate(time.Microsecond)) || c.NextDue.After(after.Add(batch.MaxWait)) {
		t.Fatalf("a young partial batch: claimed %v, next due %v, want nothing and about %v", eventIDs(c.Claimed), c.NextDue, after.Add(batch.MaxWait))
	}
	// Old enough: one batch of two.
	c = claimAt(t, s, after.Add(batch.MaxWait), req)
	wantIDs(t, "an old partial batch", c.Claimed, "e1", "e2")
	checkBatch(t, c.Claimed)
	succeed(t, s, "ep", c.Claimed)

	// Four more: a full batch goes at once, the fourth waits.
	publish(t, s, "acme", withPriority("e3", store.PriorityNormal), withPriority("e4", store.PriorityNormal),
		withPriority("e5", store.PriorityNormal), withPriority("e6", store.PriorityNormal))
	c = claimAt(t, s, time.Now(), req)
	wantIDs(t, "a full batch", c.Claimed, "e3", "e4", "e5")
	checkBatch(t, c.Claimed)
	if c.NextDue.IsZero() {
		t.Fatal("the partial batch left has no next due")
	}
	failed := c.Claimed

	// The batch fails: its members stay together. New deliveries arrive meanwhile.
	retry := now().Add(time.Hour)
	failAt(t, s, "ep", failed, retry, failed[0].BatchID)
	publish(t, s, "acme", withPriority("e7", store.PriorityNormal), withPriority("e8", store.PriorityNormal))
	c = claimAt(t, s, retry.Add(time.Second), store.ClaimRequest{EndpointID: "ep", Limit: 1, Batch: batch})
	wantIDs(t, "the failed batch again", c.Claimed, "e3", "e4", "e5")
	for _, m := range c.Claimed {
		if m.BatchID != failed[0].BatchID {
			t.Fatalf("retried batch member %s has batch %d, want %d", m.EventID, m.BatchID, failed[0].BatchID)
		}
	}
	// The others form a new batch.
	c2 := claimAt(t, s, retry.Add(time.Second), req)
	wantIDs(t, "a new batch beside the retried one", c2.Claimed, "e6", "e7", "e8")
	checkBatch(t, c2.Claimed)
	// The retried batch fails again at another retry, then succeeds: still the same set.
	retry2 := retry.Add(time.Hour)
	failAt(t, s, "ep", c.Claimed, retry2, failed[0].BatchID)
	succeed(t, s, "ep", c2.Claimed)
	c = claimAt(t, s, retry2.Add(time.Second), store.ClaimRequest{EndpointID: "ep", Limit: 5, Batch: batch})
	wantIDs(t, "the failed batch a third time", c.Claimed, "e3", "e4", "e5")
	succeed(t, s, "ep", c.Claimed)
	if c := claimAt(t, s, retry2.Add(time.Second), req); len(c.Claimed) != 0 || !c.NextDue.IsZero() {
		t.Fatalf("nothing pending: claimed %v, next due %v", eventIDs(c.Claimed), c.NextDue)
	}
}

// checkBatch checks that claimed is one batch: its members carry the smallest delivery id.
func checkBatch(t *testing.T, claimed []store.Claimed) {
	t.Helper()
	ids := make([]int64, len(claimed))
	for i, c := range claimed {
		ids[i] = c.DeliveryID
	}
	for _, c := range claimed {
		if c.BatchID != slices.Min(ids) {
			t.Fatalf("batch member %s (delivery %d) has batch %d, want %d", c.EventID, c.DeliveryID, c.BatchID, slices.Min(ids))
		}
	}
}
