// Package dispatch is Herald's delivery engine: it claims due deliveries from the store, hands each
// to its endpoint's lane, sends it, and writes the outcome back.
//
// Isolation comes from the shape of the loop, not from worker pools: one goroutine decides what to
// claim, and it claims per endpoint, never more than the endpoint's free concurrency and rate allow.
// A hanging endpoint therefore holds only its own slots; no shared worker ever waits on it. The
// backlog stays in the store: memory holds only what is in flight.
package dispatch

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/heraldhq/herald/internal/httpsend"
	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/webhook"
)

// Config tunes the dispatcher; zero values take the defaults.
type Config struct {
	Policy Policy
	// MaxInFlight bounds attempts in flight over all endpoints, which bounds memory.
	MaxInFlight int
	// LeaseMargin is added to the endpoint's timeout to make a claim's lease, which the dispatcher
	// renews every LeaseMargin/3 while the claim waits in a lane's queue or is in flight. On
	// PostgreSQL this is how long other nodes wait before they take over the claims of a node that
	// died: at most LeaseMargin + the endpoint's timeout after its last renewal.
	LeaseMargin time.Duration
	// DisableAfter disables an endpoint that has failed without a single success for this long.
	DisableAfter time.Duration
	// QueueDepth is how many rounds of an endpoint's max_concurrency a lane claims ahead (default
	// 16): deeper queues mean fewer, larger claims, and more memory per busy lane (all lanes
	// together stay within MaxInFlight).
	QueueDepth int
	// BreakerFailures consecutive retryable failures open an endpoint's circuit breaker.
	BreakerFailures uint32
	// BreakerCooldown is how long a breaker stays open before one probe is let through.
	BreakerCooldown time.Duration
	// Rescan is how often the store is scanned for due work the loop may not know of (a safety
	// net; new events and results wake lanes directly).
	Rescan time.Duration
	// ShutdownGrace is how long in-flight attempts may run after Run's context ends.
	ShutdownGrace time.Duration
	// ReleaseClaimsAtStart ends every lease at start: right for a store owned by one process.
	ReleaseClaimsAtStart bool
	Logger               *slog.Logger
	// Metrics, when set, counts attempts and follows in-flight work, queues and breakers.
	Metrics *metrics.Metrics
	// InternalClient sends to endpoints marked internal: its guard also admits the ranges the
	// operator opened for them (--internal-cidr). Nil sends them with the ordinary client, so an
	// internal endpoint never gets more than the operator configured.
	InternalClient *httpsend.Client
}

