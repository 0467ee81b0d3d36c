package natsdest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/internal/broker/brokertest"
	"github.com/heraldhq/herald/internal/httpsend"
	"github.com/heraldhq/herald/internal/source"
)

func newSourceType(t testing.TB, d *brokertest.Dialer) *SourceType {
	t.Helper()
	typ := NewSource(source.Env{Dial: d.Dial, InternalDial: d.Dial})
	t.Cleanup(func() { _ = typ.Close() })
	return typ
}

// openSource checks settings as the API would, then opens a consumer of group with them.
func openSource(t testing.TB, typ *SourceType, group string, settings map[string]any) source.Consumer {
	t.Helper()
	c, err := tryOpenSource(t, typ, group, settings)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return c
}

func tryOpenSource(t testing.TB, typ *SourceType, group string, settings map[string]any) (source.Consumer, error) {
	t.Helper()
	raw, err := json.Marshal(settings)
	if err != nil {
		t.Fatal(err)
	}
	norm, ferrs := typ.Check(raw)
	if len(ferrs) > 0 {
		t.Fatalf("Check(%s): %v", raw, ferrs[0])
	}
	c, err := typ.Open(sendCtx(t), source.Target{SourceID: "src_test", TenantID: "tn_test", Group: group, Member: "node", Settings: norm})
	if err == nil {
		t.Cleanup(func() { _ = c.Close() })
	}
	return c, err
}

// publishN publishes n messages to subject and returns their stream sequences.
func publishN(t testing.TB, js jetstream.JetStream, subject string, n int) []uint64 {
	t.Helper()
	var seqs []uint64
	for i := range n {
		msg := &nats.Msg{Subject: subject, Data: []byte(fmt.Sprintf(`{"n":%d}`, i)), Header: nats.Header{}}
		msg.Header.Set("x-test", fmt.Sprintf("v%d", i))
		ack, err := js.PublishMsg(sendCtx(t), msg)
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		seqs = append(seqs, ack.Sequence)
	}
	return seqs
}

func ids(stream string, seqs []uint64) []string {
	out := make([]string, len(seqs))
	for i, s := range seqs {
		out[i] = fmt.Sprintf("%s:%d", stream, s)
	}
	return out
}

func fetch(t testing.TB, c source.Consumer, maxMsgs int, wait time.Duration) source.Batch {
	t.Helper()
	b, err := c.Fetch(sendCtx(t), maxMsgs, wait)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return b
}

func batchIDs(b source.Batch) []string {
	var out []string
	for _, m := range b.Messages() {
		out = append(out, m.ID)
	}
	return out
}

