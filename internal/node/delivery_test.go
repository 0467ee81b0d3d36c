package node_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/heraldhq/herald/internal/dispatch"
	"github.com/heraldhq/herald/internal/node"
)

func TestDelivery_SignedWebhookVerifiesWithOfficialLibrary(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	rc := newReceiver(t, nil)
	h.setup("acme", "invoice.paid")
	ep := h.endpoint("acme", map[string]any{"url": rc.URL + "/hook", "event_types": []string{"invoice.*"}, "headers": map[string]string{"X-Team": "billing"}})
	if !strings.HasPrefix(ep.Secret, "whsec_") {
		t.Fatalf("secret = %q", ep.Secret)
	}
	p := h.publish("acme", map[string]any{"type": "invoice.paid", "data": map[string]any{"amount": 1200, "currency": "EUR"}, "resource": map[string]any{"id": "inv_1", "type": "invoice"}})
	if p.Deliveries != 1 || p.ID == "" {
		t.Fatalf("publish = %+v", p)
	}
	eventually(t, 5*time.Second, "the webhook", func() bool { return rc.count() == 1 })
	got := rc.got()[0]

	wh, err := standardwebhooks.NewWebhook(ep.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(got.body, got.header); err != nil {
		t.Fatalf("official Standard Webhooks library rejects the signature: %v", err)
	}
	if got.header.Get("webhook-id") != p.ID {
		t.Errorf("webhook-id = %q, want the event id %q", got.header.Get("webhook-id"), p.ID)
	}
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content-type = %q", ct)
	}
	if ua := got.header.Get("User-Agent"); !strings.HasPrefix(ua, "Herald-Webhooks/") {
		t.Errorf("user-agent = %q", ua)
	}
	if got.header.Get("X-Team") != "billing" {
		t.Errorf("custom header missing: %v", got.header)
	}
	var env struct {
		ID        string         `json:"id"`
		Type      string         `json:"type"`
		Timestamp time.Time      `json:"timestamp"`
		Data      map[string]any `json:"data"`
		Resource  map[string]any `json:"resource"`
	}
	if err := json.Unmarshal(got.body, &env); err != nil {
		t.Fatalf("body %s: %v", got.body, err)
	}
	if env.ID != p.ID || env.Type != "invoice.paid" || env.Data["currency"] != "EUR" || env.Resource["id"] != "inv_1" || time.Since(env.Timestamp) > time.Minute {
		t.Errorf("envelope = %+v", env)
	}

	eventually(t, 5*time.Second, "the delivery to be recorded", func() bool {
		ds := h.deliveries("/v1/tenants/acme/events/" + p.ID + "/deliveries")
		return len(ds) == 1 && ds[0].State == "succeeded"
	})
	ds := h.deliveries("/v1/tenants/acme/events/" + p.ID + "/deliveries")
	a := ds[0].Attempts
	if len(a) != 1 || a[0].StatusCode != 200 || a[0].LatencyMS <= 0 || a[0].Response != "answer 200" || !a[0].Success || a[0].At == "" {
		t.Fatalf("attempts = %+v", a)
	}
	if ds[0].EndpointID != ep.ID {
		t.Fatalf("endpoint_id = %q", ds[0].EndpointID)
	}
}

