package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/dispatch"
	"github.com/heraldhq/herald/internal/node"
)

// HostileTarget is issue 14's bound on what one tenant may cost another: the calm tenant's
// publish p99 and publish-to-receipt p99 beside the hostile tenant at most 1.5 times their
// value without it.
const HostileTarget = 1.5

// The hostile tenant's defaults: issue 14's items 1–3 at the sizes the attack review used.
const (
	DefaultHostileDuration   = 20 * time.Second
	DefaultHostileCalmRate   = 100.0
	DefaultHostileEndpoints  = 1000
	DefaultHostileBatch      = 200
	DefaultHostileEventBytes = 250 << 10
	DefaultHostileStreams    = 30
	DefaultHostileRegexEPs   = 3
)

// HostileConfig is the hostile-tenant scenario: tenant "calm" publishes single events at Rate
// to one endpoint for Duration, once alone and once while tenant "hostile", with a tenant key
// of its own and only through the API, does at once the worst of issue 14's items 1–3.
type HostileConfig struct {
	Duration time.Duration // how long the calm tenant publishes
	Rate     float64       // the calm tenant's events per second
	// Endpoints is how many endpoints the hostile tenant tries to register (fan-out), Batch the
	// events of each of its batch publishes to them.
	Endpoints, Batch int
	// EventBytes is the size of the hostile tenant's large events: published one at a time to its
	// endpoints with regex filters (RegexEndpoints) and the one with a regex transformation, and
	// streamed to its listen streams (Streams), whose client never reads.
	EventBytes, RegexEndpoints, Streams int
	// Flood makes the hostile tenant's publishing loops ignore 429s and send again at once;
	// without it they wait a second after one, as Retry-After tells them. A client that ignores
	// Retry-After is an HTTP flood: Herald refuses each request before reading its body, but the
	// flood's own requests (built and sent by this process, beside the node) cost CPU too.
	Flood       bool
	DatabaseURL string // PostgreSQL instead of SQLite (a schema of its own, dropped afterwards)
	Synchronous string // SQLite synchronous pragma
	Logger      *slog.Logger
}

