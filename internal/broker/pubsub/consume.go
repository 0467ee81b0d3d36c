package pubsub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/httpsend"
	"github.com/heraldhq/herald/internal/source"
)

// SourceType is the Pub/Sub source type ("pubsub"): it pulls a subscription that exists
// (Herald never creates it). Every Herald node pulls the same subscription: Pub/Sub gives each
// outstanding message to one puller (competing consumers), and a message not acknowledged
// within the subscription's ack deadline goes to whoever pulls next.
//
// It uses the unary Pull call, not the library's streaming Subscriber: Pull(max_messages = the
// batch's max) hands over at most that many messages and Pub/Sub keeps the rest, so the
// prefetch is exactly the batch; a message is acknowledged only by an explicit Acknowledge
// after the runner stored its event; and nothing runs in the background (the streaming
// Subscriber pulls ahead into its flow-control buffer, extends ack deadlines on its own and
// nacks what it holds when its Receive returns).
//
// Its clients come from a pool of its own, the destination's (same keys, guarded dialer and
// bound), closed by Close.
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

// Name is "pubsub".
func (st *SourceType) Name() string { return Name }

// Secrets names the service account key.
func (st *SourceType) Secrets() []string { return []string{"credentials_json"} }

// Check validates the settings field by field and returns them normalised.
func (st *SourceType) Check(raw json.RawMessage) (json.RawMessage, []*destination.FieldError) {
	s, errs := checkSource(raw)
	return destination.EncodeSettings(s, errs)
}

// Close closes every pooled connection; open consumers fail afterwards.
func (st *SourceType) Close() error { return st.t.Close() }

// Open connects and looks the subscription up (it must exist), and returns a consumer of it.
// Target.Group and Member are not used: the subscription is the group.
func (st *SourceType) Open(ctx context.Context, tg source.Target) (source.Consumer, error) {
	s, errs := checkSource(tg.Settings)
	if errs != nil {
		return nil, fmt.Errorf("pubsub source %s: invalid settings: %w", tg.SourceID, errs[0])
	}
	if st.t.env.DialerFor(tg.Internal) == nil {
		return nil, fmt.Errorf("pubsub source %s: no dialer configured", tg.SourceID)
	}
	cl, put, err := st.t.acquire(ctx, s.Conn.key(tg.Internal))
	switch {
	case errors.Is(err, errBusy):
		return nil, &source.Error{Source: Name, Op: "connect", Kind: destination.KindBrokerBusy, Err: err,
			Msg: fmt.Sprintf("Herald holds its maximum of %d Pub/Sub connections", st.t.env.MaxConnections)}
	case errors.Is(err, errClosed):
		return nil, &source.Error{Source: Name, Op: "connect", Kind: destination.KindCanceled, Err: err, Msg: "the source type is closed"}
	case err != nil:
		return nil, &source.Error{Source: Name, Op: "connect", Kind: destination.KindDenied, Err: err,
			Msg: fmt.Sprintf("cannot set up a Pub/Sub client for project %s: %v", s.Project, err)}
	}
	c := &Consumer{st: st, cl: cl, put: put, s: *s, sourceID: tg.SourceID, subject: s.Subscription}
	sub, err := cl.c.SubscriptionAdminClient.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: s.name()})
	switch {
	case err == nil:
		if _, id, ok := splitTopicName(sub.GetTopic()); ok {
			c.subject = id
		}
	case status.Code(err) == codes.PermissionDenied:
		// roles/pubsub.subscriber may pull without reading the subscription's configuration:
		// the subject is then the subscription id, and Pull tells whether it exists.
	default:
		ferr := c.fail("look up the subscription", err)
		_ = c.Close()
		return nil, ferr
	}
	return c, nil
}

// Consumer pulls one subscription.
type Consumer struct {
	st       *SourceType
	cl       *client
	put      func() // gives cl back to the pool
	s        SourceSettings
	sourceID string
	subject  string // the subscription's topic id, or the subscription id

	mu     sync.Mutex
	broken bool // the connection failed: Close evicts the client from the pool
	closed bool
}

// minPull is the shortest wait a Pull is given (a Pull with no time at all would be cut off
// before Pub/Sub answers).
const minPull = 100 * time.Millisecond

// Fetch pulls at most limit messages, waiting up to maxWait for the first ones.
func (c *Consumer) Fetch(ctx context.Context, limit int, maxWait time.Duration) (source.Batch, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, &source.Error{Source: Name, Op: "pull", Kind: destination.KindCanceled, Msg: "the consumer is closed"}
	}
	limit = min(max(limit, 1), math.MaxInt32)
	deadline := time.Now().Add(max(maxWait, minPull))
	for {
		pctx, cancel := context.WithDeadline(ctx, deadline)
		res, err := c.cl.c.SubscriptionAdminClient.Pull(pctx, &pubsubpb.PullRequest{Subscription: c.s.name(), MaxMessages: int32(limit)})
		cancel()
		if err != nil {
			if ctx.Err() == nil && !time.Now().Before(deadline) &&
				(errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded) {
				return &batch{c: c}, nil // maxWait passed without a message
			}
			return nil, c.fail("pull", err)
		}
		if rm := res.GetReceivedMessages(); len(rm) > 0 || !time.Now().Before(deadline) {
			return c.batch(rm), nil
		}
		// Pub/Sub may answer a Pull with nothing before maxWait: ask again until then.
	}
}

