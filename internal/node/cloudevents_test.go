package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/heraldhq/herald/internal/node"
)

// ceReceiver is a CloudEvents webhook receiver: the official SDK answers the abuse-protection
// handshake (its OptionsHandler, allowing origin and rate) and parses every delivery
// (NewEventsFromHTTPRequest for batches, NewEventFromHTTPRequest otherwise).
type ceReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	options  []http.Header // the handshakes' request headers
	posts    []received
	events   []cloudevents.Event
	optsSeen int // handshakes seen when the first delivery arrived
	parseErr []error
}

func newCEReceiver(t *testing.T, origins []string, rate int, optionsStatus int) *ceReceiver {
	t.Helper()
	p, err := cehttp.New(cehttp.WithDefaultOptionsHandlerFunc([]string{http.MethodPost}, rate, origins, false))
	if err != nil {
		t.Fatal(err)
	}
	rc := &ceReceiver{optsSeen: -1}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions {
			rc.mu.Lock()
			rc.options = append(rc.options, r.Header.Clone())
			rc.mu.Unlock()
			if optionsStatus != 0 {
				w.WriteHeader(optionsStatus)
				return
			}
			p.OptionsHandler(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var evs []cloudevents.Event
		var perr error
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/cloudevents-batch+json") {
			evs, perr = cehttp.NewEventsFromHTTPRequest(r)
		} else {
			var ev *cloudevents.Event
			if ev, perr = cehttp.NewEventFromHTTPRequest(r); perr == nil {
				evs = []cloudevents.Event{*ev}
			}
		}
		rc.mu.Lock()
		if rc.optsSeen < 0 {
			rc.optsSeen = len(rc.options)
		}
		rc.posts = append(rc.posts, received{header: r.Header.Clone(), body: body, at: time.Now()})
		rc.events = append(rc.events, evs...)
		if perr != nil {
			rc.parseErr = append(rc.parseErr, perr)
		}
		rc.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *ceReceiver) snapshot() (options []http.Header, posts []received, events []cloudevents.Event, optsSeen int, errs []error) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]http.Header(nil), rc.options...), append([]received(nil), rc.posts...),
		append([]cloudevents.Event(nil), rc.events...), rc.optsSeen, append([]error(nil), rc.parseErr...)
}

