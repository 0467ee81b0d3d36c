package sqs

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/heraldhq/herald/internal/broker/brokertest"
	"github.com/heraldhq/herald/internal/destination"
)

// BenchmarkSend sends the same signed messages to a local goaws server through the destination
// type (herald) and through the SDK directly with the same protocol, no SDK retries and the
// same attributes (plain-client), each send awaited, 8 in flight per CPU.
func BenchmarkSend(b *testing.B) {
	g := startGoaws(b, brokertest.FreePort(b))
	q := createQueue(b, g, "bench-"+suffix(b))
	msgs := make([]*destination.Message, 64)
	for i := range msgs {
		msgs[i] = brokertest.SignedMessage(b, fmt.Sprintf("msg_%d_%s", i, suffix(b)), "order.created", []byte(fmt.Sprintf(`{"type":"order.created","data":{"n":%d,"pad":"%0200d"}}`, i, i)))
	}
	// goaws keeps every message in memory: purge between runs.
	purge := func() {
		if _, err := admin(g).PurgeQueue(context.Background(), &awssqs.PurgeQueueInput{QueueUrl: aws.String(q)}); err != nil {
			b.Fatal(err)
		}
	}

	b.Run("herald", func(b *testing.B) {
		purge()
		typ := newType(b, destination.Env{Dial: (&dialer{}).dial})
		s := open(b, typ, cfg(g, q), false)
		b.SetParallelism(8)
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
		purge()
		c := awssqs.New(awssqs.Options{
			Region:       testRegion,
			BaseEndpoint: aws.String(g.endpoint()),
			Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret", ""),
			Retryer:      aws.NopRetryer{},
			HTTPClient:   &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		}, UseQueryProtocol)
		b.SetParallelism(8)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				m := msgs[i%len(msgs)]
				_, err := c.SendMessage(context.Background(), &awssqs.SendMessageInput{
					QueueUrl: aws.String(q), MessageBody: aws.String(string(m.Body)), MessageAttributes: Attributes(m),
				})
				if err != nil {
					b.Errorf("send: %v", err)
					return
				}
				i++
			}
		})
	})
}
