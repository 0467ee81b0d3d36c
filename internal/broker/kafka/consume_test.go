package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/heraldhq/herald/internal/broker/brokertest"
	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/source"
)

// The source tests run against kfake (franz-go's in-process Kafka cluster, consumer groups
// included) on 127.0.0.1, as the destination's tests do.

func newSourceType(d *brokertest.Dialer) *SourceType {
	return NewSource(source.Env{Dial: d.Dial, InternalDial: d.Dial})
}

// openSource checks the settings through Check (as the API does) and opens a consumer of group.
func openSource(t testing.TB, typ *SourceType, c *kfake.Cluster, group, start string, topics ...string) *Consumer {
	t.Helper()
	cons, err := tryOpen(t, typ, c.ListenAddrs(), group, start, topics...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = cons.Close() })
	return cons
}

func tryOpen(t testing.TB, typ *SourceType, brokers []string, group, start string, topics ...string) (*Consumer, error) {
	t.Helper()
	return tryOpenCreated(t, typ, brokers, group, start, time.Time{}, topics...)
}

func tryOpenCreated(t testing.TB, typ *SourceType, brokers []string, group, start string, created time.Time, topics ...string) (*Consumer, error) {
	t.Helper()
	norm, errs := typ.Check(settings(t, map[string]any{"brokers": brokers, "topics": topics, "start": start}))
	if errs != nil {
		t.Fatalf("Check: %v", errs)
	}
	cons, err := typ.Open(ctxTimeout(t, 30*time.Second), source.Target{SourceID: "src_1", TenantID: "t_1", Group: group, Member: "node-1", Settings: norm, Created: created})
	if err != nil {
		return nil, err
	}
	return cons.(*Consumer), nil
}

// produceTo produces n records to topic, record i to partition i % partitions, each with a
// header "n: i" and the value "msg-<prefix>-<i>", and returns the values in order.
func produceTo(t testing.TB, c *kfake.Cluster, topic string, partitions, n int, prefix string) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	var vals []string
	for i := range n {
		v := fmt.Sprintf("msg-%s-%d", prefix, i)
		vals = append(vals, v)
		recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i % partitions), Value: []byte(v),
			Headers: []kgo.RecordHeader{{Key: "n", Value: []byte(strconv.Itoa(i))}, {Key: "webhook-id", Value: []byte("msg_" + v)}}})
	}
	if err := cl.ProduceSync(ctxTimeout(t, 30*time.Second), recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	return vals
}

// drain fetches from cons (at most max per batch, asserted) and acks every batch, until it has
// want messages or the deadline passes.
func drain(t testing.TB, cons *Consumer, max, want int) []source.Message {
	t.Helper()
	ctx := ctxTimeout(t, 45*time.Second)
	var out []source.Message
	for len(out) < want {
		b, err := cons.Fetch(ctx, max, 500*time.Millisecond)
		if err != nil {
			t.Fatalf("Fetch after %d of %d messages: %v", len(out), want, err)
		}
		ms := b.Messages()
		if len(ms) > max {
			t.Fatalf("a batch holds %d messages, more than max %d", len(ms), max)
		}
		if err := b.Ack(ctx); err != nil {
			t.Fatalf("Ack: %v", err)
		}
		out = append(out, ms...)
	}
	return out
}

// none asserts that cons gets no message within a few fetches.
func none(t testing.TB, cons *Consumer) {
	t.Helper()
	ctx := ctxTimeout(t, 30*time.Second)
	for range 4 {
		b, err := cons.Fetch(ctx, 10, 500*time.Millisecond)
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		if ms := b.Messages(); len(ms) > 0 {
			t.Fatalf("got %d messages, want none: first %s %q", len(ms), ms[0].ID, ms[0].Body)
		}
	}
}

