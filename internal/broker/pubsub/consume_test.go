package pubsub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gpubsub "cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"

	"github.com/heraldhq/herald/internal/broker/brokertest"
	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/httpsend"
	"github.com/heraldhq/herald/internal/source"
)

// The source tests run against pstest, Google's in-memory Pub/Sub server from the library's
// module. pstest's clock can be moved (SetTimeNowFunc): the tests move it past the ack deadline
// to see what Pub/Sub redelivers, instead of waiting for it.

// clock is a pstest clock that can be moved forward.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time             { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration)    { c.offset.Add(int64(d)) }
func (c *clock) install(srv *pstest.Server) { srv.SetTimeNowFunc(c.now) }

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

// createSub creates a topic and a subscription on it with a 60s ack deadline; it returns the
// topic id and the subscription id.
func createSub(t testing.TB, admin *gpubsub.Client) (topic, sub string) {
	t.Helper()
	ctx := context.Background()
	s := suffix(t)
	topic, sub = "events-"+s, "herald-"+s
	if _, err := admin.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: "projects/" + testProject + "/topics/" + topic}); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	if _, err := admin.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: "projects/" + testProject + "/subscriptions/" + sub, Topic: "projects/" + testProject + "/topics/" + topic,
		AckDeadlineSeconds: 60,
	}); err != nil {
		t.Fatalf("create subscription: %v", err)
	}
	return topic, sub
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

