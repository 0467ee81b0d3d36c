package bench

import (
	"context"
	"fmt"
	"io"
	"time"
)

// IsolationTarget is issue 6's bound on what hanging endpoints may cost the healthy ones: their
// p99 with the hanging endpoints at most 1.2 times their p99 without.
const IsolationTarget = 1.2

// TenantsHanging is issue 6's "1,000 endpoints across 100 tenants, 1 % hanging": 100 tenants with
// 10 healthy endpoints each, plus 10 endpoints that never answer (one in each of ten tenants),
// and events published one at a time to every tenant in turn at rate events/s in all.
func TenantsHanging(events int, rate float64) Config {
	return Config{
		Name: "100 tenants × 10 endpoints, 1 % hanging", Events: events, Rate: rate, Publishers: 16,
		Tenants: 100, Endpoints: 10, Hanging: 10, Concurrency: 10,
	}
}

// Isolation is one scenario run twice: with its hanging endpoints, and without them.
type Isolation struct {
	With, Without *Result
}

// RunIsolation runs cfg as it is, then again without its hanging endpoints, so that the healthy
// endpoints' latencies can be compared within one session.
func RunIsolation(ctx context.Context, cfg Config) (*Isolation, error) {
	if cfg.Hanging <= 0 {
		return nil, fmt.Errorf("isolation: the scenario has no hanging endpoints")
	}
	with, err := Run(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("with hanging endpoints: %w", err)
	}
	cfg.Name += ", without the hanging"
	cfg.Hanging = 0
	without, err := Run(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("without hanging endpoints: %w", err)
	}
	return &Isolation{With: with, Without: without}, nil
}

// P99Ratio is the healthy endpoints' p99 with the hanging endpoints over their p99 without.
func (iso *Isolation) P99Ratio() float64 {
	if iso.Without.P99 <= 0 {
		return 0
	}
	return float64(iso.With.P99) / float64(iso.Without.P99)
}

// Print writes both runs as a table and the p99 ratio against its target.
func (iso *Isolation) Print(w io.Writer) {
	Table(w, []*Result{iso.With, iso.Without})
	verdict := "met"
	if iso.P99Ratio() > IsolationTarget {
		verdict = "NOT met"
	}
	fmt.Fprintf(w, "\nhealthy endpoints' p99 with the hanging endpoints / without: %s / %s = %.2f× (target ≤ %.1f×: %s)\n",
		ms(iso.With.P99), ms(iso.Without.P99), iso.P99Ratio(), IsolationTarget, verdict)
}

// Soak is a run at a fixed rate for a duration, sampled every 10 s: events publish one at a
// time from 16 publishers to one endpoint.
func Soak(duration time.Duration, rate float64) Config {
	return Config{
		Name: fmt.Sprintf("soak %s at %.0f ev/s", duration, rate), Events: max(int(duration.Seconds()*rate), 1), Rate: rate,
		Publishers: 16, Endpoints: 1, Concurrency: 10, SampleEvery: 10 * time.Second,
	}
}

// SoakGrowth compares the first sample taken once the run has warmed up (one minute, or a third
// of a shorter run) with the last one taken while events were still being published (before
// until): afterwards the bench's own publishers and their connections go away, which would hide
// growth elsewhere.
func SoakGrowth(samples []Sample, until time.Duration) (from, to Sample, ok bool) {
	for len(samples) > 2 && samples[len(samples)-1].At > until {
		samples = samples[:len(samples)-1]
	}
	if len(samples) < 2 {
		return Sample{}, Sample{}, false
	}
	last := samples[len(samples)-1]
	warm := min(time.Minute, last.At/3)
	for _, s := range samples[:len(samples)-1] {
		if s.At >= warm {
			return s, last, true
		}
	}
	return samples[0], last, true
}

// PrintSoak writes the samples of a soak as a table and the growth from the warmed-up sample to
// the end.
func PrintSoak(w io.Writer, r *Result) {
	fmt.Fprintln(w, "| at | delivered | heap in use MB (after GC) | RSS MB | goroutines |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, s := range r.Samples {
		fmt.Fprintf(w, "| %s | %d | %.1f | %.1f | %d |\n", s.At.Round(time.Second), s.Delivered, s.HeapMB, s.RSSMB, s.Goroutines)
	}
	from, to, ok := SoakGrowth(r.Samples, r.Publishing)
	if !ok {
		return
	}
	fmt.Fprintf(w, "\ngrowth from %s to %s (the last sample while publishing, which took %s): heap %+.1f MB (%.1f → %.1f), RSS %+.1f MB (%.1f → %.1f), goroutines %+d (%d → %d)\n",
		from.At.Round(time.Second), to.At.Round(time.Second), r.Publishing.Round(time.Second), to.HeapMB-from.HeapMB, from.HeapMB, to.HeapMB,
		to.RSSMB-from.RSSMB, from.RSSMB, to.RSSMB, to.Goroutines-from.Goroutines, from.Goroutines, to.Goroutines)
	fmt.Fprintf(w, "deliveries: %d due, %d missing, %d duplicates; deliveries/s %.0f, ceiling %.0f/s, ratio %.3f\n",
		r.Deliveries, r.Missing, r.Duplicates, r.DeliveriesPerSec, r.CeilingPerSec, r.Ratio)
}
