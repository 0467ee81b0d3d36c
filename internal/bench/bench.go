// Package bench measures Herald end to end: it starts a receiver and a Herald node in this process,
// publishes events through the real API, and measures ingest rate, delivery rate, publish-to-receipt
// latency and memory. In the same run it measures the ceiling: a plain Go HTTP client posting the
// same bodies to the same receiver at the same concurrency, so the figures are read as a ratio of
// what this machine can do at all.
package bench

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/node"
)

// Config describes one scenario.
type Config struct {
	Name       string
	Events     int // events to publish
	Publishers int // concurrent publishers
	// Tenants spreads the events over this many tenants (default 1, named "bench"; more are named
	// bench-000, bench-001, …), each with its own Endpoints; publish request b (event b when
	// publishing one at a time) goes to tenant b mod Tenants.
	Tenants   int
	Endpoints int // endpoints of each tenant, subscribed to every event (fan-out)
	// Hanging endpoints are subscribed too but never answer (each attempt ends at its 5 s
	// timeout): the other endpoints' figures show whether they delay anyone else. They are
	// spread round-robin over the tenants, one per tenant until every tenant has one.
	Hanging     int
	Concurrency int     // max_concurrency of each endpoint
	QueueDepth  int     // the dispatcher's QueueDepth (0: its default)
	Rate        float64 // events per second over all publishers; 0 = as fast as possible
	Batch       int     // events per publish request (1 = single-event API, more = batch API)
	// Drain publishes everything while the receiver holds its requests, then lets them through:
	// deliveries/s then measures the engine draining a backlog, not the ingest rate.
	Drain bool
	// DatabaseURL runs the nodes on PostgreSQL (in a schema of their own, dropped afterwards)
	// instead of SQLite; Nodes is how many (default 1), publishers spread over them.
	DatabaseURL string
	Nodes       int
	// OnDrain, if set, is called when the drain starts (the CLI starts its CPU profile there).
	OnDrain func()
	// SampleEvery, if set, samples the live heap, the resident set and the goroutine count at
	// this interval while the scenario runs (a soak); the bench then keeps its own bookkeeping in
	// arrays allocated up front, so that only Herald's memory can grow.
	SampleEvery time.Duration
	// Inbound posts the events as webhooks to a source's ingest URL (/in/{token}), signed with
	// Standard Webhooks and verified by Herald, instead of publishing them through the API; the
	// receiver gets them forwarded. Ack latency is the time each ingest request took.
	Inbound     bool
	PayloadSize int    // bytes of data per event
	DataDir     string // where the SQLite store goes (a temporary directory if empty)
	Synchronous string // SQLite synchronous pragma
	Logger      *slog.Logger
	// Process runs each node as a `herald serve` child process (Binary; default: this
	// executable) instead of in this process: the publishers and the receiver stay here, so a
	// publish crosses processes as a user's does, and the node's CPU and memory are its own.
	Process bool
	Binary  string
	// PprofAddr (with Process) gives the first node a profiling listener there (herald serve
	// --pprof-addr), to profile it while the scenario runs.
	PprofAddr string
	// ReceiverURL, if set, is where the healthy endpoints deliver instead of the bench's own
	// receiver: the user's receiver, which must answer 2xx. The ceiling posts to it too. The bench
	// cannot see arrivals there, so it counts the nodes' successful attempts (GET /metrics) and
	// reports no latencies; a backlog drain needs the bench's receiver (it holds the requests).
	ReceiverURL string
}

