package dispatch

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

// On a store shared by several nodes (store.Heartbeater), a node tells the others it is alive
// every HeartbeatTTL/heartbeatBeats; a node whose heartbeat has ended for heartbeatSkew is dead
// to them, and the first to see it takes its lanes and leases over (so that its endpoints wait
// seconds, not the length of their leases). The other side of that promise is kept here: a node
// sends only while its last successful heartbeat is in force by its own clock (minus the skew),
// and when it is not, it starts no attempt and cuts those in flight short (they are given back
// unrecorded, as at shutdown). So a node cut off from the database, or paused, has stopped
// sending before any other node can take its work over, and an endpoint's max_concurrency
// holds across the cluster through a takeover. A node that learns at its next heartbeat that
// it was fenced meanwhile drops its queued claims unsent: they are another node's now.

const (
	// DefaultHeartbeatTTL is how long one heartbeat keeps a node alive.
	DefaultHeartbeatTTL = 6 * time.Second
	// heartbeatBeats is how many heartbeats a TTL spans: several may fail before the node stops.
	heartbeatBeats = 6
	// heartbeatSkew is the clock skew allowed between the nodes (the database's clock is not
	// used): a node stops this much before its heartbeat ends, and the others fence it this
	// much after.
	heartbeatSkew = time.Second
)

type heartbeatResult struct {
	until  time.Time // the heartbeat's end, by this node's clock
	fenced bool
	err    error
}

// liveness is the loop's view of this node's heartbeats. Owned by the loop goroutine.
type liveness struct {
	hb    store.Heartbeater // nil: the store is this process's own, no heartbeats
	ttl   time.Duration
	until time.Time // the end of the last successful heartbeat
	// sendBefore is until - heartbeatSkew in Unix nanoseconds, for the send goroutines.
	sendBefore atomic.Int64
	beating    bool
	failing    bool // the last heartbeat failed (logged once until one succeeds)
	result     chan heartbeatResult
	// ctx is the context of the attempts started since the node was last known alive; cancel
	// cuts them short.
	ctx    context.Context
	cancel context.CancelFunc
}

func (lv *liveness) interval() time.Duration { return lv.ttl / heartbeatBeats }

// live reports whether this node may start an attempt at now.
func (d *Dispatcher) live(now time.Time) bool {
	return d.lv.hb == nil || now.Before(d.lv.until.Add(-heartbeatSkew))
}

// sendContext is the context of attempts started now.
func (d *Dispatcher) sendContext() context.Context {
	if d.lv.hb == nil {
		return d.sendCtx
	}
	return d.lv.ctx
}

// startLiveness sets the loop's liveness up under the sends' context and, on a shared store,
// sends the first heartbeat before anything is claimed.
func (d *Dispatcher) startLiveness(ctx, sendCtx context.Context) {
	d.lv.ttl = d.cfg.HeartbeatTTL
	d.lv.ctx, d.lv.cancel = context.WithCancel(sendCtx)
	hb := store.HeartbeaterOf(d.st)
	if hb == nil {
		return
	}
	d.lv.hb = hb
	d.lv.result = make(chan heartbeatResult, 1)
	d.beat(ctx)
	d.heartbeat(ctx, <-d.lv.result)
}

// beat sends a heartbeat beside the loop, bounded by the TTL (a database that does not answer
// within it could not have kept the node alive anyway).
func (d *Dispatcher) beat(ctx context.Context) {
	if d.lv.hb == nil || d.lv.beating {
		return
	}
	d.lv.beating = true
	now := time.Now()
	until := now.Add(d.lv.ttl)
	go func() {
		bctx, cancel := context.WithTimeout(ctx, d.lv.ttl)
		defer cancel()
		fenced, err := d.lv.hb.Heartbeat(bctx, now, until, now.Add(-heartbeatSkew))
		d.lv.result <- heartbeatResult{until: until, fenced: fenced, err: err}
	}()
}

// heartbeat takes a heartbeat's answer in the loop.
func (d *Dispatcher) heartbeat(ctx context.Context, r heartbeatResult) {
	d.lv.beating = false
	if r.err != nil {
		if ctx.Err() == nil && !d.lv.failing {
			d.lv.failing = true
			d.log.Warn("heartbeat failed; this node stops sending when its last one ends", "alive_until", d.lv.until, "err", r.err)
		}
		return
	}
	if d.lv.failing {
		d.lv.failing = false
		d.log.Info("heartbeat recovered", "alive_until", r.until)
	}
	if r.fenced {
		// Another node took this node's work over while it was cut off or paused: what it
		// holds is void (the store has forgotten it), and nothing of it is sent.
		d.log.Warn("this node was fenced by another while it could not reach the database: its claims are dropped unsent")
		for _, l := range d.lanes {
			d.releaseQueue(ctx, l)
		}
	}
	wasLive := d.live(time.Now())
	if r.until.After(d.lv.until) {
		d.lv.until = r.until
		d.lv.sendBefore.Store(r.until.Add(-heartbeatSkew).UnixNano())
	}
	d.renewSendContext(d.sendCtx)
	if !wasLive {
		// Sends paused meanwhile: the lanes with claims queued go on.
		for _, l := range d.lanes {
			if len(l.queue) > 0 {
				d.markReady(l)
			}
		}
	}
}

// liveCheck is ctx, or a context already cancelled when this node's heartbeat has ended by now:
// a send goroutine that runs late (the process was paused between the loop handing it the claim
// and the request) gives its claim back instead of sending what another node may have taken over.
func (d *Dispatcher) liveCheck(ctx context.Context) context.Context {
	if d.lv.hb == nil || time.Now().UnixNano() < d.lv.sendBefore.Load() {
		return ctx
	}
	c, cancel := context.WithCancel(ctx)
	cancel()
	return c
}

// fence cuts the attempts in flight short once the node's heartbeat is no longer in force, so
// that none outlives it; the next attempts get a fresh context.
func (d *Dispatcher) fence(now time.Time) {
	if d.lv.hb == nil || d.live(now) || d.inFlight == 0 || d.lv.ctx.Err() != nil {
		return
	}
	d.log.Warn("heartbeat ended: attempts in flight are cut short and given back", "attempts", d.inFlight, "alive_until", d.lv.until)
	d.lv.cancel()
}

// renewSendContext gives the attempts started from now on a fresh context, once the one they
// had was cut short.
func (d *Dispatcher) renewSendContext(sendCtx context.Context) {
	if d.lv.ctx.Err() != nil && sendCtx.Err() == nil {
		d.lv.ctx, d.lv.cancel = context.WithCancel(sendCtx)
	}
}

// fenceAt is when fence must run next: the end of the heartbeat while attempts are in flight.
func (d *Dispatcher) fenceAt() (time.Time, bool) {
	if d.lv.hb == nil || d.inFlight == 0 || d.lv.ctx.Err() != nil {
		return time.Time{}, false
	}
	return d.lv.until.Add(-heartbeatSkew), true
}
