package bench

import (
	"context"
	"testing"
)

func TestRun_DeliversEverythingAndMeasuresTheCeiling(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{Name: "single", Events: 300, Publishers: 4, Endpoints: 1},
		{Name: "fan-out batch drain", Events: 40, Publishers: 2, Endpoints: 5, Batch: 10, Drain: true},
	} {
		t.Run(cfg.Name, func(t *testing.T) {
			r, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if r.Deliveries != cfg.Events*cfg.Endpoints {
				t.Fatalf("deliveries = %d, want %d", r.Deliveries, cfg.Events*cfg.Endpoints)
			}
			if r.DeliveriesPerSec <= 0 || r.CeilingPerSec <= 0 || r.Ratio <= 0 || r.IngestPerSec <= 0 {
				t.Fatalf("result = %+v", r)
			}
			if !cfg.Drain && (r.P50 <= 0 || r.P99 < r.P50) {
				t.Fatalf("latencies p50 %s p99 %s", r.P50, r.P99)
			}
		})
	}
}

// BenchmarkEndToEnd publishes b.N events through the API to one endpoint and waits for every
// delivery; it reports deliveries/s, the same-run ceiling and their ratio.
func BenchmarkEndToEnd(b *testing.B) {
	for _, cfg := range []Config{
		{Name: "one endpoint", Publishers: 16, Endpoints: 1, Batch: 100},
		{Name: "fan-out 100", Publishers: 8, Endpoints: 100, Batch: 10},
	} {
		b.Run(cfg.Name, func(b *testing.B) {
			cfg.Events = max(b.N/cfg.Endpoints, cfg.Batch)
			r, err := Run(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(r.DeliveriesPerSec, "deliveries/s")
			b.ReportMetric(r.CeilingPerSec, "ceiling/s")
			b.ReportMetric(r.Ratio, "ratio")
			b.ReportMetric(float64(r.P99.Microseconds())/1000, "p99-ms")
		})
	}
}
