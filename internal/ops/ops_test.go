package ops

import (
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newTestPublisher(c *clock) *Publisher {
	return New(Config{Tenant: "ops", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: c.Now,
		SourceRejections: 3, SourceWindow: time.Minute, Queue: 16})
}

// queued takes what is queued.
func queued(p *Publisher) []map[string]any {
	var out []map[string]any
	for {
		select {
		case ev := <-p.queue:
			var m map[string]any
			_ = json.Unmarshal(ev.Payload, &m)
			out = append(out, m)
		default:
			return out
		}
	}
}

// Rejections spread wider than the window never add up; three within it are reported once,
// until a verified request ends the streak.
func TestSourceRejected_ThresholdWindowAndStreak(t *testing.T) {
	t.Parallel()
	c := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	p := newTestPublisher(c)
	for range 5 {
		p.SourceRejected("acme", "src_1", "bad_signature")
		c.add(31 * time.Second) // the third of each run falls outside the first's window
	}
	if got := queued(p); len(got) != 0 {
		t.Fatalf("rejections 31 s apart were reported: %v", got)
	}
	c.add(time.Hour)
	for range 6 {
		p.SourceRejected("acme", "src_1", "bad_signature")
	}
	got := queued(p)
	if len(got) != 1 || got[0]["type"] != SourceVerificationFailing {
		t.Fatalf("reported %v, want one %s", got, SourceVerificationFailing)
	}
	data := got[0]["data"].(map[string]any)
	if data["tenant"] != "acme" || data["source"] != "src_1" || data["rejections"] != 3.0 || data["window_seconds"] != 60.0 {
		t.Errorf("data %v", data)
	}
	p.SourceVerified("src_1")
	for range 3 {
		p.SourceRejected("acme", "src_1", "bad_signature")
	}
	if got := queued(p); len(got) != 1 {
		t.Errorf("after a verified request, the next streak reported %d events, want 1", len(got))
	}
}

// Events about the ops tenant's own deliveries and failing endpoints are not published, so an
// ops endpoint that fails cannot feed itself; its being disabled is (once per disable).
func TestPublisher_OpsTenantDoesNotFeedItself(t *testing.T) {
	t.Parallel()
	p := newTestPublisher(&clock{now: time.Now()})
	p.DeliveryDeadLettered(DeadLetterData{Tenant: "ops", Endpoint: "ep_ops", Delivery: "dlv_1", Attempts: 1})
	p.EndpointFailing(FailingData{Tenant: "ops", Endpoint: "ep_ops", ThresholdPercent: 50})
	if got := queued(p); len(got) != 0 {
		t.Fatalf("events about the ops tenant's deliveries published: %v", got)
	}
	p.EndpointDisabled(DisabledData{Tenant: "ops", Endpoint: "ep_ops"})
	p.DeliveryDeadLettered(DeadLetterData{Tenant: "acme", Endpoint: "ep_1", Delivery: "dlv_2", Attempts: 4})
	got := queued(p)
	if len(got) != 2 || got[0]["type"] != EndpointDisabled || got[1]["type"] != DeliveryDeadLettered || got[1]["id"] != "ops_dead_2_4" {
		t.Errorf("published %v", got)
	}
}

// A full queue drops events instead of blocking the engine; a nil Publisher does nothing.
func TestPublisher_FullQueueDropsAndNilIsOff(t *testing.T) {
	t.Parallel()
	p := newTestPublisher(&clock{now: time.Now()})
	for range 20 {
		p.EndpointDisabled(DisabledData{Tenant: "acme", Endpoint: "ep_1"})
	}
	if n := len(queued(p)); n != 16 {
		t.Errorf("%d queued, want the queue's 16", n)
	}
	var off *Publisher
	off.EndpointDisabled(DisabledData{})
	off.SourceRejected("a", "b", "c")
	off.SourceVerified("b")
	if New(Config{}) != nil || off.Tenant() != "" {
		t.Error("no tenant should mean no publisher")
	}
}
