package rabbitmq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/heraldhq/herald/internal/broker/brokertest"
	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/httpsend"
	"github.com/heraldhq/herald/internal/source"
)

// sourceSettings are a source's settings for this broker.
func (b broker) sourceSettings(t testing.TB, queue string, prefetch int) json.RawMessage {
	t.Helper()
	m := map[string]any{"url": "amqp://" + b.addr + "/", "username": b.user, "password": b.password, "queue": queue}
	if prefetch > 0 {
		m["prefetch"] = prefetch
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func newSource(t testing.TB) (*SourceType, *brokertest.Dialer) {
	d := brokertest.NewDialer()
	return NewSource(source.Env{Dial: d.Dial, InternalDial: d.Dial}), d
}

// openConsumer checks the settings and opens a consumer, closed at cleanup.
func openConsumer(t testing.TB, typ *SourceType, raw json.RawMessage, member string) *Consumer {
	t.Helper()
	norm, errs := typ.Check(raw)
	if len(errs) > 0 {
		t.Fatalf("Check: %v", errs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := typ.Open(ctx, source.Target{SourceID: "src_test", TenantID: "tn_test", Group: "g", Member: member, Settings: norm})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c.(*Consumer)
}

// publishConfirmed publishes to a queue (default exchange), persistent, and waits for the
// broker's confirm of each. Each message has message-id id-<i> unless noID.
func publishConfirmed(t testing.TB, b broker, q string, ids []string, headers amqp.Table) {
	t.Helper()
	ch := b.client(t)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var confs []*amqp.DeferredConfirmation
	for _, id := range ids {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", q, true, false, amqp.Publishing{
			MessageId:    id,
			ContentType:  "application/json",
			DeliveryMode: amqp.Persistent,
			Timestamp:    time.Unix(1_700_000_000, 0),
			Headers:      headers,
			Body:         []byte(`{"id":"` + id + `"}`),
		})
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		confs = append(confs, dc)
	}
	for _, dc := range confs {
		ok, err := dc.WaitContext(ctx)
		if err != nil || !ok {
			t.Fatalf("publish not confirmed: %v", err)
		}
	}
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// fetchUntil fetches (max per batch) until it holds n messages, within 30s; every batch is
// checked to hold at most max.
func fetchUntil(t testing.TB, c source.Consumer, n, max int) []source.Batch {
	t.Helper()
	var batches []source.Batch
	got := 0
	deadline := time.Now().Add(30 * time.Second)
	for got < n {
		if time.Now().After(deadline) {
			t.Fatalf("fetched %d messages within 30s, want %d", got, n)
		}
		b, err := c.Fetch(context.Background(), max, time.Second)
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		if len(b.Messages()) > max {
			t.Fatalf("Fetch(max %d) returned %d messages", max, len(b.Messages()))
		}
		if len(b.Messages()) > 0 {
			batches = append(batches, b)
			got += len(b.Messages())
		}
	}
	return batches
}

func batchIDs(bs ...source.Batch) []string {
	var out []string
	for _, b := range bs {
		for _, m := range b.Messages() {
			out = append(out, m.ID)
		}
	}
	return out
}

// expectEmpty asserts the consumer gets nothing more within wait.
func expectEmpty(t testing.TB, c source.Consumer, wait time.Duration) {
	t.Helper()
	b, err := c.Fetch(context.Background(), 100, wait)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if n := len(b.Messages()); n != 0 {
		t.Fatalf("got %d more messages (%v), want none", n, batchIDs(b))
	}
}

func ackAll(t testing.TB, bs ...source.Batch) {
	t.Helper()
	for _, b := range bs {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := b.Ack(ctx)
		cancel()
		if err != nil {
			t.Fatalf("Ack: %v", err)
		}
	}
}

// ready is the queue's count of messages ready for delivery (neither delivered nor unacked).
func ready(t testing.TB, b broker, q string) int {
	t.Helper()
	conn, err := amqp.Dial(b.url)
	if err != nil {
		t.Fatalf("test client: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("test client: %v", err)
	}
	qi, err := ch.QueueDeclarePassive(q, false, false, false, false, nil)
	if err != nil {
		t.Fatalf("queue %s: %v", q, err)
	}
	return qi.Messages
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, v := range m {
		if v != 0 {
			return false
		}
	}
	return true
}

func TestSourceCheck(t *testing.T) {
	typ := NewSource(source.Env{})
	norm, errs := typ.Check(json.RawMessage(`{"url":"amqps://herald@broker.example/prod","queue":"orders"}`))
	if len(errs) > 0 {
		t.Fatalf("valid settings refused: %v", errs)
	}
	var got map[string]any
	if err := json.Unmarshal(norm, &got); err != nil {
		t.Fatal(err)
	}
	if got["username"] != "herald" || got["url"] != "amqps://broker.example:5671/prod" || got["queue"] != "orders" || got["prefetch"] != float64(DefaultPrefetch) {
		t.Errorf("normalised: %s", norm)
	}
	cases := []struct {
		name, settings, field, msg string
	}{
		{"password in URL", `{"url":"amqp://u:secret@h/","queue":"q"}`, "url", "put the password in the password setting"},
		{"no URL", `{"username":"u","queue":"q"}`, "url", "required"},
		{"bad scheme", `{"url":"http://h/","username":"u","queue":"q"}`, "url", "scheme"},
		{"no user", `{"url":"amqp://h/","queue":"q"}`, "username", "required"},
		{"no queue", `{"url":"amqp://h/","username":"u"}`, "queue", "never declares"},
		{"long queue", `{"url":"amqp://h/","username":"u","queue":"` + strings.Repeat("q", 256) + `"}`, "queue", "255"},
		{"control in queue", `{"url":"amqp://h/","username":"u","queue":"a\u0001b"}`, "queue", "control"},
		{"prefetch zero", `{"url":"amqp://h/","username":"u","queue":"q","prefetch":0}`, "prefetch", "1 to 65535"},
		{"prefetch too big", `{"url":"amqp://h/","username":"u","queue":"q","prefetch":65536}`, "prefetch", "1 to 65535"},
		{"prefetch type", `{"url":"amqp://h/","username":"u","queue":"q","prefetch":"many"}`, "prefetch", "must be a whole number"},
		{"url type", `{"url":5,"username":"u","queue":"q"}`, "url", "must be a string"},
		{"destination field", `{"url":"amqp://h/","username":"u","queue":"q","exchange":"x"}`, "exchange", "unknown setting (known: url, username, password, queue, prefetch)"},
		{"not an object", `"q"`, "", "JSON object"},
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

// Fetch maps each delivery; acked messages never come back, to this consumer or a new one.
func TestSourceFetchMapAck(t *testing.T) {
	b := sharedBroker(t)
	q := queue(t, b, false)
	headers := amqp.Table{
		"webhook-id": "msg_1", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"attempt": int32(3), "raw": []byte("bytes"), "flag": true, "price": amqp.Decimal{Scale: 2, Value: -1234},
		"list": []any{"a", int64(2)}, "nested": amqp.Table{"x": "y"},
	}
	publishConfirmed(t, b, q, ids("m", 5), headers)
	// One without message-id: ID "".
	ch := b.client(t)
	if err := ch.PublishWithContext(context.Background(), "", q, false, false, amqp.Publishing{Body: []byte("plain")}); err != nil {
		t.Fatal(err)
	}

	typ, _ := newSource(t)
	c := openConsumer(t, typ, b.sourceSettings(t, q, 0), "n1")
	bs := fetchUntil(t, c, 6, 10)
	var msgs []source.Message
	for _, bt := range bs {
		msgs = append(msgs, bt.Messages()...)
	}
	if !sameSet(batchIDs(bs...), append(ids("m", 5), "")) {
		t.Fatalf("ids %v", batchIDs(bs...))
	}
	for _, m := range msgs {
		if m.Subject != q {
			t.Errorf("Subject %q, want the routing key %q", m.Subject, q)
		}
		if m.ID == "" {
			if string(m.Body) != "plain" || len(m.Header) != 0 || !m.Time.IsZero() {
				t.Errorf("message without properties: %+v", m)
			}
			continue
		}
		if string(m.Body) != `{"id":"`+m.ID+`"}` {
			t.Errorf("body %q", m.Body)
		}
		if !m.Time.Equal(time.Unix(1_700_000_000, 0)) {
			t.Errorf("Time %v", m.Time)
		}
		want := map[string][]string{
			"webhook-id": {"msg_1"}, "traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
			"attempt": {"3"}, "raw": {"bytes"}, "flag": {"true"}, "price": {"-12.34"}, "list": {"a", "2"},
			"content-type": {"application/json"},
		}
		if fmt.Sprint(m.Header) != fmt.Sprint(want) {
			t.Errorf("Header %v, want %v", m.Header, want)
		}
	}
	ackAll(t, bs...)
	if err := bs[0].Ack(context.Background()); !errors.Is(err, errSettled) {
		t.Fatalf("second Ack: %v, want refused", err)
	}
	expectEmpty(t, c, time.Second)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Fetch(context.Background(), 1, time.Millisecond); !errors.Is(err, errConsumerClosed) {
		t.Fatalf("Fetch after Close: %v", err)
	}
	c2 := openConsumer(t, typ, b.sourceSettings(t, q, 0), "n2")
	expectEmpty(t, c2, 2*time.Second)
	if n := ready(t, b, q); n != 0 {
		t.Fatalf("%d messages ready after all were acked", n)
	}
}

// Nak gives the messages back: they come again, with the same ID.
func TestSourceNakRedeliversSameID(t *testing.T) {
	b := sharedBroker(t)
	q := queue(t, b, false)
	publishConfirmed(t, b, q, ids("n", 4), nil)
	typ, _ := newSource(t)
	c := openConsumer(t, typ, b.sourceSettings(t, q, 0), "n1")
	first := fetchUntil(t, c, 4, 10)
	for _, bt := range first {
		if err := bt.Nak(context.Background(), time.Second); err != nil {
			t.Fatalf("Nak: %v", err)
		}
	}
	again := fetchUntil(t, c, 4, 10)
	if !sameSet(batchIDs(first...), batchIDs(again...)) || !sameSet(batchIDs(again...), ids("n", 4)) {
		t.Fatalf("redelivered %v, first %v", batchIDs(again...), batchIDs(first...))
	}
	ackAll(t, again...)
	expectEmpty(t, c, time.Second)
}

// Settling out of order: acking a later batch must not settle an earlier one (ack "multiple"
// covers every lower tag), and a batch that is not contiguous is settled tag by tag.
func TestSourceSettleOutOfOrder(t *testing.T) {
	b := sharedBroker(t)
	q := queue(t, b, false)
	publishConfirmed(t, b, q, ids("o", 6), nil)
	typ, _ := newSource(t)
	c := openConsumer(t, typ, b.sourceSettings(t, q, 0), "n1")
	a := fetchUntil(t, c, 1, 2)
	later := fetchUntil(t, c, 6-len(batchIDs(a...)), 10)
	ackAll(t, later...)
	for _, bt := range a {
		if err := bt.Nak(context.Background(), 0); err != nil {
			t.Fatal(err)
		}
	}
	// Only the earlier batch comes back.
	again := fetchUntil(t, c, len(batchIDs(a...)), 10)
	if !sameSet(batchIDs(again...), batchIDs(a...)) {
		t.Fatalf("redelivered %v, want the nacked %v", batchIDs(again...), batchIDs(a...))
	}
	ackAll(t, again...)
	expectEmpty(t, c, time.Second)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if n := ready(t, b, q); n != 0 {
		t.Fatalf("%d messages back in the queue after all were acked", n)
	}
}

// The broker hands a consumer at most prefetch messages unacked: the rest stay in the queue
// until some are acked, and no Fetch returns more than max.
func TestSourceBoundedPrefetch(t *testing.T) {
	b := sharedBroker(t)
	q := queue(t, b, false)
	const total, prefetch, max = 40, 5, 3
	publishConfirmed(t, b, q, ids("p", total), nil)
	typ, _ := newSource(t)
	c := openConsumer(t, typ, b.sourceSettings(t, q, prefetch), "n1")
	held := fetchUntil(t, c, prefetch, max)
	// Nothing beyond prefetch while none is acked.
	expectEmpty(t, c, 2*time.Second)
	if got := len(batchIDs(held...)); got != prefetch {
		t.Fatalf("holding %d unacked, want %d", got, prefetch)
	}
	deadline := time.Now().Add(20 * time.Second)
	for ready(t, b, q) != total-prefetch {
		if time.Now().After(deadline) {
			t.Fatalf("queue has %d ready, want %d (the broker keeps the rest)", ready(t, b, q), total-prefetch)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Acking makes room; everything arrives, each message once.
	ackAll(t, held...)
	seen := batchIDs(held...)
	for len(seen) < total {
		bs := fetchUntil(t, c, 1, max)
		for _, bt := range bs {
			seen = append(seen, batchIDs(bt)...)
		}
		ackAll(t, bs...)
	}
	if !sameSet(seen, ids("p", total)) {
		t.Fatalf("seen %v", seen)
	}
}

// Two consumers of one queue compete: each message goes to one of them; one that closes with
// unacked messages hands them to the other.
func TestSourceCompetingConsumers(t *testing.T) {
	b := sharedBroker(t)
	q := queue(t, b, false)
	typ, _ := newSource(t)
	c1 := openConsumer(t, typ, b.sourceSettings(t, q, 10), "n1")
	c2 := openConsumer(t, typ, b.sourceSettings(t, q, 10), "n2")
	const total = 100
	publishConfirmed(t, b, q, ids("c", total), nil)

	var mu sync.Mutex
	seen := map[string]int{}
	per := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for name, c := range map[string]*Consumer{"n1": c1, "n2": c2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				mu.Lock()
				done := len(seen) >= total
				mu.Unlock()
				if done {
					return
				}
				bt, err := c.Fetch(context.Background(), 10, 200*time.Millisecond)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, id := range batchIDs(bt) {
					seen[id]++
					per[name]++
				}
				mu.Unlock()
				if err := bt.Ack(context.Background()); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(seen) != total {
		t.Fatalf("%d of %d messages consumed", len(seen), total)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("%s delivered %d times", id, n)
		}
	}
	// Both were consuming before the publish: the broker dispatches to both.
	if per["n1"] == 0 || per["n2"] == 0 {
		t.Fatalf("split %v: one consumer got nothing", per)
	}
	t.Logf("split: %v", per)

	// c1 takes messages and dies without acking them: c2 gets them.
	publishConfirmed(t, b, q, ids("d", 6), nil)
	var taken []string
	for _, bt := range fetchUntil(t, c1, 1, 10) {
		taken = append(taken, batchIDs(bt)...)
	}
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	var got []string
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < 6 && time.Now().Before(deadline) {
		bs := fetchUntil(t, c2, 1, 10)
		got = append(got, batchIDs(bs...)...)
		ackAll(t, bs...)
	}
	if !sameSet(got, ids("d", 6)) {
		t.Fatalf("c2 got %v, want every d- message (c1 had taken %v unacked)", got, taken)
	}
}

// Every connection goes through the node's dialer: refused there, Open fails with the
// dialer's BlockedError and nothing is consumed.
func TestSourceRefusingDialer(t *testing.T) {
	b := sharedBroker(t)
	q := queue(t, b, false)
	publishConfirmed(t, b, q, ids("r", 1), nil)
	refuse := brokertest.Refusing()
	typ := NewSource(source.Env{Dial: refuse.Dial, InternalDial: refuse.Dial})
	norm, errs := typ.Check(b.sourceSettings(t, q, 0))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	_, err := typ.Open(context.Background(), source.Target{SourceID: "s", Settings: norm})
	var be *httpsend.BlockedError
	if !errors.As(err, &be) {
		t.Fatalf("Open: %v, want a BlockedError", err)
	}
	if strings.Contains(err.Error(), b.password) && b.password != "" && b.password != b.user {
		t.Errorf("error shows the password: %v", err)
	}
	if seen := refuse.Addrs(); len(seen) != 1 || seen[0] != b.addr {
		t.Errorf("dialer saw %v, want one dial of %s", seen, b.addr)
	}
	// The production guard (loopback not allowed) refuses the shared broker's 127.0.0.1.
	guard := httpsend.New(httpsend.Config{})
	typ2 := NewSource(source.Env{Dial: guard.DialContext, InternalDial: guard.DialContext})
	if _, err := typ2.Open(context.Background(), source.Target{SourceID: "s", Settings: norm}); !errors.As(err, &be) {
		t.Fatalf("Open through the guard: %v, want a BlockedError", err)
	}
	if n := ready(t, b, q); n != 1 {
		t.Fatalf("queue holds %d ready, want 1 (nothing consumed)", n)
	}
}

// A missing queue is never declared: Open fails, naming it.
func TestSourceMissingQueue(t *testing.T) {
	b := sharedBroker(t)
	typ, _ := newSource(t)
	q := brokertest.UniqueName("herald-test-missing")
	norm, errs := typ.Check(b.sourceSettings(t, q, 0))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	_, err := typ.Open(context.Background(), source.Target{SourceID: "s", Settings: norm})
	if err == nil || !strings.Contains(err.Error(), "has no queue \""+q+"\"") {
		t.Fatalf("Open: %v, want no such queue", err)
	}
	if _, err := b.client(t).QueueDeclarePassive(q, false, false, false, false, nil); err == nil {
		t.Fatalf("queue %s exists: Open declared it", q)
	}
}

// A private node stopped mid-run: Fetch fails; after a restart a new consumer from Open works;
// nothing acked comes back and nothing unacked is lost (durable queue, persistent messages).
func TestSourceBrokerRestart(t *testing.T) {
	sharedBroker(t) // the broker tests run only when HERALD_TEST_AMQP_URL is set
	n := startPrivateNode(t, 1<<20)
	b := n.brokerFor()
	q := queue(t, b, true)
	const total = 30
	publishConfirmed(t, b, q, ids("s", total), nil)
	typ, d := newSource(t)
	c := openConsumer(t, typ, b.sourceSettings(t, q, 10), "n1")

	// Some acked, one batch (at least) held unacked when the broker stops.
	bs := fetchUntil(t, c, 8, 4)
	ackAll(t, bs...)
	ackedIDs := batchIDs(bs...)
	unacked := fetchUntil(t, c, 1, 4)

	n.stop()
	var fetchErr error
	deadline := time.Now().Add(60 * time.Second)
	for fetchErr == nil && time.Now().Before(deadline) {
		var bt source.Batch
		bt, fetchErr = c.Fetch(context.Background(), 4, time.Second)
		if fetchErr == nil && len(bt.Messages()) > 0 {
			unacked = append(unacked, bt) // still buffered before the stop
		}
	}
	if fetchErr == nil {
		t.Fatal("Fetch kept succeeding with the broker stopped")
	}
	t.Logf("Fetch with the broker stopped: %v", fetchErr)
	if err := unacked[0].Ack(context.Background()); err == nil {
		t.Fatal("Ack succeeded on a lost connection")
	}
	_ = c.Close()

	norm, errs := typ.Check(b.sourceSettings(t, q, 10))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if _, err := typ.Open(context.Background(), source.Target{SourceID: "s", Settings: norm}); err == nil {
		t.Fatal("Open succeeded with the broker stopped")
	}

	n.start()
	var c2 source.Consumer
	deadline = time.Now().Add(60 * time.Second)
	for c2 == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cc, err := typ.Open(ctx, source.Target{SourceID: "s", Settings: norm})
		cancel()
		if err == nil {
			c2 = cc
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Open after the restart: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	defer c2.Close()
	// Fetch and ack as they come (prefetch 10 holds back the rest until acks).
	var rest []source.Batch
	for len(batchIDs(rest...)) < total-len(ackedIDs) {
		bs := fetchUntil(t, c2, 1, 10)
		ackAll(t, bs...)
		rest = append(rest, bs...)
	}
	expectEmpty(t, c2, 2*time.Second)
	var want []string
	isAcked := map[string]bool{}
	for _, id := range ackedIDs {
		isAcked[id] = true
	}
	for _, id := range ids("s", total) {
		if !isAcked[id] {
			want = append(want, id)
		}
	}
	if !sameSet(batchIDs(rest...), want) {
		t.Fatalf("after the restart got %v, want the %d never acked %v", batchIDs(rest...), len(want), want)
	}
	if d.Dials() < 3 {
		t.Fatalf("%d dials, want one per Open", d.Dials())
	}
}