// Result is what one scenario measured.
type Result struct {
	Config           Config
	Deliveries       int
	IngestPerSec     float64
	DeliveriesPerSec float64
	P50, P95, P99    time.Duration
	// AckP50 and AckP99 (inbound scenarios) are how long senders waited for Herald's answer.
	AckP50, AckP99 time.Duration
	PeakHeapMB     float64
	PeakRSSMB      float64
	CeilingPerSec  float64
	Ratio          float64
	Elapsed        time.Duration
	Publishing     time.Duration // how long publishing took
	// Duplicates counts deliveries that arrived more than once (at-least-once allows them);
	// Missing, deliveries that had not arrived when the expected number of requests had.
	Duplicates, Missing int
	Samples             []Sample // with Config.SampleEvery
	// CPUPerDelivery is the CPU time (user + system) spent per delivery, in µs, from the first
	// publish until the last delivery, by what CPUScope names: the node processes (Config.Process)
	// or this whole process (the nodes, the publishers and the receiver together), plus, on
	// PostgreSQL, the server's own processes and the backends serving the nodes' connections, when
	// the server runs on this machine. NodeCPU, BenchCPU (this process)
	// and DBCPU are the parts over the run; NodeCPU is 0 when the nodes run in this process.
	// DBSharedCPU is the part of DBCPU spent by the server's own processes (postmaster, WAL
	// writer, checkpointer, autovacuum), which work for every client of the server.
	CPUPerDelivery                        float64
	CPUScope                              string
	NodeCPU, BenchCPU, DBCPU, DBSharedCPU time.Duration
	// IngestCeilingPerSec is the second ceiling: the same publish requests, from the same
	// publishers, to a plain Go server that decodes them as Herald does and answers 202 without
	// storing anything (scenarios publishing as fast as they can; 0 otherwise); IngestRatio is
	// IngestPerSec over it.
	IngestCeilingPerSec, IngestRatio float64
}

// Sample is one reading of the process during a soak.
type Sample struct {
	At         time.Duration // since publishing began
	Delivered  int64
	HeapMB     float64 // heap in use after a GC: what is live
	RSSMB      float64 // resident set now (VmRSS)
	Goroutines int
}

const benchKey = "hk_admin_bench_0123456789abcdef"

// receiver counts deliveries and records when each arrives.
type receiver struct {
	srv      *http.Server
	url      string
	received atomic.Int64
	mu       sync.Mutex
	arrivals map[string][]time.Time // webhook-id -> arrival times
	want     int64                  // guarded by mu, like done and closed
	done     chan struct{}          // closed once want requests have arrived
	closed   bool
	gate     chan struct{} // while open (not closed), requests wait
	// compact, when set, replaces arrivals: a log allocated up front (a soak must not see the
	// bench's own bookkeeping grow).
	compact *arrivalLog
}

// arrivalLog records (event index, arrival time) pairs in a slice allocated up front; each slot
// is written by the one request that took its index.
type arrivalLog struct {
	next    atomic.Int64
	events  []int32
	at      []int64 // unix nanoseconds
	dropped atomic.Int64
}

func newArrivalLog(capacity int) *arrivalLog {
	return &arrivalLog{events: make([]int32, capacity), at: make([]int64, capacity)}
}

func (a *arrivalLog) record(event int, at time.Time) {
	k := a.next.Add(1) - 1
	if k >= int64(len(a.events)) {
		a.dropped.Add(1)
		return
	}
	a.events[k], a.at[k] = int32(event), at.UnixNano()
}

// newReceiver starts a receiver; with compact > 0 it logs arrivals in an arrivalLog of that
// capacity instead of a map.
func newReceiver(compact int) (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("receiver listen: %w", err)
	}
	rc := &receiver{url: "http://" + ln.Addr().String(), arrivals: map[string][]time.Time{}, done: make(chan struct{})}
	if compact > 0 {
		rc.compact = newArrivalLog(compact)
	}
	rc.srv = &http.Server{Handler: rc, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = rc.srv.Serve(ln) }()
	return rc, nil
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if strings.HasPrefix(r.URL.Path, "/hang/") {
		<-r.Context().Done() // Herald gives up at the endpoint's timeout
		return
	}
	rc.mu.Lock()
	gate := rc.gate
	rc.mu.Unlock()
	if gate != nil {
		<-gate
	}
	now := time.Now()
	id := r.Header.Get("webhook-id")
	if !strings.HasPrefix(id, "b-") {
		// A forwarded inbound request: its event id is Herald's; the sender's id is in the data.
		if i := bytes.Index(body, []byte(`"seq":"`)); i >= 0 {
			rest := body[i+7:]
			if j := bytes.IndexByte(rest, '"'); j >= 0 {
				id = string(rest[:j])
			}
		}
	}
	switch {
	case id == "":
	case rc.compact != nil:
		if i, err := strconv.Atoi(strings.TrimPrefix(id, "b-")); err == nil {
			rc.compact.record(i, now)
		}
	default:
		rc.mu.Lock()
		rc.arrivals[id] = append(rc.arrivals[id], now)
		rc.mu.Unlock()
	}
	w.WriteHeader(http.StatusNoContent)
	n := rc.received.Add(1)
	rc.mu.Lock()
	if rc.want > 0 && n >= rc.want && !rc.closed {
		close(rc.done)
		rc.closed = true
	}
	rc.mu.Unlock()
}