func TestSourceFetchAck(t *testing.T) {
	topic := "src-" + suffix()
	c := startCluster(t, kfake.SeedTopics(2, topic))
	d := brokertest.NewDialer()
	typ := newSourceType(d)
	group := "herald-" + suffix()
	before := time.Now().Add(-time.Minute)
	vals := produceTo(t, c, topic, 2, 30, "a")

	cons := openSource(t, typ, c, group, "all", topic)
	got := drain(t, cons, 7, len(vals))
	if len(got) != len(vals) {
		t.Fatalf("got %d messages, want %d", len(got), len(vals))
	}
	seen := map[string]bool{}
	byBody := map[string]source.Message{}
	for _, m := range got {
		if seen[m.ID] {
			t.Fatalf("message %s delivered twice", m.ID)
		}
		seen[m.ID] = true
		byBody[string(m.Body)] = m
		if m.Subject != topic {
			t.Fatalf("Subject %q, want %q", m.Subject, topic)
		}
		if m.Time.Before(before) || m.Time.After(time.Now().Add(time.Minute)) {
			t.Fatalf("Time %v is not the record's timestamp", m.Time)
		}
	}
	for i, v := range vals {
		m, ok := byBody[v]
		if !ok {
			t.Fatalf("record %q never fetched", v)
		}
		if got := m.Header["n"]; len(got) != 1 || got[0] != strconv.Itoa(i) {
			t.Fatalf("%s header n = %v, want %d", v, got, i)
		}
		if got := m.Header["webhook-id"]; len(got) != 1 || got[0] != "msg_"+v {
			t.Fatalf("%s header webhook-id = %v", v, got)
		}
		// record i went to partition i%2 at offset i/2
		if want := fmt.Sprintf("%s:%d:%d", topic, i%2, i/2); m.ID != want {
			t.Fatalf("%s ID %q, want %q", v, m.ID, want)
		}
	}

	// Acked records never come back: a new member of the group gets only what came after.
	if err := cons.Close(); err != nil {
		t.Fatal(err)
	}
	cons2 := openSource(t, typ, c, group, "all", topic)
	more := produceTo(t, c, topic, 2, 2, "b")
	got = drain(t, cons2, 10, 2)
	if len(got) != 2 || !(string(got[0].Body) == more[0] || string(got[0].Body) == more[1]) || string(got[0].Body) == string(got[1].Body) {
		t.Fatalf("after a restart of the member the group got %q, want only %q", bodies(got), more)
	}
	none(t, cons2)
}

func bodies(ms []source.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, string(m.Body))
	}
	return out
}

// TestSourceStartNew: "new" skips what the topic held before the group's first member, and its
// start is pinned, so a member that dies before its first Ack loses nothing.
func TestSourceStartNew(t *testing.T) {
	topic := "src-" + suffix()
	c := startCluster(t, kfake.SeedTopics(1, topic))
	typ := newSourceType(brokertest.NewDialer())
	group := "herald-" + suffix()
	produceTo(t, c, topic, 1, 5, "old")

	a := openSource(t, typ, c, group, "new", topic)
	vals := produceTo(t, c, topic, 1, 6, "new")
	ctx := ctxTimeout(t, 30*time.Second)
	var b source.Batch
	for {
		var err error
		if b, err = a.Fetch(ctx, 3, 500*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if len(b.Messages()) > 0 {
			break
		}
	}
	if got := string(b.Messages()[0].Body); got != vals[0] {
		t.Fatalf("first message %q, want %q (start new)", got, vals[0])
	}
	_ = a.Close() // dies without acking

	bc := openSource(t, typ, c, group, "new", topic)
	got := drain(t, bc, 10, len(vals))
	if strings.Join(bodies(got), ",") != strings.Join(vals, ",") {
		t.Fatalf("the next member got %q, want %q", bodies(got), vals)
	}
}

// TestSourceStartNewFromCreation: "new" starts at the first record produced since the source
// was created, so records produced between the creation and the first member's Open are read.
func TestSourceStartNewFromCreation(t *testing.T) {
	topic := "src-" + suffix()
	c := startCluster(t, kfake.SeedTopics(2, topic))
	typ := newSourceType(brokertest.NewDialer())
	produceTo(t, c, topic, 2, 4, "old")
	time.Sleep(5 * time.Millisecond) // record timestamps are milliseconds
	created := time.Now()
	time.Sleep(5 * time.Millisecond)
	vals := produceTo(t, c, topic, 2, 6, "new")
	a, err := tryOpenCreated(t, typ, c.ListenAddrs(), "herald-"+suffix(), "new", created, topic)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	got := bodies(drain(t, a, 10, len(vals)))
	slices.Sort(got)
	want := slices.Clone(vals)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want the records produced since the creation %q", got, want)
	}
	none(t, a)
}

