package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/dispatch"
	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/internal/store"
)

// BatchingConfig is the batching scenario: one endpoint on a local receiver drains a backlog of
// Events, once sending each event on its own and once in batches (store.Batching), on SQLite.
type BatchingConfig struct {
	Events      int
	MaxEvents   int
	MaxWait     time.Duration
	Concurrency int // the endpoint's max_concurrency
	PayloadSize int
	Synchronous string
}

// BatchingRun is one drain.
type BatchingRun struct {
	Batch        *store.Batching // nil: one event a request
	Events       int
	Requests     int64
	Elapsed      time.Duration // from the receiver opening to the last event's arrival
	EventsPerSec float64
	// CPUPerEvent is the CPU time (user + system) of this whole process (node and receiver) per
	// event over the drain, in µs.
	CPUPerEvent float64
}

// Batching is the scenario's two runs, and the ceiling measured in the same run: a plain Go HTTP
// client posting the same number of single-event requests to the same kind of receiver, with
// the endpoint's concurrency.
type Batching struct {
	Off, On BatchingRun
	Ceiling float64 // requests (= events) per second
}

// Ratio is events/s with batching over events/s without.
func (b *Batching) Ratio() float64 {
	if b.Off.EventsPerSec <= 0 {
		return 0
	}
	return b.On.EventsPerSec / b.Off.EventsPerSec
}

// Print writes both runs and the ratio.
func (b *Batching) Print(w io.Writer) {
	fmt.Fprintln(w, "| batching | events | requests | drain s | events/s | CPU µs/event (bench process) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, r := range []BatchingRun{b.Off, b.On} {
		name := "off"
		if r.Batch != nil {
			name = fmt.Sprintf("max_events %d, max_wait %s", r.Batch.MaxEvents, r.Batch.MaxWait)
		}
		fmt.Fprintf(w, "| %s | %d | %d | %.2f | %.0f | %.0f |\n", name, r.Events, r.Requests, r.Elapsed.Seconds(), r.EventsPerSec, r.CPUPerEvent)
	}
	fmt.Fprintf(w, "| ceiling: plain Go client, one event a request | %d | %d | — | %.0f | — |\n", b.Off.Events, b.Off.Events, b.Ceiling)
	fmt.Fprintf(w, "\nevents/s with batching / without: %.1f×; without / ceiling: %.2f; with / ceiling: %.2f\n",
		b.Ratio(), b.Off.EventsPerSec/b.Ceiling, b.On.EventsPerSec/b.Ceiling)
}