func consumerInfo(t testing.TB, js jetstream.JetStream, stream, group string) *jetstream.ConsumerInfo {
	t.Helper()
	ctx := sendCtx(t)
	c, err := js.Consumer(ctx, stream, group)
	if err != nil {
		t.Fatalf("consumer %s: %v", group, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatalf("consumer info: %v", err)
	}
	return info
}

// collect fetches and acknowledges until it holds want messages or the deadline passes.
func collect(t testing.TB, c source.Consumer, want int, within time.Duration) []string {
	t.Helper()
	var got []string
	deadline := time.Now().Add(within)
	for len(got) < want && time.Now().Before(deadline) {
		b := fetch(t, c, want-len(got), 500*time.Millisecond)
		got = append(got, batchIDs(b)...)
		if err := b.Ack(sendCtx(t)); err != nil {
			t.Fatalf("Ack: %v", err)
		}
	}
	return got
}

func group(t testing.TB) string { return "herald_src_" + randSuffix(t) }

func TestSourceFetchAck(t *testing.T) {
	url := sharedURL(t)
	_, js := admin(t, url)
	stream, subject := newStream(t, js, nil)
	before := time.Now().Add(-time.Minute)
	seqs := publishN(t, js, subject, 5)
	typ := newSourceType(t, brokertest.NewDialer())
	g := group(t)
	c := openSource(t, typ, g, map[string]any{"url": url, "stream": stream})

	b := fetch(t, c, 10, 5*time.Second)
	ms := b.Messages()
	if got, want := batchIDs(b), ids(stream, seqs); !slices.Equal(got, want) {
		t.Fatalf("IDs = %v, want %v", got, want)
	}
	for i, m := range ms {
		if m.Subject != subject || string(m.Body) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Errorf("message %d = subject %q body %q", i, m.Subject, m.Body)
		}
		if v := m.Header["x-test"]; len(v) != 1 || v[0] != fmt.Sprintf("v%d", i) {
			t.Errorf("message %d header x-test = %v (headers %v)", i, v, m.Header)
		}
		if m.Time.Before(before) || m.Time.After(time.Now().Add(time.Minute)) {
			t.Errorf("message %d Time = %v", i, m.Time)
		}
	}
	if err := b.Ack(sendCtx(t)); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	if err := b.Ack(sendCtx(t)); err == nil {
		t.Error("a second Ack of the same batch succeeded")
	}
	info := consumerInfo(t, js, stream, g)
	if info.NumAckPending != 0 || info.AckFloor.Stream != seqs[len(seqs)-1] {
		t.Errorf("after Ack: ack pending %d, ack floor %d; want 0 and %d", info.NumAckPending, info.AckFloor.Stream, seqs[len(seqs)-1])
	}
	if info.Config.AckPolicy != jetstream.AckExplicitPolicy || info.Config.AckWait != defaultAckWait || info.Config.MaxAckPending != defaultMaxAckPending {
		t.Errorf("consumer config = %+v", info.Config)
	}
	// Acknowledged messages never come back, not even to a new consumer of the same group.
	if b := fetch(t, c, 10, 300*time.Millisecond); len(b.Messages()) != 0 {
		t.Errorf("after Ack, Fetch returned %v", batchIDs(b))
	}
	c2 := openSource(t, newSourceType(t, brokertest.NewDialer()), g, map[string]any{"url": url, "stream": stream})
	if b := fetch(t, c2, 10, 300*time.Millisecond); len(b.Messages()) != 0 {
		t.Errorf("a new consumer of the group got acknowledged messages %v", batchIDs(b))
	}
	// An empty batch settles trivially; Fetch with no wait returns what is there now.
	newSeqs := publishN(t, js, subject, 2)
	b = fetch(t, c, 10, 0)
	if got := batchIDs(b); !slices.Equal(got, ids(stream, newSeqs)) {
		t.Errorf("FetchNoWait = %v, want %v", got, ids(stream, newSeqs))
	}
	if err := b.Ack(sendCtx(t)); err != nil {
		t.Fatal(err)
	}
}

func TestSourceNakRedeliversWithTheSameID(t *testing.T) {
	url := sharedURL(t)
	_, js := admin(t, url)
	stream, subject := newStream(t, js, nil)
	seqs := publishN(t, js, subject, 3)
	want := ids(stream, seqs)
	c := openSource(t, newSourceType(t, brokertest.NewDialer()), group(t), map[string]any{"url": url, "stream": stream})

	b := fetch(t, c, 10, 5*time.Second)
	if got := batchIDs(b); !slices.Equal(got, want) {
		t.Fatalf("IDs = %v, want %v", got, want)
	}
	if err := b.Nak(sendCtx(t), 0); err != nil {
		t.Fatalf("Nak: %v", err)
	}
	// Given back at once: delivered again, with the same IDs.
	b = fetch(t, c, 10, 5*time.Second)
	if got := batchIDs(b); !slices.Equal(got, want) {
		t.Fatalf("after Nak, IDs = %v, want the same %v", got, want)
	}
	// Given back with a delay: not delivered before it, delivered after it.
	const delay = 3 * time.Second
	nakAt := time.Now()
	if err := b.Nak(sendCtx(t), delay); err != nil {
		t.Fatalf("Nak with delay: %v", err)
	}
	if b := fetch(t, c, 10, 0); len(b.Messages()) != 0 && time.Since(nakAt) < delay {
		t.Errorf("a message Nak'ed with a %v delay came back at once: %v", delay, batchIDs(b))
	}
	got := collect(t, c, 3, 30*time.Second)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("after the Nak delay, IDs = %v, want %v", got, want)
	}
	if time.Since(nakAt) < delay {
		t.Errorf("messages came back %v after a Nak with delay %v", time.Since(nakAt), delay)
	}
}

