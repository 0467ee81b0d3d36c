package kafka

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/heraldhq/herald/internal/broker/brokertest"
	"github.com/heraldhq/herald/internal/destination"
)

// freePort returns a port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestBrokerRestart stops the cluster under a sender: attempts during the outage are
// Retryable, and once a cluster listens on the same port again the same Sender delivers.
func TestBrokerRestart(t *testing.T) {
	port := freePort(t)
	topic := "restart-" + suffix()
	c1, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	typ := newType(t, brokertest.NewDialer(), nil)
	snd := open(t, typ, map[string]any{"brokers": c1.ListenAddrs(), "topic": topic})
	if o := snd.Send(ctxTimeout(t, 20*time.Second), brokertest.SignedMessage(t, "evt_1", "a.b", []byte(`{"n":1}`))); o.Class != destination.Success {
		t.Fatalf("before the restart: %+v", o)
	}

	c1.Close()
	for i := range 2 {
		o := snd.Send(ctxTimeout(t, 3*time.Second), brokertest.SignedMessage(t, fmt.Sprintf("evt_down_%d", i), "a.b", []byte(`{"n":2}`)))
		if o.Class != destination.Retryable {
			t.Fatalf("broker down, attempt %d: %+v, want retryable", i, o)
		}
		if o.Error == "" || o.ErrorKind == "" {
			t.Fatalf("broker down, attempt %d: no error: %+v", i, o)
		}
		t.Logf("broker down, attempt %d: %s: %s", i, o.ErrorKind, o.Error)
	}

	var c2 *kfake.Cluster
	deadline := time.Now().Add(20 * time.Second)
	for {
		c2, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.SeedTopics(1, topic))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restart kfake on port %d: %v", port, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(c2.Close)

	// The first attempts after the restart may still meet the old connections' state; within a
	// deadline, the same Sender delivers.
	var o destination.Outcome
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		o = snd.Send(ctxTimeout(t, 5*time.Second), brokertest.SignedMessage(t, "evt_after", "a.b", []byte(`{"n":3}`)))
		if o.Class == destination.Success {
			break
		}
		if o.Class != destination.Retryable {
			t.Fatalf("after the restart: %+v, want success or retryable", o)
		}
	}
	if o.Class != destination.Success {
		t.Fatalf("after the restart: %+v", o)
	}
	recs := consume(t, c2, topic, 1)
	if string(recs[0].Key) != "evt_after" {
		t.Fatalf("new cluster's first record is %q", recs[0].Key)
	}
}

func TestPoolSharedAndBounded(t *testing.T) {
	c := startCluster(t)
	topicA, topicB := "pool-a-"+suffix(), "pool-b-"+suffix()
	createTopic(t, c, topicA, nil)
	createTopic(t, c, topicB, nil)
	typ := newType(t, brokertest.NewDialer(), func(env *destination.Env) { env.MaxConnections = 1 })

	a := open(t, typ, map[string]any{"brokers": c.ListenAddrs(), "topic": topicA})
	b := open(t, typ, map[string]any{"brokers": c.ListenAddrs(), "topic": topicB, "key": "type"})
	for _, s := range []*Sender{a, b} {
		if o := s.Send(ctxTimeout(t, 20*time.Second), brokertest.SignedMessage(t, "evt_"+suffix(), "a.b", []byte(`{}`))); o.Class != destination.Success {
			t.Fatalf("send to %s: %+v", s.topic, o)
		}
	}
	if n := typ.pool.Len(); n != 1 {
		t.Fatalf("two endpoints on the same brokers hold %d clients, want 1 shared", n)
	}

	// Another broker address (same cluster, written differently) needs a second client: over
	// the limit of 1, the attempt is broker_busy and nothing is dialled for it.
	other := strings.Replace(c.ListenAddrs()[0], "127.0.0.1", "localhost", 1)
	d := brokertest.NewDialer()
	typ2 := newType(t, d, func(env *destination.Env) { env.MaxConnections = 1 })
	first := open(t, typ2, map[string]any{"brokers": c.ListenAddrs(), "topic": topicA})
	if o := first.Send(ctxTimeout(t, 20*time.Second), brokertest.SignedMessage(t, "evt_"+suffix(), "a.b", []byte(`{}`))); o.Class != destination.Success {
		t.Fatalf("first: %+v", o)
	}
	// The first client in use (as by an attempt in flight): an idle one would be closed to make
	// room (the shared pool's rule, its own tests cover it).
	held, put, err := typ2.acquire(context.Background(), first.key)
	if err != nil {
		t.Fatal(err)
	}
	defer typ2.release(held, put)
	dials := d.Dials()
	busy := open(t, typ2, map[string]any{"brokers": []string{other}, "topic": topicA})
	o := busy.Send(ctxTimeout(t, 20*time.Second), brokertest.SignedMessage(t, "evt_"+suffix(), "a.b", []byte(`{}`)))
	if o.Class != destination.Retryable || o.ErrorKind != destination.KindBrokerBusy || !strings.Contains(o.Error, "limit") {
		t.Fatalf("over the limit: %+v, want retryable broker_busy", o)
	}
	if d.Dials() != dials {
		t.Fatalf("an attempt over the limit dialled (%d dials, was %d)", d.Dials(), dials)
	}
}

