package api_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/api"
)

// The buckets of the series add up to the period's stats, each event falls in the bucket of its
// time, and bad parameters are 422 problems.
func TestStatsTimeseries_BucketsAddUpToStats(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Now().UTC()}
	a := newTestAPI(t, api.Config{Now: c.now})
	a.tenantKey("acme")
	a.must(http.StatusCreated, "POST", "/v1/event-types", map[string]any{"name": "invoice.paid"}, nil)
	a.must(http.StatusCreated, "POST", "/v1/tenants/acme/endpoints", map[string]any{"url": "https://hooks.example.com/in", "event_types": []string{"*"}}, nil)
	for i := range 3 {
		a.must(http.StatusAccepted, "POST", "/v1/tenants/acme/events", map[string]any{"id": fmt.Sprint("e", i), "type": "invoice.paid", "data": map[string]any{}}, nil)
	}
	// The store stamps rows with the wall clock, just after the clock's start: move the API's
	// clock 30 minutes on, so that the events sit at the start of bucket 2 of a 1 h period.
	c.add(30 * time.Minute)
	var series api.StatsSeries
	a.must(http.StatusOK, "GET", "/v1/tenants/acme/stats/timeseries?since=1h&buckets=4", nil, &series)
	if len(series.Buckets) != 4 || series.BucketSeconds != 900 {
		t.Fatalf("got %d buckets of %v s, want 4 of 900 s", len(series.Buckets), series.BucketSeconds)
	}
	var events, deliveries, pending int
	for i, b := range series.Buckets {
		events += b.Events
		deliveries += b.Deliveries
		pending += b.Pending
		if want := series.Since.Add(time.Duration(i) * 15 * time.Minute); !b.Start.Equal(want) {
			t.Errorf("bucket %d starts at %v, want %v", i, b.Start, want)
		}
	}
	if events != 3 || deliveries != 3 || pending != 3 {
		t.Fatalf("buckets add up to %d events, %d deliveries, %d pending; want 3 each: %+v", events, deliveries, pending, series.Buckets)
	}
	if b := series.Buckets[2]; b.Events != 3 {
		t.Fatalf("the events were published 30 min before the end of the period, in bucket 2; buckets: %+v", series.Buckets)
	}

	for _, q := range []string{"since=nonsense", "since=1h&buckets=1", "since=1h&buckets=61", "since=2999-01-01T00:00:00Z"} {
		ans := a.do(a.admin, "GET", "/v1/tenants/acme/stats/timeseries?"+q, nil)
		if ans.status != 422 {
			t.Errorf("%s = %d, want 422", q, ans.status)
			continue
		}
		ans.problem(t)
	}
	if ans := a.do(a.admin, "GET", "/v1/tenants/nope/stats/timeseries", nil); ans.status != 404 {
		t.Errorf("unknown tenant = %d, want 404", ans.status)
	}
}
