package redisstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/internal/broker/brokertest"
	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/httpsend"
	"github.com/heraldhq/herald/internal/source"
)

// newSourceType returns a source type dialling through rec, closed at the end of the test.
func newSourceType(t testing.TB, rec *brokertest.Dialer) *SourceType {
	t.Helper()
	typ := NewSource(source.Env{Dial: rec.Dial, InternalDial: rec.Dial})
	t.Cleanup(func() { _ = typ.Close() })
	return typ
}

// openConsumer checks the settings as the API would and opens a consumer of member in group.
func openConsumer(t testing.TB, typ *SourceType, m map[string]any, group, member string) *Consumer {
	t.Helper()
	norm, errs := typ.Check(settingsJSON(t, m))
	if errs != nil {
		t.Fatalf("Check(%v): %v", m, errs)
	}
	c, err := typ.Open(ctxT(t), source.Target{SourceID: "src_test", TenantID: "tn_test", Group: group, Member: member, Settings: norm})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c.(*Consumer)
}

// addEntries XADDs n entries (body and a webhook-id field) and returns their ids.
func addEntries(t testing.TB, cl *redis.Client, stream string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		id, err := cl.XAdd(ctxT(t), &redis.XAddArgs{Stream: stream, Values: []any{
			"body", fmt.Sprintf(`{"i":%d}`, i), "webhook-id", fmt.Sprintf("msg_%d", i),
		}}).Result()
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	return ids
}

func fetch(t testing.TB, c *Consumer, limit int, wait time.Duration) source.Batch {
	t.Helper()
	b, err := c.Fetch(ctxT(t), limit, wait)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if n := len(b.Messages()); n > limit {
		t.Fatalf("Fetch(%d) returned %d messages", limit, n)
	}
	return b
}

func ids(b source.Batch) []string {
	var out []string
	for _, m := range b.Messages() {
		out = append(out, m.ID)
	}
	return out
}

func pendingCount(t testing.TB, cl *redis.Client, stream, group string) int64 {
	t.Helper()
	p, err := cl.XPending(ctxT(t), stream, group).Result()
	if err != nil {
		t.Fatal(err)
	}
	return p.Count
}

// redisSource is a stream on the shared server, deleted at the end of the test.
func redisSource(t testing.TB) (addr string, db int, cl *redis.Client, stream string) {
	t.Helper()
	addr, db = sharedRedis(t)
	cl = consumer(t, addr, db)
	stream = brokertest.UniqueName("herald-test-src")
	t.Cleanup(func() { cl.Del(context.Background(), stream) })
	return addr, db, cl, stream
}

