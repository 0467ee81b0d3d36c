package dispatch

import (
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/store"
)

func TestPolicy_Next(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	p := DefaultPolicy()
	cases := []struct {
		name     string
		tries    int
		out      destination.Outcome
		state    store.DeliveryState
		min, max time.Duration // bounds of the delay when pending
		schedule []time.Duration
	}{
		{name: "success", tries: 1, out: destination.Outcome{Class: destination.Success, StatusCode: 200}, state: store.StateSucceeded},
		{name: "gone dead-letters at once", tries: 1, out: destination.Outcome{Class: destination.Gone, StatusCode: 410}, state: store.StateDead},
		{name: "first retry after 5 s ±20 %", tries: 1, out: destination.Outcome{Class: destination.Retryable, StatusCode: 503}, state: store.StatePending, min: 4 * time.Second, max: 6 * time.Second},
		{name: "tenth retry after 24 h ±20 %", tries: 10, out: destination.Outcome{Class: destination.Retryable}, state: store.StatePending, min: 19 * time.Hour, max: 29 * time.Hour},
		{name: "schedule exhausted", tries: 11, out: destination.Outcome{Class: destination.Retryable}, state: store.StateDead},
		{name: "retry-after longer than schedule wins", tries: 1, out: destination.Outcome{Class: destination.Retryable, StatusCode: 429, RetryAfter: 2 * time.Minute}, state: store.StatePending, min: 2 * time.Minute, max: 2 * time.Minute},
		{name: "retry-after is capped", tries: 1, out: destination.Outcome{Class: destination.Retryable, StatusCode: 429, RetryAfter: 24 * time.Hour}, state: store.StatePending, min: 6 * time.Hour, max: 6 * time.Hour},
		{name: "retry-after shorter than schedule is ignored", tries: 2, out: destination.Outcome{Class: destination.Retryable, StatusCode: 503, RetryAfter: time.Second}, state: store.StatePending, min: 24 * time.Second, max: 36 * time.Second},
		{name: "permanent retried", tries: 2, out: destination.Outcome{Class: destination.Permanent, StatusCode: 400}, state: store.StatePending, min: 24 * time.Second, max: 36 * time.Second},
		{name: "permanent stops at 3", tries: 3, out: destination.Outcome{Class: destination.Permanent, StatusCode: 400}, state: store.StateDead},
		{name: "custom schedule", tries: 1, out: destination.Outcome{Class: destination.Retryable}, schedule: []time.Duration{0, time.Second}, state: store.StatePending, min: 800 * time.Millisecond, max: 1200 * time.Millisecond},
		{name: "custom schedule exhausted", tries: 2, out: destination.Outcome{Class: destination.Retryable}, schedule: []time.Duration{0, time.Second}, state: store.StateDead},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sched := c.schedule
			if sched == nil {
				sched = DefaultSchedule
			}
			// Jitter is random: check many draws stay within bounds.
			for range 200 {
				state, next := p.Next(sched, c.tries, c.out, now)
				if state != c.state {
					t.Fatalf("state %s, want %s", state, c.state)
				}
				if state != store.StatePending {
					if !next.IsZero() {
						t.Fatalf("next attempt %v for a %s delivery", next, state)
					}
					continue
				}
				if d := next.Sub(now); d < c.min || d > c.max {
					t.Fatalf("delay %s outside [%s, %s]", d, c.min, c.max)
				}
			}
		})
	}
}

func TestDefaultSchedule_IsAboutTwoDays(t *testing.T) {
	t.Parallel()
	var total time.Duration
	for _, d := range DefaultSchedule {
		total += d
	}
	if total < 40*time.Hour || total > 56*time.Hour || len(DefaultSchedule) != 11 || DefaultSchedule[0] != 0 {
		t.Fatalf("default schedule spans %s over %d attempts", total, len(DefaultSchedule))
	}
}