// reset starts a new count; it returns the channel closed when want requests have arrived.
// Requests still arriving from the previous run count towards the new one, which only errs on
// the side of a faster ceiling.
func (rc *receiver) reset(want int64) <-chan struct{} {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.arrivals = map[string][]time.Time{}
	rc.received.Store(0)
	rc.want = want
	rc.done = make(chan struct{})
	rc.closed = false
	return rc.done
}

// Run runs one scenario.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Events <= 0 {
		cfg.Events = 10000
	}
	if cfg.Publishers <= 0 {
		cfg.Publishers = 16
	}
	if cfg.Tenants <= 0 {
		cfg.Tenants = 1
	}
	if cfg.Endpoints <= 0 {
		cfg.Endpoints = 1
	}
	if cfg.Inbound && cfg.Tenants > 1 {
		return nil, fmt.Errorf("inbound scenarios use one tenant")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 10
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 1
	}
	if cfg.PayloadSize <= 0 {
		cfg.PayloadSize = 512
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.ReceiverURL != "" && cfg.Drain {
		return nil, fmt.Errorf("a backlog drain holds the receiver's requests: it needs the bench's own receiver, not %s", cfg.ReceiverURL)
	}
	if cfg.Process && cfg.SampleEvery > 0 {
		return nil, fmt.Errorf("a soak samples the memory of this process: run its node here, not in a process of its own")
	}
	if cfg.ReceiverURL != "" && cfg.SampleEvery > 0 {
		return nil, fmt.Errorf("a soak counts arrivals at the bench's own receiver: drop the receiver URL")
	}
	dir := cfg.DataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "herald-bench-")
		if err != nil {
			return nil, fmt.Errorf("temp dir: %w", err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	total := cfg.Events * cfg.Endpoints
	compact := 0
	if cfg.SampleEvery > 0 {
		compact = total + total/10 + 100 // room for some duplicates
	}
	rc, err := newReceiver(compact)
	if err != nil {
		return nil, err
	}
	defer rc.srv.Close()

	inFlight := cfg.Tenants * cfg.Endpoints * cfg.Concurrency // the healthy endpoints'; hanging ones add their own
	if cfg.DatabaseURL == "" && cfg.Nodes > 1 {
		return nil, fmt.Errorf("several nodes need PostgreSQL (a database URL)")
	}
	schema := ""
	if cfg.DatabaseURL != "" {
		schema = fmt.Sprintf("herald_bench_%d", time.Now().UnixNano())
		defer dropSchema(cfg.DatabaseURL, schema)
	}
	ns, err := startNodes(ctx, cfg, dir, schema, max(inFlight+cfg.Hanging*cfg.Concurrency*3, 2000))
	if err != nil {
		return nil, err
	}
	defer ns.close()
	apis := ns.apis
	if err := apis[0].setup(ctx, rc.url, cfg); err != nil {
		return nil, err
	}
	var src *source
	if cfg.Inbound {
		if src, err = apis[0].createSource(ctx); err != nil {
			return nil, err
		}
	}

	data := `{"blob":"` + strings.Repeat("x", max(cfg.PayloadSize-11, 0)) + `"}`
	done := rc.reset(int64(total))
	sent := make([]time.Time, cfg.Events)
	stopSampling := sampleMemory()
	if cfg.Drain {
		rc.mu.Lock()
		rc.gate = make(chan struct{})
		rc.mu.Unlock()
	}

	meter := &cpuMeter{nodePIDs: ns.pids, db: cfg.DatabaseURL != ""}
	if meter.db {
		pc, err := pgx.ParseConfig(cfg.DatabaseURL)
		if err != nil {
			return nil, fmt.Errorf("database URL: %w", err)
		}
		meter.dbPort = pc.Port
	}
	meter.start()
	start := time.Now()
	stopSoak := func() []Sample { return nil }
	if cfg.SampleEvery > 0 {
		stopSoak = sampleProcess(start, cfg.SampleEvery, &rc.received)
	}
	var acks []time.Duration
	if cfg.Inbound {
		acks, err = postAll(ctx, apis[0], src, cfg, data, sent)
	} else {
		err = publishAll(ctx, apis, cfg, data, sent)
	}
	if err != nil {
		stopSoak()
		return nil, err
	}
	ingest := time.Since(start)
	if cfg.Drain {
		rc.mu.Lock()
		close(rc.gate)
		rc.gate = nil
		rc.mu.Unlock()
		if cfg.OnDrain != nil {
			cfg.OnDrain()
		}
		start = time.Now()
	}
	var counted <-chan error // with a receiver URL: the nodes' own count of deliveries
	if cfg.ReceiverURL != "" {
		counted = ns.delivered(ctx, int64(total), cfg.Hanging == 0)
	}
	select {
	case <-done:
	case err := <-counted:
		if err != nil {
			stopSoak()
			return nil, err
		}
	case <-time.After(10*time.Minute + time.Duration(total)*time.Millisecond):
		stopSoak()
		return nil, fmt.Errorf("timed out: %d of %d deliveries arrived", rc.received.Load(), total)
	case <-ctx.Done():
		stopSoak()
		return nil, ctx.Err()
	}
	elapsed := time.Since(start)
	cpu := meter.stop()
	peakHeap := stopSampling()
	samples := stopSoak()

	res := &Result{
		Config: cfg, Deliveries: total, Elapsed: elapsed, Publishing: ingest,
		IngestPerSec:     float64(cfg.Events) / ingest.Seconds(),
		DeliveriesPerSec: float64(total) / elapsed.Seconds(),
		PeakHeapMB:       float64(peakHeap) / (1 << 20),
		PeakRSSMB:        ns.peakRSSMB(),
		Samples:          samples,
		NodeCPU:          cpu.Nodes, BenchCPU: cpu.Self, DBCPU: cpu.DB, DBSharedCPU: cpu.DBShared,
	}
	res.CPUPerDelivery, res.CPUScope = cpu.perDelivery(total)
	if cfg.Process {
		res.PeakHeapMB = 0 // the bench's own heap says nothing of the node's
	}
	var ls []time.Duration
	if cfg.ReceiverURL == "" {
		ls, res.Duplicates, res.Missing = latencies(rc, sent, cfg.Endpoints)
	}
	if !cfg.Drain && len(ls) > 0 {
		res.P50, res.P95, res.P99 = percentile(ls, 0.50), percentile(ls, 0.95), percentile(ls, 0.99)
	}
	if len(acks) > 0 {
		slices.Sort(acks)
		res.AckP50, res.AckP99 = percentile(acks, 0.50), percentile(acks, 0.99)
	}

	// The ceiling: the same number of bodies of the same size, posted by a plain client at the
	// same concurrency Herald could use, to the same receiver, with the same set of headers (a
	// webhook-id per request, a timestamp, a signature-sized value, the user-agent), so that the
	// receiver does the same work for both; the ceiling's signature is a constant, not computed.
	env := event.Envelope{ID: "evt_ceiling", Type: "bench.happened", Timestamp: time.Now().UTC(), Data: []byte(data)}
	body, err := env.Encode()
	if err != nil {
		return nil, fmt.Errorf("ceiling body: %w", err)
	}
	_ = rc.reset(int64(total))
	ceilingURL := rc.url
	if cfg.ReceiverURL != "" {
		ceilingURL = cfg.ReceiverURL
	}
	res.CeilingPerSec, err = ceiling(ctx, ceilingURL, body, total, min(inFlight, 2000))
	if err != nil {
		return nil, err
	}
	res.Ratio = res.DeliveriesPerSec / res.CeilingPerSec
	if !cfg.Inbound && cfg.Rate == 0 {
		if res.IngestCeilingPerSec, err = measureIngestCeiling(ctx, cfg, data); err != nil {
			return nil, err
		}
		res.IngestRatio = res.IngestPerSec / res.IngestCeilingPerSec
	}
	return res, nil
}

func publishAll(ctx context.Context, apis []*client, cfg Config, data string, sent []time.Time) error {
	var next atomic.Int64
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(cfg.Batch) / cfg.Rate)
	}
	batches := (cfg.Events + cfg.Batch - 1) / cfg.Batch
	begin := time.Now()
	errs := make(chan error, cfg.Publishers)
	var wg sync.WaitGroup
	for range cfg.Publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var body strings.Builder
			for {
				b := int(next.Add(1) - 1)
				if b >= batches {
					return
				}
				if interval > 0 {
					if wait := time.Until(begin.Add(time.Duration(b) * interval)); wait > 0 {
						time.Sleep(wait)
					}
				}
				first, last := b*cfg.Batch, min((b+1)*cfg.Batch, cfg.Events)
				body.Reset()
				path := "/v1/tenants/" + tenantID(b%cfg.Tenants, cfg.Tenants) + "/events"
				if cfg.Batch > 1 {
					path += "/batch"
					body.WriteString(`{"events":[`)
				}
				now := time.Now()
				for i := first; i < last; i++ {
					if i > first {
						body.WriteByte(',')
					}
					sent[i] = now
					body.WriteString(`{"id":"b-` + strconv.Itoa(i) + `","type":"bench.happened","data":` + data + `}`)
				}
				if cfg.Batch > 1 {
					body.WriteString(`]}`)
				}
				if err := apis[b%len(apis)].post(ctx, path, body.String(), http.StatusAccepted); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// latencies returns every delivery's publish-to-receipt latency, sorted, how many deliveries
// arrived more than once and how many did not arrive (each event is due once at each of its
// tenant's fanOut endpoints).
func latencies(rc *receiver, sent []time.Time, fanOut int) (ls []time.Duration, dups, missing int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if c := rc.compact; c != nil {
		n := min(int(c.next.Load()), len(c.events))
		hits := make([]int32, len(sent))
		for k := range n {
			i := int(c.events[k])
			if i < 0 || i >= len(sent) {
				continue
			}
			hits[i]++
			ls = append(ls, time.Unix(0, c.at[k]).Sub(sent[i]))
		}
		for _, h := range hits {
			dups += max(int(h)-fanOut, 0)
			missing += max(fanOut-int(h), 0)
		}
		dups += int(c.dropped.Load())
	} else {
		for id, arrivals := range rc.arrivals {
			i, err := strconv.Atoi(strings.TrimPrefix(id, "b-"))
			if err != nil || i >= len(sent) {
				continue
			}
			dups += max(len(arrivals)-fanOut, 0)
			missing -= min(len(arrivals), fanOut)
			for _, at := range arrivals {
				ls = append(ls, at.Sub(sent[i]))
			}
		}
		missing += len(sent) * fanOut
	}
	slices.Sort(ls)
	return ls, dups, missing
}

// percentile picks the q-quantile of sorted durations.
func percentile(sorted []time.Duration, q float64) time.Duration {
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

func ceiling(ctx context.Context, url string, body []byte, total, workers int) (float64, error) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers, MaxIdleConns: workers}, Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()
	var next atomic.Int64
	var failed atomic.Int64
	timestamp := strconv.FormatInt(time.Now().Unix(), 10)
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := next.Add(1); n <= int64(total); n = next.Add(1) {
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
				if err != nil {
					failed.Add(1)
					return
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("User-Agent", "Herald-Webhooks/"+node.Version+" (+https://github.com/heraldhq/herald)")
				req.Header.Set("webhook-id", "c-"+strconv.FormatInt(n, 10))
				req.Header.Set("webhook-timestamp", timestamp)
				req.Header.Set("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
				resp, err := hc.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		return 0, fmt.Errorf("ceiling: %d requests failed", f)
	}
	return float64(total) / time.Since(start).Seconds(), nil
}

// sampleMemory samples the Go heap every 50 ms until the returned function is called, which
// returns the peak.
func sampleMemory() func() uint64 {
	stop := make(chan struct{})
	var peak atomic.Uint64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(stop)
		wg.Wait()
		return peak.Load()
	}
}

// sampleProcess records a Sample every interval (and one at the start) until the returned
// function is called, which returns them all, with one last sample at the end.
func sampleProcess(start time.Time, every time.Duration, delivered *atomic.Int64) func() []Sample {
	stop := make(chan struct{})
	var samples []Sample
	take := func() {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		samples = append(samples, Sample{At: time.Since(start), Delivered: delivered.Load(),
			HeapMB: float64(ms.HeapInuse) / (1 << 20), RSSMB: procStatus("VmRSS:"), Goroutines: runtime.NumGoroutine()})
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			take()
			select {
			case <-stop:
				take()
				return
			case <-t.C:
			}
		}
	}()
	return func() []Sample {
		close(stop)
		wg.Wait()
		return samples
	}
}

