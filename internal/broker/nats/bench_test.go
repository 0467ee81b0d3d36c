package natsdest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/internal/broker/brokertest"
	"github.com/heraldhq/herald/internal/destination"
)

// BenchmarkSend compares a synchronous publish through Herald's type with the same publish made
// directly with nats.go's jetstream package: same messages (body, headers, Nats-Msg-Id), same
// acknowledgement (wait for the stream's PubAck), same broker. Run:
//
//	HERALD_TEST_NATS_URL=nats://127.0.0.1:4222 go test -run '^$' -bench BenchmarkSend ./internal/broker/nats/
func BenchmarkSend(b *testing.B) {
	url := sharedURL(b)
	_, js := admin(b, url)
	_, subject := newStream(b, js, func(c *jetstream.StreamConfig) { c.Storage = jetstream.MemoryStorage; c.MaxMsgs = 100_000 })
	body := []byte(`{"type":"order.created","timestamp":"2026-01-01T00:00:00Z","data":{"id":"ord_1","amount":4200,"currency":"eur"}}`)
	// Fresh ids on every run (b.N grows over runs), so no publish is answered from the
	// duplicate window.
	msgs := func(n int) []*destination.Message {
		prefix := "msg_" + randSuffix(b) + "_"
		out := make([]*destination.Message, n)
		for i := range out {
			out[i] = brokertest.SignedMessage(b, fmt.Sprintf("%s%d", prefix, i), "order.created", body)
		}
		return out
	}

	b.Run("herald", func(b *testing.B) {
		typ := newType(b, brokertest.NewDialer(), nil)
		s := open(b, typ, map[string]any{"url": url, "subject": subject})
		ms := msgs(b.N)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		b.ResetTimer()
		for i := range b.N {
			if o := s.Send(ctx, ms[i]); o.Class != destination.Success {
				b.Fatalf("Send = %+v", o)
			}
		}
	})

	b.Run("plain-client", func(b *testing.B) {
		nc, err := nats.Connect(url)
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		pjs, err := jetstream.New(nc)
		if err != nil {
			b.Fatal(err)
		}
		ms := msgs(b.N)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		b.ResetTimer()
		for i := range b.N {
			m := ms[i]
			h := make(nats.Header, len(m.Header)+1)
			for k, vs := range m.Header {
				h[strings.ToLower(k)] = vs
			}
			h[destination.HeaderEventType] = []string{m.EventType}
			if _, err := pjs.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: m.Body, Header: h}, jetstream.WithMsgID(m.ID)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
