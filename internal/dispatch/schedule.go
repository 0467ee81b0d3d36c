package dispatch

import (
	"math/rand/v2"
	"time"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/store"
)

// DefaultSchedule is the delay before each attempt: the first at once, then backing off over about
// two days, so that a receiver that is down for a weekend still gets every event.
var DefaultSchedule = []time.Duration{
	0, 5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, 30 * time.Minute,
	time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
}

// Policy turns an attempt's outcome into the delivery's next state.
type Policy struct {
	// Jitter spreads retries by ±Jitter (0.2 = ±20 %) so that endpoints that failed together do
	// not all come back together.
	Jitter float64
	// PermanentAttempts bounds attempts after non-retryable answers (4xx other than 408/425/429):
	// a receiver that rejects an event usually keeps rejecting it, but a deploy may fix it.
	PermanentAttempts int
	// RetryAfterCap bounds how long a receiver's Retry-After can push the next attempt.
	RetryAfterCap time.Duration
}

// DefaultPolicy is the policy used unless configured otherwise.
func DefaultPolicy() Policy {
	return Policy{Jitter: 0.2, PermanentAttempts: 3, RetryAfterCap: 6 * time.Hour}
}

// Next decides what follows an attempt. tries counts the attempts made since the delivery was last
// queued, this one included; schedule[tries] is then the delay before the next one.
func (p Policy) Next(schedule []time.Duration, tries int, out destination.Outcome, now time.Time) (store.DeliveryState, time.Time) {
	switch out.Class {
	case destination.Success:
		return store.StateSucceeded, time.Time{}
	case destination.Gone:
		return store.StateDead, time.Time{}
	case destination.Permanent:
		if tries >= p.PermanentAttempts {
			return store.StateDead, time.Time{}
		}
	}
	if tries >= len(schedule) {
		return store.StateDead, time.Time{}
	}
	delay := p.jitter(schedule[tries])
	if ra := min(out.RetryAfter, p.RetryAfterCap); ra > delay {
		delay = ra
	}
	return store.StatePending, now.Add(delay)
}

func (p Policy) jitter(d time.Duration) time.Duration {
	if d <= 0 || p.Jitter <= 0 {
		return d
	}
	f := 1 + p.Jitter*(2*rand.Float64()-1)
	return time.Duration(float64(d) * f)
}