func (c *Config) defaults() {
	if c.Policy == (Policy{}) {
		c.Policy = DefaultPolicy()
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 2000
	}
	if c.LeaseMargin <= 0 {
		c.LeaseMargin = 30 * time.Second
	}
	if c.DisableAfter <= 0 {
		c.DisableAfter = 5 * 24 * time.Hour
	}
	if c.QueueDepth <= 0 {
		c.QueueDepth = 16
	}
	if c.BreakerFailures == 0 {
		c.BreakerFailures = 20
	}
	if c.BreakerCooldown <= 0 {
		c.BreakerCooldown = 30 * time.Second
	}
	if c.Rescan <= 0 {
		c.Rescan = 30 * time.Second
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 15 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// MaxTimeout is the longest per-endpoint timeout; leases are sized from it.
const MaxTimeout = 30 * time.Second

// Dispatcher delivers pending deliveries. Create it with New, start it with Run.
type Dispatcher struct {
	st     store.Store
	client *httpsend.Client
	cfg    Config
	log    *slog.Logger

	mu      sync.Mutex
	woken   map[string]bool // endpoint id -> reload its settings too
	rescan  bool
	signal  chan struct{}
	done    chan doneMsg
	results chan store.Result

	// Owned by the loop goroutine.
	lanes    map[string]*lane
	ready    []*lane
	timers   laneHeap
	claims   chan claimBatch // the answer of the claim under way
	claiming bool            // a claim is under way
	renewing bool            // a renewal of leases is under way
	renewed  chan error      // its answer
	inFlight int             // attempts under way
	held     int             // claims held: in flight and queued
	sendCtx  context.Context
	sends    sync.WaitGroup
}

type doneMsg struct {
	lane     *lane
	out      httpsend.Outcome
	retryAt  time.Time
	breaker  func(error)
	released bool // the attempt was abandoned at shutdown and its claim released
}

// New makes a dispatcher that reads and writes st and sends with client.
func New(st store.Store, client *httpsend.Client, cfg Config) *Dispatcher {
	cfg.defaults()
	return &Dispatcher{
		st: st, client: client, cfg: cfg, log: cfg.Logger,
		woken:   map[string]bool{},
		signal:  make(chan struct{}, 1),
		done:    make(chan doneMsg, cfg.MaxInFlight),
		results: make(chan store.Result, cfg.MaxInFlight),
		lanes:   map[string]*lane{},
		claims:  make(chan claimBatch, 1),
		renewed: make(chan error, 1),
	}
}

// Notify wakes the lanes of endpoints that have new due deliveries. It never blocks.
func (d *Dispatcher) Notify(endpointIDs ...string) {
	d.mu.Lock()
	for _, id := range endpointIDs {
		if _, ok := d.woken[id]; !ok {
			d.woken[id] = false
		}
	}
	d.mu.Unlock()
	d.poke()
}

// EndpointChanged tells the dispatcher to reload an endpoint's settings (and wake its lane).
func (d *Dispatcher) EndpointChanged(id string) {
	d.mu.Lock()
	d.woken[id] = true
	d.mu.Unlock()
	d.poke()
}

// Rescan asks for a scan of the store for due work, after a bulk change such as a replay.
func (d *Dispatcher) Rescan() {
	d.mu.Lock()
	d.rescan = true
	d.mu.Unlock()
	d.poke()
}

func (d *Dispatcher) poke() {
	select {
	case d.signal <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends, then lets in-flight attempts finish (up to ShutdownGrace), writes
// their outcomes, and returns.
func (d *Dispatcher) Run(ctx context.Context) error {
	if d.cfg.ReleaseClaimsAtStart {
		n, err := d.st.ReleaseAllClaims(ctx)
		if err != nil {
			return fmt.Errorf("release claims: %w", err)
		}
		if n > 0 {
			d.log.Info("released claims left by an earlier run", "deliveries", n)
		}
	}
	sendCtx, cancelSends := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSends()
	d.sendCtx = sendCtx
	writerDone := make(chan struct{})
	go d.writeResults(writerDone)

	d.Rescan()
	ticker := time.NewTicker(d.cfg.Rescan)
	defer ticker.Stop()
	renew := time.NewTicker(d.cfg.LeaseMargin / 3)
	defer renew.Stop()
	d.renew(ctx)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()

	for {
		d.schedule(ctx, sendCtx)
		wait := time.Hour
		if len(d.timers) > 0 {
			wait = max(time.Until(d.timers[0].nextDue), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			if d.claiming {
				d.claimed(ctx, <-d.claims)
			}
			d.shutdown(ctx, cancelSends)
			close(d.results)
			<-writerDone
			return nil
		case <-d.signal:
			d.takeSignals(ctx)
		case m := <-d.done:
			d.finish(ctx, m)
		case b := <-d.claims:
			d.claimed(ctx, b)
		case <-ticker.C:
			d.Rescan()
		case <-renew.C:
			d.renew(ctx)
		case err := <-d.renewed:
			d.renewing = false
			if err != nil && ctx.Err() == nil {
				d.log.Error("renew leases", "err", err)
			}
		case <-timer.C:
		}
		// Take every completion already waiting, so that claims for a busy lane are batched.
	drain:
		for {
			select {
			case m := <-d.done:
				d.finish(ctx, m)
			default:
				break drain
			}
		}
		now := time.Now()
		for len(d.timers) > 0 && !d.timers[0].nextDue.After(now) {
			l := heap.Pop(&d.timers).(*lane)
			l.nextDue = time.Time{}
			d.markReady(l)
		}
		d.cfg.Metrics.SetDispatch(d.inFlight, d.held-d.inFlight)
	}
}

// renew extends the leases of the deliveries queued and in flight, beside the loop. Leases are
// short (the endpoint's timeout + LeaseMargin) and renewed every LeaseMargin/3, however long a
// delivery waits in its lane's queue. It runs even with nothing held: on a shared store it is
// also the process's heartbeat, by which the others know how many share the work.
func (d *Dispatcher) renew(ctx context.Context) {
	if d.renewing {
		return
	}
	var longest time.Duration
	for _, l := range d.lanes {
		if (l.inFlight > 0 || len(l.queue) > 0) && l.ep != nil {
			longest = max(longest, l.ep.Timeout)
		}
	}
	if longest <= 0 || longest > MaxTimeout {
		longest = MaxTimeout
	}
	now := time.Now()
	d.renewing = true
	go func() {
		_, err := d.st.RenewClaims(ctx, now, now.Add(longest+d.cfg.LeaseMargin))
		d.renewed <- err
	}()
}

func (d *Dispatcher) shutdown(ctx context.Context, cancelSends context.CancelFunc) {
	for _, l := range d.lanes {
		d.releaseQueue(ctx, l)
	}
	grace := time.AfterFunc(d.cfg.ShutdownGrace, cancelSends)
	defer grace.Stop()
	for d.inFlight > 0 {
		m := <-d.done
		d.inFlight--
		d.held--
		m.lane.inFlight--
	}
	d.sends.Wait()
	// Nothing is sent after Run returns: the kept-alive connections to receivers (and the two
	// goroutines each holds) would otherwise outlive the dispatcher until their idle timeout.
	d.client.Close()
	if c := d.cfg.InternalClient; c != nil && c != d.client {
		c.Close()
	}
}

// clientFor is the client that may send to ep. The flag is read from the snapshot the attempt
// was claimed with, and each client's guard checks every dial, so an endpoint whose flag was
// turned off is refused by the ordinary client's guard from its next attempt on.
func (d *Dispatcher) clientFor(ep *store.Endpoint) *httpsend.Client {
	if ep.Internal && d.cfg.InternalClient != nil {
		return d.cfg.InternalClient
	}
	return d.client
}

func (d *Dispatcher) takeSignals(ctx context.Context) {
	d.mu.Lock()
	woken, rescan := d.woken, d.rescan
	d.woken, d.rescan = map[string]bool{}, false
	d.mu.Unlock()
	if rescan {
		due, err := d.st.DueEndpoints(ctx, time.Now())
		if err != nil {
			d.log.Error("scan for due deliveries", "err", err)
		}
		for id, at := range due {
			d.wakeAt(d.lane(id), at)
		}
		d.collectIdleLanes()
	}
	for id, reload := range woken {
		l := d.lane(id)
		if reload {
			l.ep = nil
		}
		d.markReady(l)
	}
}

func (d *Dispatcher) lane(id string) *lane {
	l, ok := d.lanes[id]
	if !ok {
		l = &lane{id: id, heapIndex: -1}
		d.lanes[id] = l
	}
	return l
}

// collectIdleLanes forgets lanes with nothing to do, so that memory follows the active endpoints.
func (d *Dispatcher) collectIdleLanes() {
	cutoff := time.Now().Add(-10 * time.Minute)
	for id, l := range d.lanes {
		if l.inFlight == 0 && len(l.queue) == 0 && !l.claiming && !l.ready && l.heapIndex < 0 && l.lastActive.Before(cutoff) {
			l.forgetBreaker(d.cfg.Metrics)
			delete(d.lanes, id)
		}
	}
}

func (d *Dispatcher) markReady(l *lane) {
	if !l.ready {
		l.ready = true
		d.ready = append(d.ready, l)
	}
}

// wakeAt makes the lane ready at t (now if t has passed), keeping an earlier wake-up if it has one.
func (d *Dispatcher) wakeAt(l *lane, t time.Time) {
	if !t.After(time.Now()) {
		d.markReady(l)
		return
	}
	if l.heapIndex >= 0 {
		if t.Before(l.nextDue) {
			l.nextDue = t
			heap.Fix(&d.timers, l.heapIndex)
		}
		return
	}
	l.nextDue = t
	heap.Push(&d.timers, l)
}

// schedule claims work for every ready lane that has room, in one store call, and starts what
// the lanes may send now.
//
// A lane queues up to QueueDepth × its concurrency beyond what is in flight: when an attempt ends
// the next one starts at once, without a store call. The queue refills when it falls to half the
// lane's concurrency, so a busy lane claims in large batches, rarely.
func (d *Dispatcher) schedule(ctx context.Context, sendCtx context.Context) {
	if len(d.ready) == 0 || d.claiming {
		return
	}
	now := time.Now()
	free := d.cfg.MaxInFlight - d.held
	// When many lanes are ready, each gets a fair share of the global bound (at least its own
	// concurrency), so that deep queues of the first lanes do not leave the others idle.
	share := free / len(d.ready)
	var reqs []store.ClaimRequest
	var claiming []*lane
	var capped []bool
	rest := d.ready[:0]
	for i, l := range d.ready {
		if free <= 0 {
			rest = append(rest, d.ready[i:]...)
			break
		}
		n, retry := d.room(ctx, l, now)
		l.ready = false
		if n <= 0 {
			if !retry.IsZero() {
				d.wakeAt(l, retry)
			}
			d.pump(ctx, sendCtx, l, now)
			continue
		}
		if limit := max(share, l.ep.MaxConcurrency); n > limit {
			n = limit
			capped = append(capped, true)
		} else {
			capped = append(capped, n > free)
		}
		n = min(n, free)
		free -= n
		reqs = append(reqs, store.ClaimRequest{EndpointID: l.id, Limit: n})
		claiming = append(claiming, l)
	}
	d.ready = rest
	if len(reqs) == 0 {
		return
	}
	// The claim runs beside the loop, so that completions keep starting queued deliveries while
	// the store is read. One claim is under way at a time; lanes that become ready meanwhile wait
	// for the next.
	b := claimBatch{lanes: claiming, reqs: reqs, capped: capped, now: now}
	var longest time.Duration
	for _, l := range claiming {
		l.claiming = true
		longest = max(longest, l.ep.Timeout)
	}
	if longest <= 0 || longest > MaxTimeout {
		longest = MaxTimeout
	}
	d.claiming = true
	go func() {
		// The lease covers the attempt; while the delivery waits in the queue, renewals extend it.
		b.results, b.err = d.st.ClaimDue(ctx, now, now.Add(longest+d.cfg.LeaseMargin), reqs)
		d.claims <- b
	}()
}

// claimBatch is one ClaimDue call and its answer.
type claimBatch struct {
	lanes   []*lane
	reqs    []store.ClaimRequest
	capped  []bool
	now     time.Time
	results []store.ClaimResult
	err     error
}

// claimed hands a claim's answer to its lanes.
func (d *Dispatcher) claimed(ctx context.Context, b claimBatch) {
	d.claiming = false
	for _, l := range b.lanes {
		l.claiming = false
	}
	if b.err != nil {
		if ctx.Err() == nil {
			d.log.Error("claim due deliveries", "err", b.err)
		}
		// Try again shortly rather than spin.
		for _, l := range b.lanes {
			d.wakeAt(l, time.Now().Add(time.Second))
		}
		return
	}
	now := time.Now()
	for i, res := range b.results {
		l := b.lanes[i]
		l.queue = append(l.queue, res.Claimed...)
		d.held += len(res.Claimed)
		switch {
		case len(res.Claimed) < b.reqs[i].Limit:
			if !res.NextDue.IsZero() {
				d.wakeAt(l, res.NextDue)
			}
		case b.capped[i]:
			// The global bound cut this claim short: the lane has room and maybe more work.
			d.markReady(l)
		}
		if _, ok := d.lanes[l.id]; !ok || l.ep == nil || !l.ep.Enabled {
			// Deleted, changed or disabled while the claim was under way.
			d.releaseQueue(ctx, l)
			d.markReady(l)
			continue
		}
		d.pump(ctx, d.sendCtx, l, now)
		if len(res.Claimed) == b.reqs[i].Limit && l.wantsMore(d.cfg.QueueDepth) {
			d.markReady(l)
		}
	}
}

// room says how many more deliveries the lane should claim now, and if none, when to look again.
func (d *Dispatcher) room(ctx context.Context, l *lane, now time.Time) (int, time.Time) {
	if l.claiming {
		return 0, time.Time{} // its claim's answer will wake it
	}
	if err := d.load(ctx, l, now); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			d.releaseQueue(ctx, l)
			l.forgetBreaker(d.cfg.Metrics)
			delete(d.lanes, l.id)
			return 0, time.Time{}
		}
		d.log.Error("load endpoint", "endpoint", l.id, "err", err)
		return 0, now.Add(5 * time.Second)
	}
	if !l.ep.Enabled {
		d.releaseQueue(ctx, l)
		return 0, time.Time{}
	}
	switch l.breaker.State() {
	case gobreaker.StateOpen:
		d.releaseQueue(ctx, l)
		return 0, l.openUntil
	case gobreaker.StateHalfOpen:
		// One probe at a time, and nothing queued behind it.
		if l.inFlight > 0 || len(l.queue) > 0 {
			return 0, time.Time{}
		}
		return 1, time.Time{}
	}
	if !l.wantsMore(d.cfg.QueueDepth) {
		return 0, time.Time{} // enough queued; a completion will wake the lane
	}
	return l.queueTarget(d.cfg.QueueDepth) - len(l.queue), time.Time{}
}

// queueTarget is how many claims a lane keeps queued: depth rounds of its concurrency, or a few
// seconds' worth at its rate limit.
func (l *lane) queueTarget(depth int) int {
	target := depth * l.ep.MaxConcurrency
	if l.limiter != nil {
		target = min(target, max(1, int(math.Ceil(l.ep.RateLimit*5))))
	}
	return max(target, 1)
}

// wantsMore says whether the lane's queue has fallen to half its target, where it refills: early
// enough that the next claim's answer arrives before the queue runs dry, in large batches.
func (l *lane) wantsMore(depth int) bool {
	return len(l.queue) <= l.queueTarget(depth)/2
}

// pump starts queued deliveries while the lane's concurrency, rate and breaker allow.
func (d *Dispatcher) pump(ctx, sendCtx context.Context, l *lane, now time.Time) {
	for len(l.queue) > 0 && l.ep != nil && l.ep.Enabled && l.inFlight < l.ep.MaxConcurrency {
		if l.limiter != nil && !l.limiter.AllowN(now, 1) {
			r := l.limiter.ReserveN(now, 1)
			d.wakeAt(l, now.Add(r.DelayFrom(now)))
			r.CancelAt(now)
			return
		}
		done, err := l.breaker.Allow()
		if err != nil {
			// The breaker is open or has its probe out: give the claims back.
			d.releaseQueue(ctx, l)
			return
		}
		c := l.queue[0]
		l.queue[0] = store.Claimed{}
		l.queue = l.queue[1:]
		l.inFlight++
		l.lastActive = now
		d.inFlight++
		d.sends.Add(1)
		go d.send(sendCtx, l.snapshot(), c, done)
	}
	if len(l.queue) == 0 {
		l.queue = nil // let the backing array go
	}
}

// releaseQueue gives the lane's queued claims back to the store.
func (d *Dispatcher) releaseQueue(ctx context.Context, l *lane) {
	if len(l.queue) == 0 {
		return
	}
	ids := make([]int64, len(l.queue))
	for i, c := range l.queue {
		ids[i] = c.DeliveryID
	}
	d.held -= len(l.queue)
	l.queue = nil
	if err := d.st.ReleaseClaims(context.WithoutCancel(ctx), ids); err != nil {
		d.log.Error("release claims", "endpoint", l.id, "err", err)
	}
}

// laneSnapshot is what a send needs, copied so that the loop may reload the lane meanwhile.
type laneSnapshot struct {
	lane     *lane
	ep       *store.Endpoint
	signer   *webhook.Signer
	schedule []time.Duration
}

func (d *Dispatcher) send(ctx context.Context, s laneSnapshot, c store.Claimed, breakerDone func(error)) {
	defer d.sends.Done()
	h := make(http.Header, len(s.ep.Headers)+4)
	for k, v := range s.ep.Headers {
		h.Set(k, v)
	}
	now := time.Now()
	s.signer.SetHeaders(h, c.EventID, now, c.Payload)
	out := d.clientFor(s.ep).Send(ctx, httpsend.Request{URL: s.ep.URL, Header: h, Body: c.Payload, Timeout: s.ep.Timeout})
	if ctx.Err() != nil {
		// Shutdown cut the attempt short: it says nothing about the endpoint, so it is not recorded
		// and the delivery goes back to the queue as it was.
		if err := d.st.ReleaseClaims(context.WithoutCancel(ctx), []int64{c.DeliveryID}); err != nil {
			d.log.Error("release claim", "delivery", c.DeliveryID, "err", err)
		}
		d.done <- doneMsg{lane: s.lane, released: true}
		return
	}
	state, next := d.cfg.Policy.Next(s.schedule, c.Tries+1, out, time.Now())
	d.cfg.Metrics.Attempt(s.ep.TenantID, s.ep.ID, attemptOutcome(state), out)
	d.results <- store.Result{
		DeliveryID:    c.DeliveryID,
		EndpointID:    s.ep.ID,
		State:         state,
		NextAttemptAt: next,
		Attempt: store.Attempt{
			TenantID: s.ep.TenantID, EndpointID: s.ep.ID, EventID: c.EventID, DeliveryID: c.DeliveryID,
			At: now, StatusCode: out.StatusCode, Latency: out.Latency, Response: string(out.Response),
			ErrorKind: out.ErrorKind, Error: out.Error, Success: out.Class == httpsend.Success,
		},
	}
	d.done <- doneMsg{lane: s.lane, out: out, retryAt: next, breaker: breakerDone}
}

// finish accounts for a completed attempt in the loop goroutine.
func (d *Dispatcher) finish(ctx context.Context, m doneMsg) {
	d.inFlight--
	d.held--
	l := m.lane
	l.inFlight--
	if m.released {
		return
	}
	if m.breaker != nil {
		var err error
		if m.out.Class == httpsend.Retryable {
			err = errors.New(m.out.Error)
		}
		m.breaker(err)
	}
	now := time.Now()
	switch {
	case m.out.Class == httpsend.Success:
		l.failingSince = time.Time{}
	case l.failingSince.IsZero():
		l.failingSince = now
	}
	if l.ep != nil && l.ep.Enabled {
		switch {
		case m.out.Class == httpsend.Gone:
			d.disable(ctx, l, "the endpoint answered 410 Gone", true)
		case !l.failingSince.IsZero() && now.Sub(l.failingSince) >= d.cfg.DisableAfter:
			d.disable(ctx, l, fmt.Sprintf("no successful delivery since %s", l.failingSince.UTC().Format(time.RFC3339)), false)
		}
	}
	if !m.retryAt.IsZero() {
		d.wakeAt(l, m.retryAt)
	}
	d.pump(ctx, d.sendCtx, l, now)
	if l.ep == nil || l.wantsMore(d.cfg.QueueDepth) {
		d.markReady(l)
	}
}

func (d *Dispatcher) disable(ctx context.Context, l *lane, reason string, deadLetter bool) {
	n, err := d.st.DisableEndpoint(ctx, l.id, reason, deadLetter)
	if err != nil {
		d.log.Error("disable endpoint", "endpoint", l.id, "err", err)
		return
	}
	l.ep.Enabled = false
	l.ep.DisabledReason = reason
	d.log.Warn("endpoint disabled", "endpoint", l.id, "tenant", l.ep.TenantID, "reason", reason, "dead_lettered", n)
}

// writeResults writes outcomes in batches: whatever has arrived while the last batch was being
// committed goes into the next one.
func (d *Dispatcher) writeResults(done chan<- struct{}) {
	defer close(done)
	ctx := context.Background()
	batch := make([]store.Result, 0, 512)
	for r := range d.results {
		batch = append(batch[:0], r)
	fill:
		for len(batch) < cap(batch) {
			select {
			case r, ok := <-d.results:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		if err := d.st.RecordResults(ctx, batch); err != nil {
			// The deliveries stay leased, so they are attempted again when the lease ends:
			// at-least-once holds, at the price of a duplicate.
			d.log.Error("record delivery results", "count", len(batch), "err", err)
		}
	}
}
