package dispatch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/destination/desttest"
	webhookdest "github.com/heraldhq/herald/internal/destination/webhook"
	"github.com/heraldhq/herald/internal/dispatch"
	"github.com/heraldhq/herald/internal/httpsend"
	"github.com/heraldhq/herald/internal/store"
)

const destSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// runWithType runs a dispatcher whose registry has webhook and the memory type, on a store with
// the endpoint, and returns a publish function.
func runWithType(t *testing.T, typ *desttest.Type, ep *store.Endpoint) (publish func(id, traceparent string)) {
	t.Helper()
	ctx := context.Background()
	st := openStore(t)
	if err := st.CreateEndpoint(ctx, ep); err != nil {
		t.Fatal(err)
	}
	client := httpsend.New(httpsend.Config{AllowHTTP: true, AllowLoopback: true})
	reg, err := destination.NewRegistry(webhookdest.New(client, nil), typ)
	if err != nil {
		t.Fatal(err)
	}
	d := dispatch.New(st, client, dispatch.Config{
		Destinations: reg, Rescan: 100 * time.Millisecond, ReleaseClaimsAtStart: true,
		Policy: dispatch.Policy{PermanentAttempts: 3},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- d.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("dispatcher: %v", err)
		}
	})
	return func(id, traceparent string) {
		t.Helper()
		now := time.Now().UTC()
		res, err := st.Publish(ctx, "acme", []*store.Event{{ID: id, Type: "order.created", Timestamp: now, CreatedAt: now, Traceparent: traceparent,
			Payload: []byte(`{"id":"` + id + `","type":"order.created","data":{"n":1}}`)}})
		if err != nil {
			t.Fatal(err)
		}
		d.Notify(res[0].EndpointIDs...)
		waitFor(t, func() (bool, string) {
			ds, _, err := st.ListDeliveries(ctx, store.DeliveryFilter{TenantID: "acme", EventID: id})
			if err != nil {
				t.Fatal(err)
			}
			if len(ds) != 1 {
				return false, fmt.Sprintf("%d deliveries", len(ds))
			}
			return ds[0].State == store.StateSucceeded || ds[0].State == store.StateDead, string(ds[0].State)
		})
	}
}

