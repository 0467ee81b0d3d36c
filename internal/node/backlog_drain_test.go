package node_test

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/node"
)

// Issue 6, "Receiver failure modes: backlog": the receiver of one endpoint is down while a large
// backlog is published to it, then comes back. Herald must drain the backlog at the endpoint's
// rate limit and no faster, keep it in the store (the heap stays flat during the drain), lose
// nothing, keep delivering another tenant's new events throughout (not behind the backlog), and
// leave no goroutine behind. How fast the other tenant's events arrive is measured by herald bench.
//
// "Down" is a 503 from a receiver that keeps its address: behind a load balancer or an ingress,
// which is where most receivers live, a stopped backend answers 503. A refused connection is the
// other common shape; TestReceiverFailureModes covers it for one attempt, and here it would mean
// listening again on the same port after the outage, which another socket may have taken meanwhile.
//
// The size: 50,000 events at a rate limit of 2,000/s, as the issue asks (.ci/run runs it so,
// without the race detector). Under the race detector the default is 5,000 at 400/s: on two
// cores shared with other builds the race-instrumented node published 2 KiB events through the
// batch API at 220–390/s and drained at 290–490/s, so 50,000 would take five to seven minutes;
// 10,000 took 100 s there, which kept the package near Go's default 10-minute timeout under load.
// 5,000 still drains for over 12 s at the limit, which is what makes the rate check mean
// something.
// HERALD_BACKLOG_DRAIN_EVENTS and HERALD_BACKLOG_DRAIN_RATE set other values.
// Not parallel: the goroutine count and the heap are the process's.
func TestBacklog_DrainsAtTheEndpointRateAfterAnOutage(t *testing.T) {
	events, rateLimit := 50000, 2000.0
	if raceEnabled {
		events, rateLimit = 5000, 400
	}
	if v := os.Getenv("HERALD_BACKLOG_DRAIN_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1000 {
			t.Fatalf("HERALD_BACKLOG_DRAIN_EVENTS=%q: want a number of at least 1000", v)
		}
		events = n
	}
	if v := os.Getenv("HERALD_BACKLOG_DRAIN_RATE"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r < 10 {
			t.Fatalf("HERALD_BACKLOG_DRAIN_RATE=%q: want deliveries per second, at least 10", v)
		}
		rateLimit = r
	}
	const (
		concurrency = 50
		payload     = 2048 // bytes of data per event: 50,000 of them are ~100 MB, which memory must not hold
		// Events per batch publish. Batches of 100 rather than the API's maximum of 1,000: the
		// other tenant's publishes wait for the batch being committed (one SQLite writer), and a
		// 1,000-event batch takes seconds to commit under the race detector.
		batch       = 100
		retry       = 5 // seconds between attempts after a failure (±20 % jitter)
		heapLimitMB = 48
	)
	t.Logf("%d events, rate_limit %.0f/s", events, rateLimit)

	base := runtime.NumGoroutine()
	down := newOutageReceiver(t)
	healthy := newArrivalReceiver(t)
	withReceivers := runtime.NumGoroutine()

	// A breaker cooldown of one second: the receiver's return is noticed within a second.
	h := start(t, func(c *node.Config) { c.Dispatch.BreakerCooldown = time.Second })
	h.setup("acme", "a.happened")
	h.setup("other", "a.happened")
	schedule := []int{0}
	for range 20 {
		schedule = append(schedule, retry)
	}
	h.endpoint("acme", map[string]any{"url": down.URL, "event_types": []string{"*"},
		"max_concurrency": concurrency, "rate_limit": rateLimit, "retry_schedule": schedule})
	h.endpoint("other", map[string]any{"url": healthy.URL, "event_types": []string{"*"}})

	heapBefore := heapInUse()

	// Another tenant publishes one event every 50 ms from now until the backlog has drained.
	other := startSteadyPublisher(h.node.URL(), "other", 50*time.Millisecond)

	// The backlog, through the batch API, while the receiver answers 503.
	blob := strings.Repeat("x", payload)
	began := time.Now()
	var body strings.Builder
	for first := 0; first < events; first += batch {
		body.Reset()
		body.WriteString(`{"events":[`)
		for i := first; i < min(first+batch, events); i++ {
			if i > first {
				body.WriteByte(',')
			}
			fmt.Fprintf(&body, `{"id":"bl-%d","type":"a.happened","data":{"blob":"%s"}}`, i, blob)
		}
		body.WriteString(`]}`)
		h.must(202, "POST", "/v1/tenants/acme/events/batch", body.String(), nil)
	}
	published := time.Since(began)
	t.Logf("published %d events of %d bytes in %s (%.0f/s) while the receiver answered 503",
		events, payload, published.Round(time.Millisecond), float64(events)/published.Seconds())

	// What Herald recorded for failed attempts: a 503, its class, and a next attempt one retry
	// interval later, checked on a sample of the deliveries that failed.
	eventually(t, 30*time.Second, "20 failed attempts (the breaker's threshold)", func() bool { return down.failures() >= 20 })
	failed := down.failedIDs()
	for _, id := range failed[:min(len(failed), 10)] {
		checkFailedDelivery(t, h, id, retry*time.Second)
	}
	var stats struct {
		Pending int `json:"pending"`
	}
	h.must(200, "GET", "/v1/tenants/acme/stats?since=1h", nil, &stats)
	if stats.Pending != events {
		t.Fatalf("pending = %d during the outage, want %d", stats.Pending, events)
	}
	refused := down.failures()
	t.Logf("attempts during the outage: %d (the circuit breaker holds the rest back)", refused)

	// The other tenant's events keep arriving during the outage: every one published so far
	// arrives while the backlog is still pending (the wait only fails on a hang; how fast they
	// arrive is herald bench's to measure).
	so := other.published()
	eventually(t, 2*time.Minute, "the other tenant's events published during the outage", func() bool {
		return healthy.distinct() >= so
	})

	// The receiver comes back; the heap is sampled while the backlog drains.
	other.phase.Store(1)
	back := time.Now()
	down.up.Store(true)
	stopSampling, peakHeap := sampleHeap(100 * time.Millisecond)
	drainTimeout := time.Duration(float64(events)/rateLimit*float64(time.Second))*4 + 60*time.Second
	lastCount, lastProgress := 0, back
	for deadline, logAt := back.Add(drainTimeout), back.Add(10*time.Second); down.distinct() < events; time.Sleep(20 * time.Millisecond) {
		now, n := time.Now(), down.distinct()
		if n > lastCount {
			lastCount, lastProgress = n, now
		}
		switch {
		case now.Sub(lastProgress) > 20*time.Second:
			var buf bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
			t.Fatalf("the drain stalled: %d of %d events arrived, none in the last 20 s; goroutines:\n%s", n, events, buf.String())
		case now.After(deadline):
			t.Fatalf("%d of %d events arrived in the %s after the receiver came back", n, events, drainTimeout)
		case now.After(logAt):
			t.Logf("%s after the receiver came back: %d of %d events arrived", now.Sub(back).Round(time.Second), n, events)
			logAt = logAt.Add(10 * time.Second)
		}
	}
	stopSampling()
	drained := time.Since(back)
	other.stop()
	sent, err := other.sentTimes()
	if err != nil {
		t.Fatalf("the other tenant's publisher: %v", err)
	}
	eventually(t, 30*time.Second, "the other tenant's events to arrive", func() bool { return healthy.distinct() >= len(sent) })

	// Nothing lost: every backlog id arrived, and duplicates are counted.
	arrived, dups := down.tally()
	for i := range events {
		if arrived["bl-"+strconv.Itoa(i)] == 0 {
			t.Fatalf("event bl-%d never arrived", i)
		}
	}
	t.Logf("drained %d events in %s after the receiver came back; %d duplicates", events, drained.Round(time.Millisecond), dups)

	// The rate limit: over the whole drain, and over every one-second window. A token bucket of
	// rate r and burst b lets at most b + r·T requests start in T; Herald's burst is r/10, and it
	// takes a token only for a free slot of max_concurrency, so at most that many requests that
	// started before a window arrive in it (a receiver held up by the scheduler lets them arrive
	// together). 5 % of r is the slack for the dispatcher reading the clock once per round.
	times := down.arrivalTimes()
	span := times[len(times)-1].Sub(times[0])
	overall := float64(len(times)-1) / span.Seconds()
	peak := maxInWindow(times, time.Second)
	burst := math.Ceil(rateLimit / 10)
	t.Logf("drain rate %.0f/s over %s (limit %.0f/s); busiest second %d deliveries", overall, span.Round(time.Millisecond), rateLimit, peak)
	if limit := burst + concurrency + rateLimit*1.05*span.Seconds(); float64(len(times)-1) > limit {
		t.Errorf("%d deliveries in %s (%.0f/s); the endpoint's rate_limit of %.0f/s allows %.0f", len(times)-1, span, overall, rateLimit, limit)
	}
	if limit := burst + concurrency + rateLimit*1.05; float64(peak) > limit {
		t.Errorf("%d deliveries in one second; the rate limit (its burst of a tenth, max_concurrency, 5 %% slack) allows %.0f", peak, limit)
	}

	// The heap during the drain: the backlog is read from the store a claim at a time.
	growth := float64(int64(peakHeap())-int64(heapBefore)) / (1 << 20)
	backlogMB := float64(events) * payload / (1 << 20)
	t.Logf("heap in use: %.1f MB before publishing, peak %.1f MB while draining (%+.1f MB; the backlog's payload is %.0f MB)",
		float64(heapBefore)/(1<<20), float64(peakHeap())/(1<<20), growth, backlogMB)
	if growth > heapLimitMB {
		t.Errorf("the heap grew by %.1f MB during the drain (limit %d MB): the backlog must stay in the store", growth, heapLimitMB)
	}

	// The other tenant's new events were not held up by the backlog: every one published in the
	// first half of the drain arrived before the drain ended (the rate limit makes the drain last
	// at least events/rate_limit, so a half is seconds, and an engine that queued them behind
	// the backlog would deliver them after it). Their latencies are logged; the targets on them
	// are herald bench's (docs/benchmarks.md, "Hostile tenant").
	got := healthy.firstArrivals()
	drainEnd := times[len(times)-1]
	halfway := back.Add(drainEnd.Sub(back) / 2)
	for i, s := range sent {
		if s.phase == 1 && s.at.Before(halfway) && got["ok-"+strconv.Itoa(i)].After(drainEnd) {
			t.Errorf("the other tenant's event ok-%d, published %s into the drain, arrived %s after the drain ended",
				i, s.at.Sub(back).Round(time.Millisecond), got["ok-"+strconv.Itoa(i)].Sub(drainEnd).Round(time.Millisecond))
		}
	}
	for phase, name := range []string{"while the backlog built up", "while it drained"} {
		var ls, acks, engine []time.Duration
		for i, s := range sent {
			if s.phase != int32(phase) {
				continue
			}
			at, ok := got["ok-"+strconv.Itoa(i)]
			if !ok {
				t.Fatalf("the other tenant's event ok-%d never arrived", i)
			}
			ls = append(ls, at.Sub(s.at))
			acks = append(acks, s.ack)
			engine = append(engine, at.Sub(s.at.Add(s.ack)))
		}
		if len(ls) < 10 {
			t.Fatalf("only %d events of the other tenant published %s", len(ls), name)
		}
		slices.Sort(ls)
		slices.Sort(acks)
		slices.Sort(engine)
		r := func(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
		t.Logf("other tenant %s: %d events; publish-to-receipt p50 %s, p99 %s, max %s; the publish's answer p50 %s, p99 %s; answer-to-receipt p50 %s, p99 %s",
			name, len(ls), r(percentileOf(ls, 0.5)), r(percentileOf(ls, 0.99)), r(ls[len(ls)-1]), r(percentileOf(acks, 0.5)), r(percentileOf(acks, 0.99)),
			r(percentileOf(engine, 0.5)), r(percentileOf(engine, 0.99)))
	}

	h.stop()
	noStuckGoroutines(t, withReceivers, "the node closed")
	down.Close()
	healthy.Close()
	noStuckGoroutines(t, base, "the receivers closed")
}

