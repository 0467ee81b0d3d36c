package rabbitmq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/heraldhq/herald/internal/broker/brokertest"
	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/httpsend"
)

func TestDeliveryVerifiedByConsumer(t *testing.T) {
	b := sharedBroker(t)
	q := queue(t, b, false)
	typ := newType(t, destination.Env{})
	s := open(t, typ, b.settings(t, "", q), false)
	ch := b.client(t)

	for i := range 3 {
		body := fmt.Appendf(nil, `{"type":"order.created","data":{"n":%d}}`, i)
		m := brokertest.Message(t, "order.created", body)
		o := sendOK(t, s, m)
		if o.Latency <= 0 || !strings.Contains(string(o.Response), "confirmed") {
			t.Errorf("outcome %+v: want a latency and a confirmation", o)
		}
		d := get(t, ch, q)
		verify(t, d)
		if string(d.Body) != string(body) {
			t.Errorf("body %q, want %q", d.Body, body)
		}
		want := map[string]string{
			"webhook-id": m.ID, "herald-event-type": "order.created", "content-type": "application/json",
			"traceparent": m.Header.Get("traceparent"), "webhook-signature": m.Header.Get("webhook-signature"),
		}
		for k, v := range want {
			if got := d.Headers[k]; got != v {
				t.Errorf("header %s = %v, want %q", k, got, v)
			}
		}
		if d.MessageId != m.ID || d.Type != "order.created" || d.ContentType != "application/json" ||
			d.DeliveryMode != amqp.Persistent || d.Timestamp.Unix() != m.Timestamp.Unix() {
			t.Errorf("properties: id %q type %q content-type %q mode %d ts %v", d.MessageId, d.Type, d.ContentType, d.DeliveryMode, d.Timestamp)
		}
	}
}

func TestExchangeRoutingAndTransient(t *testing.T) {
	b := sharedBroker(t)
	q := queue(t, b, false)
	ch := b.client(t)
	x := brokertest.UniqueName("herald-test-x")
	if err := ch.ExchangeDeclare(x, "topic", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.client(t).ExchangeDelete(x, false, false) })
	if err := ch.QueueBind(q, "orders.#", x, false, nil); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(map[string]any{
		"url": "amqp://" + b.user + "@" + b.addr + "/", "password": b.password,
		"exchange": x, "routing_key": "orders.created", "persistent": false,
	})
	typ := newType(t, destination.Env{})
	s := open(t, typ, raw, false)
	m := brokertest.Message(t, "order.created", []byte(`{"a":1}`))
	sendOK(t, s, m)
	d := get(t, ch, q)
	verify(t, d)
	if d.Exchange != x || d.RoutingKey != "orders.created" || d.DeliveryMode != amqp.Transient {
		t.Errorf("delivered via %q %q mode %d", d.Exchange, d.RoutingKey, d.DeliveryMode)
	}
}