func TestSourceBoundedPrefetch(t *testing.T) {
	url := sharedURL(t)
	_, js := admin(t, url)
	stream, subject := newStream(t, js, nil)
	seqs := publishN(t, js, subject, 20)
	g := group(t)
	c := openSource(t, newSourceType(t, brokertest.NewDialer()), g, map[string]any{"url": url, "stream": stream, "max_ack_pending": 5})

	// Fetch takes what it is asked for, the broker keeps the rest.
	b1 := fetch(t, c, 3, 5*time.Second)
	if got := batchIDs(b1); !slices.Equal(got, ids(stream, seqs[:3])) {
		t.Fatalf("Fetch(3) = %v", got)
	}
	info := consumerInfo(t, js, stream, g)
	if info.NumAckPending != 3 || info.NumPending != 17 {
		t.Errorf("after Fetch(3): ack pending %d, pending %d; want 3 and 17", info.NumAckPending, info.NumPending)
	}
	// However many are asked for, no more than max_ack_pending are unsettled.
	b2 := fetch(t, c, 100, time.Second)
	if n := len(b2.Messages()); n != 2 {
		t.Fatalf("Fetch(100) with 3 unsettled and max_ack_pending 5 returned %d messages, want 2", n)
	}
	if b := fetch(t, c, 100, 500*time.Millisecond); len(b.Messages()) != 0 {
		t.Fatalf("Fetch with max_ack_pending unsettled returned %v", batchIDs(b))
	}
	if info := consumerInfo(t, js, stream, g); info.NumAckPending != 5 || info.NumPending != 15 {
		t.Errorf("ack pending %d, pending %d; want 5 and 15", info.NumAckPending, info.NumPending)
	}
	for _, b := range []source.Batch{b1, b2} {
		if err := b.Ack(sendCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	got := collect(t, c, 15, 30*time.Second)
	if !slices.Equal(got, ids(stream, seqs[5:])) {
		t.Errorf("the rest = %v, want %v", got, ids(stream, seqs[5:]))
	}
}

func TestSourceNodesShareTheConsumer(t *testing.T) {
	url := sharedURL(t)
	_, js := admin(t, url)
	stream, subject := newStream(t, js, nil)
	seqs := publishN(t, js, subject, 40)
	g := group(t)
	settings := map[string]any{"url": url, "stream": stream}
	// Two nodes: each its own type (its own connection), the same group.
	a := openSource(t, newSourceType(t, brokertest.NewDialer()), g, settings)
	b := openSource(t, newSourceType(t, brokertest.NewDialer()), g, settings)

	// While A holds its messages, B gets the next ones, never A's.
	ba := fetch(t, a, 5, 5*time.Second)
	bb := fetch(t, b, 5, 5*time.Second)
	if got := batchIDs(ba); !slices.Equal(got, ids(stream, seqs[:5])) {
		t.Fatalf("A got %v", got)
	}
	if got := batchIDs(bb); !slices.Equal(got, ids(stream, seqs[5:10])) {
		t.Fatalf("B got %v, want the 5 after A's", got)
	}
	for _, x := range []source.Batch{ba, bb} {
		if err := x.Ack(sendCtx(t)); err != nil {
			t.Fatal(err)
		}
	}

	// Both pulling at once: each message to exactly one of them.
	var mu sync.Mutex
	seen := map[string]string{}
	var dup []string
	var wg sync.WaitGroup
	for name, c := range map[string]source.Consumer{"A": a, "B": b} {
		wg.Go(func() {
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				mu.Lock()
				done := len(seen) >= 30
				mu.Unlock()
				if done {
					return
				}
				x, err := c.Fetch(context.Background(), 3, 300*time.Millisecond)
				if err != nil {
					t.Errorf("%s: Fetch: %v", name, err)
					return
				}
				mu.Lock()
				for _, id := range batchIDs(x) {
					if prev, ok := seen[id]; ok {
						dup = append(dup, fmt.Sprintf("%s to %s and %s", id, prev, name))
					}
					seen[id] = name
				}
				mu.Unlock()
				if err := x.Ack(context.Background()); err != nil {
					t.Errorf("%s: Ack: %v", name, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if len(dup) > 0 {
		t.Errorf("messages delivered to both nodes: %v", dup)
	}
	for _, id := range ids(stream, seqs[10:]) {
		if _, ok := seen[id]; !ok {
			t.Errorf("message %s reached neither node", id)
		}
	}
	if len(seen) != 30 {
		t.Errorf("%d distinct messages, want 30", len(seen))
	}
}

func TestSourceDeadNodeHandsOverItsMessages(t *testing.T) {
	url := sharedURL(t)
	_, js := admin(t, url)
	stream, subject := newStream(t, js, nil)
	seqs := publishN(t, js, subject, 10)
	g := group(t)
	settings := map[string]any{"url": url, "stream": stream, "ack_wait": "1s"}
	nodeA := newSourceType(t, brokertest.NewDialer())
	a := openSource(t, nodeA, g, settings)
	b := openSource(t, newSourceType(t, brokertest.NewDialer()), g, settings)

	held := fetch(t, a, 4, 5*time.Second)
	heldIDs := batchIDs(held)
	if !slices.Equal(heldIDs, ids(stream, seqs[:4])) {
		t.Fatalf("A got %v", heldIDs)
	}
	// A dies with its messages unacknowledged: its connection goes away.
	if err := nodeA.Close(); err != nil {
		t.Fatal(err)
	}
	if err := held.Ack(sendCtx(t)); err == nil {
		t.Fatal("Ack on a dead node's connection succeeded")
	}

	got := collect(t, b, 10, 30*time.Second)
	slices.Sort(got)
	want := ids(stream, seqs)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("B got %v, want all of %v (A's included, same IDs)", got, want)
	}
	if info := consumerInfo(t, js, stream, g); info.NumAckPending != 0 || info.NumPending != 0 || info.NumRedelivered != 0 {
		t.Errorf("consumer: ack pending %d, pending %d, redelivered %d; want all 0", info.NumAckPending, info.NumPending, info.NumRedelivered)
	}
}

// terminate stops the private server gracefully (SIGTERM): it writes its state out first.
func (s *server) terminate() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_ = s.cmd.Wait()
	s.cmd = nil
}

// TestSourceBrokerRestarted stops a private broker mid-run, stopped gracefully and killed: the
// consumer fails, a consumer opened after the restart works, and nothing unacknowledged is lost.
// After a graceful stop nothing acknowledged comes back either; after SIGKILL, JetStream may
// redeliver acknowledgements it had not yet written to its store (it writes consumer state
// asynchronously; nats-server 2.9.10 here even redelivered such messages more than once after
// they were acknowledged again), which the stable IDs make harmless: those are logged, not failed.
func TestSourceBrokerRestarted(t *testing.T) {
	sharedURL(t)
	for _, kill := range []bool{false, true} {
		name := map[bool]string{false: "SIGTERM", true: "SIGKILL"}[kill]
		t.Run(name, func(t *testing.T) {
			srv := startServer(t, "")
			_, js := admin(t, srv.url())
			stream, subject := newStream(t, js, nil)
			seqs := publishN(t, js, subject, 10)
			g := group(t)
			settings := map[string]any{"url": srv.url(), "stream": stream, "ack_wait": "1s"}
			typ := newSourceType(t, brokertest.NewDialer())
			c := openSource(t, typ, g, settings)

			acked := fetch(t, c, 4, 5*time.Second)
			if err := acked.Ack(sendCtx(t)); err != nil {
				t.Fatal(err)
			}
			ackedIDs := batchIDs(acked)
			held := fetch(t, c, 3, 5*time.Second)
			if len(ackedIDs) != 4 || len(held.Messages()) != 3 {
				t.Fatalf("fetched %v then %v", ackedIDs, batchIDs(held))
			}

			if kill {
				srv.stop()
			} else {
				srv.terminate()
			}
			// Fetch fails once the connection is lost.
			deadline := time.Now().Add(30 * time.Second)
			var ferr error
			for ferr == nil && time.Now().Before(deadline) {
				_, ferr = c.Fetch(sendCtx(t), 5, 200*time.Millisecond)
			}
			if ferr == nil {
				t.Fatal("Fetch kept succeeding with the broker down")
			}
			t.Logf("Fetch with the broker down: %v", ferr)
			if err := held.Ack(sendCtx(t)); err == nil {
				t.Error("Ack with the broker down succeeded")
			}
			_ = c.Close()
			if _, err := tryOpenSource(t, typ, g, settings); err == nil {
				t.Error("Open with the broker down succeeded")
			} else {
				t.Logf("Open with the broker down: %v", err)
			}

			srv.start() // same port, same store: the stream and the durable consumer are still there
			var c2 source.Consumer
			deadline = time.Now().Add(30 * time.Second)
			for c2 == nil {
				var err error
				if c2, err = tryOpenSource(t, typ, g, settings); err != nil {
					if time.Now().After(deadline) {
						t.Fatalf("Open still fails 30s after the restart: %v", err)
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
			// Read until every unacknowledged message is back and then nothing more comes for
			// longer than ack_wait (so that nothing the broker still holds is missed).
			unacked := slices.DeleteFunc(ids(stream, seqs), func(id string) bool { return slices.Contains(ackedIDs, id) })
			var got []string
			seen := map[string]bool{}
			deadline = time.Now().Add(40 * time.Second)
			for time.Now().Before(deadline) {
				allBack := !slices.ContainsFunc(unacked, func(id string) bool { return !seen[id] })
				wait := 500 * time.Millisecond
				if allBack {
					wait = 3 * time.Second
				}
				b := fetch(t, c2, 10, wait)
				for _, id := range batchIDs(b) {
					got = append(got, id)
					seen[id] = true
				}
				if err := b.Ack(sendCtx(t)); err != nil {
					t.Fatal(err)
				}
				if allBack && len(b.Messages()) == 0 {
					break
				}
			}
			if len(got) != len(seen) {
				if kill {
					t.Logf("messages delivered again after SIGKILL though acknowledged after the restart: %v", got)
				} else {
					t.Errorf("a message came twice after the restart, though acknowledged: %v", got)
				}
			}
			for _, id := range ids(stream, seqs) {
				if !seen[id] && !slices.Contains(ackedIDs, id) {
					t.Errorf("unacknowledged message %s lost across the restart (got %v)", id, got)
				}
				if seen[id] && slices.Contains(ackedIDs, id) {
					if kill {
						t.Logf("acknowledged message %s redelivered after SIGKILL (JetStream had not stored the ack)", id)
					} else {
						t.Errorf("acknowledged message %s redelivered after a graceful restart", id)
					}
				}
			}
		})
	}
}

func TestSourceRefusingDialer(t *testing.T) {
	url := sharedURL(t)
	_, js := admin(t, url)
	stream, subject := newStream(t, js, nil)
	publishN(t, js, subject, 1)
	d := brokertest.Refusing()
	g := group(t)
	_, err := tryOpenSource(t, newSourceType(t, d), g, map[string]any{"url": url, "stream": stream})
	var be *httpsend.BlockedError
	if !errors.As(err, &be) {
		t.Fatalf("Open = %v, want a *httpsend.BlockedError", err)
	}
	if !strings.Contains(err.Error(), "not allowed") {
		t.Errorf("error = %q, want the guard's reason", err)
	}
	if d.Dials() == 0 {
		t.Fatal("the guarded dialer was never asked")
	}
	if _, err := js.Consumer(sendCtx(t), stream, g); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("durable consumer lookup = %v, want not found (nothing reached the broker)", err)
	}

	// An internal source uses the internal dialer.
	internal := brokertest.NewDialer()
	typ := NewSource(source.Env{Dial: d.Dial, InternalDial: internal.Dial})
	t.Cleanup(func() { _ = typ.Close() })
	norm, _ := typ.Check([]byte(fmt.Sprintf(`{"url":%q,"stream":%q}`, url, stream)))
	c, err := typ.Open(sendCtx(t), source.Target{SourceID: "src", Group: g, Settings: norm, Internal: true})
	if err != nil {
		t.Fatalf("internal Open: %v", err)
	}
	defer c.Close()
	if internal.Dials() != 1 {
		t.Errorf("internal dials = %d, want 1", internal.Dials())
	}
}

func TestSourceOpenFailures(t *testing.T) {
	url := sharedURL(t)
	_, js := admin(t, url)
	typ := newSourceType(t, brokertest.NewDialer())
	missing := "HERALD_NOPE_" + randSuffix(t)
	_, err := tryOpenSource(t, typ, group(t), map[string]any{"url": url, "stream": missing})
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("Open on a missing stream = %v", err)
	}
	stream, _ := newStream(t, js, nil)
	if _, err := tryOpenSource(t, typ, "bad.name", map[string]any{"url": url, "stream": stream}); err == nil {
		t.Error("Open with a consumer name holding a dot succeeded")
	}
	if _, err := tryOpenSource(t, typ, "", map[string]any{"url": url, "stream": stream}); err == nil {
		t.Error("Open without a group succeeded")
	}
	if _, err := typ.Open(sendCtx(t), source.Target{Group: "g", Settings: []byte(`{"url":"nats://h"}`)}); err == nil {
		t.Error("Open with unchecked settings (no stream) succeeded")
	}
}

func TestSourceFilterSubject(t *testing.T) {
	url := sharedURL(t)
	_, js := admin(t, url)
	sfx := randSuffix(t)
	stream, _ := newStream(t, js, func(c *jetstream.StreamConfig) { c.Subjects = []string{"herald.test." + sfx + ".>"} })
	want := publishN(t, js, "herald.test."+sfx+".orders.created", 2)
	publishN(t, js, "herald.test."+sfx+".users.created", 3)
	c := openSource(t, newSourceType(t, brokertest.NewDialer()), group(t), map[string]any{"url": url, "stream": stream, "filter_subject": "herald.test." + sfx + ".orders.*"})
	got := collect(t, c, 2, 10*time.Second)
	if !slices.Equal(got, ids(stream, want)) {
		t.Errorf("filtered = %v, want %v", got, ids(stream, want))
	}
	if b := fetch(t, c, 10, 300*time.Millisecond); len(b.Messages()) != 0 {
		t.Errorf("filter let through %v", batchIDs(b))
	}
}

func TestSourceCheck(t *testing.T) {
	typ := NewSource(source.Env{})
	t.Cleanup(func() { _ = typ.Close() })
	out, errs := typ.Check([]byte(`{"url":"nats://127.0.0.1","stream":"ORDERS","username":"u","password":"p"}`))
	if errs != nil {
		t.Fatalf("Check: %v", errs[0])
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"url": "nats://127.0.0.1:4222", "stream": "ORDERS", "username": "u", "password": "p", "tls": false,
		"ack_wait": "30s", "max_ack_pending": float64(1000)}
	if len(got) != len(want) {
		t.Errorf("normalised = %s, want the fields %v", out, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("normalised %s = %v, want %v", k, got[k], v)
		}
	}
	if again, errs := typ.Check(out); errs != nil || string(again) != string(out) {
		t.Errorf("Check(Check(x)) = %s, %v; want %s", again, errs, out)
	}
	if typ.Name() != "nats" || !slices.Equal(typ.Secrets(), []string{"password", "token"}) {
		t.Errorf("Name %q, Secrets %v", typ.Name(), typ.Secrets())
	}

	for _, tc := range []struct{ name, settings, field, msg string }{
		{"not an object", `"x"`, "", "JSON object"},
		{"unknown field", `{"url":"nats://h","stream":"S","subject":"a"}`, "subject", "unknown setting"},
		{"url missing", `{"stream":"S"}`, "url", "is required"},
		{"url password", `{"url":"nats://u:hunter2@h","stream":"S"}`, "url", "put the password in the password setting"},
		{"token and password", `{"url":"nats://h","stream":"S","token":"t","username":"u","password":"p"}`, "token", "not both"},
		{"stream missing", `{"url":"nats://h"}`, "stream", "is required"},
		{"stream with dot", `{"url":"nats://h","stream":"A.B"}`, "stream", "must not contain"},
		{"filter empty token", `{"url":"nats://h","stream":"S","filter_subject":"a..b"}`, "filter_subject", "empty token"},
		{"filter > not last", `{"url":"nats://h","stream":"S","filter_subject":"a.>.b"}`, "filter_subject", "last token"},
		{"filter partial wildcard", `{"url":"nats://h","stream":"S","filter_subject":"a.b*"}`, "filter_subject", "whole tokens"},
		{"filter space", `{"url":"nats://h","stream":"S","filter_subject":"a b"}`, "filter_subject", "spaces"},
		{"ack_wait not a duration", `{"url":"nats://h","stream":"S","ack_wait":"soon"}`, "ack_wait", "duration"},
		{"ack_wait a number", `{"url":"nats://h","stream":"S","ack_wait":30}`, "ack_wait", "a duration in a string"},
		{"ack_wait too short", `{"url":"nats://h","stream":"S","ack_wait":"10ms"}`, "ack_wait", "must be from 1s"},
		{"ack_wait too long", `{"url":"nats://h","stream":"S","ack_wait":"48h"}`, "ack_wait", "to 12h"},
		{"max_ack_pending negative", `{"url":"nats://h","stream":"S","max_ack_pending":-1}`, "max_ack_pending", "from 1 to"},
		{"max_ack_pending too big", `{"url":"nats://h","stream":"S","max_ack_pending":1000000}`, "max_ack_pending", "from 1 to"},
		{"max_ack_pending a string", `{"url":"nats://h","stream":"S","max_ack_pending":"5"}`, "max_ack_pending", "whole number"},
		{"max_ack_pending fractional", `{"url":"nats://h","stream":"S","max_ack_pending":1.5}`, "max_ack_pending", "whole number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errs := typ.Check([]byte(tc.settings))
			if len(errs) == 0 {
				t.Fatalf("Check accepted %s as %s", tc.settings, out)
			}
			if e := errs[0]; e.Field != tc.field || !strings.Contains(e.Message, tc.msg) {
				t.Errorf("error = %q at %q, want %q at %q", e.Message, e.Field, tc.msg, tc.field)
			}
			for _, e := range errs {
				if strings.Contains(e.Message, "hunter2") || strings.Contains(toString(e.Value), "hunter2") {
					t.Errorf("the password leaked: %+v", e)
				}
			}
		})
	}
	_, errs = typ.Check([]byte(`{"url":"http://h","stream":"a.b","ack_wait":"x","max_ack_pending":-3,"filter_subject":"a..b"}`))
	fields := map[string]bool{}
	for _, e := range errs {
		fields[e.Field] = true
	}
	for _, f := range []string{"url", "stream", "ack_wait", "max_ack_pending", "filter_subject"} {
		if !fields[f] {
			t.Errorf("no error for %s among %v", f, errs)
		}
	}
}
