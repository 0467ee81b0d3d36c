package storetest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

// feedIDs reads the whole feed of a tenant from after, limit events a call, checking that
// positions only grow.
func feedIDs(t *testing.T, s store.Store, tenantID string, after int64, patterns []string, limit int) ([]string, int64) {
	t.Helper()
	var ids []string
	for {
		evs, err := s.EventsAfter(ctx, tenantID, after, patterns, limit)
		must(t, err)
		if len(evs) > limit {
			t.Fatalf("EventsAfter returned %d events, limit %d", len(evs), limit)
		}
		for _, ev := range evs {
			if ev.Position <= after {
				t.Fatalf("event %s at position %d after position %d", ev.ID, ev.Position, after)
			}
			if ev.TenantID != tenantID {
				t.Fatalf("event %s of tenant %q in %s's feed", ev.ID, ev.TenantID, tenantID)
			}
			after = ev.Position
			ids = append(ids, ev.ID)
		}
		if !store.FeedPageFull(evs, limit) {
			return ids, after
		}
	}
}

func testEventsAfter(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	tenant(t, s, "other")
	publish(t, s, "acme", event("e1", "invoice.paid"), event("e2", "customer.created"))
	publish(t, s, "other", event("o1", "invoice.paid"))
	publish(t, s, "acme", event("e3", "invoice.paid.v2"), event("e4", "line_item.added"), event("e5", "lineXitem.added"))
	publish(t, s, "acme", event("e6", "invoice_x.paid"), event("e7", "invoice.voided"))
	// A duplicate publish adds nothing to the feed.
	publish(t, s, "acme", event("e1", "invoice.paid"))

	for _, c := range []struct {
		patterns []string
		want     []string
	}{
		{nil, []string{"e1", "e2", "e3", "e4", "e5", "e6", "e7"}},
		{[]string{"*"}, []string{"e1", "e2", "e3", "e4", "e5", "e6", "e7"}},
		{[]string{"invoice.*"}, []string{"e1", "e3", "e7"}},
		{[]string{"invoice.paid"}, []string{"e1"}},
		{[]string{"customer.created", "invoice.voided"}, []string{"e2", "e7"}},
		// _ and % are not wildcards, as they would be in a LIKE pattern.
		{[]string{"line_item.*"}, []string{"e4"}},
		{[]string{"invoice_x.*", "invoice.paid.*"}, []string{"e3", "e6"}},
		{[]string{"nothing.*"}, nil},
	} {
		for _, limit := range []int{1, 2, 100} {
			got, _ := feedIDs(t, s, "acme", 0, c.patterns, limit)
			if !slices.Equal(got, c.want) {
				t.Errorf("patterns %q, limit %d: got %v, want %v", c.patterns, limit, got, c.want)
			}
		}
	}

	// Resuming after a position gives what follows it, with the event as it was stored.
	first, err := s.EventsAfter(ctx, "acme", 0, nil, 2)
	must(t, err)
	if len(first) != 2 || first[0].ID != "e1" || first[0].Type != "invoice.paid" || string(first[0].Payload) != string(event("e1", "invoice.paid").Payload) ||
		first[0].Timestamp.IsZero() || first[0].CreatedAt.IsZero() {
		t.Fatalf("first page = %+v", first)
	}
	rest, last := feedIDs(t, s, "acme", first[1].Position, nil, 100)
	if !slices.Equal(rest, []string{"e3", "e4", "e5", "e6", "e7"}) {
		t.Fatalf("after e2: %v", rest)
	}
	if evs, err := s.EventsAfter(ctx, "acme", last, nil, 100); err != nil || len(evs) != 0 {
		t.Fatalf("after the last event: %v, %v", evs, err)
	}
	if got, _ := feedIDs(t, s, "other", 0, nil, 100); !slices.Equal(got, []string{"o1"}) {
		t.Fatalf("other's feed = %v", got)
	}
	if got, _ := feedIDs(t, s, "nobody", 0, nil, 100); len(got) != 0 {
		t.Fatalf("an unknown tenant's feed = %v", got)
	}
	if pos, err := s.LatestPosition(ctx, "acme"); err != nil || pos != last {
		t.Fatalf("LatestPosition = %d, %v; want %d, the last event's", pos, err, last)
	}
	if pos, err := s.LatestPosition(ctx, "nobody"); err != nil || pos != 0 {
		t.Fatalf("LatestPosition of an unknown tenant = %d, %v; want 0", pos, err)
	}
	// A new event appears after the last position.
	publish(t, s, "acme", event("e8", "invoice.paid"))
	if got, _ := feedIDs(t, s, "acme", last, []string{"invoice.*"}, 100); !slices.Equal(got, []string{"e8"}) {
		t.Fatalf("after publishing e8: %v", got)
	}
}

