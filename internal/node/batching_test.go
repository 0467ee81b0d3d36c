package node_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/webhook"
)

// batchOf reads a batch's body: a JSON array of envelopes; it returns their data.i.
func batchOf(t *testing.T, body []byte) []int {
	t.Helper()
	var envs []json.RawMessage
	if err := json.Unmarshal(body, &envs); err != nil {
		t.Fatalf("a batch's body is not a JSON array: %s: %v", body, err)
	}
	out := make([]int, len(envs))
	for i, e := range envs {
		out[i] = envelopeI(t, e)
	}
	return out
}

func publishMany(h *harness, tenant, typ string, from, to int) {
	h.t.Helper()
	var events []map[string]any
	for i := from; i < to; i++ {
		events = append(events, map[string]any{"type": typ, "data": map[string]any{"i": i}})
	}
	h.must(202, "POST", "/v1/tenants/"+tenant+"/events/batch", map[string]any{"events": events}, nil)
}

// A batching endpoint (10 events or 200 ms) gets 25 events as three requests of 10, 10 and 5
// envelopes (in any order: the requests go side by side), in publish order within each, each a JSON array signed as a whole with a batch
// message id.
func TestBatching_GroupsEventsIntoSignedArrays(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			h := start(t, b.mod(t))
			rc := newReceiver(t, nil)
			h.setup("acme", "invoice.paid")
			ep := h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"invoice.*"}})
			h.configure("acme", ep.ID, func(e *store.Endpoint) {
				e.Options.Batch = &store.Batching{MaxEvents: 10, MaxWait: 200 * time.Millisecond}
			})
			publishMany(h, "acme", "invoice.paid", 0, 25)
			eventually(t, 10*time.Second, "three requests", func() bool { return rc.count() >= 3 })
			time.Sleep(300 * time.Millisecond) // nothing more comes
			got := rc.got()
			if len(got) != 3 {
				t.Fatalf("%d requests, want 3", len(got))
			}
			v, err := webhook.NewVerifier(ep.Secret)
			if err != nil {
				t.Fatal(err)
			}
			var sizes []int
			var all []int
			for _, r := range got {
				if err := v.Verify(r.body, r.header); err != nil {
					t.Errorf("the batch's signature does not verify: %v", err)
				}
				if id := r.header.Get("webhook-id"); !strings.HasPrefix(id, "batch_") {
					t.Errorf("webhook-id = %q, want batch_…", id)
				}
				is := batchOf(t, r.body)
				if !slices.IsSorted(is) {
					t.Errorf("a batch's events are not in publish order: %v", is)
				}
				sizes = append(sizes, len(is))
				all = append(all, is...)
			}
			// Two full batches and a partial one, in whatever order they arrive: the batches go
			// side by side (max_concurrency), so their arrival order is the scheduler's.
			slices.Sort(sizes)
			if fmt.Sprint(sizes) != "[5 10 10]" {
				t.Fatalf("batch sizes = %v, want two of 10 and one of 5", sizes)
			}
			slices.Sort(all)
			for i, x := range all {
				if x != i {
					t.Fatalf("events received = %v, want 0..24 once each", all)
				}
			}
			// Each delivery shows the batch's attempt.
			ds := h.deliveries("/v1/tenants/acme/deliveries?endpoint_id=" + ep.ID + "&limit=100")
			if len(ds) != 25 {
				t.Fatalf("%d deliveries, want 25", len(ds))
			}
			for _, d := range ds {
				if d.State != "succeeded" || d.AttemptCount != 1 {
					t.Fatalf("delivery %+v, want succeeded after one attempt", d)
				}
			}
		})
	}
}

// A batch that fails is retried whole: the same members under the same message id, even though
// more events arrived meanwhile (they go in a batch of their own).
func TestBatching_FailedBatchIsRetriedWhole(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			h := start(t, b.mod(t))
			rc := newReceiver(t, func(n int, r *http.Request) int {
				if n == 1 {
					return 503
				}
				return 200
			})
			h.setup("acme", "invoice.paid")
			ep := h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"invoice.*"}})
			h.configure("acme", ep.ID, func(e *store.Endpoint) {
				e.Options.Batch = &store.Batching{MaxEvents: 10, MaxWait: 100 * time.Millisecond}
				e.RetrySchedule = []time.Duration{0, 700 * time.Millisecond, time.Second}
			})
			publishMany(h, "acme", "invoice.paid", 0, 10)
			eventually(t, 10*time.Second, "the first attempt", func() bool { return rc.count() >= 1 })
			publishMany(h, "acme", "invoice.paid", 10, 14)
			eventually(t, 10*time.Second, "the retry and the new batch", func() bool { return rc.count() >= 3 })
			time.Sleep(300 * time.Millisecond)
			got := rc.got()
			if len(got) != 3 {
				t.Fatalf("%d requests, want 3", len(got))
			}
			first := got[0]
			var retry, other *received
			for i := range got[1:] {
				r := &got[1+i]
				if r.header.Get("webhook-id") == first.header.Get("webhook-id") {
					retry = r
				} else {
					other = r
				}
			}
			if retry == nil || other == nil {
				t.Fatalf("webhook-ids %q, %q, %q: want the first again, and another", first.header.Get("webhook-id"),
					got[1].header.Get("webhook-id"), got[2].header.Get("webhook-id"))
			}
			if a, b := fmt.Sprint(batchOf(t, first.body)), fmt.Sprint(batchOf(t, retry.body)); a != b || a != "[0 1 2 3 4 5 6 7 8 9]" {
				t.Fatalf("first attempt %s, retry %s: want the same ten events", a, b)
			}
			if got := fmt.Sprint(batchOf(t, other.body)); got != "[10 11 12 13]" {
				t.Fatalf("the later events' batch = %s", got)
			}
			ds := h.deliveries("/v1/tenants/acme/deliveries?endpoint_id=" + ep.ID + "&limit=100")
			attempts := map[int]int{}
			for _, d := range ds {
				if d.State != "succeeded" {
					t.Fatalf("delivery %+v not succeeded", d)
				}
				attempts[d.AttemptCount]++
			}
			if attempts[2] != 10 || attempts[1] != 4 {
				t.Fatalf("deliveries by attempt count = %v, want 10 with two attempts and 4 with one", attempts)
			}
		})
	}
}