func TestCheck(t *testing.T) {
	typ := New(destination.Env{})
	defer typ.Close()
	ok := `"url":"amqp://broker.example:5672/prod","username":"herald","password":"pw","exchange":"events","routing_key":"k"`
	norm, errs := typ.Check(json.RawMessage(`{` + ok + `}`))
	if len(errs) > 0 {
		t.Fatalf("valid settings refused: %v", errs)
	}
	var got map[string]any
	if err := json.Unmarshal(norm, &got); err != nil {
		t.Fatal(err)
	}
	if got["persistent"] != true || got["url"] != "amqp://broker.example:5672/prod" || got["exchange"] != "events" {
		t.Errorf("normalised: %s", norm)
	}
	// The user moves from the URL to its field; the default exchange is allowed; vhost "/".
	norm, errs = typ.Check(json.RawMessage(`{"url":"amqps://herald@broker.example","exchange":"","routing_key":"jobs"}`))
	if len(errs) > 0 {
		t.Fatalf("valid settings refused: %v", errs)
	}
	got = nil
	_ = json.Unmarshal(norm, &got)
	if got["username"] != "herald" || got["url"] != "amqps://broker.example:5671/" || got["exchange"] != "" {
		t.Errorf("normalised: %s", norm)
	}

	cases := []struct {
		name, settings, field, msg string
	}{
		{"password in URL", `{"url":"amqp://u:secret@h/","exchange":"x","routing_key":"k"}`, "url", "put the password in the password setting"},
		{"password in a bad URL", `{"url":"amqp://u:secret@h:99999x/","exchange":"x","routing_key":"k"}`, "url", "valid URL"},
		{"no URL", `{"username":"u","exchange":"x","routing_key":"k"}`, "url", "required"},
		{"bad scheme", `{"url":"http://h/","username":"u","exchange":"x","routing_key":"k"}`, "url", "scheme"},
		{"no host", `{"url":"amqp:///v","username":"u","exchange":"x","routing_key":"k"}`, "url", "host"},
		{"query", `{"url":"amqp://h/?certfile=/etc/passwd","username":"u","exchange":"x","routing_key":"k"}`, "url", "query"},
		{"bad port", `{"url":"amqp://h:0/","username":"u","exchange":"x","routing_key":"k"}`, "url", "port"},
		{"no user", `{"url":"amqp://h/","exchange":"x","routing_key":"k"}`, "username", "required"},
		{"two users", `{"url":"amqp://a@h/","username":"b","exchange":"x","routing_key":"k"}`, "username", "one place"},
		{"no exchange", `{"url":"amqp://h/","username":"u","routing_key":"k"}`, "exchange", "required"},
		{"bad exchange", `{"url":"amqp://h/","username":"u","exchange":"a b","routing_key":"k"}`, "exchange", "letters"},
		{"long exchange", `{"url":"amqp://h/","username":"u","exchange":"` + strings.Repeat("x", 256) + `","routing_key":"k"}`, "exchange", "255"},
		{"no routing key", `{"url":"amqp://h/","username":"u","exchange":"x"}`, "routing_key", "required"},
		{"long routing key", `{"url":"amqp://h/","username":"u","exchange":"x","routing_key":"` + strings.Repeat("k", 256) + `"}`, "routing_key", "255"},
		{"url type", `{"url":5,"username":"u","exchange":"x","routing_key":"k"}`, "url", "must be a string"},
		{"persistent type", `{"url":"amqp://h/","username":"u","exchange":"x","routing_key":"k","persistent":"yes"}`, "persistent", "boolean"},
		{"unknown field", `{"url":"amqp://h/","username":"u","exchange":"x","routing_key":"k","queue":"q"}`, "queue", "unknown"},
		{"not an object", `[1]`, "", "JSON object"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, errs := typ.Check(json.RawMessage(c.settings))
			var found *destination.FieldError
			for _, e := range errs {
				if e.Field == c.field {
					found = e
				}
				if strings.Contains(e.Message, "secret") || strings.Contains(fmt.Sprint(e.Value), "secret") {
					t.Errorf("error shows the password: %+v", e)
				}
			}
			if found == nil || !strings.Contains(found.Message, c.msg) {
				t.Fatalf("want an error at %q containing %q, got %v", c.field, c.msg, errs)
			}
		})
	}
	if s := typ.Secrets(); len(s) != 1 || s[0] != "password" {
		t.Errorf("Secrets() = %v", s)
	}
	if typ.Name() != "rabbitmq" {
		t.Errorf("Name() = %q", typ.Name())
	}
}