// peakRSS reads the process's peak resident set (VmHWM) on Linux; 0 elsewhere.
func peakRSS() float64 { return procStatus("VmHWM:") }

// procStatus reads a size in MB from /proc/self/status (Linux); 0 elsewhere.
func procStatus(field string) float64 { return procStatusFile("/proc/self/status", field) }

// procStatusOf reads a size in MB from the status of process pid (Linux); 0 elsewhere.
func procStatusOf(pid int, field string) float64 {
	return procStatusFile("/proc/"+strconv.Itoa(pid)+"/status", field)
}

func procStatusFile(path, field string) float64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// client calls the API of a bench's node with key (empty: the admin key, benchKey).
type client struct {
	base, key string
	http      *http.Client
}

// do sends a request and returns its status (0 when no answer came) and the answer's body.
func (c *client) do(ctx context.Context, method, path string, body string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+cmp.Or(c.key, benchKey))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, b, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	return resp.StatusCode, b, nil
}

// must sends a set-up request that has to succeed with want.
func (c *client) must(ctx context.Context, method, path string, body any, want int) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	status, ans, err := c.do(ctx, method, path, string(b))
	if err != nil {
		return nil, err
	}
	if status != want {
		return nil, fmt.Errorf("%s %s = %d: %s", method, path, status, ans)
	}
	return ans, nil
}