func TestSourceFetchAck(t *testing.T) {
	addr, db, cl, stream := redisSource(t)
	want := addEntries(t, cl, stream, 5)
	// An entry without the body field, and one with a body field of another name.
	noBody, err := cl.XAdd(ctxT(t), &redis.XAddArgs{Stream: stream, Values: []any{"order", "ord_1", "total", "42"}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	typ := newSourceType(t, brokertest.NewDialer())
	c := openConsumer(t, typ, map[string]any{"address": addr, "db": db, "stream": stream, "start": "all"}, "herald-g", "node-1")

	b := fetch(t, c, 10, 2*time.Second)
	got := ids(b)
	if !slices.Equal(got, append(slices.Clone(want), noBody)) {
		t.Fatalf("ids %v, want %v and %s", got, want, noBody)
	}
	for i, m := range b.Messages()[:5] {
		if string(m.Body) != fmt.Sprintf(`{"i":%d}`, i) {
			t.Errorf("message %d body %q", i, m.Body)
		}
		if m.Subject != stream {
			t.Errorf("Subject = %q, want the stream %q", m.Subject, stream)
		}
		if h := m.Header["webhook-id"]; len(h) != 1 || h[0] != fmt.Sprintf("msg_%d", i) {
			t.Errorf("message %d webhook-id header %v", i, h)
		}
		if _, has := m.Header["body"]; has {
			t.Errorf("the body field is also a header")
		}
		ms, _, _ := strings.Cut(m.ID, "-")
		if fmt.Sprint(m.Time.UnixMilli()) != ms {
			t.Errorf("Time %v does not match the entry id %s", m.Time, m.ID)
		}
	}
	last := b.Messages()[5]
	var obj map[string]string
	if err := json.Unmarshal(last.Body, &obj); err != nil || obj["order"] != "ord_1" || obj["total"] != "42" || len(obj) != 2 {
		t.Fatalf("entry without a body field: body %s (%v), want the JSON object of its fields", last.Body, err)
	}
	if pendingCount(t, cl, stream, "herald-g") != 6 {
		t.Fatal("the fetched entries are not pending")
	}
	if err := b.Ack(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if n := pendingCount(t, cl, stream, "herald-g"); n != 0 {
		t.Fatalf("%d entries pending after Ack", n)
	}
	if b := fetch(t, c, 10, 300*time.Millisecond); len(b.Messages()) != 0 {
		t.Fatalf("acked entries came back: %v", ids(b))
	}
	// Nor to the same member opened again (it reads its own pending entries first).
	_ = c.Close()
	c2 := openConsumer(t, typ, map[string]any{"address": addr, "db": db, "stream": stream, "start": "all"}, "herald-g", "node-1")
	if b := fetch(t, c2, 10, 300*time.Millisecond); len(b.Messages()) != 0 {
		t.Fatalf("acked entries came back after a reopen: %v", ids(b))
	}
	// New entries are read by the open consumer.
	more := addEntries(t, cl, stream, 2)
	if b := fetch(t, c2, 10, 2*time.Second); !slices.Equal(ids(b), more) {
		t.Fatalf("ids %v, want the new %v", ids(b), more)
	}
	// A consumer after Close refuses to fetch.
	_ = c2.Close()
	if _, err := c2.Fetch(ctxT(t), 1, 0); err == nil {
		t.Fatal("Fetch after Close succeeded")
	}
}

func TestSourceBodyField(t *testing.T) {
	addr, db, cl, stream := redisSource(t)
	id, err := cl.XAdd(ctxT(t), &redis.XAddArgs{Stream: stream, Values: []any{"payload", `{"a":1}`, "body", "not the body"}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	typ := newSourceType(t, brokertest.NewDialer())
	c := openConsumer(t, typ, map[string]any{"address": addr, "db": db, "stream": stream, "start": "all", "body_field": "payload"}, "g", "m")
	b := fetch(t, c, 10, 2*time.Second)
	if len(b.Messages()) != 1 {
		t.Fatalf("%d messages", len(b.Messages()))
	}
	m := b.Messages()[0]
	if m.ID != id || string(m.Body) != `{"a":1}` || m.Header["body"][0] != "not the body" {
		t.Fatalf("message %+v", m)
	}
}

func TestSourceStartNew(t *testing.T) {
	addr, db, cl, stream := redisSource(t)
	addEntries(t, cl, stream, 3)
	typ := newSourceType(t, brokertest.NewDialer())
	c := openConsumer(t, typ, map[string]any{"address": addr, "db": db, "stream": stream}, "g", "m")
	if b := fetch(t, c, 10, 300*time.Millisecond); len(b.Messages()) != 0 {
		t.Fatalf("start new read the old entries %v", ids(b))
	}
	later := addEntries(t, cl, stream, 1)
	if b := fetch(t, c, 10, 2*time.Second); !slices.Equal(ids(b), later) {
		t.Fatalf("ids %v, want %v", ids(b), later)
	}
	// An existing group keeps its position: "all" on it does not go back.
	c2 := openConsumer(t, typ, map[string]any{"address": addr, "db": db, "stream": stream, "start": "all"}, "g", "other")
	if b := fetch(t, c2, 10, 300*time.Millisecond); len(b.Messages()) != 0 {
		t.Fatalf("an existing group was moved back: %v", ids(b))
	}
}

// A source created with "new" reads the entries added after its creation even when its consumer
// opens later (a node busy, or restarted, in between), and none added before.
func TestSourceStartNewFromCreation(t *testing.T) {
	addr, db, cl, stream := redisSource(t)
	addEntries(t, cl, stream, 3)
	// Entry ids are the Redis server's milliseconds: the creation time is read from its clock
	// and past the last entry's millisecond.
	time.Sleep(3 * time.Millisecond)
	created, err := cl.Time(ctxT(t)).Result()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Millisecond)
	after := addEntries(t, cl, stream, 4)
	typ := newSourceType(t, brokertest.NewDialer())
	norm, errs := typ.Check(settingsJSON(t, map[string]any{"address": addr, "db": db, "stream": stream}))
	if errs != nil {
		t.Fatal(errs)
	}
	c, err := typ.Open(ctxT(t), source.Target{SourceID: "src_test", TenantID: "tn_test", Group: "g", Member: "m", Settings: norm, Created: created})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if b := fetch(t, c.(*Consumer), 10, 2*time.Second); !slices.Equal(ids(b), after) {
		t.Fatalf("ids %v, want the entries added after the creation %v", ids(b), after)
	}
}

func TestSourceMissingStream(t *testing.T) {
	addr, db, cl, stream := redisSource(t)
	typ := newSourceType(t, brokertest.NewDialer())
	norm, errs := typ.Check(settingsJSON(t, map[string]any{"address": addr, "db": db, "stream": stream}))
	if errs != nil {
		t.Fatal(errs)
	}
	_, err := typ.Open(ctxT(t), source.Target{Group: "g", Member: "m", Settings: norm})
	var se *source.Error
	if !errors.As(err, &se) || se.Kind != destination.KindNoRoute {
		t.Fatalf("Open on a missing stream: %v, want a no_route error", err)
	}
	if !strings.Contains(err.Error(), stream) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("error %q does not name the stream", err)
	}
	if n := cl.Exists(ctxT(t), stream).Val(); n != 0 {
		t.Fatal("Open created the stream")
	}

	// A key that is not a stream.
	if err := cl.Set(ctxT(t), stream, "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	_, err = typ.Open(ctxT(t), source.Target{Group: "g", Member: "m", Settings: norm})
	if err == nil || !strings.Contains(err.Error(), "not a stream") {
		t.Fatalf("Open on a string key: %v", err)
	}
	if _, open := typ.pool.stats(); open > 1 {
		t.Fatalf("%d connections open after failed opens", open)
	}
}

func TestSourceBoundedBatch(t *testing.T) {
	addr, db, cl, stream := redisSource(t)
	all := addEntries(t, cl, stream, 25)
	typ := newSourceType(t, brokertest.NewDialer())
	c := openConsumer(t, typ, map[string]any{"address": addr, "db": db, "stream": stream, "start": "all"}, "g", "m")
	var got []string
	for _, want := range []int{10, 10, 5} {
		b := fetch(t, c, 10, 2*time.Second)
		if len(b.Messages()) != want {
			t.Fatalf("batch of %d, want %d", len(b.Messages()), want)
		}
		// The broker keeps the rest: only the batch is delivered and pending.
		if n := pendingCount(t, cl, stream, "g"); n != int64(want) {
			t.Fatalf("%d entries pending with a batch of %d unsettled", n, want)
		}
		got = append(got, ids(b)...)
		if err := b.Ack(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(got, all) {
		t.Fatalf("read %v, want %v", got, all)
	}
}

func TestSourceTwoMembersShare(t *testing.T) {
	addr, db, cl, stream := redisSource(t)
	all := addEntries(t, cl, stream, 40)
	typ := newSourceType(t, brokertest.NewDialer())
	settings := map[string]any{"address": addr, "db": db, "stream": stream, "start": "all"}
	a := openConsumer(t, typ, settings, "g", "node-a")
	b := openConsumer(t, typ, settings, "g", "node-b")
	seen := map[string]string{}
	by := map[string]int{}
	deadline := time.Now().Add(20 * time.Second)
	for len(seen) < len(all) && time.Now().Before(deadline) {
		for _, c := range []*Consumer{a, b} {
			bt := fetch(t, c, 5, 200*time.Millisecond)
			for _, id := range ids(bt) {
				if other, dup := seen[id]; dup {
					t.Fatalf("entry %s delivered to %s and %s", id, other, c.member)
				}
				seen[id] = c.member
				by[c.member]++
			}
			if err := bt.Ack(ctxT(t)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, id := range all {
		if _, ok := seen[id]; !ok {
			t.Fatalf("entry %s never delivered", id)
		}
	}
	if by["node-a"] == 0 || by["node-b"] == 0 {
		t.Fatalf("the members did not share: %v", by)
	}
}

func TestSourceNakThenReclaim(t *testing.T) {
	addr, db, cl, stream := redisSource(t)
	addEntries(t, cl, stream, 3)
	typ := newSourceType(t, brokertest.NewDialer())

	// With the default claim_idle (60 s), a Nak'd batch stays pending: not delivered again soon.
	slow := openConsumer(t, typ, map[string]any{"address": addr, "db": db, "stream": stream, "start": "all"}, "g-slow", "m")
	b := fetch(t, slow, 10, 2*time.Second)
	if len(b.Messages()) != 3 {
		t.Fatalf("%d messages", len(b.Messages()))
	}
	if err := b.Nak(ctxT(t), 0); err != nil {
		t.Fatal(err)
	}
	if again := fetch(t, slow, 10, 300*time.Millisecond); len(again.Messages()) != 0 {
		t.Fatalf("Nak'd entries delivered again before claim_idle: %v", ids(again))
	}
	if n := pendingCount(t, cl, stream, "g-slow"); n != 3 {
		t.Fatalf("%d pending after Nak, want 3", n)
	}

	// With a short claim_idle they come back, with the same ids.
	c := openConsumer(t, typ, map[string]any{"address": addr, "db": db, "stream": stream, "start": "all", "claim_idle": "300ms"}, "g", "m")
	first := fetch(t, c, 10, 2*time.Second)
	want := ids(first)
	if len(want) != 3 {
		t.Fatalf("%d messages", len(want))
	}
	if err := first.Nak(ctxT(t), 0); err != nil {
		t.Fatal(err)
	}
	var back source.Batch
	brokertest.Eventually(t, 15*time.Second, func() error {
		back = fetch(t, c, 10, 100*time.Millisecond)
		if len(back.Messages()) == 0 {
			return errors.New("the Nak'd entries did not come back")
		}
		return nil
	})
	if !slices.Equal(ids(back), want) {
		t.Fatalf("came back %v, want the same ids %v", ids(back), want)
	}
	for i, m := range back.Messages() {
		if !slices.Equal(m.Body, first.Messages()[i].Body) {
			t.Fatalf("body changed: %q vs %q", m.Body, first.Messages()[i].Body)
		}
	}
	ext, err := cl.XPendingExt(ctxT(t), &redis.XPendingExtArgs{Stream: stream, Group: "g", Start: "-", End: "+", Count: 10}).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ext {
		if p.RetryCount < 2 {
			t.Fatalf("entry %s delivered %d times, want at least 2", p.ID, p.RetryCount)
		}
	}
	if err := back.Ack(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if n := pendingCount(t, cl, stream, "g"); n != 0 {
		t.Fatalf("%d pending after Ack", n)
	}
}

func TestSourceDeadMemberReclaimed(t *testing.T) {
	addr, db, cl, stream := redisSource(t)
	addEntries(t, cl, stream, 8)
	typ := newSourceType(t, brokertest.NewDialer())
	settings := map[string]any{"address": addr, "db": db, "stream": stream, "start": "all", "claim_idle": "300ms"}
	a := openConsumer(t, typ, settings, "g", "node-a")
	taken := fetch(t, a, 5, 2*time.Second)
	dead := ids(taken)
	if len(dead) != 5 {
		t.Fatalf("%d messages", len(dead))
	}
	_ = a.Close() // node-a dies without acknowledging

	b := openConsumer(t, typ, settings, "g", "node-b")
	got := map[string]bool{}
	brokertest.Eventually(t, 15*time.Second, func() error {
		bt := fetch(t, b, 10, 100*time.Millisecond)
		for _, id := range ids(bt) {
			got[id] = true
		}
		if err := bt.Ack(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		for _, id := range dead {
			if !got[id] {
				return fmt.Errorf("node-a's entry %s not taken over yet (have %d entries)", id, len(got))
			}
		}
		return nil
	})
	if len(got) != 8 {
		t.Fatalf("node-b read %d entries, want all 8", len(got))
	}
	if n := pendingCount(t, cl, stream, "g"); n != 0 {
		t.Fatalf("%d pending after node-b acked everything", n)
	}
}

func TestSourceDeletedPendingEntry(t *testing.T) {
	addr, db, cl, stream := redisSource(t)
	idsAdded := addEntries(t, cl, stream, 2)
	typ := newSourceType(t, brokertest.NewDialer())
	settings := map[string]any{"address": addr, "db": db, "stream": stream, "start": "all"}
	c := openConsumer(t, typ, settings, "g", "m")
	if b := fetch(t, c, 10, 2*time.Second); len(b.Messages()) != 2 {
		t.Fatalf("%d messages", len(b.Messages()))
	}
	_ = c.Close()
	if err := cl.XDel(ctxT(t), stream, idsAdded[0]).Err(); err != nil {
		t.Fatal(err)
	}
	// The member opened again reads back its pending entries: the deleted one has nothing to
	// deliver and is acknowledged, the other is delivered again.
	c2 := openConsumer(t, typ, settings, "g", "m")
	b := fetch(t, c2, 10, 300*time.Millisecond)
	if !slices.Equal(ids(b), idsAdded[1:]) {
		t.Fatalf("ids %v, want %v", ids(b), idsAdded[1:])
	}
	if n := pendingCount(t, cl, stream, "g"); n != 1 {
		t.Fatalf("%d pending, want 1 (the deleted entry acknowledged)", n)
	}
}

func TestSourceBrokerRestarted(t *testing.T) {
	// AOF with an fsync at every write: what Redis acknowledged survives a SIGKILL.
	srv := startPrivateRedis(t, "--appendonly", "yes", "--appendfsync", "always")
	ctx := ctxT(t)
	cl := redis.NewClient(&redis.Options{Addr: srv.addr(), Protocol: 2})
	t.Cleanup(func() { _ = cl.Close() })
	stream := brokertest.UniqueName("herald-test-src-restart")
	all := addEntries(t, cl, stream, 10)
	typ := newSourceType(t, brokertest.NewDialer())
	settings := map[string]any{"address": srv.addr(), "stream": stream, "start": "all"}
	c := openConsumer(t, typ, settings, "g", "node-1")

	acked := fetch(t, c, 5, 2*time.Second)
	if err := acked.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	unacked := fetch(t, c, 3, 2*time.Second) // in flight when the broker dies
	if len(acked.Messages()) != 5 || len(unacked.Messages()) != 3 {
		t.Fatalf("batches of %d and %d", len(acked.Messages()), len(unacked.Messages()))
	}

	srv.stop() // SIGKILL
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err := c.Fetch(fctx, 10, 100*time.Millisecond)
	cancel()
	var se *source.Error
	if !errors.As(err, &se) || se.Kind == "" || se.Msg == "" {
		t.Fatalf("Fetch during the outage: %v, want a classified error", err)
	}
	if err := unacked.Ack(ctx); err == nil {
		t.Fatal("Ack during the outage succeeded")
	}
	_ = c.Close()

	srv.start() // same port, same directory: the AOF is replayed
	brokertest.Eventually(t, 15*time.Second, func() error {
		n, err := cl.XLen(ctx, stream).Result()
		if err != nil || n != 10 {
			return fmt.Errorf("XLEN %d, %v", n, err)
		}
		return nil
	})
	if n := pendingCount(t, cl, stream, "g"); n != 3 {
		t.Fatalf("%d pending after the restart, want the 3 unacknowledged", n)
	}

	// A new consumer of the same member: its 3 pending entries first, then the 2 never read.
	c2 := openConsumer(t, typ, settings, "g", "node-1")
	var got []string
	brokertest.Eventually(t, 15*time.Second, func() error {
		b := fetch(t, c2, 10, 200*time.Millisecond)
		got = append(got, ids(b)...)
		if err := b.Ack(ctx); err != nil {
			return err
		}
		if len(got) < 5 {
			return fmt.Errorf("%d of 5 entries read after the restart", len(got))
		}
		return nil
	})
	if !slices.Equal(got, all[5:]) {
		t.Fatalf("after the restart read %v, want %v (nothing acked again, nothing unacked lost)", got, all[5:])
	}
	if !slices.Equal(got[:3], ids(unacked)) {
		t.Fatalf("the pending entries %v did not come first: %v", ids(unacked), got)
	}
	if b := fetch(t, c2, 10, 300*time.Millisecond); len(b.Messages()) != 0 {
		t.Fatalf("more came back: %v", ids(b))
	}
	if n := pendingCount(t, cl, stream, "g"); n != 0 {
		t.Fatalf("%d pending at the end", n)
	}
}

func TestSourceRefusingDialer(t *testing.T) {
	addr, db, cl, stream := redisSource(t)
	addEntries(t, cl, stream, 1)
	// The real guard without --dev refuses loopback.
	rec := brokertest.Through(httpsend.New(httpsend.Config{}).DialContext)
	typ := newSourceType(t, rec)
	norm, errs := typ.Check(settingsJSON(t, map[string]any{"address": addr, "db": db, "stream": stream, "start": "all"}))
	if errs != nil {
		t.Fatal(errs)
	}
	_, err := typ.Open(ctxT(t), source.Target{Group: "g", Member: "m", Settings: norm})
	var se *source.Error
	if !errors.As(err, &se) || se.Kind != destination.KindBlocked {
		t.Fatalf("Open: %v, want blocked_destination", err)
	}
	if dials, open := rec.Counts(); dials == 0 || open != 0 {
		t.Fatalf("dials %d, open %d: want the dial attempted through the guard and refused", dials, open)
	}
	if n := cl.Exists(ctxT(t), stream).Val(); n != 1 {
		t.Fatal("the stream is gone")
	}
	if groups, err := cl.XInfoGroups(ctxT(t), stream).Result(); err != nil || len(groups) != 0 {
		t.Fatalf("groups %v, %v: nothing may reach the broker", groups, err)
	}

	// A dialer of the node's own returning a *BlockedError, and an internal source's dialer.
	var tried []string
	blocking := func(_ context.Context, _, a string) (net.Conn, error) {
		tried = append(tried, a)
		return nil, &httpsend.BlockedError{Host: "redis.example", Reason: "loopback"}
	}
	internal := brokertest.NewDialer()
	typ2 := NewSource(source.Env{Dial: blocking, InternalDial: internal.Dial})
	t.Cleanup(func() { _ = typ2.Close() })
	norm2, _ := typ2.Check(settingsJSON(t, map[string]any{"address": "redis.example:6379", "stream": stream}))
	_, err = typ2.Open(ctxT(t), source.Target{Group: "g", Member: "m", Settings: norm2})
	var be *httpsend.BlockedError
	if !errors.As(err, &be) || !errors.As(err, &se) || se.Kind != destination.KindBlocked {
		t.Fatalf("Open: %v, want the BlockedError, blocked_destination", err)
	}
	if len(tried) != 1 || tried[0] != "redis.example:6379" {
		t.Fatalf("dials %v", tried)
	}
	c, err := typ2.Open(ctxT(t), source.Target{Group: "g", Member: "m", Settings: norm, Internal: true})
	if err != nil {
		t.Fatalf("internal source: %v", err)
	}
	_ = c.Close()
	if d, _ := internal.Counts(); d == 0 || len(tried) != 1 {
		t.Fatalf("internal source: internal dials %d, ordinary %d", d, len(tried))
	}
}

func TestSourceCheck(t *testing.T) {
	typ := NewSource(source.Env{})
	t.Cleanup(func() { _ = typ.Close() })
	if typ.Name() != "redis" || !slices.Equal(typ.Secrets(), []string{"password"}) {
		t.Fatalf("Name %q Secrets %v", typ.Name(), typ.Secrets())
	}
	norm, errs := typ.Check(json.RawMessage(`{"address":"redis.internal:6379","stream":"orders"}`))
	if errs != nil {
		t.Fatal(errs)
	}
	want := `{"address":"redis.internal:6379","db":0,"tls":false,"stream":"orders","start":"new","claim_idle":"1m0s","body_field":"body"}`
	if string(norm) != want {
		t.Fatalf("normalised %s, want %s", norm, want)
	}
	if again, errs := typ.Check(norm); errs != nil || string(again) != string(norm) {
		t.Fatalf("Check(normalised) = %s, %v", again, errs)
	}
	full := `{"address":"[::1]:6380","db":2,"username":"herald","password":"s3cret","tls":true,"stream":"in","start":"all","claim_idle":"500ms","body_field":"payload"}`
	if norm, errs := typ.Check(json.RawMessage(full)); errs != nil || string(norm) != full {
		t.Fatalf("Check(%s) = %s, %v", full, norm, errs)
	}

	cases := []struct{ name, settings, field, contains string }{
		{"empty", ``, "", "required"},
		{"unknown field", `{"address":"h:1","stream":"s","maxlen":5}`, "maxlen", "unknown setting"},
		{"address missing", `{"stream":"s"}`, "address", "required"},
		{"password in URL", `{"address":"redis://u:hunter2@h:6379","stream":"s"}`, "address", "password setting"},
		{"db negative", `{"address":"h:1","stream":"s","db":-1}`, "db", "0 or more"},
		{"tls not bool", `{"address":"h:1","stream":"s","tls":1}`, "tls", "true or false"},
		{"stream missing", `{"address":"h:1"}`, "stream", "must exist"},
		{"start unknown", `{"address":"h:1","stream":"s","start":"latest"}`, "start", `"new"`},
		{"claim_idle not a duration", `{"address":"h:1","stream":"s","claim_idle":"soon"}`, "claim_idle", "duration"},
		{"claim_idle a number", `{"address":"h:1","stream":"s","claim_idle":60}`, "claim_idle", `"60s"`},
		{"claim_idle too short", `{"address":"h:1","stream":"s","claim_idle":"10ms"}`, "claim_idle", "from 100ms"},
		{"claim_idle too long", `{"address":"h:1","stream":"s","claim_idle":"200h"}`, "claim_idle", "168h"},
		{"body_field control", `{"address":"h:1","stream":"s","body_field":"a\u0001"}`, "body_field", "control"},
		{"body_field too long", `{"address":"h:1","stream":"s","body_field":"` + strings.Repeat("f", 257) + `"}`, "body_field", "at most 256"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			norm, errs := typ.Check(json.RawMessage(c.settings))
			if norm != nil {
				t.Fatalf("accepted: %s", norm)
			}
			var found *destination.FieldError
			for _, e := range errs {
				if e.Field == c.field {
					found = e
				}
				if strings.Contains(e.Message, "hunter2") || strings.Contains(jsonString(e.Value), "hunter2") {
					t.Fatalf("a password is echoed: %+v", e)
				}
			}
			if found == nil {
				t.Fatalf("no error at %q: %v", c.field, errs)
			}
			if !strings.Contains(found.Message, c.contains) {
				t.Fatalf("error at %q = %q, want it to say %q", c.field, found.Message, c.contains)
			}
		})
	}
	// Every wrong field at once.
	_, errs = typ.Check(json.RawMessage(`{"address":"x","stream":"","start":"x","claim_idle":"x","body_field":"\u0000"}`))
	fields := map[string]bool{}
	for _, e := range errs {
		fields[e.Field] = true
	}
	for _, f := range []string{"address", "stream", "start", "claim_idle", "body_field"} {
		if !fields[f] {
			t.Errorf("no error at %s: %v", f, errs)
		}
	}
	// Open refuses what Check refuses, and a target without group or member.
	if _, err := typ.Open(ctxT(t), source.Target{Group: "g", Member: "m", Settings: json.RawMessage(`{"stream":"s"}`)}); err == nil {
		t.Fatal("Open accepted settings without an address")
	}
	good, _ := typ.Check(json.RawMessage(`{"address":"h:1","stream":"s"}`))
	if _, err := typ.Open(ctxT(t), source.Target{Member: "m", Settings: good}); err == nil {
		t.Fatal("Open accepted a target without a group")
	}
	if _, err := typ.Open(ctxT(t), source.Target{Group: "g", Settings: good}); err == nil {
		t.Fatal("Open accepted a target without a member")
	}
}

func TestSourceStreamDeletedWhileReading(t *testing.T) {
	addr, db, cl, stream := redisSource(t)
	addEntries(t, cl, stream, 1)
	typ := newSourceType(t, brokertest.NewDialer())
	settings := map[string]any{"address": addr, "db": db, "stream": stream, "start": "all"}
	c := openConsumer(t, typ, settings, "g", "m")
	if err := fetch(t, c, 10, time.Second).Ack(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := cl.Del(ctxT(t), stream).Err(); err != nil {
		t.Fatal(err)
	}
	_, err := c.Fetch(ctxT(t), 10, 100*time.Millisecond)
	var se *source.Error
	if !errors.As(err, &se) || se.Kind != destination.KindNoRoute || !strings.Contains(err.Error(), "no longer exists") {
		t.Fatalf("Fetch after the stream was deleted: %v, want no_route naming it", err)
	}
	// The stream written again: the next consumer recreates the group and reads.
	again := addEntries(t, cl, stream, 2)
	c2 := openConsumer(t, typ, settings, "g", "m")
	if b := fetch(t, c2, 10, 2*time.Second); !slices.Equal(ids(b), again) {
		t.Fatalf("ids %v, want %v", ids(b), again)
	}
}