func TestIdleClientClosedAndReopened(t *testing.T) {
	c := startCluster(t)
	topic := "idle-" + suffix()
	createTopic(t, c, topic, nil)
	typ := newType(t, brokertest.NewDialer(), func(env *destination.Env) { env.IdleTimeout = 200 * time.Millisecond })
	snd := open(t, typ, map[string]any{"brokers": c.ListenAddrs(), "topic": topic})
	if o := snd.Send(ctxTimeout(t, 20*time.Second), brokertest.SignedMessage(t, "evt_1", "a.b", []byte(`{}`))); o.Class != destination.Success {
		t.Fatalf("first: %+v", o)
	}
	first := pooled(t, typ, snd.key)
	if first == nil {
		t.Fatal("no pooled client after a send")
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if typ.pool.Len() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the idle client was not closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if o := snd.Send(ctxTimeout(t, 20*time.Second), brokertest.SignedMessage(t, "evt_2", "a.b", []byte(`{}`))); o.Class != destination.Success {
		t.Fatalf("after the idle close: %+v", o)
	}
	second := pooled(t, typ, snd.key)
	if second == nil || second == first {
		t.Fatal("the send after the idle close did not open a new client")
	}
	if n := topicEnd(t, c, topic); n != 2 {
		t.Fatalf("topic holds %d records, want 2", n)
	}
}

func TestClose(t *testing.T) {
	c := startCluster(t)
	topic := "close-" + suffix()
	createTopic(t, c, topic, nil)
	typ := newType(t, brokertest.NewDialer(), nil)
	snd := open(t, typ, map[string]any{"brokers": c.ListenAddrs(), "topic": topic})
	if o := snd.Send(ctxTimeout(t, 20*time.Second), brokertest.SignedMessage(t, "evt_1", "a.b", []byte(`{}`))); o.Class != destination.Success {
		t.Fatalf("send: %+v", o)
	}
	if err := typ.Close(); err != nil {
		t.Fatal(err)
	}
	if o := snd.Send(ctxTimeout(t, 20*time.Second), brokertest.SignedMessage(t, "evt_2", "a.b", []byte(`{}`))); o.Class != destination.Retryable {
		t.Fatalf("after Close: %+v, want retryable", o)
	}
}

// An internal endpoint dials with InternalDial, an ordinary one with Dial, and they do not
// share a client.
func TestInternalUsesInternalDial(t *testing.T) {
	c := startCluster(t)
	topic := "internal-" + suffix()
	createTopic(t, c, topic, nil)
	public := brokertest.Refusing()
	internal := brokertest.NewDialer()
	typ := New(destination.Env{Dial: public.Dial, InternalDial: internal.Dial})
	t.Cleanup(func() { _ = typ.Close() })
	norm, errs := typ.Check(settings(t, map[string]any{"brokers": c.ListenAddrs(), "topic": topic}))
	if errs != nil {
		t.Fatal(errs)
	}
	in, err := typ.Open(destination.Target{Settings: norm, Internal: true})
	if err != nil {
		t.Fatal(err)
	}
	out, err := typ.Open(destination.Target{Settings: norm})
	if err != nil {
		t.Fatal(err)
	}
	if o := in.Send(ctxTimeout(t, 20*time.Second), brokertest.SignedMessage(t, "evt_in", "a.b", []byte(`{}`))); o.Class != destination.Success {
		t.Fatalf("internal endpoint: %+v", o)
	}
	if internal.Dials() == 0 || public.Dials() != 0 {
		t.Fatalf("internal endpoint dialled internal %d, public %d times", internal.Dials(), public.Dials())
	}
	if o := out.Send(ctxTimeout(t, 20*time.Second), brokertest.SignedMessage(t, "evt_out", "a.b", []byte(`{}`))); o.Class != destination.Permanent || o.ErrorKind != destination.KindBlocked {
		t.Fatalf("ordinary endpoint: %+v, want blocked_destination", o)
	}
}

// pooled is the pool's client for key (in use for no longer than this call).
func pooled(t *testing.T, typ *Type, key poolKey) *entry {
	t.Helper()
	e, put, err := typ.acquire(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	typ.release(e, put)
	return e
}
