package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/internal/store"
)

// FanOutTarget is issue 14's bound: another tenant's single publishes are acknowledged in well
// under a second while one tenant fans out huge batches.
const FanOutTarget = time.Second

// FanOutConfig is the fan-out scenario: tenant "quiet" publishes single events to one endpoint
// at Rate per second for Duration, first alone, then while tenant "loud" publishes batches of
// Batch events to Endpoints endpoints back to back (Batch × Endpoints deliveries each, at most
// the node's per-request limit). Loud's endpoints take one delivery a second each, so that
// what quiet feels is the fan-out's writes rather than the delivery of its backlog.
type FanOutConfig struct {
	Duration    time.Duration
	Rate        float64
	Batch       int
	Endpoints   int
	DatabaseURL string // PostgreSQL instead of SQLite
	Synchronous string
}

// FanOutRun is one half of the scenario.
type FanOutRun struct {
	Loud               bool
	Published          int           // quiet's publishes acknowledged
	AckP50, AckP99     time.Duration // quiet's publish acknowledgements
	AckMax             time.Duration
	Batches            int           // loud's batches acknowledged
	BatchP50, BatchP99 time.Duration // loud's batch acknowledgements
}

// FanOut is the scenario's two runs.
type FanOut struct {
	Config          FanOutConfig
	Alone, WithLoud *FanOutRun
}

// RunFanOut runs the scenario: quiet alone, then with loud.
func RunFanOut(ctx context.Context, cfg FanOutConfig) (*FanOut, error) {
	if cfg.Duration <= 0 {
		cfg.Duration = 20 * time.Second
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 100
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 200
	}
	if cfg.Endpoints <= 0 {
		cfg.Endpoints = store.DefaultMaxDeliveries / cfg.Batch
	}
	out := &FanOut{Config: cfg}
	for _, loud := range []bool{false, true} {
		r, err := runFanOut(ctx, cfg, loud)
		if err != nil {
			return nil, err
		}
		if loud {
			out.WithLoud = r
		} else {
			out.Alone = r
		}
	}
	return out, nil
}

func runFanOut(ctx context.Context, cfg FanOutConfig, loud bool) (*FanOutRun, error) {
	dir, err := os.MkdirTemp("", "herald-bench-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
	defer sink.Close()
	schema := ""
	if cfg.DatabaseURL != "" {
		schema = fmt.Sprintf("herald_bench_%d", time.Now().UnixNano())
		defer dropSchema(cfg.DatabaseURL, schema)
	}
	n, err := node.Start(ctx, node.Config{
		Addr: "127.0.0.1:0", DataDir: dir, Dev: true, APIKey: benchKey, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		DatabaseURL: cfg.DatabaseURL, DatabaseSchema: schema, SQLiteSynchronous: cfg.Synchronous, Retention: -1,
		Limits: store.Limits{MaxDeliveries: max(cfg.Batch*cfg.Endpoints, store.DefaultMaxDeliveries)},
	})
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	defer func() {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = n.Close(c)
	}()
	c := &client{base: n.URL(), http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}}
	if err := c.post(ctx, "/v1/event-types", `{"name":"bench.happened"}`, http.StatusCreated); err != nil {
		return nil, err
	}
	for _, t := range []struct {
		id        string
		endpoints int
	}{{"quiet", 1}, {"loud", cfg.Endpoints}} {
		if err := c.post(ctx, "/v1/tenants", fmt.Sprintf(`{"id":%q,"name":%q,"max_endpoints":%d}`, t.id, t.id, max(t.endpoints, 1)), http.StatusCreated); err != nil {
			return nil, err
		}
		for i := range t.endpoints {
			ep := map[string]any{"url": fmt.Sprintf("%s/%s/%d", sink.URL, t.id, i), "event_types": []string{"*"}}
			if t.id == "loud" {
				// One delivery a second each: the scenario measures the fan-out's writes, not the
				// dispatcher sending 20,000 requests a batch on the same cores.
				ep["rate_limit"] = 1
			}
			body, _ := json.Marshal(ep)
			if err := c.post(ctx, "/v1/tenants/"+t.id+"/endpoints", string(body), http.StatusCreated); err != nil {
				return nil, err
			}
		}
	}

	run := &FanOutRun{Loud: loud}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var batches []time.Duration
	var loudErr error
	if loud {
		events := make([]string, cfg.Batch)
		for i := range events {
			events[i] = `{"type":"bench.happened","data":{"n":` + fmt.Sprint(i) + `}}`
		}
		body := `{"events":[` + strings.Join(events, ",") + `]}`
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				start := time.Now()
				if err := c.post(ctx, "/v1/tenants/loud/events/batch", body, http.StatusAccepted); err != nil {
					if ctx.Err() == nil {
						loudErr = err
					}
					return
				}
				batches = append(batches, time.Since(start))
			}
		}()
		time.Sleep(200 * time.Millisecond) // loud's first batch is under way
	}
	var mu sync.Mutex
	var acks []time.Duration
	var quietErr error
	tick := time.NewTicker(time.Duration(float64(time.Second) / cfg.Rate))
	end := time.After(cfg.Duration)
	var quiet sync.WaitGroup
publishing:
	for {
		select {
		case <-end:
			break publishing
		case <-tick.C:
			quiet.Add(1)
			go func() {
				defer quiet.Done()
				start := time.Now()
				err := c.post(ctx, "/v1/tenants/quiet/events", `{"type":"bench.happened","data":{}}`, http.StatusAccepted)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					quietErr = err
					return
				}
				acks = append(acks, time.Since(start))
			}()
		}
	}
	tick.Stop()
	quiet.Wait()
	cancel()
	wg.Wait()
	if quietErr != nil {
		return nil, fmt.Errorf("quiet tenant: %w", quietErr)
	}
	if loudErr != nil {
		return nil, fmt.Errorf("loud tenant: %w", loudErr)
	}
	slices.Sort(acks)
	slices.Sort(batches)
	run.Published, run.Batches = len(acks), len(batches)
	if len(acks) > 0 {
		run.AckP50, run.AckP99, run.AckMax = percentile(acks, 0.50), percentile(acks, 0.99), acks[len(acks)-1]
	}
	if len(batches) > 0 {
		run.BatchP50, run.BatchP99 = percentile(batches, 0.50), percentile(batches, 0.99)
	}
	return run, nil
}

// Print writes both runs and the verdict against FanOutTarget.
func (f *FanOut) Print(w io.Writer) {
	fmt.Fprintln(w, "| run | quiet publishes | quiet ack p50 | quiet ack p99 | quiet ack max | loud batches | loud batch p50 | loud batch p99 |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	for _, r := range []*FanOutRun{f.Alone, f.WithLoud} {
		name := "quiet alone"
		if r.Loud {
			name = fmt.Sprintf("with loud: %d events × %d endpoints per batch", f.Config.Batch, f.Config.Endpoints)
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %d | %s | %s |\n", name, r.Published, ms(r.AckP50), ms(r.AckP99), ms(r.AckMax),
			r.Batches, ms(r.BatchP50), ms(r.BatchP99))
	}
	verdict := "met"
	if f.WithLoud.AckP99 > FanOutTarget {
		verdict = "NOT met"
	}
	fmt.Fprintf(w, "\nquiet tenant's publish ack p99 while loud fans out: %s (alone %s; target < %s: %s)\n",
		ms(f.WithLoud.AckP99), ms(f.Alone.AckP99), ms(FanOutTarget), verdict)
}