func TestPermanentFailures(t *testing.T) {
	b := sharedBroker(t)
	typ := newType(t, destination.Env{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msg := brokertest.Message(t, "e", []byte(`{}`))

	t.Run("no such exchange", func(t *testing.T) {
		s := open(t, typ, b.settings(t, brokertest.UniqueName("herald-test-missing"), "k"), false)
		o := s.Send(ctx, msg)
		if o.Class != destination.Permanent || o.ErrorKind != destination.KindNoRoute || !strings.Contains(o.Error, "no exchange") {
			t.Fatalf("outcome %+v, want permanent no_route", o)
		}
	})
	t.Run("unroutable", func(t *testing.T) {
		s := open(t, typ, b.settings(t, "amq.direct", brokertest.UniqueName("nobody-binds")), false)
		o := s.Send(ctx, msg)
		if o.Class != destination.Permanent || o.ErrorKind != destination.KindNoRoute || !strings.Contains(o.Error, "NO_ROUTE") {
			t.Fatalf("outcome %+v, want permanent no_route (returned)", o)
		}
		// Default exchange, no such queue: returned too.
		s = open(t, typ, b.settings(t, "", brokertest.UniqueName("herald-test-noqueue")), false)
		if o := s.Send(ctx, msg); o.Class != destination.Permanent || o.ErrorKind != destination.KindNoRoute {
			t.Fatalf("outcome %+v, want permanent no_route", o)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		raw, _ := json.Marshal(map[string]any{"url": "amqp://" + b.addr + "/", "username": b.user,
			"password": "not-the-password-x7", "exchange": "", "routing_key": "k"})
		s := open(t, typ, raw, false)
		o := s.Send(ctx, msg)
		if o.Class != destination.Permanent || o.ErrorKind != destination.KindDenied {
			t.Fatalf("outcome %+v, want permanent access_denied", o)
		}
		if strings.Contains(o.Error, "not-the-password-x7") {
			t.Fatalf("the error shows the password: %q", o.Error)
		}
	})
	t.Run("no such vhost", func(t *testing.T) {
		raw, _ := json.Marshal(map[string]any{"url": "amqp://" + b.addr + "/" + brokertest.UniqueName("novhost"), "username": b.user,
			"password": b.password, "exchange": "", "routing_key": "k"})
		s := open(t, typ, raw, false)
		if o := s.Send(ctx, msg); o.Class != destination.Permanent || o.ErrorKind != destination.KindDenied {
			t.Fatalf("outcome %+v, want permanent access_denied", o)
		}
	})
	// A sender sharing the connection still works after the failures closed their channels.
	q := queue(t, b, false)
	s := open(t, typ, b.settings(t, "", q), false)
	sendOK(t, s, msg)
	verify(t, get(t, b.client(t), q))
}

// Confirms and returns are correlated per attempt under concurrency: on one shared connection,
// attempts to a routable and to an unroutable destination interleave, and each gets its own
// answer.
func TestConcurrentAttemptsGetTheirOwnConfirms(t *testing.T) {
	b := sharedBroker(t)
	q := queue(t, b, false)
	d := brokertest.NewDialer()
	typ := newType(t, destination.Env{Dial: d.Dial, InternalDial: d.Dial})
	good := open(t, typ, b.settings(t, "", q), false)
	bad := open(t, typ, b.settings(t, "amq.direct", brokertest.UniqueName("nobody-binds")), false)

	const n = 200
	var wg sync.WaitGroup
	var wrong atomic.Int64
	sent := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			m := brokertest.Message(t, "e", fmt.Appendf(nil, `{"i":%d}`, i))
			if i%2 == 0 {
				if o := good.Send(ctx, m); o.Class != destination.Success {
					t.Errorf("routable attempt: %+v", o)
					wrong.Add(1)
				}
				sent <- m.ID
			} else if o := bad.Send(ctx, m); o.Class != destination.Permanent || o.ErrorKind != destination.KindNoRoute {
				t.Errorf("unroutable attempt: %+v", o)
				wrong.Add(1)
			}
		}()
	}
	wg.Wait()
	close(sent)
	if wrong.Load() > 0 {
		t.Fatalf("%d attempts got another attempt's answer", wrong.Load())
	}
	if got := d.Dials(); got != 1 {
		t.Errorf("%d dials, want 1 shared connection", got)
	}
	want := map[string]bool{}
	for id := range sent {
		want[id] = true
	}
	ch := b.client(t)
	for len(want) > 0 {
		dl := get(t, ch, q)
		verify(t, dl)
		if !want[dl.MessageId] {
			t.Fatalf("unexpected or duplicate message %q", dl.MessageId)
		}
		delete(want, dl.MessageId)
	}
}

func TestBatch(t *testing.T) {
	b := sharedBroker(t)
	q := queue(t, b, false)
	typ := newType(t, destination.Env{})
	s := open(t, typ, b.settings(t, "", q), false)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const n = maxInFlight + 44 // more than one chunk
	ms := make([]*destination.Message, n)
	want := map[string]bool{}
	for i := range ms {
		ms[i] = brokertest.Message(t, "batch.item", fmt.Appendf(nil, `{"i":%d}`, i))
		want[ms[i].ID] = true
	}
	if o := s.SendBatch(ctx, ms); o.Class != destination.Success {
		t.Fatalf("SendBatch: %+v", o)
	}
	ch := b.client(t)
	for len(want) > 0 {
		d := get(t, ch, q)
		verify(t, d)
		if !want[d.MessageId] {
			t.Fatalf("unexpected or duplicate %q", d.MessageId)
		}
		delete(want, d.MessageId)
	}

	bad := open(t, typ, b.settings(t, "amq.direct", brokertest.UniqueName("nobody-binds")), false)
	if o := bad.SendBatch(ctx, ms[:10]); o.Class != destination.Permanent || o.ErrorKind != destination.KindNoRoute ||
		!strings.Contains(o.Error, "10 of 10") {
		t.Fatalf("unroutable batch: %+v", o)
	}
}

// Every connection goes through the node's dialer: refused there, the attempt is Permanent
// blocked_destination and nothing reaches the broker.
func TestRefusingDialer(t *testing.T) {
	b := sharedBroker(t)
	q := queue(t, b, false)
	refuse := brokertest.Refusing()
	typ := newType(t, destination.Env{Dial: refuse.Dial, InternalDial: refuse.Dial})
	s := open(t, typ, b.settings(t, "", q), false)
	o := s.Send(context.Background(), brokertest.Message(t, "e", []byte(`{}`)))
	if o.Class != destination.Permanent || o.ErrorKind != destination.KindBlocked {
		t.Fatalf("outcome %+v, want permanent blocked_destination", o)
	}
	if seen := refuse.Addrs(); len(seen) != 1 || seen[0] != b.addr {
		t.Errorf("dialer saw %v, want one dial of %s", seen, b.addr)
	}

	// The production guard (loopback not allowed) refuses the shared broker's 127.0.0.1 itself.
	guard := httpsend.New(httpsend.Config{})
	typ2 := newType(t, destination.Env{Dial: guard.DialContext, InternalDial: guard.DialContext})
	if o := open(t, typ2, b.settings(t, "", q), false).Send(context.Background(), brokertest.Message(t, "e", []byte(`{}`))); o.Class != destination.Permanent || o.ErrorKind != destination.KindBlocked {
		t.Fatalf("outcome %+v, want permanent blocked_destination from the guard", o)
	}
	qi, err := b.client(t).QueueDeclarePassive(q, false, false, false, false, nil)
	if err != nil || qi.Messages != 0 {
		t.Fatalf("queue holds %d messages (err %v), want 0", qi.Messages, err)
	}
}

func TestPoolSharedBoundedAndIdle(t *testing.T) {
	b := sharedBroker(t)
	q1, q2 := queue(t, b, false), queue(t, b, false)
	d := brokertest.NewDialer()
	typ := newType(t, destination.Env{Dial: d.Dial, InternalDial: d.Dial, MaxConnections: 1, IdleTimeout: 300 * time.Millisecond})
	s1 := open(t, typ, b.settings(t, "", q1), false)
	s2 := open(t, typ, b.settings(t, "", q2), false)
	if s1.key != s2.key {
		t.Fatal("two endpoints on the same broker and credentials got different connection keys")
	}
	// Keep the connection busy (not idle) while both send.
	sendOK(t, s1, brokertest.Message(t, "e", []byte(`{}`)))
	sendOK(t, s2, brokertest.Message(t, "e", []byte(`{}`)))
	if n := d.Dials(); n != 1 {
		t.Fatalf("%d dials for two senders to one broker, want 1", n)
	}
	// An internal endpoint to the same broker needs another connection (another dialer): over
	// the limit while the one connection is in use (as by an attempt in flight), the attempt is
	// broker_busy and nothing is dialled. (An idle connection would be closed to make room: the
	// pool's own tests cover that.)
	_, put, err := typ.conns.Get(context.Background(), s1.key)
	if err != nil {
		t.Fatal(err)
	}
	s3 := open(t, typ, b.settings(t, "", q1), true)
	o := s3.Send(context.Background(), brokertest.Message(t, "e", []byte(`{}`)))
	if o.Class != destination.Retryable || o.ErrorKind != destination.KindBrokerBusy || !strings.Contains(o.Error, "limit 1") {
		t.Fatalf("over the limit: %+v, want retryable broker_busy", o)
	}
	if n := d.Dials(); n != 1 {
		t.Fatalf("%d dials: the limit must refuse before dialling", n)
	}
	put()
	// Idle: the janitor closes the connection, which frees the slot.
	deadline := time.Now().Add(20 * time.Second)
	for typ.openConnections() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("idle connection not closed within 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	sendOK(t, s3, brokertest.Message(t, "e", []byte(`{}`)))
	if n := d.Dials(); n != 2 {
		t.Fatalf("%d dials, want 2 (the internal pool dialled once its slot was free)", n)
	}
	verify(t, get(t, b.client(t), q1))

	// Close: every connection closed, senders fail Retryable.
	_ = typ.Close()
	if n := typ.openConnections(); n != 0 {
		t.Fatalf("%d connections open after Close", n)
	}
	if o := s1.Send(context.Background(), brokertest.Message(t, "e", []byte(`{}`))); o.Class != destination.Retryable {
		t.Fatalf("after Close: %+v, want retryable", o)
	}
}

// A private node: a message over its max_message_size is Permanent message_too_large; then the
// node is stopped mid-stream (attempts Retryable) and started again on the same port (the same
// Sender succeeds again, on a new connection).
func TestPrivateNodeTooLargeAndRestart(t *testing.T) {
	sharedBroker(t) // the broker tests run only when HERALD_TEST_AMQP_URL is set
	const maxMessage = 64 << 10
	n := startPrivateNode(t, maxMessage)
	b := n.brokerFor()
	q := queue(t, b, true) // durable: it survives the restart
	d := brokertest.NewDialer()
	typ := newType(t, destination.Env{Dial: d.Dial, InternalDial: d.Dial})
	s := open(t, typ, b.settings(t, "", q), false)

	big := brokertest.Message(t, "e", []byte(`{"pad":"`+strings.Repeat("x", maxMessage)+`"}`))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	o := s.Send(ctx, big)
	cancel()
	if o.Class != destination.Permanent || o.ErrorKind != destination.KindTooLarge {
		t.Fatalf("too large: %+v, want permanent message_too_large", o)
	}

	var delivered []string
	for range 5 {
		m := brokertest.Message(t, "e", []byte(`{"before":true}`))
		sendOK(t, s, m)
		delivered = append(delivered, m.ID)
	}

	// Mid-stream: a sender keeps publishing while the node stops. Every attempt is Success
	// (confirmed before the stop: persistent on a durable queue, so it must be there after the
	// restart) or Retryable, never Permanent.
	attempted := map[string]bool{}
	var (
		mu        sync.Mutex
		confirmed []string
		failures  []destination.Outcome
	)
	stopSending := make(chan struct{})
	sending := make(chan struct{})
	go func() {
		defer close(sending)
		for {
			select {
			case <-stopSending:
				return
			default:
			}
			m := brokertest.Message(t, "e", []byte(`{"during":true}`))
			mu.Lock()
			attempted[m.ID] = true
			mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			o := s.Send(ctx, m)
			cancel()
			mu.Lock()
			if o.Class == destination.Success {
				confirmed = append(confirmed, m.ID)
				mu.Unlock()
				continue
			}
			failures = append(failures, o)
			mu.Unlock()
			time.Sleep(5 * time.Millisecond) // pacing while the broker is away, not an assertion
		}
	}()
	// Let some go through before the stop.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		c := len(confirmed)
		mu.Unlock()
		if c >= 20 || time.Now().After(deadline) {
			break
		}
	}
	n.stop()
	close(stopSending)
	<-sending
	mu.Lock()
	delivered = append(delivered, confirmed...)
	for _, o := range failures {
		if o.Class != destination.Retryable {
			t.Errorf("attempt during the stop: %+v, want retryable", o)
		}
	}
	t.Logf("during the stop: %d confirmed, %d retryable", len(confirmed), len(failures))
	mu.Unlock()

	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		o := s.Send(ctx, brokertest.Message(t, "e", []byte(`{"during":true}`)))
		cancel()
		if o.Class != destination.Retryable {
			t.Fatalf("attempt %d while the broker is down: %+v, want retryable", i, o)
		}
		switch o.ErrorKind {
		case destination.KindConnRefused, destination.KindConnReset, destination.KindTimeout:
		default:
			t.Fatalf("attempt %d while the broker is down: kind %q", i, o.ErrorKind)
		}
	}

	n.start()
	deadline := time.Now().Add(60 * time.Second)
	var last destination.Outcome
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m := brokertest.Message(t, "e", []byte(`{"after":true}`))
		last = s.Send(ctx, m)
		cancel()
		if last.Class == destination.Success {
			delivered = append(delivered, m.ID)
			break
		}
		if last.Class != destination.Retryable {
			t.Fatalf("after restart: %+v", last)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no success within 60s of the restart; last %+v", last)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for range 5 {
		m := brokertest.Message(t, "e", []byte(`{"after":true}`))
		sendOK(t, s, m)
		delivered = append(delivered, m.ID)
	}
	if d.Dials() < 2 {
		t.Fatalf("%d dials: the lost connection was not re-established", d.Dials())
	}
	// Persistent messages to a durable queue survive the restart: all are there.
	ch := b.client(t)
	want := map[string]bool{}
	for _, id := range delivered {
		want[id] = true
	}
	for len(want) > 0 {
		dl := get(t, ch, q)
		verify(t, dl)
		// An attempt that failed as the node stopped may have been enqueued anyway (its
		// confirm lost): at least once, so it may be there; nothing else may.
		if !want[dl.MessageId] && !attempted[dl.MessageId] {
			t.Fatalf("unexpected or duplicate %q", dl.MessageId)
		}
		delete(want, dl.MessageId)
	}
}

