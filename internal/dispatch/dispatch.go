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
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/heraldhq/herald/internal/destination"
	webhookdest "github.com/heraldhq/herald/internal/destination/webhook"
	"github.com/heraldhq/herald/internal/expr"
	"github.com/heraldhq/herald/internal/httpsend"
	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/internal/ops"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/telemetry"
	"github.com/heraldhq/herald/webhook"
)

// Config tunes the dispatcher; zero values take the defaults.
type Config struct {
	Policy Policy
	// MaxInFlight bounds attempts in flight over all endpoints, which bounds memory.
	MaxInFlight int
	// MaxInFlightPerTenant bounds the claims (in flight and queued) of one tenant's endpoints
	// together (default: half of MaxInFlight), so that a tenant whose many endpoints hang cannot
	// take every slot of the node from the others.
	MaxInFlightPerTenant int
	// LeaseMargin is added to the endpoint's timeout to make a claim's lease, which the dispatcher
	// renews every LeaseMargin/3 while the claim waits in a lane's queue or is in flight. On
	// PostgreSQL other nodes take the claims of a node that died over by its missed heartbeats
	// (HeartbeatTTL), before its leases end.
	LeaseMargin time.Duration
	// HeartbeatTTL is how long one heartbeat keeps this node alive on a store shared by several
	// (store.Heartbeater; default DefaultHeartbeatTTL): the others take over the endpoints of a
	// node that died about this long after its last heartbeat, whatever the leases' length.
	HeartbeatTTL time.Duration
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
	// internal endpoint never gets more than the operator configured. Used only when
	// Destinations is nil.
	InternalClient *httpsend.Client
	// Destinations are the destination types endpoints deliver to: every attempt goes through a
	// Sender the endpoint's type opens. Nil: webhooks only, with New's client and
	// InternalClient. Run closes them when it returns.
	Destinations *destination.Registry
	// TracerProvider traces each attempt as a child of its event's publish (nil: no spans; the
	// publish's stored trace context still reaches the receiver).
	TracerProvider trace.TracerProvider
	// Ops, when set, is told of disabled and failing endpoints and dead-lettered deliveries.
	Ops *ops.Publisher
}

