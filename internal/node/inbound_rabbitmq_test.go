package node_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	stripewebhook "github.com/stripe/stripe-go/v82/webhook"

	"github.com/heraldhq/herald/internal/node"
)

func TestInbound_StripeToRabbitMQ(t *testing.T) {
	t.Parallel()
	stripeToRabbitMQ(t, nil)
}

func TestInbound_StripeToRabbitMQOnPostgres(t *testing.T) {
	t.Parallel()
	stripeToRabbitMQ(t, onPostgres(t))
}

// rabbitQueue is a queue of its own on the shared RabbitMQ, and the service consuming it with
// handleMessage (the program of docs/receiving.md).
type rabbitQueue struct {
	name string
	mu   sync.Mutex
	raw  []amqp.Delivery // every message that reached the queue
	got  []billingEvent  // the ones handleMessage verified and processed
}

func (q *rabbitQueue) counts() (raw, got int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.raw), len(q.got)
}

func (q *rabbitQueue) snapshot() ([]amqp.Delivery, []billingEvent) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.raw), slices.Clone(q.got)
}

// declareQueue declares a durable queue with a random name, deleted at the end of the test.
func declareQueue(t *testing.T, ch *amqp.Channel, prefix string) string {
	t.Helper()
	name := prefix + randomHex(6)
	if _, err := ch.QueueDeclare(name, true, false, false, false, nil); err != nil {
		t.Fatalf("declare queue %s: %v", name, err)
	}
	t.Cleanup(func() { _, _ = ch.QueueDelete(name, false, false, false) })
	return name
}

// consumeQueue runs handleMessage over queue with secret until the test ends.
func consumeQueue(t *testing.T, conn *amqp.Connection, queue, secret string) *rabbitQueue {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(queue, "", false, true, false, false, nil)
	if err != nil {
		t.Fatalf("consume %s: %v", queue, err)
	}
	q := &rabbitQueue{name: queue}
	done := make(chan struct{})
	go func() {
		defer close(done)
		seen := map[string]bool{}
		for d := range deliveries {
			q.mu.Lock()
			q.raw = append(q.raw, d)
			q.mu.Unlock()
			handleMessage(wh, seen, d, func(ev billingEvent) error {
				q.mu.Lock()
				q.got = append(q.got, ev)
				q.mu.Unlock()
				return nil
			})
		}
	}()
	t.Cleanup(func() {
		_ = ch.Close() // ends deliveries
		<-done
	})
	return q
}

// stripeEvent is what Stripe POSTs for an event, signed as Stripe signs it, at ts.
func stripeEvent(secret, id, typ string, ts time.Time) (http.Header, []byte) {
	body := []byte(`{"id":"` + id + `","object":"event","api_version":"2025-03-31.basil","created":` +
		`1764763200,"type":"` + typ + `","livemode":false,"data":{"object":{"id":"in_1QfXyz","object":"invoice",` +
		`"amount_paid":4200,"currency":"eur"}}}`)
	sp := stripewebhook.GenerateTestSignedPayload(&stripewebhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: ts})
	return http.Header{"Stripe-Signature": {sp.Header}, "Content-Type": {"application/json; charset=utf-8"}}, body
}

