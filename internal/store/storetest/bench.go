package storetest

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

// BenchmarkPublish measures a driver's publish path: single events to two endpoints (the main
// path, one publisher at a time and eight at once) and a batch of 200 events to 100 endpoints
// (20,000 deliveries).
func BenchmarkPublish(b *testing.B, s store.Store) {
	for _, id := range []string{"single", "fanout"} {
		n := now()
		if err := s.CreateTenant(ctx, &store.Tenant{ID: id, Name: id, CreatedAt: n, UpdatedAt: n}); err != nil {
			b.Fatal(err)
		}
		endpoints := 2
		if id == "fanout" {
			endpoints = 100
		}
		for i := range endpoints {
			if err := s.CreateEndpoint(ctx, &store.Endpoint{ID: fmt.Sprintf("%s_%d", id, i), TenantID: id, URL: "https://example.com/",
				EventTypes: []string{"*"}, Enabled: true, CreatedAt: n, UpdatedAt: n}); err != nil {
				b.Fatal(err)
			}
		}
	}
	var next atomic.Int64 // event ids are never repeated, whichever run of a benchmark this is
	id := func() string { return fmt.Sprintf("e%d", next.Add(1)) }
	b.Run("single", func(b *testing.B) {
		for range b.N {
			if _, err := s.Publish(ctx, "single", []*store.Event{event(id(), "order.created")}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel-8", func(b *testing.B) {
		b.SetParallelism(4) // × GOMAXPROCS (2 here): 8 publishers
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Publish(ctx, "single", []*store.Event{event(id(), "order.created")}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("fanout-200x100", func(b *testing.B) {
		for range b.N {
			if _, err := s.Publish(ctx, "fanout", events(id(), "order.created", 200)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkUsage measures reading a month of a busy tenant's usage: 720 hours of counters for
// 20 endpoints, written by the real path (one publish per hour to every endpoint, every
// delivery's attempt recorded in its hour), read as hourly totals, per endpoint and per day.
func BenchmarkUsage(b *testing.B, s store.Store) {
	const hours, endpoints = 720, 20
	n := now()
	if err := s.CreateTenant(ctx, &store.Tenant{ID: "busy", Name: "busy", CreatedAt: n, UpdatedAt: n}); err != nil {
		b.Fatal(err)
	}
	for i := range endpoints {
		if err := s.CreateEndpoint(ctx, &store.Endpoint{ID: fmt.Sprintf("ep_%02d", i), TenantID: "busy", URL: "https://example.com/",
			EventTypes: []string{"*"}, Enabled: true, CreatedAt: n, UpdatedAt: n}); err != nil {
			b.Fatal(err)
		}
	}
	end := store.UsageHour(n).Add(time.Hour)
	start := end.Add(-hours * time.Hour)
	for h := range hours {
		ev := event(fmt.Sprintf("e%d", h), "order.created")
		ev.CreatedAt = start.Add(time.Duration(h) * time.Hour)
		if _, err := s.Publish(ctx, "busy", []*store.Event{ev}); err != nil {
			b.Fatal(err)
		}
	}
	for i := range endpoints {
		id := fmt.Sprintf("ep_%02d", i)
		res, err := s.ClaimDue(ctx, time.Now(), time.Now().Add(time.Minute), []store.ClaimRequest{{EndpointID: id, Limit: hours}})
		if err != nil {
			b.Fatal(err)
		}
		var results []store.Result
		for _, c := range res[0].Claimed {
			results = append(results, store.Result{DeliveryID: c.DeliveryID, EndpointID: id, State: store.StateSucceeded,
				Attempt: store.Attempt{TenantID: "busy", EventID: c.EventID, At: c.EventTime, StatusCode: 200, Success: true, BytesSent: len(c.Payload)}})
		}
		if len(results) != hours {
			b.Fatalf("claimed %d deliveries of %s, want %d", len(results), id, hours)
		}
		if err := s.RecordResults(ctx, results); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range []struct {
		name string
		f    store.UsageFilter
		rows int
	}{
		{"month-hourly", store.UsageFilter{TenantID: "busy", From: start, To: end}, hours},
		{"month-hourly-by-endpoint", store.UsageFilter{TenantID: "busy", From: start, To: end, ByEndpoint: true}, hours * endpoints},
		{"month-daily", store.UsageFilter{TenantID: "busy", From: start.Truncate(24 * time.Hour), To: end, Daily: true}, 0},
	} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				rows, err := s.Usage(ctx, c.f)
				if err != nil {
					b.Fatal(err)
				}
				if c.rows > 0 && len(rows) != c.rows {
					b.Fatalf("%d rows, want %d", len(rows), c.rows)
				}
			}
		})
	}
}