// An attempt that outlives its context returns at the deadline, Retryable timeout.
func TestContextDeadline(t *testing.T) {
	b := sharedBroker(t)
	typ := newType(t, destination.Env{})
	s := open(t, typ, b.settings(t, "", queue(t, b, false)), false)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	o := s.Send(ctx, brokertest.Message(t, "e", []byte(`{}`)))
	if o.Class != destination.Retryable || (o.ErrorKind != destination.KindCanceled && o.ErrorKind != destination.KindTimeout) {
		t.Fatalf("canceled attempt: %+v", o)
	}
	ctx, cancel2 := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel2()
	<-ctx.Done()
	if o := s.Send(ctx, brokertest.Message(t, "e", []byte(`{}`))); o.Class != destination.Retryable || o.ErrorKind != destination.KindTimeout {
		t.Fatalf("expired attempt: %+v", o)
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("unexpected")
	}
}

// BenchmarkSend compares Send through the type with the same library publishing the same
// messages directly (one connection, one confirm channel, mandatory flag, waiting for each
// confirm) to the same broker: the ratio is the type's overhead.
func BenchmarkSend(b *testing.B) {
	br := sharedBroker(b)
	body := []byte(`{"type":"order.created","timestamp":"2026-01-01T00:00:00Z","data":{"id":"ord_1","amount":4200,"currency":"eur"}}`)
	m := brokertest.Message(b, "order.created", body)

	b.Run("herald", func(b *testing.B) {
		q := queue(b, br, false)
		typ := newType(b, destination.Env{})
		s := open(b, typ, br.settings(b, "", q), false)
		ctx := context.Background()
		sendOK(b, s, m) // connect outside the timing
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if o := s.Send(ctx, m); o.Class != destination.Success {
				b.Fatalf("Send: %+v", o)
			}
		}
	})
	b.Run("plain-client", func(b *testing.B) {
		q := queue(b, br, false)
		conn, err := amqp.Dial(br.url)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			b.Fatal(err)
		}
		if err := ch.Confirm(false); err != nil {
			b.Fatal(err)
		}
		returns := ch.NotifyReturn(make(chan amqp.Return, 1))
		pub := (&Sender{persistent: true}).publishing(m)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", q, true, false, pub)
			if err != nil {
				b.Fatal(err)
			}
			if !dc.Wait() {
				b.Fatal("nack")
			}
			select {
			case r := <-returns:
				b.Fatalf("returned: %s", r.ReplyText)
			default:
			}
		}
	})
}

