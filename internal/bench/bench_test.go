package bench

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
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
			// The node runs in this process: the CPU figure is the whole process's.
			if r.CPUPerDelivery <= 0 || r.BenchCPU <= 0 || r.NodeCPU != 0 || r.CPUScope != "bench process" {
				t.Fatalf("CPU per delivery %.0f µs of %q (bench %s, node %s)", r.CPUPerDelivery, r.CPUScope, r.BenchCPU, r.NodeCPU)
			}
			// Both publish as fast as they can, so both measure the ingest ceiling.
			if r.IngestCeilingPerSec <= 0 || r.IngestRatio <= 0 {
				t.Fatalf("ingest ceiling %.0f/s, ratio %.2f", r.IngestCeilingPerSec, r.IngestRatio)
			}
		})
	}
}

func TestRunIsolation_SeveralTenantsWithAndWithoutHanging(t *testing.T) {
	t.Parallel()
	// 3 tenants × 2 healthy endpoints, plus 2 hanging endpoints in the first two tenants.
	cfg := Config{Name: "tiny tenants", Events: 30, Rate: 100, Publishers: 4, Tenants: 3, Endpoints: 2, Hanging: 2, Concurrency: 2}
	iso, err := RunIsolation(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Result{iso.With, iso.Without} {
		if r.Deliveries != 60 || r.Missing != 0 {
			t.Fatalf("%s: deliveries %d, missing %d; want 60 and 0", r.Config.Name, r.Deliveries, r.Missing)
		}
		if r.P50 <= 0 || r.P99 < r.P50 || r.CeilingPerSec <= 0 {
			t.Fatalf("%s: result = %+v", r.Config.Name, r)
		}
	}
	if iso.With.Config.Hanging != 2 || iso.Without.Config.Hanging != 0 || iso.Without.Config.Tenants != 3 {
		t.Fatalf("with %+v, without %+v", iso.With.Config, iso.Without.Config)
	}
	if iso.P99Ratio() <= 0 {
		t.Fatalf("p99 ratio = %v", iso.P99Ratio())
	}
	var out strings.Builder
	iso.Print(&out)
	for _, want := range []string{"3 tenants × 2 (+2)", "3 tenants × 2 |", "target ≤ 1.2×"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the printout lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := RunIsolation(context.Background(), Config{Events: 1}); err == nil {
		t.Error("an isolation run without hanging endpoints must be refused")
	}
}

func TestRun_SoakSamplesTheProcess(t *testing.T) {
	t.Parallel()
	cfg := Soak(1500*time.Millisecond, 200)
	cfg.SampleEvery = 200 * time.Millisecond
	r, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Deliveries != 300 || r.Missing != 0 || r.P99 <= 0 || r.Ratio <= 0 {
		t.Fatalf("result = %+v", r)
	}
	if len(r.Samples) < 5 {
		t.Fatalf("%d samples in 1.5 s at 200 ms, want at least 5", len(r.Samples))
	}
	for i, s := range r.Samples {
		if s.HeapMB <= 0 || s.Goroutines <= 0 || (i > 0 && s.At < r.Samples[i-1].At) {
			t.Fatalf("sample %d = %+v", i, s)
		}
	}
	if last := r.Samples[len(r.Samples)-1]; last.Delivered < 300 {
		t.Errorf("the last sample saw %d deliveries, want all 300", last.Delivered)
	}
	from, to, ok := SoakGrowth(r.Samples, r.Publishing)
	if !ok || from.At >= to.At || to.At > r.Publishing {
		t.Errorf("growth measured from %v to %v (ok %v), publishing took %v", from.At, to.At, ok, r.Publishing)
	}
	var out strings.Builder
	PrintSoak(&out, r)
	for _, want := range []string{"| at | delivered |", "growth from", "0 missing"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the printout lacks %q:\n%s", want, out.String())
		}
	}
}

func TestSoakGrowth_FromTheFirstMinute(t *testing.T) {
	t.Parallel()
	var samples []Sample
	for at := time.Duration(0); at <= 10*time.Minute; at += 10 * time.Second {
		samples = append(samples, Sample{At: at, HeapMB: float64(at / time.Second)})
	}
	from, to, ok := SoakGrowth(samples, 10*time.Minute)
	if !ok || from.At != time.Minute || to.At != 10*time.Minute {
		t.Fatalf("from %v to %v (ok %v), want 1m0s to 10m0s", from.At, to.At, ok)
	}
	// Samples after publishing ended are left out.
	if _, to, _ := SoakGrowth(samples, 9*time.Minute+55*time.Second); to.At != 9*time.Minute+50*time.Second {
		t.Errorf("growth measured to %v, want the last sample while publishing (9m50s)", to.At)
	}
	if _, _, ok := SoakGrowth(samples[:1], time.Hour); ok {
		t.Error("one sample has no growth")
	}
}

// BenchmarkEndToEnd publishes b.N events through the API to one endpoint and waits for every
// delivery; it reports deliveries/s, the same-run ceiling and their ratio, and the CPU of the
// whole test process per delivery.
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
			b.ReportMetric(r.CPUPerDelivery, "cpu-µs/delivery")
		})
	}
}

