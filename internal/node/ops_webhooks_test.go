package node_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/inbound/verify"
	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/internal/ops"
)

// opsEvent is an operational event as the ops tenant's endpoint receives it.
type opsEvent struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Source    string          `json:"source"`
	Data      json.RawMessage `json:"data"`
	Resource  struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	} `json:"resource"`
}

// opsEvents decodes what the ops endpoint got, of the given type ("" for all).
func (rc *receiver) opsEvents(t *testing.T, typ string) []opsEvent {
	t.Helper()
	var out []opsEvent
	for _, r := range rc.got() {
		var ev opsEvent
		if err := json.Unmarshal(r.body, &ev); err != nil {
			t.Fatalf("ops endpoint got %q: %v", r.body, err)
		}
		if typ == "" || ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

func decodeData[T any](t *testing.T, ev opsEvent) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(ev.Data, &v); err != nil {
		t.Fatalf("%s data %s: %v", ev.Type, ev.Data, err)
	}
	return v
}

// startOps runs a node with operational events going to the tenant "ops", whose one endpoint
// (a real receiver answering opsAnswer) subscribes to every operational type.
func startOps(t *testing.T, opsAnswer func(n int, r *http.Request) int, mod func(*node.Config)) (*harness, *receiver) {
	t.Helper()
	h := start(t, func(c *node.Config) {
		c.Ops.Tenant = "ops"
		if mod != nil {
			mod(c)
		}
	})
	h.setup("ops")
	opsRC := newReceiver(t, opsAnswer)
	h.endpoint("ops", map[string]any{"url": opsRC.URL, "retry_schedule": []int{0},
		"event_types": []string{"endpoint.*", "delivery.*", "source.*"}})
	return h, opsRC
}

// The operational event types are in the catalog from the start, when an ops tenant is set.
func TestOps_TypesRegisteredAtStart(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *node.Config) { c.Ops.Tenant = "ops" })
	for _, et := range ops.EventTypes() {
		h.must(200, "GET", "/v1/event-types/"+et.Name, nil, nil)
	}
	off := start(t, nil)
	if s := off.call("GET", "/v1/event-types/"+ops.EndpointDisabled, nil, nil); s != 404 {
		t.Errorf("without --ops-tenant, %s is registered (%d)", ops.EndpointDisabled, s)
	}
}

// An endpoint that answers 410 Gone is disabled, and the ops endpoint hears of it (and of the
// delivery that was dead-lettered with it).
func TestOps_GoneEndpointDisabledEventArrives(t *testing.T) {
	t.Parallel()
	opsGoneEndpoint(t, nil)
}

func TestOps_GoneEndpointDisabledEventArrivesOnPostgres(t *testing.T) {
	t.Parallel()
	opsGoneEndpoint(t, onPostgres(t))
}

func opsGoneEndpoint(t *testing.T, mod func(*node.Config)) {
	h, opsRC := startOps(t, nil, mod)
	h.setup("acme", "invoice.paid")
	gone := newReceiver(t, func(int, *http.Request) int { return http.StatusGone })
	ep := h.endpoint("acme", map[string]any{"url": gone.URL, "event_types": []string{"*"}})
	p := h.publish("acme", map[string]any{"type": "invoice.paid", "data": map[string]any{"n": 1}})

	eventually(t, 15*time.Second, "endpoint.disabled at the ops endpoint", func() bool {
		return len(opsRC.opsEvents(t, ops.EndpointDisabled)) > 0 && len(opsRC.opsEvents(t, ops.DeliveryDeadLettered)) > 0
	})
	ev := opsRC.opsEvents(t, ops.EndpointDisabled)[0]
	d := decodeData[ops.DisabledData](t, ev)
	if d.Tenant != "acme" || d.Endpoint != ep.ID || !d.Gone || d.Reason != "the endpoint answered 410 Gone" {
		t.Errorf("endpoint.disabled data = %+v", d)
	}
	if ev.Source != ops.EventSource || ev.Resource.ID != ep.ID || ev.Resource.Type != "endpoint" {
		t.Errorf("envelope: source %q, resource %+v", ev.Source, ev.Resource)
	}
	dl := decodeData[ops.DeadLetterData](t, opsRC.opsEvents(t, ops.DeliveryDeadLettered)[0])
	if dl.Tenant != "acme" || dl.Endpoint != ep.ID || dl.EventID != p.ID || dl.EventType != "invoice.paid" ||
		dl.LastStatus != 410 || dl.Attempts != 1 {
		t.Errorf("delivery.dead_lettered data = %+v", dl)
	}
	// The ops event is a webhook like any other: signed, with the envelope's id as webhook-id.
	got := opsRC.got()[0]
	if got.header.Get("webhook-id") == "" || got.header.Get("webhook-signature") == "" {
		t.Errorf("ops delivery headers: %v", got.header)
	}
}

