package kafka

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/heraldhq/herald/internal/broker/brokertest"
	"github.com/heraldhq/herald/internal/destination"
)

// The tests run against kfake, franz-go's in-process Kafka implementation, on 127.0.0.1: no
// Kafka broker can be had on this machine.

func suffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// startCluster starts a one-broker kfake cluster on 127.0.0.1 and closes it at the end of the
// test.
func startCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	opts = append([]kfake.Opt{kfake.NumBrokers(1)}, opts...) // kfake listens on 127.0.0.1
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func newType(t testing.TB, d *brokertest.Dialer, mod func(*destination.Env)) *Type {
	t.Helper()
	env := destination.Env{Dial: d.Dial, InternalDial: d.Dial}
	if mod != nil {
		mod(&env)
	}
	typ := New(env)
	t.Cleanup(func() { _ = typ.Close() })
	return typ
}

func settings(t testing.TB, s map[string]any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// open checks the settings through Check (as the API does) and opens a sender.
func open(t testing.TB, typ *Type, s map[string]any) *Sender {
	t.Helper()
	norm, errs := typ.Check(settings(t, s))
	if errs != nil {
		t.Fatalf("Check(%v): %v", s, errs)
	}
	snd, err := typ.Open(destination.Target{EndpointID: "ep_1", TenantID: "t_1", Settings: norm})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return snd.(*Sender)
}

// createTopic creates a topic on c with a plain client.
func createTopic(t testing.TB, c *kfake.Cluster, topic string, configs map[string]string, opts ...kgo.Opt) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, 1, 1
	for k, v := range configs {
		cfg := kmsg.NewCreateTopicsRequestTopicConfig()
		cfg.Name, cfg.Value = k, kmsg.StringPtr(v)
		rt.Configs = append(rt.Configs, cfg)
	}
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	if code := resp.Topics[0].ErrorCode; code != 0 {
		t.Fatalf("create topic %s: error code %d", topic, code)
	}
}

func envelope(id, eventType, data string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"type":%q,"timestamp":"2026-12-03T12:00:00Z","data":%s}`, id, eventType, data)
}

// consume reads n records from the start of topic with a plain consumer client.
func consume(t testing.TB, c *kfake.Cluster, topic string, n int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records from %s before the deadline", len(out), n, topic)
		}
		for _, fe := range fs.Errors() {
			t.Fatalf("fetch %s: %v", topic, fe.Err)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

// topicEnd is the number of records in partition 0 of topic (its high watermark).
func topicEnd(t testing.TB, c *kfake.Cluster, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp = 0, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("list offsets %s: %v", topic, err)
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("list offsets %s: error code %d", topic, p.ErrorCode)
	}
	return p.Offset
}

// headers turns a record's headers into an http.Header, as a consumer would to verify.
func headers(r *kgo.Record) http.Header {
	h := http.Header{}
	for _, rh := range r.Headers {
		h.Add(rh.Key, string(rh.Value))
	}
	return h
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// envNone is an Env for tests that do no I/O.
func envNone() destination.Env { return destination.Env{} }