// stripeToRabbitMQ proves the gateway's "verify, store, acknowledge, put on the internal queue"
// as docs/receiving.md configures it, against the real RabbitMQ: a Stripe source, created
// through the API with a placeholder secret and then given Stripe's, forwards to a rabbitmq
// endpoint; a genuine Stripe request is answered 200 and
// the service reading the queue gets the event and verifies its Standard Webhooks signature with
// the endpoint's secret; a request with a bad signature is refused and puts nothing on the queue;
// Stripe's retry of an event (same evt_ id) reaches the queue once; a message the broker cannot
// route is dead-lettered and, once the queue exists, replayed to it.
func stripeToRabbitMQ(t *testing.T, mod func(*node.Config)) {
	amqpURL := os.Getenv("HERALD_TEST_AMQP_URL")
	if amqpURL == "" {
		t.Skip("HERALD_TEST_AMQP_URL not set")
	}
	u, err := url.Parse(amqpURL)
	if err != nil {
		t.Fatalf("HERALD_TEST_AMQP_URL: %v", err)
	}
	password, _ := u.User.Password()
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatalf("dial %s: %v", u.Host, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	admin, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	queue := declareQueue(t, admin, "herald-e2e-stripe-")

	// As docs/receiving.md sets it up: the SSRF guard on, the broker's network (here loopback)
	// opened to internal endpoints only, the endpoints internal (an admin's), the source the
	// tenant's (its own key).
	h := loopbackOnlyInternal(t, mod)
	const tenant = "acme"
	h.setup(tenant, "stripe.invoice.paid", "stripe.customer.subscription.deleted")
	rabbit := func(queue string) map[string]any {
		return map[string]any{"url": "amqp://" + u.Host + "/", "username": u.User.Username(), "password": password,
			"exchange": "", "routing_key": queue}
	}
	ep := h.endpoint(tenant, map[string]any{"type": "rabbitmq", "internal": true, "config": rabbit(queue),
		"event_types": []string{"stripe.invoice.paid", "stripe.customer.subscription.deleted"}})
	if ep.Secret == "" {
		t.Fatal("no signing secret in the endpoint's create answer")
	}
	stripeSecret := "whsec_" + randomHex(16)
	var src struct {
		ID        string `json:"id"`
		IngestURL string `json:"ingest_url"`
		Dedup     struct {
			By string `json:"by"`
		} `json:"dedup"`
	}
	// Created with a placeholder secret, since Stripe shows its secret only once it has the URL.
	tenantKey := h.tenantKey(tenant)
	if code := h.callAs(tenantKey, "POST", "/v1/tenants/"+tenant+"/sources", map[string]any{"name": "stripe-live",
		"verification": map[string]any{"scheme": "stripe", "secrets": []string{"whsec_placeholder"}}, "event_type_prefix": "stripe."}, &src); code != 201 {
		t.Fatalf("the tenant's key creating the source: %d %+v", code, src)
	}
	iu, err := url.Parse(src.IngestURL)
	if err != nil || !strings.HasPrefix(iu.Path, "/in/") || src.Dedup.By != "provider_id" {
		t.Fatalf("source %+v (ingest URL: %v)", src, err)
	}
	path := iu.Path
	q := consumeQueue(t, conn, queue, ep.Secret)
	early, earlyBody := stripeEvent(stripeSecret, "evt_"+randomHex(12), "invoice.paid", time.Now())
	if a := h.ingest(path, early, earlyBody); a.status != 401 || a.Reason != "bad_signature" {
		t.Fatalf("before the secret is set: %d %s, want 401 bad_signature", a.status, a.raw)
	}
	var patched json.RawMessage
	if code := h.callAs(tenantKey, "PATCH", "/v1/tenants/"+tenant+"/sources/"+src.ID, map[string]any{
		"verification": map[string]any{"scheme": "stripe", "secrets": []string{stripeSecret}}}, &patched); code != 200 {
		t.Fatalf("the tenant's key setting Stripe's secret: %d %s", code, patched)
	}

	// Stripe delivers invoice.paid: acknowledged once stored, and on the queue, verified.
	stripeID := "evt_" + randomHex(12)
	sent := time.Now()
	header, body := stripeEvent(stripeSecret, stripeID, "invoice.paid", sent)
	first := h.mustIngest(200, path, header, body)
	if first.Status != "accepted" || !strings.HasPrefix(first.EventID, "evt_") {
		t.Fatalf("Stripe's request answered %s", first.raw)
	}
	eventually(t, 30*time.Second, "the event on the queue", func() bool { _, got := q.counts(); return got == 1 })
	raw, got := q.snapshot()
	d, ev := raw[0], got[0]
	mh := http.Header{}
	for k, v := range d.Headers {
		s, ok := v.(string)
		if !ok {
			t.Fatalf("header %s is a %T, want a string", k, v)
		}
		mh.Set(k, s)
	}
	wh, err := standardwebhooks.NewWebhook(ep.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(d.Body, mh); err != nil { // the timestamp too: the message is fresh
		t.Fatalf("the message does not verify with the endpoint's secret: %v (headers %v)", err, mh)
	}
	other, _ := standardwebhooks.NewWebhook("whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if other.Verify(d.Body, mh) == nil {
		t.Fatal("the message verifies with another secret too")
	}
	if mh.Get("webhook-id") != first.EventID || d.MessageId != first.EventID || mh.Get("herald-event-type") != "stripe.invoice.paid" ||
		d.Type != "stripe.invoice.paid" || !strings.HasPrefix(mh.Get("content-type"), "application/json") {
		t.Errorf("message id %q, type %q, headers %v; want id %s, type stripe.invoice.paid, JSON", d.MessageId, d.Type, mh, first.EventID)
	}
	var data bytes.Buffer
	if err := json.Compact(&data, body); err != nil {
		t.Fatal(err)
	}
	if ev.ID != first.EventID || ev.Type != "stripe.invoice.paid" || string(ev.Data) != data.String() ||
		ev.Inbound.ProviderID != stripeID || ev.Inbound.RequestID != first.ID {
		t.Errorf("the service got %+v (data %s); want event %s of type stripe.invoice.paid from Stripe's %s, request %s, data %s",
			ev, ev.Data, first.EventID, stripeID, first.ID, body)
	}

	// Bad signatures: refused, and nothing for the queue.
	forged, forgedBody := stripeEvent("whsec_"+randomHex(16), "evt_"+randomHex(12), "invoice.paid", time.Now())
	tampered := bytes.Replace(body, []byte(`"amount_paid":4200`), []byte(`"amount_paid":1`), 1)
	for _, c := range []struct {
		name   string
		header http.Header
		body   []byte
	}{{"signed with another secret", forged, forgedBody}, {"tampered amount", header, tampered}} {
		if a := h.ingest(path, c.header, c.body); a.status != 401 || a.Reason != "bad_signature" {
			t.Errorf("%s: %d %s, want 401 bad_signature", c.name, a.status, a.raw)
		}
	}

	// Stripe retries the event (same evt_ id, a new timestamp and signature), and the same request
	// arrives again: both acknowledged as duplicates, neither forwarded.
	retryHeader, retryBody := stripeEvent(stripeSecret, stripeID, "invoice.paid", sent.Add(time.Minute))
	if retryHeader.Get("Stripe-Signature") == header.Get("Stripe-Signature") {
		t.Fatal("the retry is signed like the first delivery")
	}
	for _, r := range []struct {
		h http.Header
		b []byte
	}{{retryHeader, retryBody}, {header, body}} {
		if a := h.mustIngest(200, path, r.h, r.b); a.Status != "duplicate" || a.DuplicateOf != first.ID || a.EventID != "" {
			t.Errorf("Stripe's retry answered %s", a.raw)
		}
	}

	// Another event: the next message on the queue.
	secondID := "evt_" + randomHex(12)
	sh, sb := stripeEvent(stripeSecret, secondID, "customer.subscription.deleted", time.Now())
	second := h.mustIngest(200, path, sh, sb)
	if second.Status != "accepted" {
		t.Fatalf("second event answered %s", second.raw)
	}
	eventually(t, 30*time.Second, "the second event on the queue", func() bool { _, got := q.counts(); return got == 2 })

	// Exactly the two events reached the queue (the refused requests and the retries made no
	// delivery at all), each verified once by the service.
	ds := h.deliveries("/v1/tenants/" + tenant + "/deliveries?endpoint_id=" + ep.ID)
	if len(ds) != 2 {
		t.Fatalf("%d deliveries to the queue's endpoint, want 2: %+v", len(ds), ds)
	}
	eventually(t, 30*time.Second, "both deliveries to succeed", func() bool {
		ds := h.deliveries("/v1/tenants/" + tenant + "/deliveries?endpoint_id=" + ep.ID)
		return len(ds) == 2 && ds[0].State == "succeeded" && ds[1].State == "succeeded"
	})
	stays(t, 500*time.Millisecond, "two messages on the queue", func() bool { raw, got := q.counts(); return raw == 2 && got == 2 })
	_, got = q.snapshot()
	if got[1].ID != second.EventID || got[1].Type != "stripe.customer.subscription.deleted" || got[1].Inbound.ProviderID != secondID {
		t.Errorf("second message %+v, want %s of type stripe.customer.subscription.deleted from %s", got[1], second.EventID, secondID)
	}
	var statuses []string
	for _, r := range h.receivedOf(tenant, src.ID) {
		statuses = append(statuses, string(r.Status))
	}
	slices.Sort(statuses)
	if want := []string{"accepted", "accepted", "duplicate", "duplicate", "rejected", "rejected", "rejected"}; !slices.Equal(statuses, want) {
		t.Errorf("received requests %v, want %v", statuses, want)
	}

	// A queue that does not exist yet: RabbitMQ returns the message unroutable, a permanent
	// failure, and the delivery is dead after the endpoint's permanent-failure limit. Once the
	// queue is declared, a replay puts it there.
	missing := "herald-e2e-stripe-late-" + randomHex(6)
	t.Cleanup(func() { _, _ = admin.QueueDelete(missing, false, false, false) })
	late := h.endpoint(tenant, map[string]any{"type": "rabbitmq", "internal": true, "config": rabbit(missing),
		"event_types": []string{"stripe.invoice.paid"}, "retry_schedule": []int{0, 1, 1, 1}})
	thirdID := "evt_" + randomHex(12)
	th, tb := stripeEvent(stripeSecret, thirdID, "invoice.paid", time.Now())
	third := h.mustIngest(200, path, th, tb)
	var dead deliveryOut
	eventually(t, 60*time.Second, "the unroutable delivery to be dead", func() bool {
		ds := h.deliveries("/v1/tenants/" + tenant + "/deliveries?endpoint_id=" + late.ID)
		if len(ds) == 1 && ds[0].State == "dead" {
			dead = ds[0]
			return true
		}
		return false
	})
	var detail deliveryOut
	h.must(200, "GET", "/v1/tenants/"+tenant+"/deliveries/"+dead.ID, nil, &detail)
	if detail.EventID != third.EventID || len(detail.Attempts) == 0 || detail.Attempts[len(detail.Attempts)-1].ErrorKind != "no_route" {
		t.Fatalf("dead delivery %+v, want event %s with no_route attempts", detail, third.EventID)
	}
	eventually(t, 30*time.Second, "the third event on the first queue", func() bool { _, got := q.counts(); return got == 3 })
	if _, err := admin.QueueDeclare(missing, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	lq := consumeQueue(t, conn, missing, late.Secret)
	var replayed struct {
		Queued int `json:"queued"`
	}
	h.must(202, "POST", "/v1/tenants/"+tenant+"/replays", map[string]any{"endpoint_id": late.ID}, &replayed)
	if replayed.Queued != 1 {
		t.Fatalf("replay queued %d deliveries, want 1", replayed.Queued)
	}
	eventually(t, 30*time.Second, "the replayed event on the new queue", func() bool { _, got := lq.counts(); return got == 1 })
	raw, got = lq.snapshot()
	if got[0].ID != third.EventID || got[0].Inbound.ProviderID != thirdID {
		t.Errorf("replayed message %+v, want event %s from %s", got[0], third.EventID, thirdID)
	}

	// The service's own checks, on messages published to its queue by someone else: a copy of
	// Herald's message (a redelivery, or a replay by whoever can publish there) is acknowledged
	// as a duplicate by its webhook-id, and one with a changed body is rejected; neither is
	// processed.
	replay := raw[0]
	changed := bytes.Replace(replay.Body, []byte(`"amount_paid":4200`), []byte(`"amount_paid":1`), 1)
	if bytes.Equal(changed, replay.Body) {
		t.Fatalf("the message holds no amount_paid to change: %s", replay.Body)
	}
	for _, b := range [][]byte{replay.Body, changed} {
		if err := admin.PublishWithContext(t.Context(), "", missing, true, false, amqp.Publishing{
			Headers: replay.Headers, MessageId: replay.MessageId, Type: replay.Type, ContentType: replay.ContentType, Body: b,
		}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 30*time.Second, "the copies to reach the service", func() bool { raw, _ := lq.counts(); return raw == 3 })
	stays(t, 300*time.Millisecond, "one message processed", func() bool { _, got := lq.counts(); return got == 1 })
}

// The program in docs/receiving.md is example_stripe_rabbitmq_test.go's: the same imports, and
// main's body and everything after it the example's, byte for byte. So the page's program
// compiles and its handleMessage is the one the test above runs.
func TestDocs_StripeRabbitMQConsumer(t *testing.T) {
	t.Parallel()
	page, err := os.ReadFile("../../docs/receiving.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(page), "\n## Forward to a queue: Stripe → Herald → RabbitMQ\n")
	if !ok {
		t.Fatal("docs/receiving.md has no section \"Forward to a queue: Stripe → Herald → RabbitMQ\"")
	}
	_, prog, ok := strings.Cut(section, "\n```go\n")
	if !ok {
		t.Fatal("the section has no Go program")
	}
	prog, _, _ = strings.Cut(prog, "\n```\n")
	example, err := os.ReadFile("example_stripe_rabbitmq_test.go")
	if err != nil {
		t.Fatal(err)
	}
	imports := func(src string) string {
		_, rest, _ := strings.Cut(src, "\nimport (\n")
		block, _, _ := strings.Cut(rest, "\n)\n")
		return block
	}
	_, docBody, ok1 := strings.Cut(prog, "\nfunc main() {\n")
	_, exBody, ok2 := strings.Cut(string(example), "\nfunc Example_consumeStripeEventsFromRabbitMQ() {\n")
	if !ok1 || !ok2 || !strings.HasPrefix(prog, "// Command billing") || !strings.Contains(prog, "\npackage main\n") {
		t.Fatalf("the page's program (main: %v) or the example (%v) is not where expected", ok1, ok2)
	}
	if imports(prog) != imports(string(example)) {
		t.Errorf("imports differ:\npage:\n%s\nexample:\n%s", imports(prog), imports(string(example)))
	}
	if strings.TrimSpace(docBody) != strings.TrimSpace(exBody) {
		t.Errorf("the page's program differs from example_stripe_rabbitmq_test.go after main's opening line")
	}
}
