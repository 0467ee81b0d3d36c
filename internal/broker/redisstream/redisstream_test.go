package redisstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/heraldhq/herald/internal/broker/brokertest"
	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/httpsend"
)

func ctxT(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// entryHeader rebuilds the Standard Webhooks headers from a stream entry's fields, as a consumer
// does.
func entryHeader(v map[string]any) http.Header {
	h := http.Header{}
	for k, val := range v {
		if k == FieldBody {
			continue
		}
		h.Set(k, fmt.Sprint(val))
	}
	return h
}

func TestDeliveryVerifiedByConsumer(t *testing.T) {
	addr, db := sharedRedis(t)
	ctx := ctxT(t)
	cons := consumer(t, addr, db)
	stream := brokertest.UniqueName("herald-test-orders")
	t.Cleanup(func() { cons.Del(context.Background(), stream) })

	typ := newType(t, brokertest.NewDialer(), 0, 0)
	s := open(t, typ, map[string]any{"address": addr, "db": db, "stream": stream})
	body := []byte(`{"type":"order.created","timestamp":"2024-05-01T12:00:00Z","data":{"id":"ord_1","total":42}}`)
	m := brokertest.Message(t, "order.created", body)

	o := s.Send(ctx, m)
	if o.Class != destination.Success || o.ErrorKind != "" || o.Error != "" {
		t.Fatalf("Send: %+v", o)
	}
	if o.Latency <= 0 {
		t.Errorf("Latency = %v, want > 0", o.Latency)
	}

	entries, err := cons.XRange(ctx, stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("stream has %d entries, want 1", len(entries))
	}
	e := entries[0]
	if want := "stream " + stream + " id " + e.ID; string(o.Response) != want {
		t.Errorf("Response = %q, want %q", o.Response, want)
	}
	if got := e.Values[FieldBody]; got != string(body) {
		t.Errorf("body = %q, want %q", got, body)
	}
	if got := e.Values["herald-event-type"]; got != "order.created" {
		t.Errorf("herald-event-type = %v", got)
	}
	for _, k := range []string{"webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "traceparent"} {
		if got := e.Values[k]; got != m.Header.Get(k) {
			t.Errorf("field %s = %v, want %q", k, got, m.Header.Get(k))
		}
	}

	// The consumer verifies exactly as a webhook receiver does.
	wh, err := standardwebhooks.NewWebhook(brokertest.Secret)
	if err != nil {
		t.Fatal(err)
	}
	got := []byte(e.Values[FieldBody].(string))
	if err := wh.Verify(got, entryHeader(e.Values)); err != nil {
		t.Fatalf("consumer's verification failed: %v", err)
	}
	// And a body altered on the way would not verify.
	if err := wh.Verify(append(bytes.Clone(got), ' '), entryHeader(e.Values)); err == nil {
		t.Fatal("an altered body verified")
	}
}

func TestMaxLenTrimsTheStream(t *testing.T) {
	addr, db := sharedRedis(t)
	ctx := ctxT(t)
	cons := consumer(t, addr, db)
	stream := brokertest.UniqueName("herald-test-trim")
	t.Cleanup(func() { cons.Del(context.Background(), stream) })

	typ := newType(t, brokertest.NewDialer(), 0, 0)
	s := open(t, typ, map[string]any{"address": addr, "db": db, "stream": stream, "maxlen": 10})
	const n = 350
	for i := range n {
		if o := s.Send(ctx, brokertest.Message(t, "tick", fmt.Appendf(nil, `{"i":%d}`, i))); o.Class != destination.Success {
			t.Fatalf("Send %d: %+v", i, o)
		}
	}
	l, err := cons.XLen(ctx, stream).Result()
	if err != nil {
		t.Fatal(err)
	}
	// MAXLEN ~ trims whole nodes of the stream: about maxlen entries are kept, never fewer.
	if l >= n || l < 10 {
		t.Fatalf("XLEN = %d after %d adds with maxlen ~10: want the stream trimmed, keeping at least 10", l, n)
	}
}

func TestWrongTypeIsNoRoute(t *testing.T) {
	addr, db := sharedRedis(t)
	ctx := ctxT(t)
	cons := consumer(t, addr, db)
	key := brokertest.UniqueName("herald-test-string")
	t.Cleanup(func() { cons.Del(context.Background(), key) })
	if err := cons.Set(ctx, key, "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	typ := newType(t, brokertest.NewDialer(), 0, 0)
	s := open(t, typ, map[string]any{"address": addr, "db": db, "stream": key})
	o := s.Send(ctx, brokertest.Message(t, "x", []byte(`{}`)))
	if err := outcomeErr(o, destination.Permanent, destination.KindNoRoute); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(o.Error, key) || !strings.Contains(o.Error, "not a stream") {
		t.Errorf("Error = %q: want the key named and why", o.Error)
	}
	if got := cons.Get(ctx, key).Val(); got != "not a stream" {
		t.Errorf("the key was changed: %q", got)
	}
}

func TestNoSuchDatabaseIsNoRoute(t *testing.T) {
	addr, _ := sharedRedis(t)
	typ := newType(t, brokertest.NewDialer(), 0, 0)
	s := open(t, typ, map[string]any{"address": addr, "db": 100000, "stream": brokertest.UniqueName("herald-test")})
	o := s.Send(ctxT(t), brokertest.Message(t, "x", []byte(`{}`)))
	if err := outcomeErr(o, destination.Permanent, destination.KindNoRoute); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(o.Error, "db") {
		t.Errorf("Error = %q: want the db setting named", o.Error)
	}
}

func TestTooLarge(t *testing.T) {
	srv := startPrivateRedis(t, "--proto-max-bulk-len", "1mb")
	typ := newType(t, brokertest.NewDialer(), 0, 0)
	stream := brokertest.UniqueName("herald-test-large")
	s := open(t, typ, map[string]any{"address": srv.addr(), "stream": stream})
	ctx := ctxT(t)
	big := bytes.Repeat([]byte("x"), 2<<20)
	o := s.Send(ctx, brokertest.Message(t, "big", big))
	if err := outcomeErr(o, destination.Permanent, destination.KindTooLarge); err != nil {
		t.Fatal(err)
	}
	// The connection is usable again for a message of a normal size.
	brokertest.Eventually(t, 15*time.Second, func() error {
		return outcomeErr(s.Send(ctx, brokertest.Message(t, "small", []byte(`{}`))), destination.Success, "")
	})
	cons := consumer(t, srv.addr(), 0)
	if n := cons.XLen(ctx, stream).Val(); n != 1 {
		t.Fatalf("XLEN = %d, want 1 (the large message must not be in the stream)", n)
	}
}

func TestDenied(t *testing.T) {
	srv := startPrivateRedis(t, "--requirepass", "right-password")
	ctx := ctxT(t)
	admin := redis.NewClient(&redis.Options{Addr: srv.addr(), Password: "right-password", Protocol: 2})
	t.Cleanup(func() { _ = admin.Close() })
	// A user who may read but not XADD.
	if err := admin.Do(ctx, "ACL", "SETUSER", "reader", "on", ">reader-password", "~*", "+@read", "+ping").Err(); err != nil {
		t.Fatal(err)
	}
	typ := newType(t, brokertest.NewDialer(), 0, 0)
	stream := brokertest.UniqueName("herald-test-acl")

	cases := []struct {
		name     string
		settings map[string]any
	}{
		{"no password", map[string]any{"address": srv.addr(), "stream": stream}},
		{"wrong password", map[string]any{"address": srv.addr(), "stream": stream, "password": "wrong-password"}},
		{"wrong user", map[string]any{"address": srv.addr(), "stream": stream, "username": "nobody", "password": "right-password"}},
		{"no permission", map[string]any{"address": srv.addr(), "stream": stream, "username": "reader", "password": "reader-password"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := open(t, typ, c.settings)
			o := s.Send(ctx, brokertest.Message(t, "x", []byte(`{}`)))
			if err := outcomeErr(o, destination.Permanent, destination.KindDenied); err != nil {
				t.Fatal(err)
			}
			for _, secret := range []string{"right-password", "wrong-password", "reader-password"} {
				if strings.Contains(o.Error, secret) {
					t.Fatalf("Error holds a password: %q", o.Error)
				}
			}
		})
	}
	s := open(t, typ, map[string]any{"address": srv.addr(), "stream": stream, "password": "right-password"})
	if err := outcomeErr(s.Send(ctx, brokertest.Message(t, "x", []byte(`{}`))), destination.Success, ""); err != nil {
		t.Fatal(err)
	}
}

func TestOutOfMemoryIsBusy(t *testing.T) {
	srv := startPrivateRedis(t, "--maxmemory", "1", "--maxmemory-policy", "noeviction")
	typ := newType(t, brokertest.NewDialer(), 0, 0)
	s := open(t, typ, map[string]any{"address": srv.addr(), "stream": brokertest.UniqueName("herald-test-oom")})
	o := s.Send(ctxT(t), brokertest.Message(t, "x", []byte(`{}`)))
	if err := outcomeErr(o, destination.Retryable, destination.KindBrokerBusy); err != nil {
		t.Fatal(err)
	}
}

func TestBrokerRestartedMidStream(t *testing.T) {
	srv := startPrivateRedis(t)
	ctx := ctxT(t)
	typ := newType(t, brokertest.NewDialer(), 0, 0)
	stream := brokertest.UniqueName("herald-test-restart")
	s := open(t, typ, map[string]any{"address": srv.addr(), "stream": stream})

	for i := range 5 {
		if err := outcomeErr(s.Send(ctx, brokertest.Message(t, "before", fmt.Appendf(nil, `{"i":%d}`, i))), destination.Success, ""); err != nil {
			t.Fatalf("before the restart: %v", err)
		}
	}
	srv.stop()
	for i := range 3 {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		o := s.Send(actx, brokertest.Message(t, "during", []byte(`{}`)))
		cancel()
		if o.Class != destination.Retryable {
			t.Fatalf("attempt %d during the outage: %+v, want Retryable", i, o)
		}
		if o.Error == "" || o.ErrorKind == "" {
			t.Fatalf("attempt %d during the outage has no error: %+v", i, o)
		}
	}
	srv.start() // same port, empty: it was started with --save ""
	var ok int
	brokertest.Eventually(t, 20*time.Second, func() error {
		o := s.Send(ctx, brokertest.Message(t, "after", []byte(`{}`)))
		if o.Class != destination.Success {
			return fmt.Errorf("after the restart: %s/%s %s", o.Class, o.ErrorKind, o.Error)
		}
		ok++
		return nil
	})
	for range 5 {
		if err := outcomeErr(s.Send(ctx, brokertest.Message(t, "after", []byte(`{}`))), destination.Success, ""); err != nil {
			t.Fatalf("after the restart: %v", err)
		}
		ok++
	}
	if n := consumer(t, srv.addr(), 0).XLen(ctx, stream).Val(); n != int64(ok) {
		t.Fatalf("XLEN = %d after the restart, want the %d acknowledged messages", n, ok)
	}
}

func TestRefusingDialerBlocks(t *testing.T) {
	addr, db := sharedRedis(t)
	// The real guard without --dev refuses loopback: every dial is recorded, and refused.
	rec := brokertest.Through(httpsend.New(httpsend.Config{}).DialContext)
	typ := newType(t, rec, 0, 0)
	stream := brokertest.UniqueName("herald-test-blocked")
	s := open(t, typ, map[string]any{"address": addr, "db": db, "stream": stream})
	m := brokertest.Message(t, "x", []byte(`{}`))
	o := s.Send(ctxT(t), m)
	if err := outcomeErr(o, destination.Permanent, destination.KindBlocked); err != nil {
		t.Fatal(err)
	}
	if dials, open := rec.Counts(); dials == 0 || open != 0 {
		t.Fatalf("dials %d, open %d: want the dial attempted through the guard and refused", dials, open)
	}
	o = s.SendBatch(ctxT(t), []*destination.Message{m, m})
	if err := outcomeErr(o, destination.Permanent, destination.KindBlocked); err != nil {
		t.Fatalf("batch: %v", err)
	}
	if n := consumer(t, addr, db).Exists(ctxT(t), stream).Val(); n != 0 {
		t.Fatal("something reached the stream")
	}

	// A dialer of the node's own returning a *BlockedError is classified the same way.
	var tried []string
	blocking := func(_ context.Context, network, a string) (net.Conn, error) {
		tried = append(tried, a)
		return nil, &httpsend.BlockedError{Host: "redis.example", Reason: "loopback"}
	}
	typ2 := New(destination.Env{Dial: blocking})
	t.Cleanup(func() { _ = typ2.Close() })
	s2 := open(t, typ2, map[string]any{"address": "redis.example:6379", "stream": stream})
	o = s2.Send(ctxT(t), m)
	if err := outcomeErr(o, destination.Permanent, destination.KindBlocked); err != nil {
		t.Fatal(err)
	}
	if len(tried) != 1 || tried[0] != "redis.example:6379" {
		t.Fatalf("dials %v, want one to redis.example:6379", tried)
	}
}

func TestInternalEndpointUsesInternalDialer(t *testing.T) {
	addr, db := sharedRedis(t)
	ordinary, internal := brokertest.Through(httpsend.New(httpsend.Config{}).DialContext), brokertest.NewDialer()
	typ := New(destination.Env{Dial: ordinary.Dial, InternalDial: internal.Dial})
	t.Cleanup(func() { _ = typ.Close() })
	stream := brokertest.UniqueName("herald-test-internal")
	t.Cleanup(func() { consumer(t, addr, db).Del(context.Background(), stream) })
	norm, errs := typ.Check(settingsJSON(t, map[string]any{"address": addr, "db": db, "stream": stream}))
	if errs != nil {
		t.Fatal(errs)
	}
	s, err := typ.Open(destination.Target{Settings: norm, Internal: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := outcomeErr(s.Send(ctxT(t), brokertest.Message(t, "x", []byte(`{}`))), destination.Success, ""); err != nil {
		t.Fatal(err)
	}
	if d, _ := ordinary.Counts(); d != 0 {
		t.Errorf("the ordinary dialer was used %d times for an internal endpoint", d)
	}
	if d, _ := internal.Counts(); d == 0 {
		t.Error("the internal dialer was not used")
	}
}

func TestPoolSharedBetweenSenders(t *testing.T) {
	addr, db := sharedRedis(t)
	ctx := ctxT(t)
	rec := brokertest.NewDialer()
	typ := newType(t, rec, 0, 0)
	s1 := brokertest.UniqueName("herald-test-share-a")
	s2 := brokertest.UniqueName("herald-test-share-b")
	t.Cleanup(func() { consumer(t, addr, db).Del(context.Background(), s1, s2) })
	a := open(t, typ, map[string]any{"address": addr, "db": db, "stream": s1})
	b := open(t, typ, map[string]any{"address": addr, "db": db, "stream": s2})
	for range 10 {
		for _, s := range []*Sender{a, b} {
			if err := outcomeErr(s.Send(ctx, brokertest.Message(t, "x", []byte(`{}`))), destination.Success, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	if dials, open := rec.Counts(); dials != 1 || open != 1 {
		t.Fatalf("dials %d, open %d: two senders to one broker sending one at a time should share one connection", dials, open)
	}
	if clients, open := typ.pool.stats(); clients != 1 || open != 1 {
		t.Fatalf("pool: %d clients, %d connections; want 1 and 1", clients, open)
	}

	// Other credentials are another client.
	c := open(t, typ, map[string]any{"address": addr, "db": db, "stream": s1, "username": "default", "password": "unused"})
	_ = c.Send(ctx, brokertest.Message(t, "x", []byte(`{}`)))
	if clients, _ := typ.pool.stats(); clients != 2 {
		t.Fatalf("pool: %d clients after other credentials, want 2", clients)
	}
}

func TestConnectionLimitIsBrokerBusy(t *testing.T) {
	addr, _ := sharedRedis(t)
	ctx := ctxT(t)
	rec := brokertest.NewDialer()
	typ := newType(t, rec, 1, 0)
	s1, s2 := brokertest.UniqueName("herald-test-limit-a"), brokertest.UniqueName("herald-test-limit-b")
	// Two databases: two clients, which must share the one connection the node allows.
	a := open(t, typ, map[string]any{"address": addr, "db": 1, "stream": s1})
	b := open(t, typ, map[string]any{"address": addr, "db": 2, "stream": s2})
	t.Cleanup(func() {
		consumer(t, addr, 1).Del(context.Background(), s1)
		consumer(t, addr, 2).Del(context.Background(), s2)
	})
	if err := outcomeErr(a.Send(ctx, brokertest.Message(t, "x", []byte(`{}`))), destination.Success, ""); err != nil {
		t.Fatal(err)
	}

	// a's client holds its connection, as a send in flight does.
	ea, put, err := typ.pool.lease(ctx, a.key)
	if err != nil {
		t.Fatal(err)
	}
	held := ea.client.Conn()
	if err := held.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	o := b.Send(ctx, brokertest.Message(t, "x", []byte(`{}`)))
	if err := outcomeErr(o, destination.Retryable, destination.KindBrokerBusy); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(o.Error, "limit of 1") {
		t.Errorf("Error = %q: want the limit named", o.Error)
	}
	if dials, open := rec.Counts(); dials != 1 || open != 1 {
		t.Fatalf("dials %d, open %d: over the limit nothing may be dialled", dials, open)
	}

	// Once a's client is idle, b takes its place (the idle client is closed for it).
	_ = held.Close()
	put()
	brokertest.Eventually(t, 15*time.Second, func() error {
		return outcomeErr(b.Send(ctx, brokertest.Message(t, "x", []byte(`{}`))), destination.Success, "")
	})
	if _, open := rec.Counts(); open != 1 {
		t.Fatalf("%d connections open, want at most the limit of 1", open)
	}
}

func TestConcurrentSendsStayWithinTheBound(t *testing.T) {
	addr, db := sharedRedis(t)
	ctx := ctxT(t)
	rec := brokertest.NewDialer()
	typ := newType(t, rec, 3, 0)
	stream := brokertest.UniqueName("herald-test-bound")
	cons := consumer(t, addr, db)
	t.Cleanup(func() { cons.Del(context.Background(), stream) })
	s := open(t, typ, map[string]any{"address": addr, "db": db, "stream": stream})
	const workers, each = 12, 15
	errs := make(chan error, workers*each)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				if o := s.Send(ctx, brokertest.Message(t, "x", []byte(`{}`))); o.Class != destination.Success {
					errs <- fmt.Errorf("%s/%s: %s", o.Class, o.ErrorKind, o.Error)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err) // one client waits for one of its connections instead of failing
	}
	peak := rec.Peak()
	if peak > 3 || peak < 1 {
		t.Fatalf("peak of %d connections open, want between 1 and the bound of 3", peak)
	}
	if n := cons.XLen(ctx, stream).Val(); n != workers*each {
		t.Fatalf("XLEN = %d, want %d", n, workers*each)
	}
}

func TestIdleConnectionsClosed(t *testing.T) {
	addr, db := sharedRedis(t)
	ctx := ctxT(t)
	rec := brokertest.NewDialer()
	typ := newType(t, rec, 0, 200*time.Millisecond)
	stream := brokertest.UniqueName("herald-test-idle")
	t.Cleanup(func() { consumer(t, addr, db).Del(context.Background(), stream) })
	s := open(t, typ, map[string]any{"address": addr, "db": db, "stream": stream})
	if err := outcomeErr(s.Send(ctx, brokertest.Message(t, "x", []byte(`{}`))), destination.Success, ""); err != nil {
		t.Fatal(err)
	}
	brokertest.Eventually(t, 15*time.Second, func() error {
		if _, open := rec.Counts(); open != 0 {
			return fmt.Errorf("%d connections still open", open)
		}
		if clients, _ := typ.pool.stats(); clients != 0 {
			return fmt.Errorf("%d clients still pooled", clients)
		}
		return nil
	})
	// The next attempt connects again.
	if err := outcomeErr(s.Send(ctx, brokertest.Message(t, "x", []byte(`{}`))), destination.Success, ""); err != nil {
		t.Fatal(err)
	}
}

func TestCloseClosesEverything(t *testing.T) {
	addr, db := sharedRedis(t)
	ctx := ctxT(t)
	rec := brokertest.NewDialer()
	typ := New(destination.Env{Dial: rec.Dial})
	stream := brokertest.UniqueName("herald-test-close")
	t.Cleanup(func() { consumer(t, addr, db).Del(context.Background(), stream) })
	s := open(t, typ, map[string]any{"address": addr, "db": db, "stream": stream})
	if err := outcomeErr(s.Send(ctx, brokertest.Message(t, "x", []byte(`{}`))), destination.Success, ""); err != nil {
		t.Fatal(err)
	}
	if err := typ.Close(); err != nil {
		t.Fatal(err)
	}
	if _, open := rec.Counts(); open != 0 {
		t.Fatalf("%d connections open after Close", open)
	}
	if o := s.Send(ctx, brokertest.Message(t, "x", []byte(`{}`))); o.Class != destination.Retryable {
		t.Fatalf("Send after Close: %+v, want Retryable", o)
	}
}

func TestSendBatch(t *testing.T) {
	addr, db := sharedRedis(t)
	ctx := ctxT(t)
	cons := consumer(t, addr, db)
	stream := brokertest.UniqueName("herald-test-batch")
	t.Cleanup(func() { cons.Del(context.Background(), stream) })
	typ := newType(t, brokertest.NewDialer(), 0, 0)
	s := open(t, typ, map[string]any{"address": addr, "db": db, "stream": stream})

	var ms []*destination.Message
	for i := range 25 {
		ms = append(ms, brokertest.Message(t, "batch.item", fmt.Appendf(nil, `{"i":%d}`, i)))
	}
	o := s.SendBatch(ctx, ms)
	if o.Class != destination.Success {
		t.Fatalf("SendBatch: %+v", o)
	}
	entries, err := cons.XRange(ctx, stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(ms) {
		t.Fatalf("%d entries, want %d", len(entries), len(ms))
	}
	wh, _ := standardwebhooks.NewWebhook(brokertest.Secret)
	for i, e := range entries {
		if e.Values["webhook-id"] != ms[i].ID {
			t.Fatalf("entry %d is %v, want %s (in order)", i, e.Values["webhook-id"], ms[i].ID)
		}
		if err := wh.Verify([]byte(e.Values[FieldBody].(string)), entryHeader(e.Values)); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	want := fmt.Sprintf("stream %s ids %s..%s (25 messages)", stream, entries[0].ID, entries[24].ID)
	if string(o.Response) != want {
		t.Errorf("Response = %q, want %q", o.Response, want)
	}

	// A batch to a key that is not a stream fails as a whole, permanently.
	key := brokertest.UniqueName("herald-test-batch-string")
	t.Cleanup(func() { cons.Del(context.Background(), key) })
	cons.Set(ctx, key, "x", 0)
	bad := open(t, typ, map[string]any{"address": addr, "db": db, "stream": key})
	o = bad.SendBatch(ctx, ms[:3])
	if err := outcomeErr(o, destination.Permanent, destination.KindNoRoute); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(o.Error, "message 1 of 3:") {
		t.Errorf("Error = %q", o.Error)
	}
}

func TestSendBatchOutage(t *testing.T) {
	srv := startPrivateRedis(t)
	ctx := ctxT(t)
	typ := newType(t, brokertest.NewDialer(), 0, 0)
	s := open(t, typ, map[string]any{"address": srv.addr(), "stream": brokertest.UniqueName("herald-test-batch-outage")})
	ms := []*destination.Message{brokertest.Message(t, "a", []byte(`{}`)), brokertest.Message(t, "b", []byte(`{}`))}
	if err := outcomeErr(s.SendBatch(ctx, ms), destination.Success, ""); err != nil {
		t.Fatal(err)
	}
	srv.stop()
	actx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if o := s.SendBatch(actx, ms); o.Class != destination.Retryable {
		t.Fatalf("batch during the outage: %+v, want Retryable", o)
	}
}

func TestClassifyReplies(t *testing.T) {
	// Replies a test cannot provoke on a single server (LOADING, BUSY, a cluster's MOVED) are
	// classified from their text, as the server sends it.
	cases := []struct {
		reply string
		class destination.Class
		kind  string
	}{
		{"LOADING Redis is loading the dataset in memory", destination.Retryable, destination.KindBrokerBusy},
		{"BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.", destination.Retryable, destination.KindBrokerBusy},
		{"MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.", destination.Retryable, destination.KindBrokerBusy},
		{"READONLY You can't write against a read only replica.", destination.Retryable, destination.KindBrokerError},
		{"MOVED 3999 127.0.0.1:6381", destination.Permanent, destination.KindBrokerError},
		{"ERR unknown command 'XADD', with args beginning with: ", destination.Permanent, destination.KindBrokerError},
		{"ERR max number of clients reached", destination.Retryable, destination.KindBrokerBusy},
		{"ERR something new", destination.Retryable, destination.KindBrokerError},
	}
	for _, c := range cases {
		class, kind, msg := classify(errors.New(c.reply), "redis.internal:6379", "orders")
		if class != c.class || kind != c.kind || msg == "" {
			t.Errorf("%q: %s/%s %q, want %s/%s", c.reply, class, kind, msg, c.class, c.kind)
		}
	}
}