func openConsumer(t testing.TB, st *SourceType, addr, sub string) source.Consumer {
	t.Helper()
	c, err := st.Open(ctxT(t), sourceTarget(t, st, map[string]any{"project": testProject, "endpoint": addr, "subscription": sub}))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func publish(srv *pstest.Server, topic string, n int) []string {
	ids := make([]string, n)
	for i := range n {
		ids[i] = srv.Publish("projects/"+testProject+"/topics/"+topic, fmt.Appendf(nil, `{"n":%d}`, i),
			map[string]string{"webhook-id": "msg_" + strconv.Itoa(i), "herald-event-type": "order.created"})
	}
	return ids
}

// fetchN fetches until n messages came (each batch at most limit), acknowledging every batch
// when ack is true.
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

func idsOf(ms []source.Message) []string {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	slices.Sort(ids)
	return ids
}

// expectNothing fetches for a while and fails if any message comes.
func expectNothing(t testing.TB, c source.Consumer, why string) {
	t.Helper()
	for range 3 {
		b, err := c.Fetch(ctxT(t), 10, 300*time.Millisecond)
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		if n := len(b.Messages()); n > 0 {
			t.Fatalf("%s: %d messages came (%v)", why, n, idsOf(b.Messages()))
		}
	}
}

func TestSourceFetchAckNak(t *testing.T) {
	srv, admin := server(t)
	var clk clock
	clk.install(srv)
	topic, sub := createSub(t, admin)
	st := newSourceType(t, source.Env{Dial: plainDial, InternalDial: plainDial})
	c := openConsumer(t, st, srv.Addr, sub)

	ids := publish(srv, topic, 3)
	got := fetchN(t, c, 3, 10, true)
	if !slices.Equal(idsOf(got), slices.Sorted(slices.Values(ids))) {
		t.Fatalf("ids %v, published %v", idsOf(got), ids)
	}
	for _, m := range got {
		if m.Subject != topic {
			t.Errorf("subject %q, want the topic %q", m.Subject, topic)
		}
		if m.Header["herald-event-type"][0] != "order.created" || !strings.HasPrefix(m.Header["webhook-id"][0], "msg_") {
			t.Errorf("header %v", m.Header)
		}
		if !strings.HasPrefix(string(m.Body), `{"n":`) {
			t.Errorf("body %q", m.Body)
		}
		if d := time.Since(m.Time); m.Time.IsZero() || d < -time.Minute || d > time.Minute {
			t.Errorf("time %v is not the publish time", m.Time)
		}
	}
	for _, id := range ids {
		if m := srv.Message(id); m.Acks != 1 {
			t.Errorf("message %s acknowledged %d times on the server, want 1", id, m.Acks)
		}
	}

	// Nak: the message comes back, with the same id.
	nakID := publish(srv, topic, 1)[0]
	b, err := c.Fetch(ctxT(t), 10, 5*time.Second)
	if err != nil || len(b.Messages()) != 1 || b.Messages()[0].ID != nakID {
		t.Fatalf("fetch the message to nak: %v %v", err, b)
	}
	if err := b.Nak(ctxT(t), 0); err != nil {
		t.Fatalf("nak: %v", err)
	}
	again := fetchN(t, c, 1, 10, true)
	if again[0].ID != nakID {
		t.Fatalf("after nak came %s, want %s again", again[0].ID, nakID)
	}
	if d := srv.Message(nakID).Deliveries; d != 2 {
		t.Fatalf("the nak'd message was delivered %d times, want 2", d)
	}

	// Long after the ack deadline, nothing acknowledged comes back.
	clk.advance(5 * time.Minute)
	expectNothing(t, c, "acknowledged messages after the ack deadline")
}

func TestSourceNakDelay(t *testing.T) {
	srv, admin := server(t)
	var clk clock
	clk.install(srv)
	topic, sub := createSub(t, admin)
	st := newSourceType(t, source.Env{Dial: plainDial})
	c := openConsumer(t, st, srv.Addr, sub)
	id := publish(srv, topic, 1)[0]
	b, err := c.Fetch(ctxT(t), 10, 5*time.Second)
	if err != nil || len(b.Messages()) != 1 {
		t.Fatalf("fetch: %v %v", err, b)
	}
	if err := b.Nak(ctxT(t), 2*time.Minute); err != nil {
		t.Fatalf("nak: %v", err)
	}
	// The subscription's ack deadline is 60s: the delay, not the deadline, holds it back.
	clk.advance(90 * time.Second)
	expectNothing(t, c, "a message nak'd with a 2 minute delay, 90s later")
	clk.advance(time.Minute)
	if got := fetchN(t, c, 1, 10, true); got[0].ID != id {
		t.Fatalf("after the delay came %s, want %s", got[0].ID, id)
	}
}

func TestSourceBoundedBatch(t *testing.T) {
	srv, admin := server(t)
	topic, sub := createSub(t, admin)
	st := newSourceType(t, source.Env{Dial: plainDial})
	c := openConsumer(t, st, srv.Addr, sub)
	ids := publish(srv, topic, 7)

	b, err := c.Fetch(ctxT(t), 3, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	first := b.Messages()
	if len(first) == 0 || len(first) > 3 {
		t.Fatalf("a batch of %d messages, limit 3", len(first))
	}
	// The server delivered only the batch: it keeps the rest.
	delivered := 0
	for _, id := range ids {
		delivered += srv.Message(id).Deliveries
	}
	if delivered != len(first) {
		t.Fatalf("the server delivered %d messages for a batch of %d", delivered, len(first))
	}
	// The rest goes to another consumer while the first batch is unsettled.
	other := openConsumer(t, st, srv.Addr, sub)
	rest := fetchN(t, other, 7-len(first), 3, true)
	all := append(idsOf(first), idsOf(rest)...)
	slices.Sort(all)
	if !slices.Equal(all, slices.Sorted(slices.Values(ids))) {
		t.Fatalf("got %v, published %v", all, ids)
	}
	if err := b.Ack(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

func TestSourceCompetingConsumers(t *testing.T) {
	srv, admin := server(t)
	topic, sub := createSub(t, admin)
	st := newSourceType(t, source.Env{Dial: plainDial})
	a := openConsumer(t, st, srv.Addr, sub)
	b := openConsumer(t, st, srv.Addr, sub)
	ids := publish(srv, topic, 10)

	// a holds a batch unsettled; b takes the others, never one of a's.
	ba, err := a.Fetch(ctxT(t), 4, 5*time.Second)
	if err != nil || len(ba.Messages()) == 0 {
		t.Fatalf("fetch a: %v", err)
	}
	gotB := fetchN(t, b, 10-len(ba.Messages()), 4, true)
	held := idsOf(ba.Messages())
	for _, m := range gotB {
		if slices.Contains(held, m.ID) {
			t.Fatalf("message %s went to both consumers", m.ID)
		}
	}
	if err := ba.Ack(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	all := append(held, idsOf(gotB)...)
	slices.Sort(all)
	if !slices.Equal(all, slices.Sorted(slices.Values(ids))) {
		t.Fatalf("got %v, published %v", all, ids)
	}
	// Two consumers share one pooled connection (same project, endpoint, credentials).
	if n := st.t.pool.Len(); n != 1 {
		t.Fatalf("%d pooled clients for two consumers of one server, want 1", n)
	}
}

func TestSourceDeadConsumerHandsOver(t *testing.T) {
	srv, admin := server(t)
	var clk clock
	clk.install(srv)
	topic, sub := createSub(t, admin)
	st := newSourceType(t, source.Env{Dial: plainDial})
	a := openConsumer(t, st, srv.Addr, sub)
	ids := publish(srv, topic, 3)
	got := fetchN(t, a, 3, 10, false)
	if err := a.Close(); err != nil { // dies with its messages unacknowledged
		t.Fatal(err)
	}
	b := openConsumer(t, st, srv.Addr, sub)
	expectNothing(t, b, "messages still within the dead consumer's ack deadline")
	clk.advance(2 * time.Minute)
	again := fetchN(t, b, 3, 10, true)
	if !slices.Equal(idsOf(again), idsOf(got)) || !slices.Equal(idsOf(got), slices.Sorted(slices.Values(ids))) {
		t.Fatalf("redelivered %v, first delivered %v, published %v: the ids must be stable", idsOf(again), idsOf(got), ids)
	}
}

func TestSourceServerRestart(t *testing.T) {
	addr := "127.0.0.1:" + strconv.Itoa(brokertest.FreePort(t))
	srv := pstest.NewServerWithAddress(addr)
	admin := adminClient(t, addr)
	topic, sub := createSub(t, admin)
	st := newSourceType(t, source.Env{Dial: plainDial})
	c := openConsumer(t, st, addr, sub)
	publish(srv, topic, 2)
	fetchN(t, c, 2, 10, true)

	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := c.Fetch(ctxT(t), 10, 500*time.Millisecond)
		if err != nil {
			var e *source.Error
			if !errors.As(err, &e) || e.Kind == destination.KindNoRoute || e.Kind == destination.KindBlocked {
				t.Fatalf("fetch while the server is down: %v", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("fetch kept succeeding while the server is down")
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Open(ctxT(t), sourceTarget(t, st, map[string]any{"project": testProject, "endpoint": addr, "subscription": sub})); err == nil {
		t.Fatal("open succeeded while the server is down")
	}

	// The same port again. pstest keeps everything in memory: the topic and the subscription
	// are created anew (a real Pub/Sub keeps them, and its unacknowledged messages).
	srv2 := pstest.NewServerWithAddress(addr)
	t.Cleanup(func() { _ = srv2.Close() })
	admin2 := adminClient(t, addr)
	if _, err := admin2.TopicAdminClient.CreateTopic(context.Background(), &pubsubpb.Topic{Name: "projects/" + testProject + "/topics/" + topic}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin2.SubscriptionAdminClient.CreateSubscription(context.Background(), &pubsubpb.Subscription{
		Name: "projects/" + testProject + "/subscriptions/" + sub, Topic: "projects/" + testProject + "/topics/" + topic, AckDeadlineSeconds: 60,
	}); err != nil {
		t.Fatal(err)
	}
	ids := publish(srv2, topic, 2)
	var c2 source.Consumer
	deadline = time.Now().Add(30 * time.Second)
	for {
		var err error
		c2, err = st.Open(ctxT(t), sourceTarget(t, st, map[string]any{"project": testProject, "endpoint": addr, "subscription": sub}))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("open after the restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(func() { _ = c2.Close() })
	got := fetchN(t, c2, 2, 10, true)
	if !slices.Equal(idsOf(got), slices.Sorted(slices.Values(ids))) {
		t.Fatalf("after the restart got %v, published %v", idsOf(got), ids)
	}
}

func TestSourceRefusingDialer(t *testing.T) {
	srv, admin := server(t)
	topic, sub := createSub(t, admin)
	publish(srv, topic, 1)
	var attempts atomic.Int64
	refuse := func(_ context.Context, _, addr string) (net.Conn, error) {
		attempts.Add(1)
		return nil, &httpsend.BlockedError{Host: addr, Addr: netip.MustParseAddr("127.0.0.1"), Reason: "loopback"}
	}
	st := newSourceType(t, source.Env{Dial: refuse, InternalDial: refuse})
	_, err := st.Open(ctxT(t), sourceTarget(t, st, map[string]any{"project": testProject, "endpoint": srv.Addr, "subscription": sub}))
	var e *source.Error
	if !errors.As(err, &e) || e.Kind != destination.KindBlocked {
		t.Fatalf("open through a refusing dialer: %v", err)
	}
	if attempts.Load() == 0 {
		t.Fatal("the guarded dialer was not used")
	}
	for _, m := range srv.Messages() {
		if m.Deliveries != 0 {
			t.Fatal("a message was delivered through a refused dialer")
		}
	}
}

func TestSourceInternalDialer(t *testing.T) {
	srv, admin := server(t)
	_, sub := createSub(t, admin)
	var internal atomic.Int64
	refuse := func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("the public dialer must not be used for an internal source")
	}
	st := newSourceType(t, source.Env{Dial: refuse, InternalDial: func(ctx context.Context, n, a string) (net.Conn, error) {
		internal.Add(1)
		return plainDial(ctx, n, a)
	}})
	tg := sourceTarget(t, st, map[string]any{"project": testProject, "endpoint": srv.Addr, "subscription": sub})
	tg.Internal = true
	c, err := st.Open(ctxT(t), tg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if internal.Load() == 0 {
		t.Fatal("the internal dialer was not used")
	}
}

func TestSourceNoSubscription(t *testing.T) {
	srv, _ := server(t)
	st := newSourceType(t, source.Env{Dial: plainDial})
	_, err := st.Open(ctxT(t), sourceTarget(t, st, map[string]any{"project": testProject, "endpoint": srv.Addr, "subscription": "missing-" + suffix(t)}))
	var e *source.Error
	if !errors.As(err, &e) || e.Kind != destination.KindNoRoute || !strings.Contains(e.Msg, "does not create") {
		t.Fatalf("open of a missing subscription: %v", err)
	}
}

func TestSourceCheck(t *testing.T) {
	st := newSourceType(t, source.Env{Dial: plainDial})
	if !slices.Equal(st.Secrets(), []string{"credentials_json"}) {
		t.Fatalf("secrets %v", st.Secrets())
	}
	norm, errs := st.Check(json.RawMessage(`{"project":"my-project","endpoint":"localhost:8085","subscription":"projects/my-project/subscriptions/orders-herald"}`))
	if errs != nil {
		t.Fatal(errs[0])
	}
	var s SourceSettings
	if err := json.Unmarshal(norm, &s); err != nil || s.Subscription != "orders-herald" {
		t.Fatalf("normalised %s", norm)
	}
	for _, tc := range []struct{ raw, field, msg string }{
		{`{"project":"my-project","endpoint":"localhost:8085"}`, "subscription", "is required"},
		{`{"project":"my-project","endpoint":"localhost:8085","subscription":"googsub"}`, "subscription", "goog"},
		{`{"project":"my-project","endpoint":"localhost:8085","subscription":"1x"}`, "subscription", "is not a subscription id"},
		{`{"project":"my-project","endpoint":"localhost:8085","subscription":"projects/other-project/subscriptions/abc"}`, "subscription", "names project"},
		{`{"endpoint":"localhost:8085","subscription":"abc"}`, "project", "is required"},
		{`{"project":"X","endpoint":"localhost:8085","subscription":"abc"}`, "project", "is not a Google Cloud project id"},
		{`{"project":"my-project","subscription":"abc"}`, "credentials_json", "is required"},
		{`{"project":"my-project","endpoint":"http://user:pw@localhost:8085","subscription":"abc"}`, "endpoint", "without a scheme"},
		{`{"project":"my-project","endpoint":"localhost:8085","subscription":"abc","credentials_json":"{}"}`, "credentials_json", "service account"},
		{`{"project":"my-project","endpoint":"localhost:8085","subscription":"abc","topic":"t"}`, "topic", "unknown setting"},
		{`{"project":"my-project","endpoint":"localhost:8085","subscription":5}`, "subscription", "must be a string"},
	} {
		_, errs := st.Check(json.RawMessage(tc.raw))
		found := false
		for _, e := range errs {
			if e.Field == tc.field && strings.Contains(e.Message, tc.msg) {
				found = true
			}
			if strings.Contains(e.Message, "pw") {
				t.Errorf("%s: an error echoes the credentials: %s", tc.raw, e.Message)
			}
		}
		if !found {
			t.Errorf("%s: want %s %q, got %v", tc.raw, tc.field, tc.msg, errs)
		}
	}
}