func TestSourceNak(t *testing.T) {
	topic := "src-" + suffix()
	c := startCluster(t, kfake.SeedTopics(1, topic))
	typ := newSourceType(brokertest.NewDialer())
	vals := produceTo(t, c, topic, 1, 10, "a")
	cons := openSource(t, typ, c, "herald-"+suffix(), "all", topic)
	ctx := ctxTimeout(t, 30*time.Second)

	first := func() source.Batch {
		t.Helper()
		for {
			b, err := cons.Fetch(ctx, 4, 500*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Messages()) > 0 {
				return b
			}
		}
	}
	b := first()
	ids := func(b source.Batch) string {
		var s []string
		for _, m := range b.Messages() {
			s = append(s, m.ID)
		}
		return strings.Join(s, ",")
	}
	nakked := ids(b)
	if err := b.Nak(ctx, 0); err != nil {
		t.Fatal(err)
	}
	b2 := first()
	// The records come back, from the first one of the nak'd batch, with the same IDs (the
	// client had buffered the records after them: they are not handed out first).
	if again := ids(b2); !strings.HasPrefix(nakked, again) && !strings.HasPrefix(again, nakked) {
		t.Fatalf("after Nak got %s, want the nak'd %s again", again, nakked)
	}
	if string(b2.Messages()[0].Body) != vals[0] {
		t.Fatalf("after Nak the first message is %q, want %q", b2.Messages()[0].Body, vals[0])
	}

	// With a delay: nothing before it.
	naked := time.Now()
	if err := b2.Nak(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	early, err := cons.Fetch(ctx, 4, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(naked) < 4*time.Second && len(early.Messages()) > 0 {
		t.Fatalf("a Nak with a 5s delay: got %d messages right after", len(early.Messages()))
	}
	got := drain(t, cons, 4, len(vals))
	if strings.Join(bodies(got), ",") != strings.Join(vals, ",") {
		t.Fatalf("after Nak the partition reads %q, want %q", bodies(got), vals)
	}
	none(t, cons)
}

// TestSourceGroupSplits: two members of a group split a two-partition topic; each record goes
// to one of them.
func TestSourceGroupSplits(t *testing.T) {
	topic := "src-" + suffix()
	c := startCluster(t, kfake.SeedTopics(2, topic))
	typ := newSourceType(brokertest.NewDialer())
	group := "herald-" + suffix()
	a := openSource(t, typ, c, group, "all", topic)
	b := openSource(t, typ, c, group, "all", topic)
	ctx := ctxTimeout(t, 45*time.Second)

	// Each member consumes in a goroutine of its own, as each node does: a member's Fetch may
	// wait out a rebalance, which needs the other member to go on polling.
	var mu sync.Mutex
	count := map[string]int{}
	perMember := [2]int{}
	stop := make(chan struct{})
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	for i, m := range []*Consumer{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				bt, err := m.Fetch(ctx, 5, 300*time.Millisecond)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, msg := range bt.Messages() {
					count[string(msg.Body)]++
				}
				perMember[i] += len(bt.Messages())
				mu.Unlock()
				if err := bt.Ack(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	produced := map[string]bool{}
	for round := 0; ; round++ {
		mu.Lock()
		done := perMember[0] > 0 && perMember[1] > 0 && len(count) == len(produced)
		got := perMember
		mu.Unlock()
		if done {
			break
		}
		select {
		case err := <-errs:
			close(stop)
			wg.Wait()
			t.Fatal(err)
		default:
		}
		if ctx.Err() != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("members got %v records of %d produced; both must get some", got, len(produced))
		}
		for _, v := range produceTo(t, c, topic, 2, 4, strconv.Itoa(round)) {
			produced[v] = true
		}
		time.Sleep(200 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	for v, n := range count {
		if n != 1 || !produced[v] {
			t.Fatalf("record %q delivered %d times (produced: %v)", v, n, produced[v])
		}
	}
}

// TestSourceHandOver: a member closed with fetched, unacknowledged records hands them (same
// IDs) to the other member after the rebalance.
func TestSourceHandOver(t *testing.T) {
	topic := "src-" + suffix()
	c := startCluster(t, kfake.SeedTopics(2, topic))
	typ := newSourceType(brokertest.NewDialer())
	group := "herald-" + suffix()
	a := openSource(t, typ, c, group, "all", topic)
	vals := produceTo(t, c, topic, 2, 10, "a")
	ctx := ctxTimeout(t, 45*time.Second)
	var held []source.Message
	for len(held) == 0 {
		bt, err := a.Fetch(ctx, 4, 500*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		held = bt.Messages()
	}
	b := openSource(t, typ, c, group, "all", topic)
	if err := a.Close(); err != nil { // dies: nothing committed
		t.Fatal(err)
	}
	got := drain(t, b, 5, len(vals))
	ids := map[string]string{}
	for _, m := range got {
		ids[string(m.Body)] = m.ID
	}
	for _, m := range held {
		if ids[string(m.Body)] != m.ID {
			t.Fatalf("held %q as %s; the other member got it as %q", m.Body, m.ID, ids[string(m.Body)])
		}
	}
	if len(ids) != len(vals) {
		t.Fatalf("the other member got %d distinct records, want %d", len(ids), len(vals))
	}
	none(t, b)
}

// TestSourceClusterRestart stops the cluster under a consumer, then starts a new one on the
// same port. kfake keeps nothing across a restart (no records, no committed offsets): what
// this proves is that Fetch reports the outage, that Open fails while it lasts, and that a
// consumer opened again reads the new cluster. That acknowledged records are not redelivered
// is proven within one cluster (TestSourceFetchAck).
func TestSourceClusterRestart(t *testing.T) {
	port := freePort(t)
	topic := "src-" + suffix()
	c1, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	typ := newSourceType(brokertest.NewDialer())
	group := "herald-" + suffix()
	cons := openSource(t, typ, c1, group, "all", topic)
	produceTo(t, c1, topic, 1, 3, "before")
	drain(t, cons, 10, 3)
	addrs := c1.ListenAddrs()
	c1.Close()

	ctx := ctxTimeout(t, 45*time.Second)
	var ferr error
	for ferr == nil {
		if ctx.Err() != nil {
			t.Fatal("Fetch never reported the stopped cluster")
		}
		var bt source.Batch
		bt, ferr = cons.Fetch(ctx, 10, 500*time.Millisecond)
		if ferr == nil && len(bt.Messages()) > 0 {
			t.Fatalf("fetched %d messages from a stopped cluster", len(bt.Messages()))
		}
	}
	var se *source.Error
	if !errors.As(ferr, &se) || se.Kind != destination.KindConnRefused {
		t.Fatalf("Fetch during the outage: %v, want a source.Error of kind %s", ferr, destination.KindConnRefused)
	}
	_ = cons.Close()
	octx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := typ.Open(octx, source.Target{SourceID: "s", Group: group, Settings: settings(t, map[string]any{"brokers": addrs, "topics": []string{topic}, "start": "all"})}); err == nil {
		t.Fatal("Open succeeded while the cluster is down")
	}

	c2, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatalf("restart on port %d: %v", port, err)
	}
	t.Cleanup(c2.Close)
	cons2 := openSource(t, typ, c2, group, "all", topic)
	vals := produceTo(t, c2, topic, 1, 4, "after")
	got := drain(t, cons2, 10, 4)
	if strings.Join(bodies(got), ",") != strings.Join(vals, ",") {
		t.Fatalf("after the restart got %q, want %q", bodies(got), vals)
	}
}

func TestSourceRefusingDialer(t *testing.T) {
	topic := "src-" + suffix()
	c := startCluster(t, kfake.SeedTopics(1, topic))
	d := brokertest.Refusing()
	typ := newSourceType(d)
	_, err := tryOpen(t, typ, c.ListenAddrs(), "herald-"+suffix(), "all", topic)
	var se *source.Error
	if !errors.As(err, &se) || se.Kind != destination.KindBlocked {
		t.Fatalf("Open through a refusing dialer: %v, want a source.Error of kind %s", err, destination.KindBlocked)
	}
	if d.Dials() == 0 {
		t.Fatal("the dialer was never asked")
	}
}

func TestSourceMissingTopic(t *testing.T) {
	c := startCluster(t)
	typ := newSourceType(brokertest.NewDialer())
	_, err := tryOpen(t, typ, c.ListenAddrs(), "herald-"+suffix(), "new", "absent-"+suffix())
	var se *source.Error
	if !errors.As(err, &se) || se.Kind != destination.KindNoRoute || !strings.Contains(se.Msg, "does not exist") {
		t.Fatalf("Open on a missing topic: %v, want kind %s", err, destination.KindNoRoute)
	}
}
