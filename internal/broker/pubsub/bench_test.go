package pubsub

import (
	"context"
	"fmt"
	"testing"

	gpubsub "cloud.google.com/go/pubsub/v2"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/heraldhq/herald/internal/broker/brokertest"
	"github.com/heraldhq/herald/internal/destination"
)

// BenchmarkSend publishes the same signed messages to Google's in-memory server through the
// destination type (herald) and through the library directly with the same client and publish
// settings (plain-client), each publish awaited, from parallel goroutines (8 per CPU) as the dispatcher does.
func BenchmarkSend(b *testing.B) {
	srv, admin := server(b)
	topic, _ := createTopic(b, admin, false)
	msgs := make([]*destination.Message, 64)
	for i := range msgs {
		msgs[i] = brokertest.SignedMessage(b, fmt.Sprintf("msg_%d_%s", i, suffix(b)), "order.created", []byte(fmt.Sprintf(`{"type":"order.created","data":{"n":%d,"pad":"%0200d"}}`, i, i)))
	}

	b.Run("herald", func(b *testing.B) {
		typ := newType(b, destination.Env{Dial: (&dialer{}).dial})
		s := open(b, typ, emulatorSettings(srv.Addr, topic))
		b.SetParallelism(8) // 8 attempts in flight per CPU, like an endpoint's max_concurrency
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if out := s.Send(context.Background(), msgs[i%len(msgs)]); out.Class != destination.Success {
					b.Errorf("send: %+v", out)
					return
				}
				i++
			}
		})
	})

	b.Run("plain-client", func(b *testing.B) {
		ctx := context.Background()
		cfg, opts := ClientOptions()
		opts = append(opts, option.WithEndpoint(srv.Addr), option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
		c, err := gpubsub.NewClientWithConfig(ctx, testProject, cfg, opts...)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		p := c.Publisher(topic)
		ConfigurePublisher(p, false)
		defer p.Stop()
		b.SetParallelism(8) // 8 attempts in flight per CPU, like an endpoint's max_concurrency
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				m := msgs[i%len(msgs)]
				if _, err := p.Publish(ctx, &gpubsub.Message{Data: m.Body, Attributes: Attributes(m)}).Get(ctx); err != nil {
					b.Errorf("publish: %v", err)
					return
				}
				i++
			}
		})
	})
}