// post sends a set-up POST of a JSON body that has to succeed with want.
func (c *client) post(ctx context.Context, path, body string, want int) error {
	status, ans, err := c.do(ctx, http.MethodPost, path, body)
	if err != nil {
		return err
	}
	if status != want {
		return fmt.Errorf("POST %s = %d: %s", path, status, ans)
	}
	return nil
}

// tenantID names tenant i of n: "bench" when there is one, as before there were several.
func tenantID(i, n int) string {
	if n <= 1 {
		return "bench"
	}
	return fmt.Sprintf("bench-%03d", i)
}

// setup creates the tenants, the event type and the endpoints through the API, a few requests
// at a time (a thousand endpoints one by one take a while). The endpoints deliver to the bench's
// receiver at receiverURL, or the healthy ones to cfg.ReceiverURL when it is set.
func (c *client) setup(ctx context.Context, receiverURL string, cfg Config) error {
	if err := c.post(ctx, "/v1/event-types", `{"name":"bench.happened"}`, http.StatusCreated); err != nil {
		return err
	}
	type request struct{ path, body string }
	var tenants, endpoints []request
	for t := range cfg.Tenants {
		id := tenantID(t, cfg.Tenants)
		body, _ := json.Marshal(map[string]any{"id": id, "name": "Bench " + id})
		tenants = append(tenants, request{"/v1/tenants", string(body)})
		for i := range cfg.Endpoints {
			url := fmt.Sprintf("%s/ep/%d/%d", receiverURL, t, i)
			if cfg.ReceiverURL != "" {
				url = cfg.ReceiverURL // the user's receiver, as given
			}
			body, _ := json.Marshal(map[string]any{"url": url, "event_types": []string{"*"}, "max_concurrency": cfg.Concurrency})
			endpoints = append(endpoints, request{"/v1/tenants/" + id + "/endpoints", string(body)})
		}
	}
	for i := range cfg.Hanging {
		body, _ := json.Marshal(map[string]any{"url": fmt.Sprintf("%s/hang/%d", receiverURL, i), "event_types": []string{"*"},
			"max_concurrency": cfg.Concurrency, "timeout_seconds": 5})
		endpoints = append(endpoints, request{"/v1/tenants/" + tenantID(i%cfg.Tenants, cfg.Tenants) + "/endpoints", string(body)})
	}
	for _, reqs := range [][]request{tenants, endpoints} {
		var next atomic.Int64
		errs := make(chan error, 8)
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := int(next.Add(1) - 1); k < len(reqs); k = int(next.Add(1) - 1) {
					if err := c.post(ctx, reqs[k].path, reqs[k].body, http.StatusCreated); err != nil {
						errs <- fmt.Errorf("setup: %w", err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return err
		}
	}
	return nil
}

// Table prints results as a Markdown table.
func Table(w io.Writer, rs []*Result) {
	fmt.Fprintln(w, "| scenario | events | batch | endpoints (+hanging) | publishers | rate | deliveries | ingest ev/s | deliveries/s | p50 | p95 | p99 | ack p50 | ack p99 | peak heap MB | peak RSS MB | ceiling/s | ratio | ingest ceiling/s | ingest ratio | CPU µs/delivery | CPU of |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		rate := "max"
		if r.Config.Rate > 0 {
			rate = fmt.Sprintf("%.0f/s", r.Config.Rate)
		}
		if r.Config.Drain {
			rate = "backlog"
		}
		fmt.Fprintf(w, "| %s | %d | %d | %s | %d | %s | %d | %.0f | %.0f | %s | %s | %s | %s | %s | %s | %.0f | %.0f | %.2f | %s | %s | %.0f | %s |\n",
			r.Config.Name, r.Config.Events, r.Config.Batch, endpoints(r.Config), r.Config.Publishers, rate, r.Deliveries, r.IngestPerSec, r.DeliveriesPerSec,
			ms(r.P50), ms(r.P95), ms(r.P99), ms(r.AckP50), ms(r.AckP99), orDash(r.PeakHeapMB, "%.0f"), r.PeakRSSMB, r.CeilingPerSec, r.Ratio,
			orDash(r.IngestCeilingPerSec, "%.0f"), orDash(r.IngestRatio, "%.2f"), r.CPUPerDelivery, r.CPUScope)
	}
}

// orDash formats v, or "-" when it was not measured (0).
func orDash(v float64, format string) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

func ms(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}

func endpoints(c Config) string {
	n := strconv.Itoa(c.Endpoints)
	if c.Tenants > 1 {
		n = fmt.Sprintf("%d tenants × %d", c.Tenants, c.Endpoints)
	}
	if c.Hanging == 0 {
		return n
	}
	return fmt.Sprintf("%s (+%d)", n, c.Hanging)
}

func dropSchema(url, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	_, _ = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
}