func waitFor(t *testing.T, done func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, state := done()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func memoryEndpoint(now time.Time) *store.Endpoint {
	return &store.Endpoint{
		ID: "ep_mem", TenantID: "acme", EventTypes: []string{"*"}, Secrets: []store.Secret{{Key: destSecret}},
		Type: desttest.Name, Settings: json.RawMessage(`{"queue":"orders","priority":5,"password":"pw"}`), SecretFields: []string{"password"},
		Headers: map[string]string{"X-Team": "billing"},
		Timeout: 5 * time.Second, MaxConcurrency: 2, Enabled: true,
		RetrySchedule: []time.Duration{0, 0, 0, 0, 0, 0}, CreatedAt: now, UpdatedAt: now,
	}
}

// verify checks a message's Standard Webhooks headers with the official library.
func verify(t *testing.T, m *destination.Message) {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(destSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(m.Body, m.Header); err != nil {
		t.Fatalf("message %s does not verify: %v (headers %v)", m.ID, err, m.Header)
	}
	if got := m.Header.Get("webhook-id"); got != m.ID {
		t.Errorf("webhook-id = %q, want the message id %q", got, m.ID)
	}
	if got := m.Header.Get("webhook-timestamp"); got != fmt.Sprint(m.Timestamp.Unix()) {
		t.Errorf("webhook-timestamp = %q, want %d", got, m.Timestamp.Unix())
	}
}

// An endpoint of a type other than webhook gets its attempts through its type's Sender: the
// envelope as published, signed with Standard Webhooks headers a consumer verifies with the
// official library, with the event's type and trace context; a Retryable outcome is retried
// on the endpoint's schedule, a Permanent one dead-letters after the permanent-failure limit.
func TestDispatch_DestinationTypeGetsAttemptsThroughItsSender(t *testing.T) {
	t.Parallel()
	typ := desttest.New()
	typ.Outcome = func(m *destination.Message, n int) destination.Outcome {
		switch {
		case m.ID == "evt_retry" && n < 3:
			return destination.Outcome{Class: destination.Retryable, ErrorKind: destination.KindBrokerBusy, Error: "broker busy"}
		case m.ID == "evt_perm":
			return destination.Outcome{Class: destination.Permanent, ErrorKind: destination.KindNoRoute, Error: `no queue "orders"`}
		}
		return destination.Outcome{Class: destination.Success, Response: []byte("seq 1")}
	}
	now := time.Now().UTC()
	publish := runWithType(t, typ, memoryEndpoint(now))
	const trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	publish("evt_ok", trace)
	publish("evt_retry", "")
	publish("evt_perm", "")

	count := map[string]int{}
	for _, d := range typ.Delivered() {
		m := d.Message
		count[m.ID]++
		verify(t, m)
		if d.Batch {
			t.Errorf("message %s came through SendBatch on an endpoint that does not batch", m.ID)
		}
		want := `{"id":"` + m.ID + `","type":"order.created","data":{"n":1}}`
		if string(m.Body) != want {
			t.Errorf("body = %s, want the envelope %s", m.Body, want)
		}
		if m.EventType != "order.created" {
			t.Errorf("event type = %q", m.EventType)
		}
		if m.Header.Get("X-Team") != "billing" {
			t.Errorf("the endpoint's own header is missing: %v", m.Header)
		}
		if d.Target.EndpointID != "ep_mem" || d.Target.TenantID != "acme" || d.Target.URL != "" ||
			!bytes.Contains(d.Target.Settings, []byte(`"password":"pw"`)) || !bytes.Contains(d.Target.Settings, []byte(`"queue":"orders"`)) {
			t.Errorf("sender opened for %+v, want the endpoint with its unsealed settings", d.Target)
		}
		if m.ID == "evt_ok" && !strings.Contains(m.Header.Get("traceparent"), "4bf92f3577b34da6a3ce929d0e0e4736") {
			t.Errorf("traceparent = %q, want the publish's trace", m.Header.Get("traceparent"))
		}
	}
	if count["evt_ok"] != 1 || count["evt_retry"] != 3 || count["evt_perm"] != 3 {
		t.Fatalf("attempts by event = %v, want evt_ok 1, evt_retry 3 (two retryable failures), evt_perm 3 (the permanent-failure limit)", count)
	}
	if n := len(typ.Opened()); n != 1 {
		t.Errorf("the sender was opened %d times for an endpoint that did not change, want 1", n)
	}
}

// The attempts' records and the deliveries' end states follow the outcomes.
func TestDispatch_DestinationTypeOutcomesAreRecorded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	typ := desttest.New()
	typ.Outcome = func(m *destination.Message, n int) destination.Outcome {
		if m.ID == "evt_perm" {
			return destination.Outcome{Class: destination.Permanent, ErrorKind: destination.KindTooLarge, Error: "message too large for the queue"}
		}
		return destination.Outcome{Class: destination.Success, Response: []byte("seq 7")}
	}
	now := time.Now().UTC()
	st := openStore(t)
	ep := memoryEndpoint(now)
	if err := st.CreateEndpoint(ctx, ep); err != nil {
		t.Fatal(err)
	}
	client := httpsend.New(httpsend.Config{AllowHTTP: true, AllowLoopback: true})
	reg, err := destination.NewRegistry(webhookdest.New(client, nil), typ)
	if err != nil {
		t.Fatal(err)
	}
	d := dispatch.New(st, client, dispatch.Config{Destinations: reg, Rescan: 100 * time.Millisecond, ReleaseClaimsAtStart: true,
		Policy: dispatch.Policy{PermanentAttempts: 2}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- d.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("dispatcher: %v", err)
		}
	}()
	for _, id := range []string{"evt_a", "evt_perm"} {
		res, err := st.Publish(ctx, "acme", []*store.Event{{ID: id, Type: "order.created", Timestamp: now, CreatedAt: now,
			Payload: []byte(`{"id":"` + id + `"}`)}})
		if err != nil {
			t.Fatal(err)
		}
		d.Notify(res[0].EndpointIDs...)
	}
	var ds []store.Delivery
	waitFor(t, func() (bool, string) {
		ds, _, err = st.ListDeliveries(ctx, store.DeliveryFilter{TenantID: "acme"})
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range ds {
			if x.State != store.StateSucceeded && x.State != store.StateDead {
				return false, x.EventID + " " + string(x.State)
			}
		}
		return len(ds) == 2, fmt.Sprint(len(ds), " deliveries")
	})
	for _, x := range ds {
		want := map[string]store.DeliveryState{"evt_a": store.StateSucceeded, "evt_perm": store.StateDead}[x.EventID]
		if x.State != want {
			t.Errorf("%s: %s, want %s", x.EventID, x.State, want)
		}
	}
	atts, _, err := st.ListAttempts(ctx, store.AttemptFilter{TenantID: "acme", EventID: "evt_perm"})
	if err != nil {
		t.Fatal(err)
	}
	if len(atts) != 2 {
		t.Fatalf("evt_perm has %d attempts, want 2", len(atts))
	}
	for _, a := range atts {
		if a.Success || a.ErrorKind != destination.KindTooLarge || a.Error != "message too large for the queue" {
			t.Errorf("attempt %+v, want the sender's permanent failure", a)
		}
	}
	atts, _, err = st.ListAttempts(ctx, store.AttemptFilter{TenantID: "acme", EventID: "evt_a"})
	if err != nil {
		t.Fatal(err)
	}
	if len(atts) != 1 || !atts[0].Success || atts[0].Response != "seq 7" {
		t.Errorf("evt_a attempts %+v, want one success with the acknowledgement", atts)
	}
}

// A batching endpoint whose sender has a batch form gets the batch's deliveries as messages of
// their own, each signed with its event's id, through SendBatch.
func TestDispatch_BatchSenderGetsMembersAsMessages(t *testing.T) {
	t.Parallel()
	typ := desttest.New()
	typ.Batching = true
	now := time.Now().UTC()
	ep := memoryEndpoint(now)
	ep.Options.Batch = &store.Batching{MaxEvents: 3, MaxWait: 200 * time.Millisecond}
	publish := runWithType(t, typ, ep)
	for i := range 3 {
		publish(fmt.Sprintf("evt_%d", i), "")
	}
	seen := map[string]bool{}
	for _, d := range typ.Delivered() {
		if !d.Batch {
			t.Errorf("message %s came through Send, want SendBatch", d.Message.ID)
		}
		if strings.HasPrefix(d.Message.ID, "batch_") || bytes.HasPrefix(d.Message.Body, []byte("[")) {
			t.Errorf("message %s is a batch array, want a member's own message", d.Message.ID)
		}
		verify(t, d.Message)
		seen[d.Message.ID] = true
	}
	if len(seen) != 3 {
		t.Fatalf("delivered %v, want the 3 events", seen)
	}
}

// A broker endpoint (its sender has a batch form) that does not batch gets its queued deliveries
// in groups through SendBatch, each still its own signed message and its own delivery with its
// own attempt; a message the broker refuses for good is dead-lettered alone, its neighbours in
// the group are delivered.
func TestDispatch_BrokerEndpointGroupsQueuedDeliveries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	typ := desttest.New()
	typ.Batching = true
	typ.Outcome = func(m *destination.Message, n int) destination.Outcome {
		if m.ID == "evt_bad" {
			return destination.Outcome{Class: destination.Permanent, ErrorKind: destination.KindTooLarge, Error: "message too large"}
		}
		return destination.Outcome{Class: destination.Success}
	}
	now := time.Now().UTC()
	ep := memoryEndpoint(now)
	ep.MaxConcurrency = 1
	st := openStore(t)
	if err := st.CreateEndpoint(ctx, ep); err != nil {
		t.Fatal(err)
	}
	// The backlog is in the store before the dispatcher starts, so that its lane finds it queued.
	const n = 40
	var evs []*store.Event
	for i := range n {
		id := fmt.Sprintf("evt_%02d", i)
		if i == n/2 {
			id = "evt_bad"
		}
		evs = append(evs, &store.Event{ID: id, Type: "order.created", Timestamp: now, CreatedAt: now,
			Payload: []byte(`{"id":"` + id + `","type":"order.created","data":{"n":1}}`)})
	}
	if _, err := st.Publish(ctx, "acme", evs); err != nil {
		t.Fatal(err)
	}
	client := httpsend.New(httpsend.Config{AllowHTTP: true, AllowLoopback: true})
	reg, err := destination.NewRegistry(webhookdest.New(client, nil), typ)
	if err != nil {
		t.Fatal(err)
	}
	d := dispatch.New(st, client, dispatch.Config{
		Destinations: reg, Rescan: 100 * time.Millisecond, ReleaseClaimsAtStart: true,
		Policy: dispatch.Policy{PermanentAttempts: 2},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- d.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("dispatcher: %v", err)
		}
	})
	var ds []store.Delivery
	waitFor(t, func() (bool, string) {
		ds, _, err = st.ListDeliveries(ctx, store.DeliveryFilter{TenantID: "acme", Page: store.Page{Limit: 100}})
		if err != nil {
			t.Fatal(err)
		}
		settled := 0
		for _, dl := range ds {
			if dl.State == store.StateSucceeded || dl.State == store.StateDead {
				settled++
			}
		}
		return settled == n, fmt.Sprintf("%d of %d settled", settled, n)
	})
	for _, dl := range ds {
		want := store.StateSucceeded
		if dl.EventID == "evt_bad" {
			want = store.StateDead
		}
		if dl.State != want {
			t.Errorf("delivery of %s is %s, want %s", dl.EventID, dl.State, want)
		}
	}
	// The group with the bad message was refused as a whole, then its members went one by
	// one: the others succeeded with two attempts at most, the bad one died after two.
	for _, dl := range ds {
		as, _, err := st.ListAttempts(ctx, store.AttemptFilter{TenantID: "acme", DeliveryID: dl.ID, Page: store.Page{Limit: 10}})
		if err != nil {
			t.Fatal(err)
		}
		if len(as) == 0 || (dl.EventID != "evt_bad" && !as[len(as)-1].Success && !as[0].Success) {
			t.Errorf("delivery of %s: attempts %+v", dl.EventID, as)
		}
	}
	grouped, seen := 0, map[string]int{}
	for _, dm := range typ.Delivered() {
		verify(t, dm.Message)
		if strings.HasPrefix(dm.Message.ID, "batch_") {
			t.Errorf("message %s is a batch, want the event's own message", dm.Message.ID)
		}
		if dm.Batch {
			grouped++
		}
		seen[dm.Message.ID]++
	}
	if grouped < 2 {
		t.Errorf("%d messages came through SendBatch, want the queued deliveries grouped", grouped)
	}
	if len(seen) != n {
		t.Errorf("%d distinct messages delivered, want %d", len(seen), n)
	}
}