// checkFailedDelivery checks what Herald recorded for a delivery whose attempts the receiver
// refused with 503: every attempt is a failure of class http_status, and the next attempt is
// one retry interval (±20 %) after the last.
func checkFailedDelivery(t *testing.T, h *harness, eventID string, retry time.Duration) {
	t.Helper()
	var d deliveryOut
	// An attempt may land between the delivery's row and its attempts: read until they agree.
	eventually(t, 10*time.Second, "a consistent view of delivery "+eventID, func() bool {
		ds := h.deliveries("/v1/tenants/acme/events/" + eventID + "/deliveries")
		if len(ds) != 1 {
			t.Fatalf("event %s has %d deliveries, want 1", eventID, len(ds))
		}
		d = ds[0]
		return d.AttemptCount >= 1 && len(d.Attempts) == d.AttemptCount
	})
	if d.State != "pending" {
		t.Errorf("delivery of %s is %q during the outage, want pending", eventID, d.State)
	}
	var last time.Time
	var latency time.Duration
	for _, a := range d.Attempts {
		if a.StatusCode != 503 || a.ErrorKind != "http_status" || a.Success || !strings.Contains(a.Error, "503") {
			t.Errorf("attempt of %s: status %d, error_kind %q, success %v, error %q; want 503, http_status, false",
				eventID, a.StatusCode, a.ErrorKind, a.Success, a.Error)
		}
		if a.Response != "down" {
			t.Errorf("attempt of %s: response excerpt %q, want the receiver's body", eventID, a.Response)
		}
		at, err := time.Parse(time.RFC3339Nano, a.At)
		if err != nil {
			t.Fatalf("attempt time %q: %v", a.At, err)
		}
		if at.After(last) {
			last, latency = at, time.Duration(a.LatencyMS*float64(time.Millisecond))
		}
	}
	lo := last.Add(retry * 8 / 10)
	hi := last.Add(retry*12/10 + latency + time.Second)
	if d.NextAttemptAt == nil || d.NextAttemptAt.Before(lo) || d.NextAttemptAt.After(hi) {
		t.Errorf("delivery of %s: next attempt at %v, want between %v and %v (last attempt at %v)", eventID, d.NextAttemptAt, lo, hi, last)
	}
}