func TestDelivery_RetriesUntilSuccess(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	rc := newReceiver(t, func(n int, r *http.Request) int {
		if n < 3 {
			return 503
		}
		return 204
	})
	h.setup("acme", "user.created")
	h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"*"}, "retry_schedule": []int{0, 1, 1, 1}})
	p := h.publish("acme", map[string]any{"type": "user.created", "data": map[string]any{}})
	eventually(t, 10*time.Second, "success on the third attempt", func() bool {
		ds := h.deliveries("/v1/tenants/acme/events/" + p.ID + "/deliveries")
		return len(ds) == 1 && ds[0].State == "succeeded"
	})
	ds := h.deliveries("/v1/tenants/acme/events/" + p.ID + "/deliveries")
	if ds[0].AttemptCount != 3 || len(ds[0].Attempts) != 3 {
		t.Fatalf("delivery = %+v", ds[0])
	}
	// Newest first: the success, then two 503s classified as retryable HTTP statuses.
	if ds[0].Attempts[0].StatusCode != 204 || ds[0].Attempts[1].StatusCode != 503 || ds[0].Attempts[2].ErrorKind != "http_status" {
		t.Fatalf("attempts = %+v", ds[0].Attempts)
	}
	reqs := rc.got()
	// Every retry carries the same webhook-id, so that receivers can drop duplicates.
	for _, r := range reqs {
		if r.header.Get("webhook-id") != p.ID {
			t.Fatalf("retry with webhook-id %q", r.header.Get("webhook-id"))
		}
	}
	// The schedule says 1 s between attempts, ±20 %.
	for i := 1; i < len(reqs); i++ {
		if gap := reqs[i].at.Sub(reqs[i-1].at); gap < 750*time.Millisecond {
			t.Errorf("attempt %d came %s after the previous; the schedule says about 1 s", i+1, gap)
		}
	}
}

func TestDelivery_DeadLetterThenBulkReplay(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	rc, setHealthy := newSwitchableReceiver(t, 500)
	h.setup("acme", "order.placed", "order.shipped")
	ep := h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"order.*"}, "retry_schedule": []int{0, 1}})
	var ids []string
	for i := range 3 {
		ids = append(ids, h.publish("acme", map[string]any{"type": "order.placed", "data": map[string]any{"n": i}}).ID)
	}
	h.publish("acme", map[string]any{"type": "order.shipped", "data": map[string]any{}})
	eventually(t, 10*time.Second, "four dead letters", func() bool {
		return len(h.deliveries("/v1/tenants/acme/deliveries?state=dead")) == 4
	})
	dead := h.deliveries("/v1/tenants/acme/deliveries?state=dead&endpoint_id=" + ep.ID)
	for _, d := range dead {
		if d.AttemptCount != 2 || len(d.Attempts) != 2 || d.LastError == "" || d.NextAttemptAt != nil {
			t.Fatalf("dead letter without its history: %+v", d)
		}
	}
	var stats map[string]any
	h.must(200, "GET", "/v1/tenants/acme/stats?since=1h", nil, &stats)
	if stats["dead"] != float64(4) || stats["failed_attempts"] != float64(8) || stats["events"] != float64(4) {
		t.Fatalf("stats = %v", stats)
	}

	setHealthy(true)
	before := rc.count()
	var replay struct {
		Queued int `json:"queued"`
	}
	h.must(202, "POST", "/v1/tenants/acme/replays", map[string]any{"event_types": []string{"order.placed"}}, &replay)
	if replay.Queued != 3 {
		t.Fatalf("replay queued %d, want the 3 order.placed dead letters", replay.Queued)
	}
	eventually(t, 5*time.Second, "replayed deliveries", func() bool { return rc.count() == before+3 })
	replayed := map[string]bool{}
	for _, r := range rc.got()[before:] {
		replayed[r.header.Get("webhook-id")] = true
	}
	for _, id := range ids {
		if !replayed[id] {
			t.Fatalf("replay did not carry the original webhook-id %s: %v", id, replayed)
		}
	}
	// Retry the last dead one by id.
	dead = h.deliveries("/v1/tenants/acme/deliveries?state=dead")
	if len(dead) != 1 {
		t.Fatalf("dead after replay = %d", len(dead))
	}
	h.must(202, "POST", "/v1/tenants/acme/deliveries/"+dead[0].ID+"/retry", nil, nil)
	eventually(t, 5*time.Second, "the retried delivery", func() bool {
		return len(h.deliveries("/v1/tenants/acme/deliveries?state=succeeded")) == 4
	})
}