// A delivery that runs out of attempts is dead-lettered, and the ops endpoint hears of it with
// the delivery's tenant, endpoint, event, attempt count and last status.
func TestOps_DeadLetterEventArrives(t *testing.T) {
	t.Parallel()
	h, opsRC := startOps(t, nil, nil)
	h.setup("acme", "invoice.paid")
	failing := newReceiver(t, func(int, *http.Request) int { return http.StatusServiceUnavailable })
	ep := h.endpoint("acme", map[string]any{"url": failing.URL, "event_types": []string{"*"}, "retry_schedule": []int{0, 0}})
	p := h.publish("acme", map[string]any{"type": "invoice.paid", "data": map[string]any{}})

	eventually(t, 15*time.Second, "delivery.dead_lettered", func() bool {
		return len(opsRC.opsEvents(t, ops.DeliveryDeadLettered)) > 0
	})
	evs := opsRC.opsEvents(t, ops.DeliveryDeadLettered)
	d := decodeData[ops.DeadLetterData](t, evs[0])
	if d.Tenant != "acme" || d.Endpoint != ep.ID || d.EventID != p.ID || d.Attempts != 2 || d.LastStatus != 503 ||
		d.Reason != "no attempt left in the retry schedule" || evs[0].Resource.ID != d.Delivery {
		t.Errorf("delivery.dead_lettered = %+v (resource %+v)", d, evs[0].Resource)
	}
	dels := h.deliveries("/v1/tenants/acme/events/" + p.ID + "/deliveries")
	if len(dels) != 1 || dels[0].ID != d.Delivery || dels[0].State != "dead" {
		t.Errorf("the event's deliveries: %+v; the ops event names %s", dels, d.Delivery)
	}
	stays(t, 500*time.Millisecond, "one dead letter event", func() bool {
		return len(opsRC.opsEvents(t, ops.DeliveryDeadLettered)) == 1
	})
}

// An endpoint failing without a success is reported at 50, 90 and 100 % of --disable-after,
// each once, then disabled (its deliveries stay pending: no 410).
func TestOps_FailingStreakThresholds(t *testing.T) {
	t.Parallel()
	const disableAfter = 1200 * time.Millisecond
	h, opsRC := startOps(t, nil, func(c *node.Config) { c.Dispatch.DisableAfter = disableAfter })
	h.setup("acme", "invoice.paid")
	// 400 is permanent: it does not open the circuit breaker, so attempts keep coming as fast
	// as events are published.
	failing := newReceiver(t, func(int, *http.Request) int { return http.StatusBadRequest })
	ep := h.endpoint("acme", map[string]any{"url": failing.URL, "event_types": []string{"*"}, "retry_schedule": []int{0}})

	deadline := time.Now().Add(10 * time.Second)
	for len(opsRC.opsEvents(t, ops.EndpointDisabled)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no endpoint.disabled; ops events: %d", len(opsRC.opsEvents(t, "")))
		}
		h.publish("acme", map[string]any{"type": "invoice.paid", "data": map[string]any{}})
		time.Sleep(40 * time.Millisecond)
	}
	stays(t, 300*time.Millisecond, "no more operational events", func() bool { return true })
	// How soon after its threshold each report comes depends on when the next attempt fails,
	// which the scheduler decides; what Herald guarantees is one streak, reported in order. The
	// reports are events delivered concurrently, so they arrive in any order: their order is
	// their timestamps'.
	var thresholds []int
	var first ops.FailingData
	reports := opsRC.opsEvents(t, ops.EndpointFailing)
	slices.SortStableFunc(reports, func(a, b opsEvent) int { return a.Timestamp.Compare(b.Timestamp) })
	for i, ev := range reports {
		d := decodeData[ops.FailingData](t, ev)
		if d.Tenant != "acme" || d.Endpoint != ep.ID || d.DisableAfterSeconds != int64(disableAfter/time.Second) ||
			d.FailedAttempts < 1 || d.LastStatus != 400 || d.FailingSince.IsZero() {
			t.Errorf("endpoint.failing data = %+v", d)
		}
		if i == 0 {
			first = d
		} else if !d.FailingSince.Equal(first.FailingSince) || d.FailingForSeconds < first.FailingForSeconds || d.FailedAttempts < first.FailedAttempts {
			t.Errorf("threshold %d %%: %+v; want the streak of the first report (%+v), no shorter", d.ThresholdPercent, d, first)
		}
		thresholds = append(thresholds, d.ThresholdPercent)
	}
	if !slices.Equal(thresholds, []int{50, 90, 100}) {
		t.Errorf("endpoint.failing thresholds %v, want each of 50, 90, 100 once, in order", thresholds)
	}
	dis := opsRC.opsEvents(t, ops.EndpointDisabled)
	if d := decodeData[ops.DisabledData](t, dis[0]); len(dis) != 1 || d.Gone || d.Endpoint != ep.ID || d.FailingSince == nil || d.DeadLettered != 0 {
		t.Errorf("endpoint.disabled: %d events, first %+v", len(dis), d)
	}
	var out endpointOut
	h.must(200, "GET", "/v1/tenants/acme/endpoints/"+ep.ID, nil, &out)
	if out.Enabled {
		t.Errorf("the endpoint is still enabled")
	}

	// Enabled again, it starts a new streak: its next failure neither disables it at once nor
	// repeats a threshold of the old streak.
	h.must(200, "PATCH", "/v1/tenants/acme/endpoints/"+ep.ID, map[string]any{"enabled": true}, nil)
	before := failing.count()
	h.publish("acme", map[string]any{"type": "invoice.paid", "data": map[string]any{}})
	eventually(t, 10*time.Second, "an attempt after re-enabling", func() bool { return failing.count() > before })
	stays(t, 300*time.Millisecond, "no new operational event about the endpoint", func() bool {
		return len(opsRC.opsEvents(t, ops.EndpointDisabled)) == 1 && len(opsRC.opsEvents(t, ops.EndpointFailing)) == 3
	})
	h.must(200, "GET", "/v1/tenants/acme/endpoints/"+ep.ID, nil, &out)
	if !out.Enabled {
		t.Errorf("re-enabled endpoint disabled again by its old streak: %s", out.Disabled)
	}
}

