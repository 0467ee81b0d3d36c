package sqs

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	brokerpool "github.com/heraldhq/herald/internal/broker/pool"
	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/source"
)

// SourceType is the SQS source type ("sqs"): it receives from a queue that exists (Herald never
// creates it). Every Herald node receives from the same queue: SQS hides a received message
// from the others for the visibility timeout (competing consumers), and delivers it again when
// that passes without a delete (a node that died, a Nak).
//
// Its clients come from a pool of its own, the destination's (same keys, guarded dialer,
// connection bound and AWS Query protocol), closed by Close.
type SourceType struct {
	t *Type
}

var (
	_ source.Type     = (*SourceType)(nil)
	_ source.Consumer = (*Consumer)(nil)
	_ source.Batch    = (*batch)(nil)
)

// NewSource returns the source type; Close releases its connections.
func NewSource(env source.Env) *SourceType {
	return &SourceType{t: New(destination.Env{Dial: env.Dial, InternalDial: env.InternalDial, Logger: env.Logger})}
}

// Name is "sqs".
func (st *SourceType) Name() string { return Name }

// Secrets names the IAM credentials.
func (st *SourceType) Secrets() []string { return []string{"access_key_id", "secret_access_key"} }

// Check validates the settings field by field and returns them with their defaults.
func (st *SourceType) Check(raw json.RawMessage) (json.RawMessage, []*destination.FieldError) {
	s, errs := checkSource(raw)
	return destination.EncodeSettings(s, errs)
}

// Close closes every pooled connection; open consumers fail afterwards.
func (st *SourceType) Close() error { return st.t.Close() }

// Open checks that the queue exists (GetQueueAttributes; an identity not allowed that call is
// let through, ReceiveMessage then tells) and returns a consumer of it. Target.Group and Member
// are not used: the queue is the group.
func (st *SourceType) Open(ctx context.Context, tg source.Target) (source.Consumer, error) {
	s, errs := checkSource(tg.Settings)
	if errs != nil {
		return nil, fmt.Errorf("sqs source %s: invalid settings: %w", tg.SourceID, errs[0])
	}
	if st.t.env.DialerFor(tg.Internal) == nil {
		return nil, fmt.Errorf("sqs source %s: no dialer configured", tg.SourceID)
	}
	cl, put, err := st.t.acquire(ctx, s.Conn.key(tg.Internal))
	switch {
	case errors.Is(err, brokerpool.ErrClosed):
		return nil, &source.Error{Source: Name, Op: "connect", Kind: destination.KindCanceled, Msg: "the source type is closed", Err: err}
	case err != nil:
		out := classify(ctx, err, fmt.Sprintf("queue %q", s.queueName()), "connecting to", st.t.env.MaxConnections)
		return nil, &source.Error{Source: Name, Op: "connect", Kind: out.ErrorKind, Msg: out.Error, Err: err}
	}
	c := &Consumer{st: st, cl: cl, put: put, s: *s, sourceID: tg.SourceID}
	_, err = cl.api.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{
		QueueUrl: aws.String(s.QueueURL), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameVisibilityTimeout},
	})
	if err != nil {
		ferr := c.fail(ctx, "look up the queue", err)
		var e *source.Error
		if !errors.As(ferr, &e) || e.Kind != destination.KindDenied {
			_ = c.Close()
			return nil, ferr
		}
	}
	return c, nil
}

// Consumer receives from one queue.
type Consumer struct {
	st       *SourceType
	cl       *client
	put      func() // gives cl back to the pool
	s        SourceSettings
	sourceID string

	mu     sync.Mutex
	closed bool
}

// maxWaitSeconds is the longest long poll SQS accepts.
const maxWaitSeconds = 20

// Fetch receives at most limit messages: ReceiveMessage calls of at most 10 (SQS's limit), the
// first one waiting up to maxWait (in whole seconds, at most 20) for messages, the next ones not
// waiting, until limit is reached or a call returns fewer than it asked for.
func (c *Consumer) Fetch(ctx context.Context, limit int, maxWait time.Duration) (source.Batch, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, &source.Error{Source: Name, Op: "receive", Kind: destination.KindCanceled, Msg: "the consumer is closed"}
	}
	limit = max(limit, 1)
	wait := int32(min(math.Ceil(max(maxWait, 0).Seconds()), maxWaitSeconds))
	b := &batch{c: c}
	for len(b.msgs) < limit {
		n := min(MaxBatch, limit-len(b.msgs))
		res, err := c.cl.api.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(c.s.QueueURL),
			MaxNumberOfMessages:         int32(n),
			WaitTimeSeconds:             wait,
			VisibilityTimeout:           int32(c.s.VisibilityTimeout),
			MessageAttributeNames:       []string{"All"},
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameSentTimestamp},
		})
		if err != nil {
			if len(b.msgs) > 0 {
				// The messages received are in flight, hidden from the others: hand them over
				// rather than leave them for the visibility timeout. The next Fetch reports the
				// failure.
				return b, nil
			}
			return nil, c.fail(ctx, "receive", err)
		}
		for _, m := range res.Messages {
			b.msgs = append(b.msgs, c.message(m))
			b.receipts = append(b.receipts, aws.ToString(m.ReceiptHandle))
		}
		if len(res.Messages) < n {
			break
		}
		wait = 0
	}
	return b, nil
}