func TestDelivery_GoneDisablesEndpointAndDeadLetters(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	release := make(chan struct{})
	rc := newReceiver(t, func(n int, r *http.Request) int {
		<-release
		return http.StatusGone
	})
	h.setup("acme", "a.happened")
	ep := h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"*"}, "max_concurrency": 1})
	for range 5 {
		h.publish("acme", map[string]any{"type": "a.happened", "data": map[string]any{}})
	}
	eventually(t, 5*time.Second, "the first request", func() bool { return rc.count() == 1 })
	close(release)
	eventually(t, 5*time.Second, "the endpoint to be disabled", func() bool {
		var e endpointOut
		h.must(200, "GET", "/v1/tenants/acme/endpoints/"+ep.ID, nil, &e)
		return !e.Enabled && strings.Contains(e.Disabled, "410")
	})
	eventually(t, 5*time.Second, "all five dead", func() bool {
		return len(h.deliveries("/v1/tenants/acme/deliveries?state=dead")) == 5
	})
	if n := rc.count(); n != 1 {
		t.Fatalf("the receiver got %d requests after answering 410; want 1", n)
	}
	for _, d := range h.deliveries("/v1/tenants/acme/deliveries?state=dead") {
		if !strings.Contains(d.LastError, "410") {
			t.Fatalf("dead letter reason = %q", d.LastError)
		}
	}
}

func TestDelivery_PermanentErrorsStopAfterThreeAttempts(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	rc := newReceiver(t, func(n int, r *http.Request) int { return 422 })
	h.setup("acme", "a.happened")
	h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"*"}, "retry_schedule": []int{0, 1, 1, 1, 1, 1}})
	p := h.publish("acme", map[string]any{"type": "a.happened", "data": map[string]any{}})
	eventually(t, 10*time.Second, "dead letter", func() bool {
		ds := h.deliveries("/v1/tenants/acme/events/" + p.ID + "/deliveries")
		return ds[0].State == "dead"
	})
	time.Sleep(1500 * time.Millisecond)
	if n := rc.count(); n != 3 {
		t.Fatalf("%d attempts on a 422, want 3", n)
	}
}

func TestDelivery_HangingEndpointDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	hang := make(chan struct{})
	var holding atomic.Int32 // the hanging endpoint's requests still open
	slow := newReceiver(t, func(n int, r *http.Request) int {
		holding.Add(1)
		defer holding.Add(-1)
		select {
		case <-hang:
		case <-r.Context().Done():
		}
		return 200
	})
	t.Cleanup(func() { close(hang) }) // before the receiver closes, which waits for its requests
	healthy := newReceiver(t, nil)
	h.setup("acme", "a.happened")
	h.endpoint("acme", map[string]any{"url": slow.URL, "event_types": []string{"*"}, "timeout_seconds": 30, "max_concurrency": 2})
	for i := range 9 {
		h.endpoint("acme", map[string]any{"url": fmt.Sprintf("%s/ep%d", healthy.URL, i), "event_types": []string{"*"}})
	}
	// 20 events: the hanging endpoint takes 2 at a time and holds each for its 30 s timeout. If
	// it held shared workers, the healthy endpoints' 180 deliveries would wait behind it; so they
	// must all arrive while its first two requests are still open, however slow this machine is
	// (how fast they arrive is herald bench's to measure: the isolation scenarios).
	start := time.Now()
	for range 20 {
		if p := h.publish("acme", map[string]any{"type": "a.happened", "data": map[string]any{}}); p.Deliveries != 10 {
			t.Fatalf("deliveries = %d", p.Deliveries)
		}
	}
	eventually(t, 2*time.Minute, "180 healthy deliveries", func() bool { return healthy.count() == 180 })
	// Read after: two requests still open and none other made means they never ended before.
	if open, seen := holding.Load(), slow.count(); open != 2 || seen != 2 {
		t.Fatalf("when the 180 healthy deliveries had arrived, the hanging endpoint had %d requests open and %d made (want 2 and 2): the healthy ones waited for its attempts to end",
			open, seen)
	}
	t.Logf("180 healthy deliveries in %s while the hanging endpoint held its 2 slots", time.Since(start))
}