// The broker destinations scenario end to end on the real brokers, at a small size: an endpoint
// of each type (created through the API) gets every event of a backlog and of a steady rate,
// consumed from the broker, and so does the plain client.
func TestBrokers_EveryEventReachesEachBroker(t *testing.T) {
	cfg := BrokerConfig{NATSURL: os.Getenv("HERALD_TEST_NATS_URL"), AMQPURL: os.Getenv("HERALD_TEST_AMQP_URL"),
		Backlog: 300, Rate: 100, Duration: time.Second, Synchronous: "NORMAL"}
	if redisURL := os.Getenv("HERALD_TEST_REDIS_URL"); redisURL != "" {
		u, err := url.Parse(redisURL)
		if err != nil {
			t.Fatal(err)
		}
		cfg.RedisAddr = u.Host
	}
	if cfg.NATSURL == "" && cfg.AMQPURL == "" && cfg.RedisAddr == "" {
		t.Skip("HERALD_TEST_NATS_URL, HERALD_TEST_AMQP_URL and HERALD_TEST_REDIS_URL are unset")
	}
	runs, err := RunBrokers(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		if r.Missing != 0 || r.DrainRate <= 0 || r.CeilingRate <= 0 || r.P99 <= 0 || r.CeilP99 <= 0 || r.DrainCPU <= 0 {
			t.Errorf("%s: %+v", r.Type, *r)
		}
	}
}

// The broker sources scenario end to end on the real brokers, at a small size: a source of each
// type (created through the API) takes a backlog into events delivered to a webhook endpoint.
func TestSources_EveryMessageBecomesAnEvent(t *testing.T) {
	cfg := BrokerConfig{NATSURL: os.Getenv("HERALD_TEST_NATS_URL"), AMQPURL: os.Getenv("HERALD_TEST_AMQP_URL"),
		Backlog: 300, Synchronous: "NORMAL"}
	if redisURL := os.Getenv("HERALD_TEST_REDIS_URL"); redisURL != "" {
		u, err := url.Parse(redisURL)
		if err != nil {
			t.Fatal(err)
		}
		cfg.RedisAddr = u.Host
	}
	if cfg.NATSURL == "" && cfg.AMQPURL == "" && cfg.RedisAddr == "" {
		t.Skip("HERALD_TEST_NATS_URL, HERALD_TEST_AMQP_URL and HERALD_TEST_REDIS_URL are unset")
	}
	runs, err := RunSources(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		if r.Missing != 0 || r.Rate <= 0 || r.Ceiling <= 0 {
			t.Errorf("%s: %+v", r.Type, *r)
		}
	}
}

// The endpoint authentication scenario delivers every event of each kind, the OAuth2 endpoint
// with a token its receiver issued and the mutual TLS one with a client certificate (its
// receiver refuses the others), and measures CPU for each.
func TestEndpointAuth_DeliversThroughEachKind(t *testing.T) {
	t.Parallel()
	runs, err := RunEndpointAuth(context.Background(), AuthConfig{Events: 200, Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, r := range runs {
		kinds = append(kinds, r.Kind)
		// The first event goes through while the endpoint is still rate limited, before the
		// drain is timed.
		if r.Deliveries < 199 || r.CPU <= 0 || r.CPUPerDelivery() <= 0 {
			t.Errorf("%s: %d deliveries, CPU %v", r.Kind, r.Deliveries, r.CPU)
		}
	}
	if strings.Join(kinds, ",") != "plain,oauth2,mtls" {
		t.Fatalf("kinds %v", kinds)
	}
	var b strings.Builder
	AuthTable(&b, runs)
	if !strings.Contains(b.String(), "oauth2:") || !strings.Contains(b.String(), "mtls:") {
		t.Errorf("table without the verdicts:\n%s", b.String())
	}
}
