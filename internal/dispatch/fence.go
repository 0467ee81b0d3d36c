package dispatch

import (
	"context"
	"time"
)

// A claim is sent only while its lease outlasts the attempt by the node's own clock: the lease
// end the store last wrote (store.Store.LeaseEnd), which renewals extend every LeaseMargin/3.
// When renewals fail (the database cut off, reset, or this process paused), the leases of the
// queued claims run out and another node may take the deliveries over; so the head of a lane's
// queue whose lease would end before the endpoint's timeout (plus leaseGuard, for the clocks of
// the nodes and the database) is dropped and released, never sent. An attempt that starts thus
// ends before its lease, and the store fences the result writes on the lease (a late result of
// a lease lost meanwhile overwrites nothing: store.StaleResultsError).

// maxLeaseGuard is how much earlier than its lease end a claim counts as ended: the skew allowed
// between this node's clock and the others' (and the database's). A quarter of LeaseMargin when
// that is shorter, since a lease always has two thirds of the margin left between renewals.
const maxLeaseGuard = 2 * time.Second

// dropEnded drops the head of l's queue, a single delivery or a batch, when its lease may end
// before an attempt started now would; it reports whether it dropped anything.
func (d *Dispatcher) dropEnded(ctx context.Context, l *lane, now time.Time) bool {
	n := 1
	if batch := l.queue[0].BatchID; batch != 0 {
		for n < len(l.queue) && l.queue[n].BatchID == batch {
			n++
		}
	}
	timeout := l.ep.Timeout
	if timeout <= 0 || timeout > MaxTimeout {
		timeout = MaxTimeout
	}
	need := now.Add(timeout + min(maxLeaseGuard, d.cfg.LeaseMargin/4))
	ended := false
	for _, c := range l.queue[:n] {
		if end := d.st.LeaseEnd(c.DeliveryID); end.Before(need) {
			ended = true
			break
		}
	}
	if !ended {
		return false
	}
	ids := make([]int64, n)
	for i, c := range l.queue[:n] {
		ids[i] = c.DeliveryID
	}
	clear(l.queue[:n])
	l.queue = l.queue[n:]
	l.requests--
	d.hold(l, -n)
	d.log.Warn("claim dropped unsent: its lease would end before the attempt (renewals failing?)",
		"endpoint", l.id, "tenant", l.tenant(), "deliveries", ids)
	// Beside the loop, and bounded: the database may be the reason the lease ran out.
	tenant := l.tenant()
	go func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.LeaseMargin)
		defer cancel()
		if err := d.st.ReleaseClaims(rctx, ids); err != nil {
			d.log.Error("release claims", "endpoint", l.id, "tenant", tenant, "deliveries", ids, "err", err)
		}
	}()
	d.markReady(l)
	return true
}