// Every CloudEvents delivery, structured, binary and batched, is parsed by the official
// CloudEvents SDK, keeps a Standard Webhooks signature over the body actually sent, and comes
// after the SDK's receiver agreed to the handshake, on SQLite and PostgreSQL.
func TestCloudEvents_DeliveriesParsedByTheSDKAfterTheHandshake(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			mod := b.mod(t)
			h := start(t, func(c *node.Config) {
				if mod != nil {
					mod(c)
				}
				c.WebhookOrigin = "herald.test"
			})
			h.setup("acme", "order.created")
			structured := newCEReceiver(t, []string{"herald.test"}, 600, 0)
			binary := newCEReceiver(t, []string{"*"}, 0, 0)
			batched := newCEReceiver(t, []string{"herald.test"}, 0, 0)
			types := []string{"order.created"}
			epS := h.endpoint("acme", map[string]any{"url": structured.URL, "event_types": types, "format": "cloudevents-structured"})
			epB := h.endpoint("acme", map[string]any{"url": binary.URL, "event_types": types, "format": "cloudevents-binary"})
			epBatch := h.endpoint("acme", map[string]any{"url": batched.URL, "event_types": types, "format": "cloudevents-structured",
				"batch": map[string]any{"enabled": true, "max_events": 10, "max_wait_ms": 300}})

			var shown struct {
				Format string `json:"format"`
			}
			h.must(200, "GET", "/v1/tenants/acme/endpoints/"+epB.ID, nil, &shown)
			if shown.Format != "cloudevents-binary" {
				t.Errorf("GET shows format %q, want cloudevents-binary", shown.Format)
			}
			var bad problem
			code := h.call("PATCH", "/v1/tenants/acme/endpoints/"+epB.ID, map[string]any{"batch": map[string]any{"enabled": true}}, &bad)
			if code != 422 || bad.at("body.format") == "" {
				t.Errorf("binary with batching: %d %+v, want 422 at body.format", code, bad)
			}
			code = h.call("PATCH", "/v1/tenants/acme/endpoints/"+epB.ID, map[string]any{"format": "cloudevents"}, &bad)
			if code != 422 || bad.at("body.format") == "" {
				t.Errorf("unknown format: %d %+v, want 422 at body.format", code, bad)
			}

			published := map[string]bool{}
			for i := range 2 {
				p := h.publish("acme", map[string]any{"type": "order.created", "source": "https://shop.example/orders",
					"resource": map[string]any{"id": "ord_" + string(rune('a'+i)), "type": "order"}, "data": map[string]any{"i": i, "note": "café"}})
				published[p.ID] = true
			}
			eventuallyWhy(t, 15*time.Second, "two events at each receiver", func() bool {
				_, _, s, _, _ := structured.snapshot()
				_, _, bi, _, _ := binary.snapshot()
				_, _, ba, _, _ := batched.snapshot()
				return len(s) == 2 && len(bi) == 2 && len(ba) == 2
			}, func() string {
				var b strings.Builder
				for _, rc := range []*ceReceiver{structured, binary, batched} {
					o, p, e, _, errs := rc.snapshot()
					fmt.Fprintf(&b, "[%d handshakes, %d posts, %d events, errors %v] ", len(o), len(p), len(e), errs)
				}
				var attempts json.RawMessage
				h.must(200, "GET", "/v1/tenants/acme/attempts", nil, &attempts)
				return b.String() + string(attempts)
			})

			for _, c := range []struct {
				name        string
				rc          *ceReceiver
				secret      string
				contentType string
			}{
				{"structured", structured, epS.Secret, "application/cloudevents+json"},
				{"binary", binary, epB.Secret, "application/json"},
				{"batch", batched, epBatch.Secret, "application/cloudevents-batch+json"},
			} {
				options, posts, events, optsSeen, errs := c.rc.snapshot()
				if len(errs) > 0 {
					t.Errorf("%s: the SDK could not parse a delivery: %v", c.name, errs)
				}
				if len(options) != 1 || options[0].Get("WebHook-Request-Origin") != "herald.test" {
					t.Errorf("%s: handshakes %v, want one with WebHook-Request-Origin herald.test", c.name, options)
				}
				if optsSeen != 1 {
					t.Errorf("%s: the first delivery came after %d handshakes, want 1", c.name, optsSeen)
				}
				wh, err := standardwebhooks.NewWebhook(c.secret)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range posts {
					if ct := p.header.Get("Content-Type"); ct != c.contentType {
						t.Errorf("%s: Content-Type %q, want %q", c.name, ct, c.contentType)
					}
					if err := wh.Verify(p.body, p.header); err != nil {
						t.Errorf("%s: the signature does not verify over the body sent: %v", c.name, err)
					}
				}
				for _, ev := range events {
					if err := ev.Validate(); err != nil {
						t.Errorf("%s: invalid CloudEvent %v: %v", c.name, ev, err)
					}
					if !published[ev.ID()] || ev.Type() != "order.created" || ev.Source() != "https://shop.example/orders" ||
						!strings.HasPrefix(ev.Subject(), "ord_") || ev.SpecVersion() != "1.0" || time.Since(ev.Time()) > time.Minute {
						t.Errorf("%s: event attributes %s", c.name, ev.Context)
					}
					var data struct {
						I    int    `json:"i"`
						Note string `json:"note"`
					}
					if err := json.Unmarshal(ev.Data(), &data); err != nil || data.Note != "café" || ev.DataContentType() != "application/json" {
						t.Errorf("%s: data %s (%s): %v", c.name, ev.Data(), ev.DataContentType(), err)
					}
				}
			}
			_, posts, _, _, _ := binary.snapshot()
			if h := posts[0].header; h.Get("Ce-Specversion") != "1.0" || !published[h.Get("Ce-Id")] || h.Get("Ce-Type") != "order.created" || h.Get("Webhook-Id") != h.Get("Ce-Id") {
				t.Errorf("binary headers %v", h)
			}

			// Back to Herald's envelope: the next delivery is the envelope, no handshake asked.
			h.must(200, "PATCH", "/v1/tenants/acme/endpoints/"+epS.ID, map[string]any{"format": "herald"}, &shown)
			if shown.Format != "herald" {
				t.Errorf("PATCH shows format %q, want herald", shown.Format)
			}
			p := h.publish("acme", map[string]any{"type": "order.created", "data": map[string]any{"i": 9}})
			eventually(t, 15*time.Second, "the envelope", func() bool {
				_, posts, _, _, _ := structured.snapshot()
				return len(posts) == 3
			})
			_, posts, _, _, _ = structured.snapshot()
			var env struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(posts[2].body, &env); err != nil || env.ID != p.ID || posts[2].header.Get("Content-Type") != "application/json" {
				t.Errorf("after format herald: %s %v", posts[2].body, posts[2].header)
			}
		})
	}
}