// outageReceiver answers 503 until up is set, then 204; it keeps no bodies, only ids and times.
type outageReceiver struct {
	*httptest.Server
	up       atomic.Bool
	mu       sync.Mutex
	failed   []string // ids whose attempt was refused, in order (first 100)
	refusals int
	arrived  map[string]int // webhook-id -> successful arrivals
	times    []time.Time    // every successful arrival
}

func newOutageReceiver(t *testing.T) *outageReceiver {
	rc := &outageReceiver{arrived: map[string]int{}}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		id := r.Header.Get("webhook-id")
		now := time.Now()
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if !rc.up.Load() {
			rc.refusals++
			if len(rc.failed) < 100 {
				rc.failed = append(rc.failed, id)
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "down")
			return
		}
		rc.arrived[id]++
		rc.times = append(rc.times, now)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *outageReceiver) failures() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.refusals
}

func (rc *outageReceiver) failedIDs() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.failed)
}

func (rc *outageReceiver) distinct() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.arrived)
}

// tally returns the arrivals per id and how many were duplicates.
func (rc *outageReceiver) tally() (map[string]int, int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	dups := 0
	out := make(map[string]int, len(rc.arrived))
	for id, n := range rc.arrived {
		out[id] = n
		dups += n - 1
	}
	return out, dups
}