// testEventsAfterConcurrent tails a tenant's feed while publishers commit concurrently: the
// reader must get every event once, whatever order their transactions commit in.
func testEventsAfterConcurrent(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	const writers, each = 8, 30
	var wg sync.WaitGroup
	done := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := s.Publish(ctx, "acme", []*store.Event{event(fmt.Sprintf("w%d-%d", w, i), "invoice.paid")}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()

	seen := map[string]bool{}
	var after int64
	deadline := time.Now().Add(60 * time.Second)
	finished := false
	for {
		evs, err := s.EventsAfter(ctx, "acme", after, []string{"invoice.*"}, 7)
		must(t, err)
		for _, ev := range evs {
			if ev.Position <= after {
				t.Fatalf("position %d after %d", ev.Position, after)
			}
			if seen[ev.ID] {
				t.Fatalf("event %s returned twice", ev.ID)
			}
			seen[ev.ID] = true
			after = ev.Position
		}
		if len(seen) == writers*each {
			break
		}
		if finished && len(evs) == 0 {
			// Every publish has returned and the feed says nothing follows: some were skipped.
			t.Fatalf("the feed ended with %d of %d events", len(seen), writers*each)
		}
		select {
		case <-done:
			finished = true
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d events after 60 s", len(seen), writers*each)
		}
	}
}

// testEventsAfterRetention: positions never go back, even when retention removes every event
// older than its cutoff; a reader's cursor then still sees what is published next.
func testEventsAfterRetention(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	publish(t, s, "acme", event("old1", "invoice.paid"), event("old2", "invoice.paid"))
	_, last := feedIDs(t, s, "acme", 0, nil, 100)
	for {
		n, err := s.DeleteOlderThan(ctx, time.Now().Add(time.Hour), 100)
		must(t, err)
		if n == 0 {
			break
		}
	}
	publish(t, s, "acme", event("new1", "invoice.paid"))
	got, _ := feedIDs(t, s, "acme", last, nil, 100)
	if !slices.Equal(got, []string{"new1"}) {
		t.Fatalf("after retention, the feed from the last position read %v, want [new1]", got)
	}
}

// testEventsAfterBoundsBytes: a page of large events ends with the event that reaches
// store.MaxFeedBytes, whatever the limit, says so through FeedPageFull, and the pages that
// follow carry on where it ended.
func testEventsAfterBoundsBytes(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	const size = 200 << 10 // six make a page: the sixth reaches 1 MiB
	want := publishLarge(t, s, "acme", 14, size)
	perPage := (store.MaxFeedBytes + size - 1) / size
	page, err := s.EventsAfter(ctx, "acme", 0, nil, 100)
	must(t, err)
	bytes := 0
	for _, ev := range page {
		bytes += len(ev.Payload)
	}
	if len(page) != perPage || bytes-len(page[len(page)-1].Payload) >= store.MaxFeedBytes {
		t.Fatalf("first page: %d events, %d bytes; want %d, ending with the event that reaches %d bytes", len(page), bytes, perPage, store.MaxFeedBytes)
	}
	if !store.FeedPageFull(page, 100) {
		t.Fatal("FeedPageFull is false for a page cut by its bytes")
	}
	if got, _ := feedIDs(t, s, "acme", 0, nil, 100); !slices.Equal(got, want) {
		t.Fatalf("the feed read page by page: %v, want %v", got, want)
	}
	small, err := s.EventsAfter(ctx, "acme", page[len(page)-1].Position, nil, 1)
	must(t, err)
	if len(small) != 1 || !store.FeedPageFull(small, 1) {
		t.Fatalf("a page of limit 1: %d events, full %v", len(small), store.FeedPageFull(small, 1))
	}
	if store.FeedPageFull(page[:1], 100) {
		t.Fatal("FeedPageFull is true for one event below the byte bound and the limit")
	}
}

// testListEventsBoundsBytes: a list page of large events ends with the event that reaches
// MaxPageBytes, and its cursor leads on to the rest: every event, once, newest first.
func testListEventsBoundsBytes(t *testing.T, s store.Store) {
	tenant(t, s, "acme")
	const size = 200 << 10
	want := publishLarge(t, s, "acme", 14, size)
	slices.Reverse(want) // a list is newest first
	perPage := (store.MaxPageBytes + size - 1) / size
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 20 {
			t.Fatal("pagination does not end")
		}
		page, next, err := s.ListEvents(ctx, store.EventFilter{TenantID: "acme", Page: store.Page{Limit: store.MaxLimit, Cursor: cursor}})
		must(t, err)
		if pages == 0 && (len(page) != perPage || next == "") {
			t.Fatalf("first page: %d events (next %q); want %d, cut by its bytes, with a cursor", len(page), next, perPage)
		}
		for _, ev := range page {
			got = append(got, ev.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed page by page: %v, want %v", got, want)
	}
}

// publishLarge publishes n events of about size bytes each to tenant, and returns their ids in
// the order published.
func publishLarge(t *testing.T, s store.Store, tenant string, n, size int) []string {
	t.Helper()
	var evs []*store.Event
	var ids []string
	for i := range n {
		ev := event(fmt.Sprintf("big%02d", i), "invoice.paid")
		ev.Payload = []byte(fmt.Sprintf(`{"id":%q,"type":"invoice.paid","data":{"pad":%q}}`, ev.ID, strings.Repeat("x", size)))
		evs = append(evs, ev)
		ids = append(ids, ev.ID)
	}
	publish(t, s, tenant, evs...)
	return ids
}