// A receiver that refuses the handshake (the SDK's handler for another origin, or no OPTIONS
// support) gets nothing, and the attempts say why: handshake_failed, retried.
func TestCloudEvents_RefusedHandshakeDeliversNothing(t *testing.T) {
	t.Parallel()
	h := start(t, func(c *node.Config) { c.WebhookOrigin = "herald.test" })
	h.setup("acme", "order.created")
	otherOrigin := newCEReceiver(t, []string{"someone-else.example"}, 0, 0)
	noOptions := newCEReceiver(t, nil, 0, http.StatusMethodNotAllowed)
	types := []string{"order.created"}
	h.endpoint("acme", map[string]any{"url": otherOrigin.URL, "event_types": types, "format": "cloudevents-structured"})
	h.endpoint("acme", map[string]any{"url": noOptions.URL, "event_types": types, "format": "cloudevents-binary"})
	p := h.publish("acme", map[string]any{"type": "order.created", "data": map[string]any{"i": 1}})

	type attempt struct {
		attemptOut
		EndpointID string `json:"endpoint_id"`
	}
	var attempts struct {
		Data []attempt `json:"data"`
	}
	eventually(t, 15*time.Second, "failed attempts at both endpoints", func() bool {
		h.must(200, "GET", "/v1/tenants/acme/attempts?event_id="+p.ID, nil, &attempts)
		seen := map[string]bool{}
		for _, a := range attempts.Data {
			seen[a.EndpointID] = true
		}
		return len(seen) == 2
	})
	for _, a := range attempts.Data {
		if a.Success || a.ErrorKind != "handshake_failed" || !strings.Contains(a.Error, "cloudevents handshake") {
			t.Errorf("attempt %+v, want handshake_failed", a)
		}
	}
	if dead := h.deliveries("/v1/tenants/acme/deliveries?state=dead"); len(dead) != 0 {
		t.Errorf("dead deliveries %+v: a refused handshake is retried", dead)
	}
	for _, rc := range []*ceReceiver{otherOrigin, noOptions} {
		options, posts, _, _, _ := rc.snapshot()
		if len(options) == 0 || len(posts) != 0 {
			t.Errorf("%d handshakes and %d deliveries, want a handshake and no delivery", len(options), len(posts))
		}
	}
}

// eventuallyWhy is eventually, saying what was seen when it times out.
func eventuallyWhy(t *testing.T, timeout time.Duration, what string, cond func() bool, seen func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; seen: %s", timeout, what, seen())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ceFromHeaders parses a broker message carrying a binary CloudEvent: its headers are the ce-*
// headers a webhook gets, so the SDK's HTTP binding reads them as it reads a request's.
func ceFromHeaders(t *testing.T, h http.Header, body []byte) *cloudevents.Event {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	req.Header = h
	ev, err := cehttp.NewEventFromHTTPRequest(req)
	if err != nil {
		t.Fatalf("the SDK cannot read the message (%v %s): %v", h, body, err)
	}
	return ev
}

// In binary mode a broker destination carries the CloudEvents attributes as message headers,
// beside the Standard Webhooks ones: through the real NATS JetStream and RabbitMQ servers.
func TestCloudEvents_BinaryAttributesAsBrokerHeaders(t *testing.T) {
	t.Parallel()
	natsURL, amqpURL := os.Getenv("HERALD_TEST_NATS_URL"), os.Getenv("HERALD_TEST_AMQP_URL")
	if natsURL == "" || amqpURL == "" {
		t.Skip("HERALD_TEST_NATS_URL or HERALD_TEST_AMQP_URL is not set")
	}
	h := start(t, nil)
	h.setup("acme", "order.created")
	types := []string{"order.created"}

	sfx := suffix(t)
	_, stream := jsStream(t, natsURL, "HERALD_CE_"+sfx, "herald.ce."+sfx)
	natsEP := h.endpoint("acme", map[string]any{"type": "nats", "event_types": types, "format": "cloudevents-binary",
		"config": map[string]any{"url": natsURL, "subject": "herald.ce." + sfx + ".orders"}})

	u, err := url.Parse(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	password, _ := u.User.Password()
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	queue := declareQueue(t, ch, "herald-ce-")
	rabbitEP := h.endpoint("acme", map[string]any{"type": "rabbitmq", "event_types": types, "format": "cloudevents-binary",
		"config": map[string]any{"url": "amqp://" + u.Host + "/", "username": u.User.Username(), "password": password, "exchange": "", "routing_key": queue}})

	p := h.publish("acme", map[string]any{"type": "order.created", "source": "https://shop.example/orders",
		"resource": map[string]any{"id": "ord_1", "type": "order"}, "data": map[string]any{"i": 1}})

	check := func(name, secret string, hd http.Header, body []byte) {
		t.Helper()
		ev := ceFromHeaders(t, hd, body)
		if ev.ID() != p.ID || ev.Type() != "order.created" || ev.Source() != "https://shop.example/orders" || ev.Subject() != "ord_1" || string(ev.Data()) != `{"i":1}` {
			t.Errorf("%s: event %s data %s", name, ev.Context, ev.Data())
		}
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(body, hd); err != nil {
			t.Errorf("%s: the signature does not verify: %v", name, err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(15 * time.Second))
	if err != nil {
		t.Fatalf("no NATS message: %v", err)
	}
	natsHeader := http.Header{}
	for k, vs := range msg.Headers() {
		for _, v := range vs {
			natsHeader.Add(k, v)
		}
	}
	check("nats", natsEP.Secret, natsHeader, msg.Data())

	var d amqp.Delivery
	eventually(t, 15*time.Second, "the RabbitMQ message", func() bool {
		got, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatal(err)
		}
		d = got
		return ok
	})
	hd := http.Header{}
	for k, v := range d.Headers {
		if s, ok := v.(string); ok {
			hd.Set(k, s)
		}
	}
	if d.ContentType != "" && hd.Get("Content-Type") == "" {
		hd.Set("Content-Type", d.ContentType)
	}
	check("rabbitmq", rabbitEP.Secret, hd, d.Body)
}
