package sqs

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/heraldhq/herald/internal/broker/brokertest"
	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/httpsend"
	"github.com/heraldhq/herald/internal/source"
)

func newSourceType(t testing.TB, env source.Env) *SourceType {
	t.Helper()
	st := NewSource(env)
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close source type: %v", err)
		}
	})
	return st
}

func plainDial(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

// createQueueVis creates a queue whose visibility timeout is vis seconds (goaws applies the
// queue's, not the one ReceiveMessage asks for).
func createQueueVis(t testing.TB, g *goaws, name string, vis int) string {
	t.Helper()
	if _, err := admin(g).CreateQueue(context.Background(), &awssqs.CreateQueueInput{
		QueueName: aws.String(name), Attributes: map[string]string{"VisibilityTimeout": strconv.Itoa(vis)},
	}); err != nil {
		t.Fatalf("create queue %s: %v", name, err)
	}
	return g.queueURL(name)
}

func sourceTarget(t testing.TB, st *SourceType, v map[string]any) source.Target {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	norm, errs := st.Check(raw)
	if errs != nil {
		t.Fatalf("check %s: %v", raw, errs[0])
	}
	return source.Target{SourceID: "src_" + suffix(t), TenantID: "t1", Group: "g", Member: "m", Settings: norm}
}

func openConsumer(t testing.TB, st *SourceType, g *goaws, q string) source.Consumer {
	t.Helper()
	c, err := st.Open(ctxT(t), sourceTarget(t, st, cfg(g, q)))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// sendN sends n signed messages through the SQS destination type; it returns their event ids.
func sendN(t testing.TB, g *goaws, q string, n int) []string {
	t.Helper()
	typ := newType(t, destination.Env{Dial: plainDial})
	s := open(t, typ, cfg(g, q), false)
	ids := make([]string, n)
	for i := range n {
		ids[i] = "msg_" + suffix(t)
		if out := s.Send(ctxT(t), brokertest.SignedMessage(t, ids[i], "order.created", []byte(`{"n":`+strconv.Itoa(i)+`}`))); out.Class != destination.Success {
			t.Fatalf("send: %+v", out)
		}
	}
	return ids
}

func fetchN(t testing.TB, c source.Consumer, n, limit int, ack bool) []source.Message {
	t.Helper()
	var got []source.Message
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < n {
		b, err := c.Fetch(ctxT(t), limit, time.Second)
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		if len(b.Messages()) > limit {
			t.Fatalf("a batch of %d messages, limit %d", len(b.Messages()), limit)
		}
		got = append(got, b.Messages()...)
		if ack {
			if err := b.Ack(ctxT(t)); err != nil {
				t.Fatalf("ack: %v", err)
			}
		}
		if len(got) < n && time.Now().After(deadline) {
			t.Fatalf("fetched %d messages, want %d", len(got), n)
		}
	}
	return got
}

func msgIDs(ms []source.Message) []string {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	slices.Sort(ids)
	return ids
}

func eventIDs(ms []source.Message) []string {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.Header["webhook-id"][0]
	}
	slices.Sort(ids)
	return ids
}

// expectNothing fetches for about d and fails if any message comes.
func expectNothing(t testing.TB, c source.Consumer, d time.Duration, why string) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		b, err := c.Fetch(ctxT(t), 10, time.Second)
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		if n := len(b.Messages()); n > 0 {
			t.Fatalf("%s: %d messages came (%v)", why, n, msgIDs(b.Messages()))
		}
	}
}

func TestSourceFetchAckNak(t *testing.T) {
	g := startGoaws(t, brokertest.FreePort(t))
	name := "events-" + suffix(t)
	q := createQueueVis(t, g, name, 1)
	st := newSourceType(t, source.Env{Dial: plainDial, InternalDial: plainDial})
	c := openConsumer(t, st, g, q)

	sent := sendN(t, g, q, 3)
	got := fetchN(t, c, 3, 10, true)
	if !slices.Equal(eventIDs(got), slices.Sorted(slices.Values(sent))) {
		t.Fatalf("event ids %v, sent %v", eventIDs(got), sent)
	}
	for _, m := range got {
		if m.Subject != name || m.ID == "" || m.Header["herald-event-type"][0] != "order.created" ||
			!strings.HasPrefix(m.Header["webhook-signature"][0], "v1,") || !strings.HasPrefix(string(m.Body), `{"n":`) {
			t.Errorf("message %+v", m)
		}
		if d := time.Since(m.Time); m.Time.IsZero() || d < -time.Minute || d > time.Minute {
			t.Errorf("time %v", m.Time)
		}
	}
	// Deleted messages never come back, well past the visibility timeout (1s).
	expectNothing(t, c, 3*time.Second, "deleted messages")

	// Nak at once: the message comes back with the same id.
	sendN(t, g, q, 1)
	b, err := c.Fetch(ctxT(t), 10, 5*time.Second)
	if err != nil || len(b.Messages()) != 1 {
		t.Fatalf("fetch: %v %v", err, b)
	}
	first := b.Messages()[0]
	if err := b.Nak(ctxT(t), 0); err != nil {
		t.Fatalf("nak: %v", err)
	}
	again := fetchN(t, c, 1, 10, true)
	if again[0].ID != first.ID {
		t.Fatalf("after nak came %s, want %s again", again[0].ID, first.ID)
	}
}