func (rc *outageReceiver) arrivalTimes() []time.Time {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.times)
}

// arrivalReceiver answers 204 and keeps the first arrival time of each webhook-id.
type arrivalReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	first map[string]time.Time
}

func newArrivalReceiver(t *testing.T) *arrivalReceiver {
	rc := &arrivalReceiver{first: map[string]time.Time{}}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		now := time.Now()
		id := r.Header.Get("webhook-id")
		rc.mu.Lock()
		if _, ok := rc.first[id]; !ok {
			rc.first[id] = now
		}
		rc.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *arrivalReceiver) distinct() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.first)
}

func (rc *arrivalReceiver) firstArrivals() map[string]time.Time {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make(map[string]time.Time, len(rc.first))
	for k, v := range rc.first {
		out[k] = v
	}
	return out
}

// steadyPublisher publishes single events ok-0, ok-1, … to a tenant at a fixed interval and
// records when each was sent and in which phase of the test.
type steadyPublisher struct {
	phase atomic.Int32
	quit  chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	sent  []sentEvent
	err   error
}

type sentEvent struct {
	at    time.Time
	ack   time.Duration // how long the publish took to answer
	phase int32
}

func startSteadyPublisher(base, tenant string, every time.Duration) *steadyPublisher {
	p := &steadyPublisher{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-p.quit:
				return
			case <-tick.C:
			}
			body := fmt.Sprintf(`{"id":"ok-%d","type":"a.happened","data":{"n":%d}}`, i, i)
			req, err := http.NewRequest("POST", base+"/v1/tenants/"+tenant+"/events", strings.NewReader(body))
			if err != nil {
				p.fail(err)
				return
			}
			req.Header.Set("Authorization", "Bearer "+adminKey)
			req.Header.Set("Content-Type", "application/json")
			p.mu.Lock()
			p.sent = append(p.sent, sentEvent{at: time.Now(), phase: p.phase.Load()})
			p.mu.Unlock()
			resp, err := http.DefaultClient.Do(req)
			p.mu.Lock()
			p.sent[i].ack = time.Since(p.sent[i].at)
			p.mu.Unlock()
			if err != nil {
				p.fail(fmt.Errorf("publish ok-%d: %w", i, err))
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				p.fail(fmt.Errorf("publish ok-%d = %d", i, resp.StatusCode))
				return
			}
		}
	}()
	return p
}

// published is how many events the publisher has sent so far.
func (p *steadyPublisher) published() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sent)
}

func (p *steadyPublisher) fail(err error) {
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
}

// stop ends the publisher and waits for its last request.
func (p *steadyPublisher) stop() {
	close(p.quit)
	<-p.done
}

// sentTimes returns what was sent, and the error that stopped the publisher early if any; it
// is called after stop.
func (p *steadyPublisher) sentTimes() ([]sentEvent, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.sent), p.err
}

// sampleHeap reads the heap in use every interval until stop is called; peak returns the highest.
func sampleHeap(every time.Duration) (stop func(), peak func() uint64) {
	quit := make(chan struct{})
	done := make(chan struct{})
	var high atomic.Uint64
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > high.Load() {
				high.Store(ms.HeapInuse)
			}
			select {
			case <-quit:
				return
			case <-tick.C:
			}
		}
	}()
	return func() { close(quit); <-done }, high.Load
}

// maxInWindow is the largest number of sorted times that fall within any window of length w.
func maxInWindow(times []time.Time, w time.Duration) int {
	best, j := 0, 0
	for i := range times {
		for times[i].Sub(times[j]) >= w {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

func percentileOf(sorted []time.Duration, q float64) time.Duration {
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}