func TestDelivery_CircuitBreakerStopsAttemptsWhileOpen(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *node.Config) {
		c.Dispatch.BreakerFailures = 3
		c.Dispatch.BreakerCooldown = 2 * time.Second
	})
	rc := newReceiver(t, func(n int, r *http.Request) int { return 503 })
	h.setup("acme", "a.happened")
	h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"*"}, "max_concurrency": 1, "retry_schedule": []int{0, 3600}})
	for range 10 {
		h.publish("acme", map[string]any{"type": "a.happened", "data": map[string]any{}})
	}
	// The breaker opens after the third failure: nothing reaches the receiver for the cooldown
	// after it (the breaker opens once Herald has the third answer, after it arrived), then one
	// probe, which fails, so the breaker opens again for another cooldown. Checked on arrival
	// times, not on counts after a sleep, so that a slow machine cannot see a probe too early.
	const cooldown = 2 * time.Second
	eventually(t, 5*time.Second, "three failures", func() bool { return rc.count() >= 3 })
	// Deliveries wait in the store without burning attempts: every pending delivery is either
	// one the receiver saw (one attempt each; the retry is an hour away) or untouched.
	for {
		seen := rc.count()
		untouched := 0
		ds := h.deliveries("/v1/tenants/acme/deliveries?state=pending")
		for _, d := range ds {
			if d.AttemptCount == 0 {
				untouched++
			}
		}
		if rc.count() != seen {
			continue // a probe came while the deliveries were read
		}
		if len(ds) != 10 || untouched != 10-seen {
			t.Fatalf("%d pending deliveries, %d without attempts, after %d requests; want 10 and %d", len(ds), untouched, seen, 10-seen)
		}
		break
	}
	eventually(t, 5*cooldown, "the probe and the cooldown after it", func() bool {
		got := rc.got()
		return len(got) >= 4 && time.Since(got[3].at) > cooldown
	})
	reqs := rc.got()
	for i, r := range reqs[3:] {
		if r.at.Before(reqs[2].at.Add(cooldown)) {
			t.Fatalf("request %d came %s after the third failure, within the breaker's cooldown of %s", i+4, r.at.Sub(reqs[2].at), cooldown)
		}
	}
	for i, r := range reqs[4:] {
		if r.at.Before(reqs[3].at.Add(cooldown)) {
			t.Fatalf("request %d came %s after the failed probe, within the breaker's cooldown of %s", i+5, r.at.Sub(reqs[3].at), cooldown)
		}
	}
}

func TestDelivery_RateLimitHolds(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	rc := newReceiver(t, nil)
	h.setup("acme", "a.happened")
	h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"*"}, "rate_limit": 5})
	var batch []map[string]any
	for range 11 {
		batch = append(batch, map[string]any{"type": "a.happened", "data": map[string]any{}})
	}
	h.must(202, "POST", "/v1/tenants/acme/events/batch", map[string]any{"events": batch}, nil)
	eventually(t, 10*time.Second, "all 11", func() bool { return rc.count() == 11 })
	reqs := rc.got()
	// 11 requests at 5/s with a burst of 1 need at least 2 s between the first and the last.
	if span := reqs[10].at.Sub(reqs[0].at); span < 1800*time.Millisecond {
		t.Fatalf("11 requests in %s at a limit of 5/s", span)
	}
}

func TestDelivery_SecretRotationSignsWithBoth(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	rc := newReceiver(t, nil)
	h.setup("acme", "a.happened")
	ep := h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"*"}})
	var sec struct {
		Key      string `json:"key"`
		Previous []struct {
			Key       string    `json:"key"`
			ExpiresAt time.Time `json:"expires_at"`
		} `json:"previous"`
	}
	h.must(200, "POST", "/v1/tenants/acme/endpoints/"+ep.ID+"/secret/rotate", map[string]any{}, &sec)
	if sec.Key == ep.Secret || len(sec.Previous) != 1 || sec.Previous[0].Key != ep.Secret || time.Until(sec.Previous[0].ExpiresAt) < 23*time.Hour {
		t.Fatalf("rotation = %+v", sec)
	}
	h.publish("acme", map[string]any{"type": "a.happened", "data": map[string]any{}})
	eventually(t, 5*time.Second, "the webhook", func() bool { return rc.count() == 1 })
	got := rc.got()[0]
	if n := len(strings.Fields(got.header.Get("webhook-signature"))); n != 2 {
		t.Fatalf("%d signatures during the overlap, want 2", n)
	}
	for _, key := range []string{ep.Secret, sec.Key} {
		wh, err := standardwebhooks.NewWebhook(key)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(got.body, got.header); err != nil {
			t.Fatalf("key %s… does not verify during the overlap: %v", key[:12], err)
		}
	}
	var fetched struct {
		Key string `json:"key"`
	}
	h.must(200, "GET", "/v1/tenants/acme/endpoints/"+ep.ID+"/secret", nil, &fetched)
	if fetched.Key != sec.Key {
		t.Fatal("GET secret does not return the new secret")
	}
}