func (c *HostileConfig) defaults() {
	if c.Duration <= 0 {
		c.Duration = DefaultHostileDuration
	}
	if c.Rate <= 0 {
		c.Rate = DefaultHostileCalmRate
	}
	if c.Endpoints <= 0 {
		c.Endpoints = DefaultHostileEndpoints
	}
	if c.Batch <= 0 {
		c.Batch = DefaultHostileBatch
	}
	if c.EventBytes <= 0 {
		c.EventBytes = DefaultHostileEventBytes
	}
	if c.RegexEndpoints <= 0 {
		c.RegexEndpoints = DefaultHostileRegexEPs
	}
	if c.Streams <= 0 {
		c.Streams = DefaultHostileStreams
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// CalmRun is what the calm tenant saw in one run.
type CalmRun struct {
	Name string
	// Published counts publishes answered 202; Refused, the others, by status in RefusedBy (0:
	// no answer).
	Published, Refused int
	RefusedBy          map[int]int
	// Delivered counts the accepted events that reached the receiver; Missing, those that had
	// not a minute after the last publish.
	Delivered, Missing     int
	PublishP50, PublishP99 time.Duration // how long each publish request took to be answered
	ReceiptP50, ReceiptP99 time.Duration // from sending the publish to the receiver having it
	ReceiptMax             time.Duration
	Hostile                []HostileAction // nil without the hostile tenant
}

// HostileAction tallies the answers to one kind of request of the hostile tenant. A 4xx or a
// 429 is Herald's defence working: the tenant counts it and goes on.
type HostileAction struct {
	Kind                                 string
	Requests, OK, Refused, Limited, Fail int // 2xx, other 4xx, 429, 5xx or no answer
	// Cut counts requests still running when the run ended (their context was cancelled).
	Cut           int
	P50, P99, Max time.Duration // how long its answered requests took
}

// Hostile is the scenario's two runs.
type Hostile struct {
	Config           HostileConfig
	Baseline, Beside *CalmRun
}

// PublishRatio is the calm tenant's publish p99 beside the hostile tenant over its p99 alone.
func (h *Hostile) PublishRatio() float64 { return ratio(h.Beside.PublishP99, h.Baseline.PublishP99) }

// ReceiptRatio is the same for publish-to-receipt.
func (h *Hostile) ReceiptRatio() float64 { return ratio(h.Beside.ReceiptP99, h.Baseline.ReceiptP99) }

func statusName(s int) string {
	if s == 0 {
		return "no answer"
	}
	return strconv.Itoa(s)
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// RunHostile runs the calm tenant alone, then beside the hostile tenant, each on a node of its own.
func RunHostile(ctx context.Context, cfg HostileConfig) (*Hostile, error) {
	cfg.defaults()
	base, err := runHostile(ctx, cfg, false)
	if err != nil {
		return nil, fmt.Errorf("calm alone: %w", err)
	}
	beside, err := runHostile(ctx, cfg, true)
	if err != nil {
		return nil, fmt.Errorf("beside the hostile tenant: %w", err)
	}
	return &Hostile{Config: cfg, Baseline: base, Beside: beside}, nil
}

// Print writes the calm tenant's figures in both runs, their ratios against the target, and what
// the hostile tenant's requests got.
func (h *Hostile) Print(w io.Writer) {
	c := h.Config
	backoff := "waits a second after a 429"
	if c.Flood {
		backoff = "ignores 429s (--flood)"
	}
	fmt.Fprintf(w, "calm: %.0f ev/s for %s, one endpoint; hostile: %d endpoints tried, batches of %d, %.0f KiB events to %d regex-filter endpoints and 1 regex transformation, %d listen streams that never read; %s\n\n",
		c.Rate, c.Duration, c.Endpoints, c.Batch, float64(c.EventBytes)/1024, c.RegexEndpoints, c.Streams, backoff)
	fmt.Fprintln(w, "| run | published | refused | delivered | missing | publish p50 | publish p99 | publish→receipt p50 | publish→receipt p99 | publish→receipt max |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range []*CalmRun{h.Baseline, h.Beside} {
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %s | %s | %s | %s | %s |\n", r.Name, r.Published, r.Refused, r.Delivered, r.Missing,
			ms(r.PublishP50), ms(r.PublishP99), ms(r.ReceiptP50), ms(r.ReceiptP99), ms(r.ReceiptMax))
	}
	for _, r := range []*CalmRun{h.Baseline, h.Beside} {
		if r.Refused > 0 {
			var by []string
			for _, s := range slices.Sorted(maps.Keys(r.RefusedBy)) {
				by = append(by, fmt.Sprintf("%d × %s", r.RefusedBy[s], statusName(s)))
			}
			fmt.Fprintf(w, "\n%s: publishes not accepted: %s\n", r.Name, strings.Join(by, ", "))
		}
	}
	// A ratio within the target means nothing while calm events were refused or lost: the
	// latencies then leave out the worst of them.
	b := h.Beside
	verdict := func(x float64) string {
		switch {
		case b.Refused > 0 || b.Missing > 0:
			return fmt.Sprintf("NOT met: %d publishes not accepted, %d accepted events not delivered", b.Refused, b.Missing)
		case x > 0 && x <= HostileTarget:
			return "met"
		}
		return "NOT met"
	}
	fmt.Fprintf(w, "\ncalm publish p99 beside the hostile tenant / alone: %s / %s = %.2f× (target ≤ %.1f×: %s)\n",
		ms(h.Beside.PublishP99), ms(h.Baseline.PublishP99), h.PublishRatio(), HostileTarget, verdict(h.PublishRatio()))
	fmt.Fprintf(w, "calm publish→receipt p99 beside the hostile tenant / alone: %s / %s = %.2f× (target ≤ %.1f×: %s)\n",
		ms(h.Beside.ReceiptP99), ms(h.Baseline.ReceiptP99), h.ReceiptRatio(), HostileTarget, verdict(h.ReceiptRatio()))
	fmt.Fprintln(w, "\n| hostile request | requests | 2xx | 4xx | 429 | 5xx or no answer | cut at the end | p50 | p99 | max |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, a := range h.Beside.Hostile {
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %d | %d | %s | %s | %s |\n", a.Kind, a.Requests, a.OK, a.Refused, a.Limited, a.Fail, a.Cut,
			ms(a.P50), ms(a.P99), ms(a.Max))
	}
}

// The hostile tenant's kinds of request, as reported.
const (
	kindFilter    = "endpoint with 10 regex filters"
	kindTransform = "endpoint with a regex transformation"
	kindOverride  = "raise its own limits (admin only)"
	kindEndpoint  = "create endpoint (fan-out)"
	kindStream    = "listen stream, never read"
	kindBatch     = "batch to every endpoint"
	kindLarge     = "large event for the regexes"
)

// tally collects the answers to one kind of hostile request.
type tally struct {
	mu   sync.Mutex
	a    HostileAction
	took []time.Duration
}

// record counts one answer: status 0 is no answer (err), and a cancelled context is a cut.
func (t *tally) record(ctx context.Context, status int, took time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.a.Requests++
	switch {
	case status == 0 && ctx.Err() != nil:
		t.a.Cut++
		return
	case status >= 200 && status < 300:
		t.a.OK++
	case status == http.StatusTooManyRequests:
		t.a.Limited++
	case status >= 400 && status < 500:
		t.a.Refused++
	default:
		t.a.Fail++
	}
	t.took = append(t.took, took)
}

func (t *tally) result() HostileAction {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.a
	if len(t.took) > 0 {
		slices.Sort(t.took)
		a.P50, a.P99, a.Max = percentile(t.took, 0.50), percentile(t.took, 0.99), t.took[len(t.took)-1]
	}
	return a
}

// calmReceiver records the first arrival of each calm event and answers everything else (the
// hostile tenant's deliveries) with 204 at once.
type calmReceiver struct {
	mu    sync.Mutex
	first map[string]time.Time
}

func (rc *calmReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	if strings.HasPrefix(r.URL.Path, "/calm") {
		now := time.Now()
		id := r.Header.Get("webhook-id")
		rc.mu.Lock()
		if _, ok := rc.first[id]; !ok {
			rc.first[id] = now
		}
		rc.mu.Unlock()
	}
	w.WriteHeader(http.StatusNoContent)
}

func (rc *calmReceiver) arrived(id string) (time.Time, bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	at, ok := rc.first[id]
	return at, ok
}

// tenantKey creates a tenant and a tenant key for it with the admin key.
func (c *client) tenantKey(ctx context.Context, tenant string) (*client, error) {
	if _, err := c.must(ctx, "POST", "/v1/tenants", map[string]any{"id": tenant, "name": tenant}, http.StatusCreated); err != nil {
		return nil, err
	}
	ans, err := c.must(ctx, "POST", "/v1/api-keys", map[string]any{"role": "tenant", "tenant_id": tenant, "name": tenant + " bench"}, http.StatusCreated)
	if err != nil {
		return nil, err
	}
	var out struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal(ans, &out); err != nil || out.Key == "" {
		return nil, fmt.Errorf("tenant key for %s: no key in %s", tenant, ans)
	}
	return &client{base: c.base, key: out.Key, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}, nil
}

// regexes is issue 14's expression: ten data.s.matches("(a{1,9}){1,9}zN"), N = 0…9, or'ed.
func regexes() string {
	var parts []string
	for n := range 10 {
		parts = append(parts, fmt.Sprintf(`data.s.matches("(a{1,9}){1,9}z%d")`, n))
	}
	return strings.Join(parts, " || ")
}

func runHostile(ctx context.Context, cfg HostileConfig, hostile bool) (*CalmRun, error) {
	dir, err := os.MkdirTemp("", "herald-bench-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	rc := &calmReceiver{first: map[string]time.Time{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("receiver listen: %w", err)
	}
	srv := &http.Server{Handler: rc, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	receiverURL := "http://" + ln.Addr().String()

	schema := ""
	if cfg.DatabaseURL != "" {
		schema = fmt.Sprintf("herald_bench_%d", time.Now().UnixNano())
		defer dropSchema(cfg.DatabaseURL, schema)
	}
	n, err := node.Start(ctx, node.Config{
		Addr: "127.0.0.1:0", DataDir: dir, Dev: true, APIKey: benchKey, Logger: cfg.Logger,
		DatabaseURL: cfg.DatabaseURL, DatabaseSchema: schema, SQLiteSynchronous: cfg.Synchronous, Retention: -1,
		Dispatch: dispatch.Config{Logger: cfg.Logger},
		// The limits herald serve starts with: the hostile tenant meets what a production node
		// would answer it.
		APILimits: api.DefaultRateLimits(),
	})
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	defer func() {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = n.Close(c)
	}()

	admin := &client{base: n.URL(), key: benchKey, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}}
	for _, typ := range []map[string]any{{"name": "calm.happened"}, {"name": "hostile.fanout"},
		{"name": "hostile.large", "examples": []any{map[string]any{"s": "aaaa"}}}} {
		if _, err := admin.must(ctx, "POST", "/v1/event-types", typ, http.StatusCreated); err != nil {
			return nil, err
		}
	}
	calm, err := admin.tenantKey(ctx, "calm")
	if err != nil {
		return nil, err
	}
	if _, err := calm.must(ctx, "POST", "/v1/tenants/calm/endpoints",
		map[string]any{"url": receiverURL + "/calm", "event_types": []string{"calm.happened"}}, http.StatusCreated); err != nil {
		return nil, err
	}

	run := &CalmRun{Name: "calm alone"}
	stopHostile := func() []HostileAction { return nil }
	if hostile {
		run.Name = "calm beside the hostile tenant"
		key, err := admin.tenantKey(ctx, "hostile")
		if err != nil {
			return nil, err
		}
		stopHostile = startHostile(ctx, key, receiverURL, cfg)
	}

	sent, acks, status := publishCalm(ctx, calm, cfg)
	run.Hostile = stopHostile()

	// Every accepted event, within a minute of the last publish (a generous bound: what is
	// missing then is reported, not waited for).
	var want []int
	var publish []time.Duration
	run.RefusedBy = map[int]int{}
	for i, s := range status {
		if s != http.StatusAccepted {
			run.Refused++
			run.RefusedBy[s]++
			continue
		}
		run.Published++
		want = append(want, i)
		publish = append(publish, acks[i])
	}
	deadline := time.Now().Add(time.Minute)
	var receipt []time.Duration
	for _, i := range want {
		for {
			at, ok := rc.arrived("calm-" + strconv.Itoa(i))
			if ok {
				receipt = append(receipt, at.Sub(sent[i]))
				break
			}
			if time.Now().After(deadline) {
				run.Missing++
				break
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	run.Delivered = len(receipt)
	if len(publish) > 0 {
		slices.Sort(publish)
		run.PublishP50, run.PublishP99 = percentile(publish, 0.50), percentile(publish, 0.99)
	}
	if len(receipt) > 0 {
		slices.Sort(receipt)
		run.ReceiptP50, run.ReceiptP99, run.ReceiptMax = percentile(receipt, 0.50), percentile(receipt, 0.99), receipt[len(receipt)-1]
	}
	return run, nil
}

// publishCalm publishes calm-0, calm-1, … at cfg.Rate for cfg.Duration, each from its own
// goroutine at its due time (a slow answer does not slow the rate down), and returns when each
// was sent, how long its answer took and its status (0: none).
func publishCalm(ctx context.Context, calm *client, cfg HostileConfig) (sent []time.Time, took []time.Duration, status []int) {
	total := max(int(cfg.Duration.Seconds()*cfg.Rate), 1)
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	sent, took, status = make([]time.Time, total), make([]time.Duration, total), make([]int, total)
	begin := time.Now()
	var wg sync.WaitGroup
	for i := range total {
		if wait := time.Until(begin.Add(time.Duration(i) * interval)); wait > 0 {
			select {
			case <-ctx.Done():
				wg.Wait()
				return sent, took, status
			case <-time.After(wait):
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := `{"id":"calm-` + strconv.Itoa(i) + `","type":"calm.happened","data":{"n":` + strconv.Itoa(i) + `}}`
			sent[i] = time.Now()
			status[i], _, _ = calm.do(ctx, "POST", "/v1/tenants/calm/events", body)
			took[i] = time.Since(sent[i])
		}()
	}
	wg.Wait()
	return sent, took, status
}

// startHostile starts the hostile tenant and returns once it has set up what it can (filters, a
// transformation, as many endpoints as it is allowed, streams); it then publishes in two loops
// until stopped: batches to every endpoint, and large events for the regexes and the streams.
// The returned function stops it and returns its tallies.
func startHostile(ctx context.Context, k *client, receiverURL string, cfg HostileConfig) func() []HostileAction {
	ctx, cancel := context.WithCancel(ctx)
	order := []string{kindFilter, kindTransform, kindOverride, kindEndpoint, kindStream, kindBatch, kindLarge}
	tallies := map[string]*tally{}
	for _, kind := range order {
		tallies[kind] = &tally{a: HostileAction{Kind: kind}}
	}
	timed := func(kind, method, path, body string) int {
		start := time.Now()
		status, _, _ := k.do(ctx, method, path, body)
		tallies[kind].record(ctx, status, time.Since(start))
		return status
	}
	endpoint := func(kind string, fields map[string]any) {
		fields["url"] = receiverURL + "/hostile"
		b, _ := json.Marshal(fields)
		timed(kind, "POST", "/v1/tenants/hostile/endpoints", string(b))
	}
	var wg sync.WaitGroup
	var streams []*http.Response
	var streamsMu sync.Mutex
	ready := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(ready)
		// The set-up's requests come first, so that the calm tenant publishes while the hostile
		// one publishes at full tilt.
		for range cfg.RegexEndpoints {
			endpoint(kindFilter, map[string]any{"event_types": []string{"hostile.large"}, "filter": regexes()})
		}
		endpoint(kindTransform, map[string]any{"event_types": []string{"hostile.large"},
			"transform": `{"m": ` + regexes() + `}`})
		// No tenant route raises a tenant's own limits; these try the likely ones.
		timed(kindOverride, "PATCH", "/v1/tenants/hostile", `{"max_endpoints":1000000}`)
		timed(kindOverride, "POST", "/v1/api-keys", `{"role":"admin","name":"escalate"}`)
		// As many fan-out endpoints as it is allowed, 8 at a time; after 20 refusals in a row
		// the limit has been found.
		var next, refusedInARow atomic.Int64
		var ew sync.WaitGroup
		for range 8 {
			ew.Add(1)
			go func() {
				defer ew.Done()
				for next.Add(1) <= int64(cfg.Endpoints) && refusedInARow.Load() < 20 && ctx.Err() == nil {
					body := `{"url":"` + receiverURL + `/hostile/fanout","event_types":["hostile.fanout"]}`
					if s := timed(kindEndpoint, "POST", "/v1/tenants/hostile/endpoints", body); s >= 400 && s < 500 {
						refusedInARow.Add(1)
					} else {
						refusedInARow.Store(0)
					}
				}
			}()
		}
		ew.Wait()
		// Streams whose client never reads: the answer's headers are read, the body never.
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Streams, DisableKeepAlives: true}}
		for range cfg.Streams {
			req, err := http.NewRequestWithContext(ctx, "GET", k.base+"/v1/tenants/hostile/listen?events=hostile.large", nil)
			if err != nil {
				continue
			}
			req.Header.Set("Authorization", "Bearer "+k.key)
			start := time.Now()
			resp, err := hc.Do(req)
			status := 0
			if err == nil {
				status = resp.StatusCode
				if status == http.StatusOK {
					streamsMu.Lock()
					streams = append(streams, resp)
					streamsMu.Unlock()
				} else {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
			tallies[kindStream].record(ctx, status, time.Since(start))
		}
	}()
	// The publishing loops start once the set-up is done, and run until stopped.
	data := `"s":"` + strings.Repeat("a", max(cfg.EventBytes-16, 1)) + `"`
	loop := func(kind, path string, body func(i int) string) {
		defer wg.Done()
		select {
		case <-ready:
		case <-ctx.Done():
			return
		}
		for i := 0; ctx.Err() == nil; i++ {
			if timed(kind, "POST", path, body(i)) == http.StatusTooManyRequests && !cfg.Flood {
				select { // every limit it meets here answers Retry-After: 1
				case <-time.After(time.Second):
				case <-ctx.Done():
				}
			}
		}
	}
	wg.Add(2)
	go loop(kindBatch, "/v1/tenants/hostile/events/batch", func(i int) string {
		var b strings.Builder
		b.WriteString(`{"events":[`)
		for j := range cfg.Batch {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"id":"fan-%d-%d","type":"hostile.fanout","data":{"s":"%s"}}`, i, j, strings.Repeat("a", 1000))
		}
		b.WriteString(`]}`)
		return b.String()
	})
	go loop(kindLarge, "/v1/tenants/hostile/events", func(i int) string {
		return fmt.Sprintf(`{"id":"large-%d","type":"hostile.large","data":{%s}}`, i, data)
	})
	<-ready
	return func() []HostileAction {
		cancel()
		wg.Wait()
		for _, resp := range streams {
			resp.Body.Close()
		}
		var out []HostileAction
		for _, kind := range order {
			out = append(out, tallies[kind].result())
		}
		return out
	}
}
