package redisstream

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/internal/broker/brokertest"
	"github.com/heraldhq/herald/internal/destination"
)

// BenchmarkSend compares a Send through the type with the same XADD (same fields, same
// acknowledgement: the reply's entry id) published directly by a plain go-redis client, on the
// shared Redis. Run: HERALD_TEST_REDIS_URL=redis://127.0.0.1:6379/0 go test -run '^$' -bench Send ./internal/broker/redisstream/
func BenchmarkSend(b *testing.B) {
	addr, db := sharedRedis(b)
	ctx := context.Background()
	body := []byte(`{"type":"order.created","timestamp":"2024-05-01T12:00:00Z","data":{"id":"ord_1","total":42,"currency":"EUR"}}`)
	m := brokertest.Message(b, "order.created", body)
	cons := consumer(b, addr, db)

	b.Run("herald", func(b *testing.B) {
		stream := brokertest.UniqueName("herald-bench")
		b.Cleanup(func() { cons.Del(context.Background(), stream) })
		typ := newType(b, brokertest.NewDialer(), 0, 0)
		s := open(b, typ, map[string]any{"address": addr, "db": db, "stream": stream, "maxlen": 10000})
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if o := s.Send(ctx, m); o.Class != destination.Success {
				b.Fatalf("Send: %+v", o)
			}
		}
	})

	b.Run("plain-client", func(b *testing.B) {
		stream := brokertest.UniqueName("herald-bench-plain")
		b.Cleanup(func() { cons.Del(context.Background(), stream) })
		c := redis.NewClient(&redis.Options{Addr: addr, DB: db, Protocol: 2})
		b.Cleanup(func() { _ = c.Close() })
		// The same entry the destination writes, built once.
		s := &Sender{stream: stream, maxLen: 10000}
		args := s.args(m)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if err := c.XAdd(ctx, args).Err(); err != nil {
				b.Fatalf("XAdd: %v", err)
			}
		}
	})
}
