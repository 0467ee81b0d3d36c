package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/broker/brokertest"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkSend compares Send through the Kafka type with a plain franz-go client producing the
// same records (same headers and key, idempotent, acks=all, no linger) to the same kfake
// cluster, both with ProduceSync per message from parallel goroutines:
//
//	go test -run '^$' -bench BenchmarkSend ./internal/broker/kafka/
func BenchmarkSend(b *testing.B) {
	c := startCluster(b)
	topic := "bench-" + suffix()
	createTopic(b, c, topic, nil)
	body := envelope("evt_bench", "order.created", `{"order":{"id":"ord_1","total":4200,"currency":"EUR"}}`)
	msg := brokertest.SignedMessage(b, "evt_bench", "order.created", body)

	b.Run("herald", func(b *testing.B) {
		typ := newType(b, brokertest.NewDialer(), nil)
		snd := open(b, typ, map[string]any{"brokers": c.ListenAddrs(), "topic": topic})
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				o := snd.Send(ctx, msg)
				cancel()
				if o.Class != "success" {
					b.Errorf("send: %+v", o)
					return
				}
			}
		})
	})

	b.Run("plain-client", func(b *testing.B) {
		d := brokertest.NewDialer()
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.Dialer(d.Dial),
			kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Close()
		snd := open(b, New(envNone()), map[string]any{"brokers": c.ListenAddrs(), "topic": topic})
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				// The same record Send builds (headers, key), produced directly.
				r := snd.record(msg)
				r.Key = []byte(msg.ID)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err := cl.ProduceSync(ctx, r).FirstErr()
				cancel()
				if err != nil {
					b.Errorf("produce: %v", err)
					return
				}
			}
		})
	})
}