func TestSourceNakDelay(t *testing.T) {
	g := startGoaws(t, brokertest.FreePort(t))
	q := createQueueVis(t, g, "events-"+suffix(t), 1)
	st := newSourceType(t, source.Env{Dial: plainDial})
	c := openConsumer(t, st, g, q)
	sendN(t, g, q, 1)
	b, err := c.Fetch(ctxT(t), 10, 5*time.Second)
	if err != nil || len(b.Messages()) != 1 {
		t.Fatalf("fetch: %v %v", err, b)
	}
	start := time.Now()
	if err := b.Nak(ctxT(t), 3*time.Second); err != nil {
		t.Fatal(err)
	}
	// The queue's visibility timeout is 1s: the delay, not the timeout, holds it back.
	expectNothing(t, c, 2*time.Second, "a message nak'd for 3s, within 2s")
	got := fetchN(t, c, 1, 10, true)
	if got[0].ID != b.Messages()[0].ID {
		t.Fatalf("came %s, want %s", got[0].ID, b.Messages()[0].ID)
	}
	if time.Since(start) < 3*time.Second {
		t.Fatalf("came back after %v, before the 3s delay", time.Since(start))
	}
}

func TestSourceBoundedBatchAndRequests(t *testing.T) {
	g := startGoaws(t, brokertest.FreePort(t))
	q := createQueueVis(t, g, "events-"+suffix(t), 30)
	rec := &recorder{}
	st := newSourceType(t, source.Env{Dial: rec.dial})
	v := cfg(g, q)
	v["visibility_timeout"] = 45
	c, err := st.Open(ctxT(t), sourceTarget(t, st, v))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sent := sendN(t, g, q, 14)

	b, err := c.Fetch(ctxT(t), 3, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	first := b.Messages()
	if len(first) == 0 || len(first) > 3 {
		t.Fatalf("a batch of %d messages, limit 3", len(first))
	}
	// The rest stays in the queue: another consumer takes it while the batch is unsettled, in
	// batches larger than one ReceiveMessage call.
	other, err := st.Open(ctxT(t), sourceTarget(t, st, v))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	big, err := other.Fetch(ctxT(t), 12, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// goaws answers a ReceiveMessage with every visible message up to the number asked: a batch
	// of 12 takes two calls (10 + 2).
	if want := min(12, 14-len(first)); len(big.Messages()) != want {
		t.Fatalf("a batch of %d messages with %d waiting, limit 12", len(big.Messages()), 14-len(first))
	}
	if err := big.Ack(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	rest := append(big.Messages(), fetchN(t, other, 14-len(first)-len(big.Messages()), 12, true)...)
	all := append(eventIDs(first), eventIDs(rest)...)
	slices.Sort(all)
	if !slices.Equal(all, slices.Sorted(slices.Values(sent))) {
		t.Fatalf("got %v, sent %v", all, sent)
	}
	if err := b.Ack(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// What went on the wire: at most 10 per ReceiveMessage, the wait in seconds, the
	// visibility timeout of the settings.
	receives := 0
	for _, f := range rec.forms(t) {
		if f.Get("Action") != "ReceiveMessage" {
			continue
		}
		receives++
		n, _ := strconv.Atoi(f.Get("MaxNumberOfMessages"))
		if n < 1 || n > 10 {
			t.Errorf("MaxNumberOfMessages=%q", f.Get("MaxNumberOfMessages"))
		}
		if f.Get("VisibilityTimeout") != "45" {
			t.Errorf("VisibilityTimeout=%q, want 45", f.Get("VisibilityTimeout"))
		}
		if w := f.Get("WaitTimeSeconds"); w != "5" && w != "1" && w != "0" && w != "" {
			t.Errorf("WaitTimeSeconds=%q", w)
		}
	}
	if receives == 0 {
		t.Fatal("no ReceiveMessage recorded")
	}
}

func TestSourceCompetingConsumers(t *testing.T) {
	g := startGoaws(t, brokertest.FreePort(t))
	q := createQueueVis(t, g, "events-"+suffix(t), 30)
	st := newSourceType(t, source.Env{Dial: plainDial})
	a := openConsumer(t, st, g, q)
	bc := openConsumer(t, st, g, q)
	sent := sendN(t, g, q, 10)
	ba, err := a.Fetch(ctxT(t), 4, 5*time.Second)
	if err != nil || len(ba.Messages()) == 0 {
		t.Fatalf("fetch a: %v", err)
	}
	gotB := fetchN(t, bc, 10-len(ba.Messages()), 4, true)
	held := msgIDs(ba.Messages())
	for _, m := range gotB {
		if slices.Contains(held, m.ID) {
			t.Fatalf("message %s went to both consumers", m.ID)
		}
	}
	if err := ba.Ack(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	all := append(eventIDs(ba.Messages()), eventIDs(gotB)...)
	slices.Sort(all)
	if !slices.Equal(all, slices.Sorted(slices.Values(sent))) {
		t.Fatalf("got %v, sent %v", all, sent)
	}
}

func TestSourceDeadConsumerHandsOver(t *testing.T) {
	g := startGoaws(t, brokertest.FreePort(t))
	q := createQueueVis(t, g, "events-"+suffix(t), 2)
	st := newSourceType(t, source.Env{Dial: plainDial})
	a := openConsumer(t, st, g, q)
	sendN(t, g, q, 3)
	got := fetchN(t, a, 3, 10, false)
	if err := a.Close(); err != nil { // dies without deleting
		t.Fatal(err)
	}
	b := openConsumer(t, st, g, q)
	again := fetchN(t, b, 3, 10, true)
	if !slices.Equal(msgIDs(again), msgIDs(got)) {
		t.Fatalf("redelivered %v, first delivered %v: the ids must be stable", msgIDs(again), msgIDs(got))
	}
}

func TestSourceManyHeadersUnpacked(t *testing.T) {
	g := startGoaws(t, brokertest.FreePort(t))
	q := createQueueVis(t, g, "events-"+suffix(t), 30)
	typ := newType(t, destination.Env{Dial: plainDial})
	s := open(t, typ, cfg(g, q), false)
	m := brokertest.SignedMessage(t, "msg_"+suffix(t), "order.created", []byte(`{}`))
	for i := range 12 {
		m.Header.Set("x-extra-"+strconv.Itoa(i), "v"+strconv.Itoa(i))
	}
	if out := s.Send(ctxT(t), m); out.Class != destination.Success {
		t.Fatalf("%+v", out)
	}
	st := newSourceType(t, source.Env{Dial: plainDial})
	got := fetchN(t, openConsumer(t, st, g, q), 1, 10, true)[0]
	for i := range 12 {
		k := "x-extra-" + strconv.Itoa(i)
		if v := got.Header[k]; len(v) != 1 || v[0] != "v"+strconv.Itoa(i) {
			t.Errorf("header %s = %v", k, v)
		}
	}
	if _, packed := got.Header[HeadersAttribute]; packed {
		t.Error("the packed attribute was not unpacked")
	}
	if got.Header["webhook-id"][0] != m.ID {
		t.Errorf("webhook-id %v", got.Header["webhook-id"])
	}
}

func TestSourceServerRestart(t *testing.T) {
	port := brokertest.FreePort(t)
	g := startGoaws(t, port)
	name := "events-" + suffix(t)
	q := createQueueVis(t, g, name, 30)
	st := newSourceType(t, source.Env{Dial: plainDial})
	c := openConsumer(t, st, g, q)
	sendN(t, g, q, 2)
	fetchN(t, c, 2, 10, true)

	g.stop()
	// A kept-alive connection may fail first (broken pipe, reset), then dials are refused.
	connKinds := []string{destination.KindConnRefused, destination.KindConnReset, destination.KindConnFailed, destination.KindTimeout}
	for i := range 2 {
		_, err := c.Fetch(ctxT(t), 10, time.Second)
		var e *source.Error
		if !errors.As(err, &e) || !slices.Contains(connKinds, e.Kind) {
			t.Fatalf("fetch %d while the server is down: %v (kind %v)", i, err, e)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Open(ctxT(t), sourceTarget(t, st, cfg(g, q))); err == nil {
		t.Fatal("open succeeded while the server is down")
	}

	g2 := startGoaws(t, port) // goaws keeps its queues in memory: created anew
	createQueueVis(t, g2, name, 30)
	sent := sendN(t, g2, q, 2)
	c2 := openConsumer(t, st, g2, q)
	got := fetchN(t, c2, 2, 10, true)
	if !slices.Equal(eventIDs(got), slices.Sorted(slices.Values(sent))) {
		t.Fatalf("after the restart got %v, sent %v", eventIDs(got), sent)
	}
}

func TestSourceRefusingDialer(t *testing.T) {
	g := startGoaws(t, brokertest.FreePort(t))
	q := createQueueVis(t, g, "events-"+suffix(t), 30)
	sendN(t, g, q, 1)
	var attempts atomic.Int64
	refuse := func(_ context.Context, _, addr string) (net.Conn, error) {
		attempts.Add(1)
		return nil, &httpsend.BlockedError{Host: addr, Addr: netip.MustParseAddr("127.0.0.1"), Reason: "loopback"}
	}
	st := newSourceType(t, source.Env{Dial: refuse, InternalDial: refuse})
	_, err := st.Open(ctxT(t), sourceTarget(t, st, cfg(g, q)))
	var e *source.Error
	if !errors.As(err, &e) || e.Kind != destination.KindBlocked {
		t.Fatalf("open through a refusing dialer: %v", err)
	}
	if attempts.Load() == 0 {
		t.Fatal("the guarded dialer was not used")
	}
	// The message is still there, never received.
	if got := receive(t, g, q, 1); len(got) != 1 {
		t.Fatal("message lost")
	}
}

func TestSourceNoQueue(t *testing.T) {
	g := startGoaws(t, brokertest.FreePort(t))
	st := newSourceType(t, source.Env{Dial: plainDial})
	_, err := st.Open(ctxT(t), sourceTarget(t, st, cfg(g, g.queueURL("missing-"+suffix(t)))))
	var e *source.Error
	if !errors.As(err, &e) || e.Kind != destination.KindNoRoute {
		t.Fatalf("open of a missing queue: %v", err)
	}
}

func TestSourceCheck(t *testing.T) {
	st := newSourceType(t, source.Env{Dial: plainDial})
	if !slices.Equal(st.Secrets(), []string{"access_key_id", "secret_access_key"}) {
		t.Fatalf("secrets %v", st.Secrets())
	}
	base := `"queue_url":"https://sqs.us-east-1.amazonaws.com/123456789012/orders","region":"us-east-1","access_key_id":"AKID","secret_access_key":"s3cr3t"`
	norm, errs := st.Check(json.RawMessage(`{` + base + `}`))
	if errs != nil {
		t.Fatal(errs[0])
	}
	var s SourceSettings
	if err := json.Unmarshal(norm, &s); err != nil || s.VisibilityTimeout != 30 {
		t.Fatalf("normalised %s", norm)
	}
	for _, tc := range []struct{ raw, field, msg string }{
		{`{` + base + `,"visibility_timeout":-1}`, "visibility_timeout", "must be from 1 to 43200"},
		{`{` + base + `,"visibility_timeout":43201}`, "visibility_timeout", "must be from 1 to 43200"},
		{`{` + base + `,"visibility_timeout":"30s"}`, "visibility_timeout", "must be a whole number of seconds"},
		{`{` + base + `,"group_id":"x"}`, "group_id", "unknown setting"},
		{`{"region":"us-east-1","access_key_id":"AKID","secret_access_key":"s"}`, "queue_url", "is required"},
		{`{"queue_url":"https://user:s3cr3t@sqs.us-east-1.amazonaws.com/123456789012/orders","region":"us-east-1","access_key_id":"AKID","secret_access_key":"s"}`, "queue_url", "must not carry credentials"},
		{`{"queue_url":"https://sqs.us-east-1.amazonaws.com/123456789012/orders","region":"mars","access_key_id":"AKID","secret_access_key":"s"}`, "region", "is not an AWS region"},
		{`{"queue_url":"https://sqs.us-east-1.amazonaws.com/123456789012/orders","region":"us-east-1","secret_access_key":"s"}`, "access_key_id", "sqs:ReceiveMessage"},
		{`{"queue_url":"https://sqs.us-east-1.amazonaws.com/123456789012/orders","region":"us-east-1","access_key_id":"AKID"}`, "secret_access_key", "is required"},
		{`{"queue_url":"https://sqs.us-east-1.amazonaws.com/123456789012/orders","region":5,"access_key_id":"AKID","secret_access_key":"s"}`, "region", "must be a string"},
	} {
		_, errs := st.Check(json.RawMessage(tc.raw))
		found := false
		for _, e := range errs {
			if e.Field == tc.field && strings.Contains(e.Message, tc.msg) {
				found = true
			}
			if v, _ := json.Marshal(e); strings.Contains(string(v), "s3cr3t") {
				t.Errorf("%s: an error echoes a secret: %s", tc.raw, v)
			}
		}
		if !found {
			t.Errorf("%s: want %s %q, got %v", tc.raw, tc.field, tc.msg, errs)
		}
	}
}
