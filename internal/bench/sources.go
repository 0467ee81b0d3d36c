package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// SourceTarget is issue 15's bound for broker sources: a source takes events into the store (and
// fans them out to one webhook endpoint) at least half as fast as the SQLite publish path's batch
// ingest, measured in the same run.
const SourceTarget = 0.5

// SourceRun is what one broker source type did.
type SourceRun struct {
	Type string
	// Rate is the events per second the source took from a backlog on the broker and delivered
	// to the endpoint; Ceiling the batch publish API's events per second into the same node,
	// acknowledged (stored with their deliveries).
	Rate, Ceiling float64
	Missing       int
}

// Ratio is Rate over Ceiling.
func (r *SourceRun) Ratio() float64 {
	if r.Ceiling <= 0 {
		return 0
	}
	return r.Rate / r.Ceiling
}

func (r *natsRig) sourceConfig() map[string]any {
	return map[string]any{"url": r.url, "stream": r.stream}
}
func (r *amqpRig) sourceConfig() map[string]any {
	c := r.settings()
	delete(c, "exchange")
	delete(c, "routing_key")
	c["queue"] = r.queue
	return c
}
func (r *redisRig) sourceConfig() map[string]any {
	return map[string]any{"address": r.addr, "stream": r.stream, "start": "all"}
}

// RunSources runs the broker sources scenario for each broker with an address: Backlog events
// put on the broker, then a source created to take them; the ceiling is the same number of events
// published in batches of 100 by Concurrency publishers to the same node.
func RunSources(ctx context.Context, cfg BrokerConfig) ([]*SourceRun, error) {
	cfg.defaults()
	return eachRig(ctx, cfg, "s", runSource)
}

// countingReceiver counts the distinct events delivered to it, by data.n.
type countingReceiver struct {
	mu   sync.Mutex
	seen map[int]bool
	n    atomic.Int64
}

func (c *countingReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var env struct {
		Data struct {
			N int `json:"n"`
		} `json:"data"`
	}
	if json.Unmarshal(body, &env) == nil {
		c.mu.Lock()
		if !c.seen[env.Data.N] {
			c.seen[env.Data.N] = true
			c.n.Add(1)
		}
		c.mu.Unlock()
	}
	w.WriteHeader(http.StatusNoContent)
}

func runSource(ctx context.Context, cfg BrokerConfig, rg rig) (*SourceRun, error) {
	run := &SourceRun{Type: rg.name()}
	rc := &countingReceiver{seen: map[int]bool{}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	api, closeNode, err := startBenchNode(ctx, cfg.Logger, cfg.Synchronous)
	if err != nil {
		return nil, err
	}
	defer closeNode()
	if err := api.post(ctx, "/v1/event-types", `{"name":"bench.happened"}`, http.StatusCreated); err != nil {
		return nil, err
	}
	for _, tenant := range []string{"bus", "api"} {
		if _, err := api.must(ctx, "POST", "/v1/tenants", map[string]any{"id": tenant, "name": tenant}, http.StatusCreated); err != nil {
			return nil, err
		}
		if _, err := api.must(ctx, "POST", "/v1/tenants/"+tenant+"/endpoints", map[string]any{"url": srv.URL + "/" + tenant,
			"event_types": []string{"*"}, "max_concurrency": cfg.Concurrency}, http.StatusCreated); err != nil {
			return nil, err
		}
	}
	pad := strings.Repeat("x", max(cfg.PayloadSize-24, 1))
	body := func(i int) []byte { return []byte(`{"n":` + strconv.Itoa(i) + `,"s":"` + pad + `"}`) }

	// The backlog, put on the broker before the source exists.
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(cfg.Backlog); i = next.Add(1) - 1 {
				if err := rg.publish(ctx, "m-"+strconv.FormatInt(i, 10), body(int(i))); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		return nil, fmt.Errorf("backlog: %d publishes failed", f)
	}
	start := time.Now()
	if _, err := api.must(ctx, "POST", "/v1/tenants/bus/broker-sources", map[string]any{"name": "bench", "type": rg.name(),
		"config": rg.sourceConfig(), "mapping": map[string]any{"event_type": map[string]any{"from": "fixed", "value": "bench.happened"}}},
		http.StatusCreated); err != nil {
		return nil, err
	}
	last, lastAt := int64(0), time.Now()
	for rc.n.Load() < int64(cfg.Backlog) {
		if cur := rc.n.Load(); cur != last {
			last, lastAt = cur, time.Now()
		} else if time.Since(lastAt) > time.Minute {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	got := rc.n.Load()
	run.Rate = float64(got) / time.Since(start).Seconds()
	run.Missing = cfg.Backlog - int(got)

	// The ceiling: the same number of events through the batch publish API, acknowledged.
	next.Store(0)
	start = time.Now()
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := next.Add(1) - 1; b*100 < int64(cfg.Backlog); b = next.Add(1) - 1 {
				var sb strings.Builder
				sb.WriteString(`{"events":[`)
				for i := b * 100; i < min(b*100+100, int64(cfg.Backlog)); i++ {
					if i > b*100 {
						sb.WriteByte(',')
					}
					fmt.Fprintf(&sb, `{"id":"c-%d","type":"bench.happened","data":%s}`, i, body(int(i)+cfg.Backlog))
				}
				sb.WriteString(`]}`)
				if err := api.post(ctx, "/v1/tenants/api/events/batch", sb.String(), http.StatusAccepted); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		return nil, fmt.Errorf("ceiling: %d batches failed", f)
	}
	run.Ceiling = float64(cfg.Backlog) / time.Since(start).Seconds()
	return run, nil
}

// PrintSources writes the broker sources table and verdicts.
func PrintSources(w io.Writer, cfg BrokerConfig, runs []*SourceRun) {
	cfg.defaults()
	fmt.Fprintf(w, "backlog of %d messages of %d B on the broker, taken by a source into one tenant with one webhook endpoint; ceiling: the same number of events published in batches of 100 by %d publishers (SQLite, same node)\n\n",
		cfg.Backlog, cfg.PayloadSize, cfg.Concurrency)
	fmt.Fprintln(w, "| source type | events/s taken and delivered | batch publish (events/s) | ratio | missing |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, r := range runs {
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %.2f | %d |\n", r.Type, r.Rate, r.Ceiling, r.Ratio(), r.Missing)
	}
	fmt.Fprintln(w)
	for _, r := range runs {
		verdict := "NOT met"
		switch {
		case r.Missing > 0:
			verdict = "NOT met: events missing"
		case r.Ratio() >= SourceTarget:
			verdict = "met"
		}
		fmt.Fprintf(w, "%s source: %.2f of the batch publish path (target ≥ %.1f: %s)\n", r.Type, r.Ratio(), SourceTarget, verdict)
	}
}