// message maps a received message: its attributes are the headers (the packed herald-headers
// attribute the SQS destination writes is unpacked), the SentTimestamp its time.
func (c *Consumer) message(m types.Message) source.Message {
	h := make(map[string][]string, len(m.MessageAttributes))
	for k, v := range m.MessageAttributes {
		switch {
		case v.StringValue != nil:
			h[k] = []string{*v.StringValue}
		case v.BinaryValue != nil:
			h[k] = []string{base64.StdEncoding.EncodeToString(v.BinaryValue)}
		}
	}
	if packed, ok := h[HeadersAttribute]; ok {
		var more map[string]string
		if json.Unmarshal([]byte(packed[0]), &more) == nil {
			delete(h, HeadersAttribute)
			for k, v := range more {
				if _, taken := h[k]; !taken {
					h[k] = []string{v}
				}
			}
		}
	}
	msg := source.Message{Body: []byte(aws.ToString(m.Body)), Header: h, Subject: c.s.queueName(), ID: aws.ToString(m.MessageId)}
	if ms, err := strconv.ParseInt(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
		msg.Time = time.UnixMilli(ms)
	}
	return msg
}

// Close releases the consumer's client. Messages received and not deleted are delivered again
// when their visibility timeout passes.
func (c *Consumer) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.put()
	return nil
}

// fail classifies err into a *source.Error.
func (c *Consumer) fail(ctx context.Context, op string, err error) error {
	q := fmt.Sprintf("queue %q", c.s.queueName())
	out := classify(ctx, err, q, op, c.st.t.env.MaxConnections)
	msg := out.Error
	switch out.ErrorKind {
	case destination.KindDenied:
		msg = fmt.Sprintf("SQS refused the credentials or the operation on %s: the IAM identity needs sqs:ReceiveMessage, sqs:DeleteMessage and sqs:ChangeMessageVisibility on it", q)
		var api smithy.APIError
		if errors.As(err, &api) {
			msg += " (" + api.ErrorCode() + ")"
		}
	case destination.KindNoRoute:
		msg += " (Herald does not create queues)"
	}
	return &source.Error{Source: Name, Op: op, Kind: out.ErrorKind, Msg: msg, Err: err}
}

// batch is the messages of one Fetch.
type batch struct {
	c        *Consumer
	msgs     []source.Message
	receipts []string
}

func (b *batch) Messages() []source.Message { return b.msgs }

// Ack deletes the messages (DeleteMessageBatch, 10 at a time).
func (b *batch) Ack(ctx context.Context) error {
	for i := 0; i < len(b.receipts); i += MaxBatch {
		chunk := b.receipts[i:min(i+MaxBatch, len(b.receipts))]
		entries := make([]types.DeleteMessageBatchRequestEntry, len(chunk))
		for j, r := range chunk {
			entries[j] = types.DeleteMessageBatchRequestEntry{Id: aws.String("m" + strconv.Itoa(j)), ReceiptHandle: aws.String(r)}
		}
		res, err := b.c.cl.api.DeleteMessageBatch(ctx, &awssqs.DeleteMessageBatchInput{QueueUrl: aws.String(b.c.s.QueueURL), Entries: entries})
		if err != nil {
			return b.c.fail(ctx, "delete received messages", err)
		}
		if len(res.Failed) > 0 {
			f := res.Failed[0]
			// ReceiptHandleIsInvalid: the visibility timeout passed and the message went to
			// another consumer (it is delivered again; its event id keeps it from fanning out
			// twice).
			return &source.Error{Source: Name, Op: "delete received messages", Kind: destination.KindBrokerError,
				Msg: fmt.Sprintf("SQS did not delete %d of %d messages of queue %q: %s %s", len(res.Failed), len(chunk), b.c.s.queueName(), aws.ToString(f.Code), aws.ToString(f.Message))}
		}
	}
	return nil
}

// Nak makes the messages visible again after delay (0: at once; at most 12 hours):
// ChangeMessageVisibility, one call per message.
func (b *batch) Nak(ctx context.Context, delay time.Duration) error {
	secs := int32(math.Ceil(min(max(delay, 0), maxVisibility*time.Second).Seconds()))
	failed := 0
	var first error
	for _, r := range b.receipts {
		_, err := b.c.cl.api.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{
			QueueUrl: aws.String(b.c.s.QueueURL), ReceiptHandle: aws.String(r), VisibilityTimeout: secs,
		})
		if err != nil {
			if first == nil {
				first = b.c.fail(ctx, "give messages back", err)
			}
			failed++
		}
	}
	if failed > 1 {
		return fmt.Errorf("%d of %d messages not given back: %w", failed, len(b.receipts), first)
	}
	return first
}
