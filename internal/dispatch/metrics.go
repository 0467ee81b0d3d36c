package dispatch

import (
	"time"

	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/internal/store"
)

// attemptOutcome names what an attempt's resulting delivery state means for the metrics.
func attemptOutcome(state store.DeliveryState) string {
	switch state {
	case store.StateSucceeded:
		return metrics.OutcomeSuccess
	case store.StatePending:
		return metrics.OutcomeRetry
	}
	return metrics.OutcomeDead
}

// setBreakerOpen follows the lane's breaker into and out of the open state, so that the gauge of
// open breakers counts each lane once.
func (l *lane) setBreakerOpen(open bool, m *metrics.Metrics) {
	switch {
	case open && !l.breakerOpen:
		m.BreakerOpened()
	case !open && l.breakerOpen:
		m.BreakerClosed()
	}
	l.breakerOpen = open
}

// forgetBreaker takes a lane that is being dropped out of the open-breakers gauge.
func (l *lane) forgetBreaker(m *metrics.Metrics) { l.setBreakerOpen(false, m) }

// laneWaitLog is how long an endpoint may wait for its lane before the wait is logged at Info
// (a shorter one, the hand-over of a lane between nodes, at Debug): an endpoint that gets
// nothing for this long is a stall someone may be looking for.
const laneWaitLog = 5 * time.Second

// noteLaneWait follows, from a claim's answer, whether the lane's endpoint waits for its lane:
// the wait is logged once it will have lasted laneWaitLog (at once if the next look is further
// off), its end is logged if its start was, and the waits are counted for the metrics.
func (d *Dispatcher) noteLaneWait(l *lane, res store.ClaimResult, now time.Time) {
	if res.LaneWait == "" || len(res.Claimed) > 0 {
		d.endLaneWait(l, now)
		return
	}
	if l.laneWaitSince.IsZero() {
		l.laneWaitSince = now
		d.laneWaits++
		d.log.Debug("endpoint waiting for its lane", "endpoint", l.id, "tenant", l.tenant(), "reason", res.LaneWait, "next_look", res.NextDue)
	}
	if !l.laneWaitLogged && (res.NextDue.IsZero() || res.NextDue.Sub(l.laneWaitSince) >= laneWaitLog) {
		l.laneWaitLogged = true
		d.log.Info("endpoint waiting for its lane", "endpoint", l.id, "tenant", l.tenant(), "reason", res.LaneWait,
			"waiting_since", l.laneWaitSince, "next_look", res.NextDue)
	}
}

// endLaneWait ends the lane's wait for its lane, if it had one: it got work, has none due, or
// is being forgotten.
func (d *Dispatcher) endLaneWait(l *lane, now time.Time) {
	if l.laneWaitSince.IsZero() {
		return
	}
	if l.laneWaitLogged {
		d.log.Info("endpoint no longer waiting for its lane", "endpoint", l.id, "tenant", l.tenant(), "waited", now.Sub(l.laneWaitSince))
	}
	l.laneWaitSince, l.laneWaitLogged = time.Time{}, false
	d.laneWaits--
}