// A source whose requests keep failing verification is reported once, when it has had the
// configured number of rejections with no verified request between; a verified request ends
// the streak, and the next streak is reported again.
func TestOps_SourceVerificationFailing(t *testing.T) {
	t.Parallel()
	h, opsRC := startOps(t, nil, func(c *node.Config) {
		c.Ops.SourceRejections = 3
		c.Ops.SourceWindow = time.Minute
	})
	h.setup("acme")
	src := h.newSource("acme", verify.Config{Scheme: verify.SchemeBearer, Secrets: []string{"right-token"}}, nil)
	bad := http.Header{"Authorization": {"Bearer wrong-token"}, "Content-Type": {"application/json"}}
	good := http.Header{"Authorization": {"Bearer right-token"}, "Content-Type": {"application/json"}}
	reported := func() int { return len(opsRC.opsEvents(t, ops.SourceVerificationFailing)) }

	h.mustIngest(401, "/in/"+src.Token, bad, []byte(`{}`))
	h.mustIngest(200, "/in/"+src.Token, good, []byte(`{}`)) // ends the streak of one
	h.mustIngest(401, "/in/"+src.Token, bad, []byte(`{}`))
	h.mustIngest(401, "/in/"+src.Token, bad, []byte(`{}`))
	stays(t, 300*time.Millisecond, "nothing reported under the threshold", func() bool { return reported() == 0 })
	h.mustIngest(401, "/in/"+src.Token, bad, []byte(`{}`))
	eventually(t, 10*time.Second, "source.verification_failing", func() bool { return reported() == 1 })
	d := decodeData[ops.VerificationData](t, opsRC.opsEvents(t, ops.SourceVerificationFailing)[0])
	if d.Tenant != "acme" || d.Source != src.ID || d.Rejections != 3 || d.WindowSeconds != 60 || d.LastReason == "" {
		t.Errorf("source.verification_failing data = %+v", d)
	}
	for range 5 {
		h.mustIngest(401, "/in/"+src.Token, bad, []byte(`{}`))
	}
	stays(t, 300*time.Millisecond, "one event per streak", func() bool { return reported() == 1 })
	h.mustIngest(200, "/in/"+src.Token, good, []byte(`{}`))
	for range 3 {
		h.mustIngest(401, "/in/"+src.Token, bad, []byte(`{}`))
	}
	eventually(t, 10*time.Second, "the next streak's event", func() bool { return reported() == 2 })
}

// An ops endpoint that fails does not feed itself: the dead letters of the ops tenant's own
// deliveries are not reported, so one failure outside makes exactly one operational event.
func TestOps_FailingOpsEndpointDoesNotLoop(t *testing.T) {
	t.Parallel()
	h, opsRC := startOps(t, func(int, *http.Request) int { return http.StatusInternalServerError }, nil)
	h.setup("acme", "invoice.paid")
	failing := newReceiver(t, func(int, *http.Request) int { return http.StatusInternalServerError })
	h.endpoint("acme", map[string]any{"url": failing.URL, "event_types": []string{"*"}, "retry_schedule": []int{0}})
	h.publish("acme", map[string]any{"type": "invoice.paid", "data": map[string]any{}})

	eventually(t, 15*time.Second, "the ops endpoint's (failed) delivery", func() bool { return opsRC.count() == 1 })
	eventually(t, 15*time.Second, "the ops delivery dead-lettered", func() bool {
		var page struct {
			Data []deliveryOut `json:"data"`
		}
		h.must(200, "GET", "/v1/tenants/ops/deliveries", nil, &page)
		return len(page.Data) == 1 && page.Data[0].State == "dead"
	})
	stays(t, time.Second, "no event about the ops tenant's own dead letter", func() bool {
		var page struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		h.must(200, "GET", "/v1/tenants/ops/events", nil, &page)
		return len(page.Data) == 1 && opsRC.count() == 1
	})
}