// RunBatching drains the backlog without batching, then with it.
func RunBatching(ctx context.Context, cfg BatchingConfig) (*Batching, error) {
	if cfg.Events <= 0 {
		cfg.Events = 20000
	}
	if cfg.MaxEvents <= 0 {
		cfg.MaxEvents = 100
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 50 * time.Millisecond
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 10
	}
	if cfg.PayloadSize <= 0 {
		cfg.PayloadSize = 512
	}
	off, err := runBatching(ctx, cfg, nil)
	if err != nil {
		return nil, fmt.Errorf("without batching: %w", err)
	}
	on, err := runBatching(ctx, cfg, &store.Batching{MaxEvents: cfg.MaxEvents, MaxWait: cfg.MaxWait})
	if err != nil {
		return nil, fmt.Errorf("with batching: %w", err)
	}
	ceil, err := batchingCeiling(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Batching{Off: *off, On: *on, Ceiling: ceil}, nil
}

// batchingCeiling posts cfg.Events single events to a receiver like the runs', open from the start.
func batchingCeiling(ctx context.Context, cfg BatchingConfig) (float64, error) {
	rc := &batchReceiver{want: int64(cfg.Events), gate: make(chan struct{}), done: make(chan struct{})}
	close(rc.gate)
	srv := httptest.NewServer(rc)
	defer srv.Close()
	env := event.Envelope{ID: "evt_ceiling", Type: "bench.created", Timestamp: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Data: fmt.Appendf(nil, `{"pad":%q}`, strings.Repeat("x", cfg.PayloadSize))}
	body, err := env.Encode()
	if err != nil {
		return 0, fmt.Errorf("ceiling body: %w", err)
	}
	return ceiling(ctx, srv.URL, body, cfg.Events, cfg.Concurrency)
}

// batchReceiver counts the events it gets, one a request or a JSON array of them, and holds
// requests until opened.
type batchReceiver struct {
	want     int64
	events   atomic.Int64
	requests atomic.Int64
	gate     chan struct{}
	done     chan struct{}
	once     sync.Once
	last     atomic.Int64 // unix nanoseconds of the last arrival
}

func (rc *batchReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	<-rc.gate
	n := int64(1)
	if b := bytes.TrimSpace(body); len(b) > 0 && b[0] == '[' {
		var envs []json.RawMessage
		if err := json.Unmarshal(b, &envs); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		n = int64(len(envs))
	}
	w.WriteHeader(http.StatusNoContent)
	rc.requests.Add(1)
	rc.last.Store(time.Now().UnixNano())
	if rc.events.Add(n) >= rc.want {
		rc.once.Do(func() { close(rc.done) })
	}
}

func runBatching(ctx context.Context, cfg BatchingConfig, batch *store.Batching) (*BatchingRun, error) {
	dir, err := os.MkdirTemp("", "herald-bench-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	rc := &batchReceiver{want: int64(cfg.Events), gate: make(chan struct{}), done: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: rc}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	gateOpen := false
	defer func() {
		if !gateOpen {
			close(rc.gate)
		}
	}()

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := node.Start(ctx, node.Config{
		Addr: "127.0.0.1:0", DataDir: dir, Dev: true, APIKey: benchKey, Logger: log,
		SQLiteSynchronous: cfg.Synchronous, Retention: -1, Dispatch: dispatch.Config{Logger: log},
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = n.Close(c)
	}()
	api := &client{base: n.URL(), http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}}
	if err := api.setup(ctx, "http://"+ln.Addr().String(), Config{Tenants: 1, Endpoints: 1, Concurrency: cfg.Concurrency}); err != nil {
		return nil, err
	}
	if batch != nil {
		eps, _, err := n.Store.ListEndpoints(ctx, "bench", store.Page{Limit: 1})
		if err != nil || len(eps) != 1 {
			return nil, fmt.Errorf("the endpoint: %v", err)
		}
		ep := eps[0]
		ep.Options.Batch = batch
		if err := n.Store.UpdateEndpoint(ctx, &ep); err != nil {
			return nil, fmt.Errorf("enable batching: %w", err)
		}
		n.Dispatcher.EndpointChanged(ep.ID)
	}

	// The backlog, 100 events a publish, 4 publishers, while the receiver holds its requests.
	data := `{"blob":"` + strings.Repeat("x", max(cfg.PayloadSize-11, 0)) + `"}`
	var next atomic.Int64
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				from := int(next.Add(100) - 100)
				if from >= cfg.Events {
					return
				}
				var b strings.Builder
				b.WriteString(`{"events":[`)
				for i := from; i < min(from+100, cfg.Events); i++ {
					if i > from {
						b.WriteByte(',')
					}
					fmt.Fprintf(&b, `{"id":"b-%d","type":"bench.happened","data":%s}`, i, data)
				}
				b.WriteString(`]}`)
				if err := api.post(ctx, "/v1/tenants/bench/events/batch", b.String(), http.StatusAccepted); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}

	start, cpu := time.Now(), selfCPU()
	close(rc.gate)
	gateOpen = true
	select {
	case <-rc.done:
	case <-time.After(5 * time.Minute):
		return nil, fmt.Errorf("%d of %d events arrived", rc.events.Load(), cfg.Events)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	cpu = selfCPU() - cpu
	elapsed := time.Unix(0, rc.last.Load()).Sub(start)
	return &BatchingRun{Batch: batch, Events: cfg.Events, Requests: rc.requests.Load(), Elapsed: elapsed,
		EventsPerSec: float64(cfg.Events) / elapsed.Seconds(), CPUPerEvent: float64(cpu.Microseconds()) / float64(cfg.Events)}, nil
}
