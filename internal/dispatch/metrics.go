package dispatch

import (
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
