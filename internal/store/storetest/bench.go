package storetest

import (
	"fmt"
	"sync/atomic"
	"testing"

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
