package natsdest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/heraldhq/herald/internal/broker/brokertest"
	"github.com/heraldhq/herald/internal/destination"
)

// fetchAll reads every message of the stream with an ordered consumer.
func fetchAll(t *testing.T, js jetstream.JetStream, stream string, n int) []jetstream.Msg {
	t.Helper()
	ctx := sendCtx(t)
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	batch, err := cons.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	var out []jetstream.Msg
	for m := range batch.Messages() {
		out = append(out, m)
	}
	if err := batch.Error(); err != nil {
		t.Fatalf("fetch: %v", err)
	}
	return out
}

// verify checks a consumed message the way a consumer would: its headers as an http.Header,
// verified with the official Standard Webhooks library.
func verify(t *testing.T, got jetstream.Msg, want *destination.Message) {
	t.Helper()
	h := http.Header{}
	for k, vs := range got.Headers() {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	wh, err := standardwebhooks.NewWebhook(brokertest.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(got.Data(), h); err != nil {
		t.Fatalf("Standard Webhooks verification failed: %v (headers %v)", err, got.Headers())
	}
	if !bytes.Equal(got.Data(), want.Body) {
		t.Errorf("body = %q, want %q", got.Data(), want.Body)
	}
	hdr := got.Headers()
	for name, want := range map[string]string{
		"webhook-id":        want.ID,
		"herald-event-type": want.EventType,
		"content-type":      "application/json",
		"traceparent":       want.Header.Get("traceparent"),
		"Nats-Msg-Id":       "ep_test:" + want.ID,
	} {
		if g := hdr.Get(name); g != want {
			t.Errorf("header %s = %q, want %q", name, g, want)
		}
	}
}

func TestDeliveryVerifiedByConsumer(t *testing.T) {
	url := sharedURL(t)
	_, js := admin(t, url)
	stream, subject := newStream(t, js, nil)
	d := brokertest.NewDialer()
	typ := newType(t, d, nil)
	s := open(t, typ, map[string]any{"url": url, "subject": subject, "stream": stream})

	m1 := brokertest.SignedMessage(t, "msg_"+randSuffix(t), "order.created", []byte(`{"type":"order.created","data":{"id":1}}`))
	m2 := brokertest.SignedMessage(t, "msg_"+randSuffix(t), "order.paid", []byte(`{"type":"order.paid","data":{"id":1}}`))
	o := s.Send(sendCtx(t), m1)
	if o.Class != destination.Success || o.ErrorKind != "" || o.Latency <= 0 {
		t.Fatalf("Send = %+v, want a clean Success with latency", o)
	}
	if got, want := string(o.Response), fmt.Sprintf("stream %s seq 1", stream); got != want {
		t.Errorf("Response = %q, want %q", got, want)
	}
	if o := s.Send(sendCtx(t), m2); o.Class != destination.Success || string(o.Response) != fmt.Sprintf("stream %s seq 2", stream) {
		t.Fatalf("second Send = %+v (%s)", o, o.Response)
	}

	msgs := fetchAll(t, js, stream, 2)
	if len(msgs) != 2 {
		t.Fatalf("consumed %d messages, want 2", len(msgs))
	}
	verify(t, msgs[0], m1)
	verify(t, msgs[1], m2)
	if msgs[0].Subject() != subject {
		t.Errorf("subject = %q, want %q", msgs[0].Subject(), subject)
	}
}

func TestRetryIsDeduplicatedByJetStream(t *testing.T) {
	url := sharedURL(t)
	_, js := admin(t, url)
	stream, subject := newStream(t, js, nil)
	typ := newType(t, brokertest.NewDialer(), nil)
	s := open(t, typ, map[string]any{"url": url, "subject": subject})

	m := brokertest.SignedMessage(t, "msg_"+randSuffix(t), "order.created", []byte(`{"n":1}`))
	if o := s.Send(sendCtx(t), m); o.Class != destination.Success {
		t.Fatalf("first Send = %+v", o)
	}
	// The dispatcher retries a message whose acknowledgement it did not get: same id.
	o := s.Send(sendCtx(t), m)
	if o.Class != destination.Success {
		t.Fatalf("retry = %+v", o)
	}
	if got, want := string(o.Response), fmt.Sprintf("stream %s seq 1 (duplicate)", stream); got != want {
		t.Errorf("retry Response = %q, want %q", got, want)
	}
	if n := streamMsgs(t, js, stream); n != 1 {
		t.Errorf("stream holds %d messages after a retry, want 1", n)
	}
}

func TestPermanentFailures(t *testing.T) {
	url := sharedURL(t)
	nc, js := admin(t, url)
	typ := newType(t, brokertest.NewDialer(), nil)
	msg := func(body []byte) *destination.Message {
		return brokertest.SignedMessage(t, "msg_"+randSuffix(t), "order.created", body)
	}

	t.Run("no stream captures the subject", func(t *testing.T) {
		subject := "herald.nostream." + randSuffix(t)
		o := open(t, typ, map[string]any{"url": url, "subject": subject}).Send(sendCtx(t), msg([]byte(`{}`)))
		if o.Class != destination.Permanent || o.ErrorKind != destination.KindNoRoute {
			t.Fatalf("Send = %+v, want Permanent no_route", o)
		}
		if !strings.Contains(o.Error, subject) || !strings.Contains(o.Error, "no responders") {
			t.Errorf("Error = %q, want the subject and the reason", o.Error)
		}
	})

	t.Run("another stream than the expected one", func(t *testing.T) {
		_, subject := newStream(t, js, nil)
		o := open(t, typ, map[string]any{"url": url, "subject": subject, "stream": "NOT_THIS_ONE"}).Send(sendCtx(t), msg([]byte(`{}`)))
		if o.Class != destination.Permanent || o.ErrorKind != destination.KindNoRoute || !strings.Contains(o.Error, "NOT_THIS_ONE") {
			t.Fatalf("Send = %+v, want Permanent no_route naming the expected stream", o)
		}
	})

	t.Run("larger than the server's max_payload", func(t *testing.T) {
		stream, subject := newStream(t, js, nil)
		body := bytes.Repeat([]byte("x"), int(nc.MaxPayload())+1)
		o := open(t, typ, map[string]any{"url": url, "subject": subject}).Send(sendCtx(t), msg(body))
		if o.Class != destination.Permanent || o.ErrorKind != destination.KindTooLarge {
			t.Fatalf("Send = %+v, want Permanent message_too_large", o)
		}
		if !strings.Contains(o.Error, "max_payload") {
			t.Errorf("Error = %q", o.Error)
		}
		if n := streamMsgs(t, js, stream); n != 0 {
			t.Errorf("stream holds %d messages, want 0", n)
		}
	})

	t.Run("larger than the stream's max_msg_size", func(t *testing.T) {
		stream, subject := newStream(t, js, func(c *jetstream.StreamConfig) { c.MaxMsgSize = 1024 })
		o := open(t, typ, map[string]any{"url": url, "subject": subject}).Send(sendCtx(t), msg(bytes.Repeat([]byte("y"), 4096)))
		if o.Class != destination.Permanent || o.ErrorKind != destination.KindTooLarge {
			t.Fatalf("Send = %+v, want Permanent message_too_large", o)
		}
		if n := streamMsgs(t, js, stream); n != 0 {
			t.Errorf("stream holds %d messages, want 0", n)
		}
	})

	t.Run("full stream refusing new messages is busy, not permanent", func(t *testing.T) {
		_, subject := newStream(t, js, func(c *jetstream.StreamConfig) { c.MaxMsgs = 1; c.Discard = jetstream.DiscardNew })
		s := open(t, typ, map[string]any{"url": url, "subject": subject})
		if o := s.Send(sendCtx(t), msg([]byte(`{}`))); o.Class != destination.Success {
			t.Fatalf("first Send = %+v", o)
		}
		o := s.Send(sendCtx(t), msg([]byte(`{}`)))
		if o.Class != destination.Retryable || o.ErrorKind != destination.KindBrokerBusy {
			t.Fatalf("Send to a full stream = %+v, want Retryable broker_busy", o)
		}
	})
}

func TestRefusingDialerBlocksAndSendsNothing(t *testing.T) {
	url := sharedURL(t)
	_, js := admin(t, url)
	stream, subject := newStream(t, js, nil)
	d := brokertest.Refusing()
	typ := newType(t, d, nil)
	s := open(t, typ, map[string]any{"url": url, "subject": subject})

	o := s.Send(sendCtx(t), brokertest.SignedMessage(t, "msg_1", "order.created", []byte(`{}`)))
	if o.Class != destination.Permanent || o.ErrorKind != destination.KindBlocked {
		t.Fatalf("Send = %+v, want Permanent blocked_destination", o)
	}
	if !strings.Contains(o.Error, "not allowed") {
		t.Errorf("Error = %q, want the guard's reason", o.Error)
	}
	if d.Dials() == 0 {
		t.Fatal("the guarded dialer was never asked: the connection went around it")
	}
	if n := streamMsgs(t, js, stream); n != 0 {
		t.Errorf("stream holds %d messages, want 0", n)
	}
	// The batch path goes through the same dialer.
	if o := s.(destination.BatchSender).SendBatch(sendCtx(t), []*destination.Message{brokertest.SignedMessage(t, "msg_2", "a", []byte(`{}`))}); o.ErrorKind != destination.KindBlocked {
		t.Errorf("SendBatch = %+v, want blocked_destination", o)
	}
}

func TestInternalTargetUsesInternalDialer(t *testing.T) {
	url := sharedURL(t)
	_, js := admin(t, url)
	stream, subject := newStream(t, js, nil)
	refusing := brokertest.Refusing()
	internal := brokertest.NewDialer()
	typ := New(destination.Env{Dial: refusing.Dial, InternalDial: internal.Dial})
	t.Cleanup(func() { _ = typ.Close() })
	norm, ferrs := typ.Check([]byte(fmt.Sprintf(`{"url":%q,"subject":%q}`, url, subject)))
	if ferrs != nil {
		t.Fatal(ferrs[0])
	}
	s, err := typ.Open(destination.Target{EndpointID: "ep", Settings: norm, Internal: true})
	if err != nil {
		t.Fatal(err)
	}
	if o := s.Send(sendCtx(t), brokertest.SignedMessage(t, "msg_"+randSuffix(t), "a", []byte(`{}`))); o.Class != destination.Success {
		t.Fatalf("Send = %+v", o)
	}
	if refusing.Dials() != 0 || internal.Dials() == 0 {
		t.Errorf("dials: ordinary %d, internal %d; want only the internal dialer", refusing.Dials(), internal.Dials())
	}
	if n := streamMsgs(t, js, stream); n != 1 {
		t.Errorf("stream holds %d messages, want 1", n)
	}
}

func TestPoolSharesConnectionsAndIsBounded(t *testing.T) {
	url := sharedURL(t)
	_, js := admin(t, url)
	_, subjectA := newStream(t, js, nil)
	_, subjectB := newStream(t, js, nil)
	d := brokertest.NewDialer()
	typ := newType(t, d, func(e *destination.Env) { e.MaxConnections = 1; e.IdleTimeout = 300 * time.Millisecond })

	// Two endpoints on the same broker with the same credentials share one connection.
	a := open(t, typ, map[string]any{"url": url, "subject": subjectA})
	b := open(t, typ, map[string]any{"url": url, "subject": subjectB})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 5 {
		for _, s := range []destination.Sender{a, b} {
			if o := s.Send(ctx, brokertest.SignedMessage(t, fmt.Sprintf("msg_%s_%d", randSuffix(t), i), "a", []byte(`{}`))); o.Class != destination.Success {
				t.Fatalf("Send = %+v", o)
			}
		}
	}
	if n := d.Dials(); n != 1 {
		t.Errorf("dialled %d times for two endpoints on one broker, want 1", n)
	}
	if n := typ.openConnections(); n != 1 {
		t.Errorf("pool holds %d connections, want 1", n)
	}

	// Other credentials (another broker address would do the same) need a second connection:
	// over the limit of 1, while the one connection is in use (as by an attempt in flight), the
	// attempt is Retryable broker_busy and nothing is dialled. (An idle connection would be
	// closed to make room: the pool's own tests cover that.)
	_, put, err := typ.conns.Get(ctx, a.(*Sender).key)
	if err != nil {
		t.Fatal(err)
	}
	other := open(t, typ, map[string]any{"url": url, "subject": subjectA, "username": "someone", "password": "pw"})
	o := other.Send(ctx, brokertest.SignedMessage(t, "msg_"+randSuffix(t), "a", []byte(`{}`)))
	if o.Class != destination.Retryable || o.ErrorKind != destination.KindBrokerBusy || !strings.Contains(o.Error, "limit of 1") {
		t.Fatalf("Send over the limit = %+v, want Retryable broker_busy", o)
	}
	if n := d.Dials(); n != 1 {
		t.Errorf("dialled %d times, want still 1", n)
	}
	put()

	// The idle connection is closed after the idle timeout, which frees the slot.
	deadline := time.Now().Add(10 * time.Second)
	for typ.openConnections() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("idle connection still open 10s after a 300ms idle timeout")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if o := a.Send(ctx, brokertest.SignedMessage(t, "msg_"+randSuffix(t), "a", []byte(`{}`))); o.Class != destination.Success {
		t.Fatalf("Send after the idle close = %+v", o)
	}
	if n := d.Dials(); n != 2 {
		t.Errorf("dialled %d times, want 2 (one more after the idle close)", n)
	}
}

func TestBatch(t *testing.T) {
	url := sharedURL(t)
	_, js := admin(t, url)
	stream, subject := newStream(t, js, nil)
	typ := newType(t, brokertest.NewDialer(), nil)
	s := open(t, typ, map[string]any{"url": url, "subject": subject, "stream": stream}).(destination.BatchSender)

	var ms []*destination.Message
	for i := range 10 {
		ms = append(ms, brokertest.SignedMessage(t, fmt.Sprintf("msg_%s_%d", randSuffix(t), i), "order.created", []byte(fmt.Sprintf(`{"n":%d}`, i))))
	}
	o := s.SendBatch(sendCtx(t), ms)
	if o.Class != destination.Success {
		t.Fatalf("SendBatch = %+v", o)
	}
	if got, want := string(o.Response), fmt.Sprintf("stream %s seq 1..10", stream); got != want {
		t.Errorf("Response = %q, want %q", got, want)
	}
	got := fetchAll(t, js, stream, 10)
	if len(got) != 10 {
		t.Fatalf("consumed %d, want 10", len(got))
	}
	// Acks are awaited for all, but JetStream stores them in publish order on one connection.
	for i, m := range got {
		verify(t, m, ms[i])
	}

	// Retrying the whole batch stores nothing twice.
	if o := s.SendBatch(sendCtx(t), ms); o.Class != destination.Success {
		t.Fatalf("retried SendBatch = %+v", o)
	}
	if n := streamMsgs(t, js, stream); n != 10 {
		t.Errorf("stream holds %d after a retried batch, want 10", n)
	}

	// A batch larger than one chunk of in-flight publishes is published whole, in order.
	bigStream, bigSubject := newStream(t, js, nil)
	big := open(t, typ, map[string]any{"url": url, "subject": bigSubject}).(destination.BatchSender)
	var bms []*destination.Message
	for i := range 2*batchChunk + 7 {
		bms = append(bms, brokertest.SignedMessage(t, fmt.Sprintf("msg_%s_%d", randSuffix(t), i), "a", []byte(fmt.Sprintf(`{"n":%d}`, i))))
	}
	o = big.SendBatch(sendCtx(t), bms)
	if want := fmt.Sprintf("stream %s seq 1..%d", bigStream, len(bms)); o.Class != destination.Success || string(o.Response) != want {
		t.Fatalf("big SendBatch = %+v (%s), want Success %q", o, o.Response, want)
	}
	if n := streamMsgs(t, js, bigStream); n != uint64(len(bms)) {
		t.Errorf("stream holds %d, want %d", n, len(bms))
	}

	// A batch to a subject no stream captures fails as a whole, permanently.
	nb := open(t, typ, map[string]any{"url": url, "subject": "herald.nostream." + randSuffix(t)}).(destination.BatchSender)
	o = nb.SendBatch(sendCtx(t), ms[:3])
	if o.Class != destination.Permanent || o.ErrorKind != destination.KindNoRoute {
		t.Fatalf("SendBatch without a stream = %+v, want Permanent no_route", o)
	}
}

func TestClosedTypeFailsRetryable(t *testing.T) {
	url := sharedURL(t)
	_, js := admin(t, url)
	_, subject := newStream(t, js, nil)
	typ := newType(t, brokertest.NewDialer(), nil)
	s := open(t, typ, map[string]any{"url": url, "subject": subject})
	if o := s.Send(sendCtx(t), brokertest.SignedMessage(t, "msg_"+randSuffix(t), "a", []byte(`{}`))); o.Class != destination.Success {
		t.Fatalf("Send = %+v", o)
	}
	if err := typ.Close(); err != nil {
		t.Fatal(err)
	}
	if n := typ.openConnections(); n != 0 {
		t.Errorf("%d connections after Close", n)
	}
	if o := s.Send(sendCtx(t), brokertest.SignedMessage(t, "msg_"+randSuffix(t), "a", []byte(`{}`))); o.Class != destination.Retryable {
		t.Fatalf("Send after Close = %+v, want Retryable", o)
	}
}

func TestAttemptTimeoutIsRetryable(t *testing.T) {
	url := sharedURL(t)
	_, js := admin(t, url)
	_, subject := newStream(t, js, nil)
	typ := newType(t, brokertest.NewDialer(), nil)
	s := open(t, typ, map[string]any{"url": url, "subject": subject})
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	o := s.Send(ctx, brokertest.SignedMessage(t, "msg_"+randSuffix(t), "a", []byte(`{}`)))
	if o.Class != destination.Retryable || o.ErrorKind != destination.KindTimeout {
		t.Fatalf("Send with an expired deadline = %+v, want Retryable timeout", o)
	}
}

func TestConcurrentFirstAttemptsDialOnce(t *testing.T) {
	url := sharedURL(t)
	_, js := admin(t, url)
	stream, subject := newStream(t, js, nil)
	d := brokertest.NewDialer()
	typ := newType(t, d, nil)
	senders := []destination.Sender{
		open(t, typ, map[string]any{"url": url, "subject": subject}),
		open(t, typ, map[string]any{"url": url, "subject": subject, "stream": stream}),
	}
	const n = 40
	outcomes := make(chan destination.Outcome, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			outcomes <- senders[i%2].Send(sendCtx(t), brokertest.SignedMessage(t, fmt.Sprintf("msg_%s_%d", randSuffix(t), i), "a", []byte(`{}`)))
		})
	}
	wg.Wait()
	close(outcomes)
	for o := range outcomes {
		if o.Class != destination.Success {
			t.Fatalf("concurrent Send = %+v", o)
		}
	}
	if c := d.Dials(); c != 1 {
		t.Errorf("%d concurrent first attempts dialled %d times, want 1", n, c)
	}
	if m := streamMsgs(t, js, stream); m != n {
		t.Errorf("stream holds %d, want %d", m, n)
	}
}
