package storetest

import (
	"fmt"
	"testing"

	"github.com/heraldhq/herald/internal/store"
)

// BenchmarkPublish measures a driver's publish path: single events to two endpoints (the main
// path, one publisher at a time and several at once) and a batch of 200 events to 100 endpoints.
func BenchmarkPublish(b *testing.B, s store.Store) {
	for _, id := range []string{"single", "parallel", "fanout"} {
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
	b.Run("single", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := s.Publish(ctx, "single", []*store.Event{event(fmt.Sprintf("s%d", i), "order.created")}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(8)
		var next int64
		var mu = make(chan struct{}, 1)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				mu <- struct{}{}
				next++
				i := next
				<-mu
				if _, err := s.Publish(ctx, "parallel", []*store.Event{event(fmt.Sprintf("p%d", i), "order.created")}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("fanout-200x100", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := s.Publish(ctx, "fanout", events(fmt.Sprintf("f%d", i), "order.created", 200)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