func TestDelivery_RestartResumesPendingDeliveries(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	rc, setHealthy := newSwitchableReceiver(t, 503)
	h.setup("acme", "a.happened")
	h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"*"}, "retry_schedule": []int{0, 2, 2, 2}})
	// 15 events: fewer than the 20 consecutive failures that would open the breaker.
	var ids []string
	for i := range 15 {
		ids = append(ids, h.publish("acme", map[string]any{"type": "a.happened", "data": map[string]any{"i": i}}).ID)
	}
	eventually(t, 5*time.Second, "first attempts", func() bool { return rc.count() >= 15 })
	h.stop()
	setHealthy(true)
	h.boot()
	eventually(t, 10*time.Second, "every pending delivery after the restart", func() bool {
		return len(h.deliveries("/v1/tenants/acme/deliveries?state=succeeded&limit=100")) == 15
	})
	seen := map[string]bool{}
	for _, r := range rc.got() {
		if r.header.Get("webhook-id") != "" {
			seen[r.header.Get("webhook-id")] = true
		}
	}
	for _, id := range ids {
		if !seen[id] {
			t.Fatalf("event %s never arrived", id)
		}
	}
}

func TestDelivery_DisabledEndpointResumesWhenEnabled(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	rc := newReceiver(t, nil)
	h.setup("acme", "a.happened")
	ep := h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"*"}, "enabled": false})
	if p := h.publish("acme", map[string]any{"type": "a.happened", "data": map[string]any{}}); p.Deliveries != 0 {
		t.Fatalf("a disabled endpoint got %d deliveries", p.Deliveries)
	}
	h.must(200, "PATCH", "/v1/tenants/acme/endpoints/"+ep.ID, map[string]any{"enabled": true}, nil)
	p := h.publish("acme", map[string]any{"type": "a.happened", "data": map[string]any{}})
	eventually(t, 5*time.Second, "delivery after enabling", func() bool { return rc.count() == 1 })
	if rc.got()[0].header.Get("webhook-id") != p.ID {
		t.Fatal("wrong event delivered")
	}
}

func TestDelivery_DisableAfterLongFailure(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *node.Config) { c.Dispatch = dispatch.Config{DisableAfter: time.Second, Rescan: time.Second} })
	rc, setHealthy := newSwitchableReceiver(t, 500)
	h.setup("acme", "a.happened")
	ep := h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"*"}, "retry_schedule": []int{0, 1, 1, 1, 1}})
	h.publish("acme", map[string]any{"type": "a.happened", "data": map[string]any{}})
	eventually(t, 10*time.Second, "the endpoint to be disabled", func() bool {
		var e endpointOut
		h.must(200, "GET", "/v1/tenants/acme/endpoints/"+ep.ID, nil, &e)
		return !e.Enabled && strings.Contains(e.Disabled, "no successful delivery")
	})
	// Its delivery stays pending, to resume when the endpoint is enabled again.
	ds := h.deliveries("/v1/tenants/acme/deliveries")
	if len(ds) != 1 || ds[0].State != "pending" {
		t.Fatalf("deliveries = %+v", ds)
	}
	setHealthy(true)
	h.must(200, "PATCH", "/v1/tenants/acme/endpoints/"+ep.ID, map[string]any{"enabled": true}, nil)
	eventually(t, 10*time.Second, "the pending delivery to resume after re-enabling", func() bool {
		ds := h.deliveries("/v1/tenants/acme/deliveries")
		return len(ds) == 1 && ds[0].State == "succeeded"
	})
}