func (c *Consumer) batch(rm []*pubsubpb.ReceivedMessage) *batch {
	b := &batch{c: c, msgs: make([]source.Message, 0, len(rm)), ackIDs: make([]string, 0, len(rm))}
	for _, r := range rm {
		m := r.GetMessage()
		h := make(map[string][]string, len(m.GetAttributes()))
		for k, v := range m.GetAttributes() {
			h[k] = []string{v}
		}
		msg := source.Message{Body: m.GetData(), Header: h, Subject: c.subject, ID: m.GetMessageId()}
		if pt := m.GetPublishTime(); pt != nil {
			msg.Time = pt.AsTime()
		}
		b.msgs = append(b.msgs, msg)
		b.ackIDs = append(b.ackIDs, r.GetAckId())
	}
	return b
}

// Close releases the consumer's client to the pool (evicting it if its connection failed).
// Messages pulled and not acknowledged go back to the subscription when their ack deadline
// passes.
func (c *Consumer) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	broken := c.broken
	c.mu.Unlock()
	c.st.t.release(c.cl, c.put, broken)
	return nil
}

// fail classifies err into a *source.Error, and marks the connection broken when it failed.
func (c *Consumer) fail(op string, err error) error {
	sub := fmt.Sprintf("subscription %q of project %s", c.s.Subscription, c.s.Project)
	e := &source.Error{Source: Name, Op: op, Err: err}
	st, _ := status.FromError(err)
	switch {
	case errors.Is(err, context.Canceled) || st.Code() == codes.Canceled:
		e.Kind, e.Msg = destination.KindCanceled, "canceled"
	case errors.Is(err, context.DeadlineExceeded) || st.Code() == codes.DeadlineExceeded:
		e.Kind, e.Msg = destination.KindTimeout, fmt.Sprintf("Pub/Sub did not answer in time for %s", sub)
	case st.Code() == codes.NotFound:
		e.Kind, e.Msg = destination.KindNoRoute, fmt.Sprintf("Pub/Sub has no %s (Herald does not create subscriptions)", sub)
	case st.Code() == codes.PermissionDenied:
		e.Kind, e.Msg = destination.KindDenied, fmt.Sprintf("Pub/Sub denied access to %s: the service account needs the Pub/Sub Subscriber role on it", sub)
	case st.Code() == codes.Unauthenticated:
		e.Kind, e.Msg = destination.KindDenied, fmt.Sprintf("Pub/Sub did not accept the credentials for %s (is the service account key revoked?)", sub)
	case st.Code() == codes.ResourceExhausted:
		e.Kind, e.Msg = destination.KindBrokerBusy, fmt.Sprintf("Pub/Sub is throttling %s (quota)", sub)
	case st.Code() == codes.Unavailable:
		c.markBroken()
		if derr := c.cl.lastDialErr(); derr != nil {
			_, e.Kind = httpsend.ClassifyDialError(derr)
			e.Msg = fmt.Sprintf("cannot connect to Pub/Sub (%s) for %s: %v", c.addr(), sub, derr)
		} else {
			e.Kind, e.Msg = destination.KindConnFailed, fmt.Sprintf("Pub/Sub (%s) is unavailable for %s: %s", c.addr(), sub, st.Message())
		}
	default:
		e.Kind, e.Msg = destination.KindBrokerError, fmt.Sprintf("Pub/Sub failed for %s: %s %s", sub, st.Code(), st.Message())
	}
	return e
}

func (c *Consumer) markBroken() {
	c.mu.Lock()
	c.broken = true
	c.mu.Unlock()
}

func (c *Consumer) addr() string {
	if c.s.Endpoint != "" {
		return c.s.Endpoint
	}
	return defaultEndpoint
}

// ackChunk bounds the ack ids of one Acknowledge or ModifyAckDeadline call (Pub/Sub's request
// limit is 512 KB; an ack id is a few hundred bytes).
const ackChunk = 1000

// maxAckDeadline is the longest ack deadline Pub/Sub accepts.
const maxAckDeadline = 600 * time.Second

// batch is the messages of one Pull.
type batch struct {
	c      *Consumer
	msgs   []source.Message
	ackIDs []string
}

func (b *batch) Messages() []source.Message { return b.msgs }

// Ack acknowledges every message of the batch: Pub/Sub does not deliver them again (unless
// their ack deadline passed before, see the docs).
func (b *batch) Ack(ctx context.Context) error {
	for ids := range slices.Chunk(b.ackIDs, ackChunk) {
		if err := b.c.cl.c.SubscriptionAdminClient.Acknowledge(ctx, &pubsubpb.AcknowledgeRequest{Subscription: b.c.s.name(), AckIds: ids}); err != nil {
			return b.c.fail("acknowledge", err)
		}
	}
	return nil
}

// Nak sets the messages' ack deadline to delay (0: at once; at most 600s): Pub/Sub delivers
// them again once it passes.
func (b *batch) Nak(ctx context.Context, delay time.Duration) error {
	secs := int32(math.Ceil(min(max(delay, 0), maxAckDeadline).Seconds()))
	for ids := range slices.Chunk(b.ackIDs, ackChunk) {
		if err := b.c.cl.c.SubscriptionAdminClient.ModifyAckDeadline(ctx, &pubsubpb.ModifyAckDeadlineRequest{
			Subscription: b.c.s.name(), AckIds: ids, AckDeadlineSeconds: secs,
		}); err != nil {
			return b.c.fail("give messages back (nack)", err)
		}
	}
	return nil
}