// A queue full with overflow reject-publish nacks the message: Retryable broker_busy; once the
// queue has room the same sender succeeds.
func TestNackIsBrokerBusy(t *testing.T) {
	b := sharedBroker(t)
	ch := b.client(t)
	q, err := ch.QueueDeclare(brokertest.UniqueName("herald-test-full"), false, false, false, false,
		amqp.Table{"x-max-length": int32(1), "x-overflow": "reject-publish"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = b.client(t).QueueDelete(q.Name, false, false, false) })
	typ := newType(t, destination.Env{})
	s := open(t, typ, b.settings(t, "", q.Name), false)
	sendOK(t, s, brokertest.Message(t, "e", []byte(`{"first":true}`)))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	o := s.Send(ctx, brokertest.Message(t, "e", []byte(`{"second":true}`)))
	if o.Class != destination.Retryable || o.ErrorKind != destination.KindBrokerBusy || !strings.Contains(o.Error, "negative acknowledgement") {
		t.Fatalf("outcome %+v, want retryable broker_busy", o)
	}
	verify(t, get(t, ch, q.Name)) // room again
	m := brokertest.Message(t, "e", []byte(`{"third":true}`))
	sendOK(t, s, m)
	if d := get(t, ch, q.Name); d.MessageId != m.ID {
		t.Fatalf("got %q, want %q", d.MessageId, m.ID)
	}
}