func (c *Config) defaults() {
	if c.Policy == (Policy{}) {
		c.Policy = DefaultPolicy()
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.MaxInFlightPerTenant <= 0 {
		c.MaxInFlightPerTenant = max(c.MaxInFlight/2, 1)
	}
	c.MaxInFlightPerTenant = min(c.MaxInFlightPerTenant, c.MaxInFlight)
	if c.HeartbeatTTL <= 0 {
		c.HeartbeatTTL = DefaultHeartbeatTTL
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

// DefaultMaxInFlight is Config.MaxInFlight's default (herald serve --max-in-flight).
const DefaultMaxInFlight = 2000

// Dispatcher delivers pending deliveries. Create it with New, start it with Run.
type Dispatcher struct {
	st     store.Store
	dests  *destination.Registry
	cfg    Config
	log    *slog.Logger
	tracer trace.Tracer
	exprs  *expr.Cache // endpoints' compiled transformations

	mu      sync.Mutex
	woken   map[string]bool // endpoint id -> reload its settings too
	rescan  bool
	signal  chan struct{}
	done    chan doneMsg
	results chan result

	// Owned by the loop goroutine.
	lanes     map[string]*lane
	ready     []*lane
	timers    laneHeap
	claims    chan claimBatch // the answer of the claim under way
	claiming  bool            // a claim is under way
	renewing  bool            // a renewal of leases is under way
	renewed   chan error      // its answer
	inFlight  int             // attempts under way
	held      int             // claims held: in flight and queued
	laneWaits int             // lanes waiting for their lane in the store (noteLaneWait)
	// tenantHeld counts held claims by tenant, and tenantWaiting the lanes that wait for their
	// tenant to fall below MaxInFlightPerTenant.
	tenantHeld    map[string]int
	tenantWaiting map[string][]*lane
	// roundClaims and roundReady are schedule's scratch maps.
	roundClaims, roundReady map[string]int
	sending                 int // claims held by the attempts under way (a batch's members each count)
	sendCtx                 context.Context
	sends                   sync.WaitGroup
	lv                      liveness

	// breakers holds the state of every endpoint breaker that is not closed (endpoint id →
	// "open" or "half-open"), for the API; written from the breakers' state callbacks.
	breakers sync.Map
}

// BreakerState is this process's circuit breaker state for an endpoint: "closed", "open" or
// "half-open" (one probe let through). Each node keeps its own breakers.
func (d *Dispatcher) BreakerState(endpointID string) string {
	if v, ok := d.breakers.Load(endpointID); ok {
		return v.(string)
	}
	return "closed"
}

type doneMsg struct {
	lane     *lane
	out      destination.Outcome
	retryAt  time.Time
	breaker  func(error)
	released bool // the attempt was abandoned at shutdown and its claim released
	held     int  // deliveries the attempt held: 1, or a batch's members
	// What the attempt was, for the logs and operational events its outcome may cause.
	at      time.Time
	eventID string
	attempt int
}

// result is an outcome on its way to the store, with what a dead letter's operational event
// and log line need.
type result struct {
	store.Result
	eventType string
	attempt   int // the delivery's attempts, all told, this one included
	// wake: once the result is written, the endpoint's lane claims again (an ordered endpoint's
	// next delivery cannot be claimed before its predecessor's result is committed).
	wake bool
}

// New makes a dispatcher that reads and writes st and sends through cfg.Destinations, or, when
// that is nil, to webhooks only with client (and cfg.InternalClient).
func New(st store.Store, client *httpsend.Client, cfg Config) *Dispatcher {
	cfg.defaults()
	dests := cfg.Destinations
	if dests == nil {
		var err error
		if dests, err = destination.NewRegistry(webhookdest.New(client, cfg.InternalClient)); err != nil {
			panic(err) // one type cannot clash with itself
		}
	}
	return &Dispatcher{
		st: st, dests: dests, cfg: cfg, log: cfg.Logger, tracer: telemetry.Tracer(cfg.TracerProvider), exprs: expr.NewCache(1024),
		woken:   map[string]bool{},
		signal:  make(chan struct{}, 1),
		done:    make(chan doneMsg, cfg.MaxInFlight),
		results: make(chan result, cfg.MaxInFlight),
		lanes:   map[string]*lane{},
		claims:  make(chan claimBatch, 1),

		tenantHeld:    map[string]int{},
		tenantWaiting: map[string][]*lane{},
		roundClaims:   map[string]int{},
		roundReady:    map[string]int{},
		renewed:       make(chan error, 1),
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
	d.startLiveness(ctx, sendCtx)
	var beats <-chan time.Time
	if d.lv.hb != nil {
		t := time.NewTicker(d.lv.interval())
		defer t.Stop()
		beats = t.C
	}
	writerDone := make(chan struct{})
	go d.writeResults(ctx, writerDone)

	d.Rescan()
	ticker := time.NewTicker(d.cfg.Rescan)
	defer ticker.Stop()
	renew := time.NewTicker(d.cfg.LeaseMargin / 3)
	defer renew.Stop()
	d.renew(ctx)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()

	for {
		d.schedule(ctx)
		wait := time.Hour
		if len(d.timers) > 0 {
			wait = max(time.Until(d.timers[0].nextDue), 0)
		}
		if at, ok := d.fenceAt(); ok {
			wait = min(wait, max(time.Until(at), 0))
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			if d.claiming {
				// Its claims go to their lanes' queues, which shutdown gives back.
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
		case <-beats:
			d.beat(ctx)
		case r := <-d.lv.result:
			d.heartbeat(ctx, r)
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
		d.fence(now)
		for len(d.timers) > 0 && !d.timers[0].nextDue.After(now) {
			l := heap.Pop(&d.timers).(*lane)
			l.nextDue = time.Time{}
			d.markReady(l)
		}
		d.cfg.Metrics.SetDispatch(d.inFlight, d.held-d.sending)
		d.cfg.Metrics.SetLaneWaits(d.laneWaits)
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
		d.hold(m.lane, -m.held)
		d.sending -= m.held
		m.lane.inFlight--
	}
	d.sends.Wait()
	// Nothing is sent after Run returns: the kept-alive connections to receivers and brokers
	// (and the goroutines each holds) would otherwise outlive the dispatcher.
	if err := d.dests.Close(); err != nil {
		d.log.Error("close destinations", "err", err)
	}
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
		if l.inFlight == 0 && len(l.queue) == 0 && !l.claiming && !l.ready && !l.tenantWait && l.heapIndex < 0 && l.lastActive.Before(cutoff) {
			l.forgetBreaker(d.cfg.Metrics)
			d.endLaneWait(l, time.Now())
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
func (d *Dispatcher) schedule(ctx context.Context) {
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
	// Lanes may become ready again while this loop runs (wakeAt and pump call markReady): they
	// go to a fresh d.ready, not into the slice being iterated, where they would be lost.
	ready := d.ready
	d.ready = nil
	var rest []*lane
	// What this round claims and how many lanes are ready, by tenant: maps kept between rounds,
	// so that scheduling allocates nothing for them.
	round, readyOf := d.roundClaims, d.roundReady
	clear(round)
	clear(readyOf)
	for _, l := range ready {
		readyOf[l.tenant()]++
	}
	for i, l := range ready {
		if free <= 0 {
			rest = append(rest, ready[i:]...)
			break
		}
		n, retry := d.room(ctx, l, now)
		l.ready = false
		if n <= 0 {
			if !retry.IsZero() {
				d.wakeAt(l, retry)
			}
			d.pump(ctx, l, now)
			continue
		}
		// A batching lane's n counts batches, each up to MaxEvents deliveries: the global bound
		// counts deliveries.
		per := 1
		if l.batch != nil {
			per = l.batch.MaxEvents
		}
		// The tenant's share: its endpoints together hold at most MaxInFlightPerTenant claims.
		// Its ready lanes split what is left of it (each at least one request), so that one lane
		// cannot reserve the whole share and leave the others waiting for a claim it did not need.
		tenant := l.tenant()
		tenantFree := d.cfg.MaxInFlightPerTenant - d.tenantHeld[tenant] - round[tenant]
		if tenantFree <= 0 {
			d.waitForTenant(l, tenant)
			continue
		}
		quota := max((d.cfg.MaxInFlightPerTenant-d.tenantHeld[tenant])/max(readyOf[tenant], 1), 1)
		n = min(n, max(min(quota, tenantFree)/per, 1))
		if limit := max(share/per, l.concurrency()); n > limit {
			n = limit
			capped = append(capped, true)
		} else {
			capped = append(capped, n*per > free)
		}
		n = min(n, max(free/per, 1))
		free -= n * per
		round[tenant] += n * per
		reqs = append(reqs, store.ClaimRequest{EndpointID: l.id, Limit: n, Ordered: l.ep.Options.Ordered, Batch: l.batch})
		claiming = append(claiming, l)
	}
	d.ready = append(rest, d.ready...)
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
		got := requests(res.Claimed)
		l.requests += got
		d.hold(l, len(res.Claimed))
		d.noteLaneWait(l, res, now)
		switch {
		case got < b.reqs[i].Limit:
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
		if ctx.Err() != nil {
			continue // stopping: nothing new starts
		}
		d.pump(ctx, l, now)
		if got == b.reqs[i].Limit && l.wantsMore(d.cfg.QueueDepth) {
			d.markReady(l)
		}
	}
	// Lanes that got less than they asked for leave their tenant's share to its waiting lanes.
	for _, l := range b.lanes {
		d.wakeTenant(l.tenant())
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
			d.endLaneWait(l, now)
			delete(d.lanes, l.id)
			return 0, time.Time{}
		}
		d.log.Error("load endpoint", "endpoint", l.id, "err", err)
		return 0, now.Add(5 * time.Second)
	}
	if !l.ep.Enabled {
		d.releaseQueue(ctx, l)
		d.endLaneWait(l, now)
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
	if l.ep.Options.Ordered {
		// One at a time, claimed once the previous one's result is written (which wakes the
		// lane): the store gives nothing while the first pending delivery is leased anyway.
		if l.inFlight > 0 || l.requests > 0 {
			return 0, time.Time{}
		}
		return 1, time.Time{}
	}
	if !l.wantsMore(d.cfg.QueueDepth) {
		return 0, time.Time{} // enough queued; a completion will wake the lane
	}
	return l.queueTarget(d.cfg.QueueDepth) - l.requests, time.Time{}
}

// queueTarget is how many requests a lane keeps queued: depth rounds of its concurrency, or a few
// seconds' worth at its rate limit. An ordered lane queues one delivery; a batching lane one
// round of batches (each claim of a batch takes what is due, so claiming ahead gains nothing).
func (l *lane) queueTarget(depth int) int {
	switch {
	case l.ep.Options.Ordered:
		return 1
	case l.batch != nil:
		depth = 1
	}
	target := depth * l.ep.MaxConcurrency
	if l.limiter != nil {
		target = min(target, max(1, int(math.Ceil(float64(l.limiter.Limit())*5))))
	}
	return max(target, 1)
}

// wantsMore says whether the lane's queue has fallen to half its target, where it refills: early
// enough that the next claim's answer arrives before the queue runs dry, in large batches.
func (l *lane) wantsMore(depth int) bool {
	return l.requests <= l.queueTarget(depth)/2
}

// pump starts queued requests (a delivery, or a batch's members) while the lane's concurrency,
// rate and breaker allow.
func (d *Dispatcher) pump(ctx context.Context, l *lane, now time.Time) {
	if !d.live(now) {
		return // the heartbeat resumes the lanes (heartbeat.go)
	}
	sendCtx := d.sendContext()
	for len(l.queue) > 0 && l.ep != nil && l.ep.Enabled && l.inFlight < l.concurrency() {
		if l.limiter != nil && !l.limiter.AllowN(now, 1) {
			r := l.limiter.ReserveN(now, 1)
			d.wakeAt(l, now.Add(r.DelayFrom(now)))
			r.CancelAt(now)
			return
		}
		if d.dropEnded(ctx, l, now) {
			continue
		}
		done, err := l.breaker.Allow()
		if err != nil {
			// The breaker is open or has its probe out: give the claims back.
			d.releaseQueue(ctx, l)
			return
		}
		l.requests--
		l.inFlight++
		l.lastActive = now
		d.inFlight++
		d.sends.Add(1)
		if batch := l.queue[0].BatchID; batch != 0 {
			n := 1
			for n < len(l.queue) && l.queue[n].BatchID == batch {
				n++
			}
			d.sending += n
			members := slices.Clone(l.queue[:n])
			clear(l.queue[:n])
			l.queue = l.queue[n:]
			go d.sendBatch(sendCtx, l.snapshot(), members, done)
			continue
		}
		if n := l.groupSize(); n > 1 {
			d.sending += n
			group := slices.Clone(l.queue[:n])
			clear(l.queue[:n])
			l.queue = l.queue[n:]
			l.requests -= n - 1 // each member was a request of its own
			go d.sendGroup(sendCtx, l.snapshot(), group, done)
			continue
		}
		d.sending++
		c := l.queue[0]
		l.queue[0] = store.Claimed{}
		l.queue = l.queue[1:]
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
	d.hold(l, -len(l.queue))
	l.queue, l.requests = nil, 0
	if err := d.st.ReleaseClaims(context.WithoutCancel(ctx), ids); err != nil {
		d.log.Error("release claims", "endpoint", l.id, "tenant", l.tenant(), "deliveries", ids, "err", err)
	}
}

// laneSnapshot is what a send needs, copied so that the loop may reload the lane meanwhile.
type laneSnapshot struct {
	lane      *lane
	ep        *store.Endpoint
	signer    *webhook.Signer
	keys      []string
	transform transformFunc
	schedule  []time.Duration
	sender    destination.Sender
}

// attemptContext bounds an attempt by the endpoint's timeout: a Sender returns within ctx's
// deadline.
func (s laneSnapshot) attemptContext(ctx context.Context) (context.Context, context.CancelFunc) {
	timeout := s.ep.Timeout
	if timeout <= 0 {
		timeout = httpsend.DefaultTimeout
	}
	return context.WithTimeout(ctx, timeout)
}

// message is what one attempt sends: the body, signed in the endpoint's scheme with msgID, with
// ctx's trace context (the attempt's span, child of the publish) in traceparent/tracestate, so
// that a broker's consumer continues the trace as a webhook receiver does.
// format holds the headers of the endpoint's format (render).
func (s laneSnapshot) message(ctx context.Context, msgID, eventType string, body []byte, format http.Header, now time.Time) *destination.Message {
	h := s.header(msgID, body, format, now)
	telemetry.Inject(ctx, h)
	return &destination.Message{ID: msgID, EventType: eventType, Timestamp: now, Body: body, Header: h}
}

// deliver hands one message to the endpoint's sender, within the endpoint's timeout.
func (s laneSnapshot) deliver(ctx context.Context, m *destination.Message) destination.Outcome {
	ctx, cancel := s.attemptContext(ctx)
	defer cancel()
	return s.sender.Send(ctx, m)
}

func (d *Dispatcher) send(ctx context.Context, s laneSnapshot, c store.Claimed, breakerDone func(error)) {
	defer d.sends.Done()
	ctx = d.liveCheck(ctx)
	attempt := c.Attempts + 1
	// The attempt continues the trace of the request that published the event, which may have
	// run long ago on another node: its context was stored with the event.
	ctx, span := d.tracer.Start(telemetry.Restore(ctx, c.Traceparent, c.Tracestate), "herald.attempt", trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	tracing := span.IsRecording() // attributes are built only for spans that keep them
	if tracing {
		span.SetAttributes(
			telemetry.AttrTenant.String(s.ep.TenantID), telemetry.AttrEndpoint.String(s.ep.ID),
			telemetry.AttrEventID.String(c.EventID), telemetry.AttrEventType.String(c.EventType),
			telemetry.AttrDelivery.Int64(c.DeliveryID), telemetry.AttrAttempt.Int(attempt))
	}
	now := time.Now()
	var out destination.Outcome
	sent := 0 // the body's bytes, for the usage counters
	if body, format, err := s.render(ctx, c); err != nil {
		// A transformation that fails is the attempt's failure, recorded like any other (nothing
		// is sent): a permanent one, tried a few times so that a corrected transformation sends it.
		out = transformFailed(err)
	} else {
		sent = len(body)
		out = s.deliver(ctx, s.message(ctx, c.EventID, c.EventType, body, format, now))
	}
	if ctx.Err() != nil {
		// Shutdown cut the attempt short: it says nothing about the endpoint, so it is not recorded
		// and the delivery goes back to the queue as it was.
		span.SetStatus(codes.Error, "canceled by shutdown")
		if err := d.st.ReleaseClaims(context.WithoutCancel(ctx), []int64{c.DeliveryID}); err != nil {
			d.logAttempt(ctx, slog.LevelError, "release claim", s, c, "err", err)
		}
		d.done <- doneMsg{lane: s.lane, released: true, held: 1}
		return
	}
	state, next := d.cfg.Policy.Next(s.schedule, c.Tries+1, out, time.Now())
	d.cfg.Metrics.Attempt(s.ep.TenantID, s.ep.ID, attemptOutcome(state), out)
	if tracing {
		spanOutcome(span, state, out)
	}
	// One debug line per attempt: checked first, so that the hot path builds no log record
	// unless debug logging is on.
	if d.log.Enabled(ctx, slog.LevelDebug) {
		if out.Class == destination.Success {
			d.logAttempt(ctx, slog.LevelDebug, "attempt succeeded", s, c, "status", out.StatusCode, "latency", out.Latency)
		} else {
			d.logAttempt(ctx, slog.LevelDebug, "attempt failed", s, c, "status", out.StatusCode, "error_class", metrics.ErrorClass(out),
				"err", out.Error, "latency", out.Latency, "next_attempt_at", next)
		}
	}
	d.results <- attemptResult(s, c, out, state, next, now, 0, sent)
	d.done <- doneMsg{lane: s.lane, out: out, retryAt: next, breaker: breakerDone, at: now, eventID: c.EventID, attempt: attempt, held: 1}
}

// spanOutcome records an attempt's outcome on its span (a recording one).
func spanOutcome(span trace.Span, state store.DeliveryState, out destination.Outcome) {
	span.SetAttributes(telemetry.AttrOutcome.String(attemptOutcome(state)))
	if out.StatusCode != 0 {
		span.SetAttributes(telemetry.AttrStatusCode.Int(out.StatusCode))
	}
	if out.Class != destination.Success {
		span.SetAttributes(telemetry.AttrErrorClass.String(metrics.ErrorClass(out)))
		span.SetStatus(codes.Error, metrics.ErrorClass(out))
	}
}

// attemptResult is what the result writer stores of one delivery's attempt (batch: the id of the
// batch it went in, 0 for none; sent: the bytes of the body sent, which a batch's body counts
// with one of its members).
func attemptResult(s laneSnapshot, c store.Claimed, out destination.Outcome, state store.DeliveryState, next, at time.Time, batch int64, sent int) result {
	return result{
		Result: store.Result{
			DeliveryID:    c.DeliveryID,
			EndpointID:    s.ep.ID,
			State:         state,
			NextAttemptAt: next,
			BatchID:       batch,
			Attempt: store.Attempt{
				TenantID: s.ep.TenantID, EndpointID: s.ep.ID, EventID: c.EventID, DeliveryID: c.DeliveryID,
				At: at, StatusCode: out.StatusCode, Latency: out.Latency, Response: string(out.Response),
				ErrorKind: out.ErrorKind, Error: out.Error, Success: out.Class == destination.Success, BytesSent: sent,
			},
		},
		eventType: c.EventType,
		attempt:   c.Attempts + 1,
		wake:      s.ep.Options.Ordered,
	}
}

// logAttempt logs a line about one attempt, with the keys every line of the delivery path has:
// event, tenant, endpoint, delivery and attempt.
func (d *Dispatcher) logAttempt(ctx context.Context, level slog.Level, msg string, s laneSnapshot, c store.Claimed, args ...any) {
	d.log.Log(ctx, level, msg, append([]any{"event", c.EventID, "tenant", s.ep.TenantID, "endpoint", s.ep.ID,
		"delivery", c.DeliveryID, "attempt", c.Attempts + 1}, args...)...)
}

// finish accounts for a completed attempt in the loop goroutine.
func (d *Dispatcher) finish(ctx context.Context, m doneMsg) {
	d.inFlight--
	d.hold(m.lane, -m.held)
	d.sending -= m.held
	l := m.lane
	l.inFlight--
	if m.released {
		return
	}
	if l.ep != nil {
		// The attempt may have learnt the rate the receiver allows (the CloudEvents handshake).
		l.setLimiter(l.ep.RateLimit)
	}
	if m.breaker != nil {
		var err error
		if m.out.Class == destination.Retryable {
			err = errors.New(m.out.Error)
		}
		m.breaker(err)
	}
	now := time.Now()
	switch {
	case m.out.Class == destination.Success:
		l.failingSince, l.streakFailures, l.streakReported = time.Time{}, 0, 0
	case l.failingSince.IsZero():
		// The attempt's start, as the store records the streak: the id of an endpoint.failing
		// event is made of it, so that a restart noticing the same streak publishes nothing new.
		l.failingSince = m.at.UTC().Truncate(time.Microsecond)
		fallthrough
	default:
		l.streakFailures++
	}
	if l.ep != nil && l.ep.Enabled {
		if !l.failingSince.IsZero() {
			d.reportFailing(l, m, now)
		}
		switch {
		case m.out.Class == destination.Gone:
			d.disable(ctx, l, m, "the endpoint answered 410 Gone", true)
		case !l.failingSince.IsZero() && now.Sub(l.failingSince) >= d.cfg.DisableAfter:
			d.disable(ctx, l, m, fmt.Sprintf("no successful delivery since %s", l.failingSince.UTC().Format(time.RFC3339)), false)
		}
	}
	if !m.retryAt.IsZero() {
		d.wakeAt(l, m.retryAt)
	}
	d.pump(ctx, l, now)
	if l.ep == nil || l.wantsMore(d.cfg.QueueDepth) {
		d.markReady(l)
	}
}

// reportFailing publishes endpoint.failing for each threshold of DisableAfter (50, 90 and 100 %)
// the lane's failure streak has reached since it was last reported: each once per streak.
func (d *Dispatcher) reportFailing(l *lane, m doneMsg, now time.Time) {
	failingFor := now.Sub(l.failingSince)
	for i, pct := range [...]int{50, 90, 100} {
		if i < l.streakReported || failingFor < d.cfg.DisableAfter*time.Duration(pct)/100 {
			continue
		}
		l.streakReported = i + 1
		d.log.Warn("endpoint failing", "endpoint", l.id, "tenant", l.ep.TenantID, "event", m.eventID, "attempt", m.attempt,
			"threshold_percent", pct, "failing_since", l.failingSince, "failed_attempts", l.streakFailures)
		d.cfg.Ops.EndpointFailing(ops.FailingData{
			Tenant: l.ep.TenantID, Endpoint: l.id, ThresholdPercent: pct, FailingSince: l.failingSince,
			FailingForSeconds: int64(failingFor / time.Second), DisableAfterSeconds: int64(d.cfg.DisableAfter / time.Second),
			FailedAttempts: l.streakFailures, LastErrorKind: metrics.ErrorClass(m.out), LastStatus: m.out.StatusCode,
		})
	}
}

// disable disables the lane's endpoint after the attempt m, and says so in the log and with an
// endpoint.disabled event.
func (d *Dispatcher) disable(ctx context.Context, l *lane, m doneMsg, reason string, deadLetter bool) {
	n, err := d.st.DisableEndpoint(ctx, l.id, reason, deadLetter)
	if err != nil {
		d.log.Error("disable endpoint", "endpoint", l.id, "tenant", l.ep.TenantID, "event", m.eventID, "attempt", m.attempt, "err", err)
		return
	}
	l.ep.Enabled = false
	l.ep.DisabledReason = reason
	d.log.Warn("endpoint disabled", "endpoint", l.id, "tenant", l.ep.TenantID, "event", m.eventID, "attempt", m.attempt,
		"reason", reason, "dead_lettered", n)
	data := ops.DisabledData{Tenant: l.ep.TenantID, Endpoint: l.id, Reason: reason, Gone: m.out.Class == destination.Gone, DeadLettered: n}
	if !l.failingSince.IsZero() {
		since := l.failingSince
		data.FailingSince = &since
	}
	d.cfg.Ops.EndpointDisabled(data)
}

// deadLettered logs a delivery that has no attempt left and publishes delivery.dead_lettered.
func (d *Dispatcher) deadLettered(r result) {
	reason := "no attempt left in the retry schedule"
	switch {
	case r.Attempt.StatusCode == http.StatusGone:
		reason = "the endpoint answered 410 Gone"
	case r.Attempt.StatusCode >= 300 && r.Attempt.StatusCode < 500 && !retryableStatus(r.Attempt.StatusCode):
		reason = "the endpoint refused it permanently"
	}
	d.log.Warn("delivery dead-lettered", "event", r.Attempt.EventID, "tenant", r.Attempt.TenantID, "endpoint", r.EndpointID,
		"delivery", r.DeliveryID, "attempt", r.attempt, "status", r.Attempt.StatusCode, "error_kind", r.Attempt.ErrorKind, "reason", reason)
	d.cfg.Ops.DeliveryDeadLettered(ops.DeadLetterData{
		Tenant: r.Attempt.TenantID, Endpoint: r.EndpointID, EventID: r.Attempt.EventID, EventType: r.eventType,
		Delivery: "dlv_" + strconv.FormatInt(r.DeliveryID, 10), Attempts: r.attempt, LastStatus: r.Attempt.StatusCode,
		ErrorKind: r.Attempt.ErrorKind, Reason: reason,
	})
}

// retryableStatus reports the 4xx statuses the policy retries on (httpsend classifies them).
func retryableStatus(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooEarly || code == http.StatusTooManyRequests
}

// writeResults writes outcomes in batches: whatever has arrived while the last batch was being
// committed goes into the next one. stop is Run's context: once it ends, a batch the store cannot
// take is no longer waited for (see record).
func (d *Dispatcher) writeResults(stop context.Context, done chan<- struct{}) {
	defer close(done)
	batch := make([]result, 0, 512)
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
		recorded := d.record(stop, batch)
		d.wake(batch)
		if !recorded {
			continue
		}
		// Dead letters are reported once their state is committed: a result given up is
		// attempted again, and may yet succeed.
		for _, r := range batch {
			if r.State == store.StateDead {
				d.deadLettered(r)
			}
		}
	}
}

// wake wakes the lanes that asked to claim again once their results were written (or given up).
func (d *Dispatcher) wake(results []result) {
	var ids []string
	for _, r := range results {
		if r.wake && !slices.Contains(ids, r.EndpointID) {
			ids = append(ids, r.EndpointID)
		}
	}
	if len(ids) > 0 {
		d.Notify(ids...)
	}
}

// record writes a batch of results. While the store cannot take writes (a full disk, a database
// that cannot be reached: store.ErrUnavailable) it tries again with backoff, holding the batch:
// the deliveries stay leased (their leases are renewed), so nothing sends them meanwhile, and
// each attempt is recorded once the store is back. Senders wait while it waits (the results
// channel fills), which stops new attempts. Once stop has ended it gives up; and on any other
// error at once. A batch given up has its claims released, so that its deliveries, still
// pending in the store as before the attempt, are sent again (at-least-once, at the price of a
// duplicate): otherwise a store whose leases are renewed in memory would hold them until a restart.
// It reports whether the batch was recorded.
func (d *Dispatcher) record(stop context.Context, results []result) bool {
	ctx := context.Background()
	batch := make([]store.Result, len(results))
	for i, r := range results {
		batch[i] = r.Result
	}
	backoff := 100 * time.Millisecond
	for {
		err := d.st.RecordResults(ctx, batch)
		if stale := (*store.StaleResultsError)(nil); errors.As(err, &stale) {
			// Fenced: these deliveries' leases ended while their attempts ran (this node was cut
			// off from the database for longer than a lease); another node owns them now.
			for _, r := range results {
				if slices.Contains(stale.DeliveryIDs, r.DeliveryID) {
					d.log.Warn("attempt not recorded: the delivery's lease had ended or passed to another node", "event", r.Attempt.EventID,
						"tenant", r.Attempt.TenantID, "endpoint", r.EndpointID, "delivery", r.DeliveryID, "attempt", r.attempt)
				}
			}
			return true
		}
		if err == nil {
			return true
		}
		if !errors.Is(err, store.ErrUnavailable) || stop.Err() != nil {
			d.log.Error("record delivery results", "count", len(batch), "err", err)
			// One line per result too (a batch holds at most 512), so that each delivery's
			// history in the logs shows its attempt was not recorded.
			for _, r := range results {
				d.log.Error("record delivery result", "event", r.Attempt.EventID, "tenant", r.Attempt.TenantID,
					"endpoint", r.EndpointID, "delivery", r.DeliveryID, "attempt", r.attempt, "err", err)
			}
			ids := make([]int64, len(batch))
			for i, r := range batch {
				ids[i] = r.DeliveryID
			}
			if err := d.st.ReleaseClaims(ctx, ids); err != nil {
				d.log.Error("release claims", "count", len(ids), "err", err)
			}
			return false
		}
		d.log.Warn("record delivery results: store unavailable, will try again", "count", len(batch), "retry_in", backoff, "err", err)
		select {
		case <-stop.Done():
		case <-time.After(backoff):
		}
		// At most a second apart: a failing write is cheap, and each second waited is a second
		// in which a stop (or a second failure) would turn recorded attempts into duplicates.
		backoff = min(2*backoff, time.Second)
	}
}
