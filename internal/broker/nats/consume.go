package natsdest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/internal/broker/pool"
	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/source"
)

// maxFetchBatch bounds one Fetch, whatever the caller asks for.
const maxFetchBatch = 1000

// SourceType is the "nats" source type: a durable JetStream pull consumer, named by the source's
// Group and shared by every Herald node (competing pulls), reads one stream. Its connections
// are pooled like the destination's (per servers, credentials and dialer), every one opened
// through the node's guarded dialer. Create it with NewSource.
type SourceType struct {
	env   source.Env
	conns *conns
}

var (
	_ source.Type     = (*SourceType)(nil)
	_ source.Consumer = (*Consumer)(nil)
	_ source.Batch    = (*batch)(nil)
)

// NewSource returns the NATS source type for a node.
func NewSource(env source.Env) *SourceType {
	return &SourceType{env: env, conns: newConns("source", destination.Env{Dial: env.Dial, InternalDial: env.InternalDial, Logger: env.Logger})}
}

// Name is the source type.
func (t *SourceType) Name() string { return "nats" }

// Secrets are the credential fields, sealed at rest.
func (t *SourceType) Secrets() []string { return []string{"password", "token"} }

// Check validates settings field by field and returns them normalised. It does no I/O.
func (t *SourceType) Check(raw json.RawMessage) (json.RawMessage, []*destination.FieldError) {
	s, errs := checkSource(raw)
	return destination.EncodeSettings(s, errs)
}

// Close closes every pooled connection; the consumers fail afterwards.
func (t *SourceType) Close() error {
	t.conns.Close()
	return nil
}

// Open connects to the broker (or shares the pooled connection) and creates, or finds, the
// durable consumer named by t.Group on the stream. It never creates the stream.
func (t *SourceType) Open(ctx context.Context, target source.Target) (source.Consumer, error) {
	s, errs := checkSource(target.Settings)
	if len(errs) > 0 {
		return nil, fmt.Errorf("nats source %s: invalid settings: %w", target.SourceID, errs[0])
	}
	if target.Group == "" {
		return nil, fmt.Errorf("nats source %s: no consumer group name given", target.SourceID)
	}
	if msg := checkStreamName(target.Group); msg != "" {
		// Durable consumer names follow the rules of stream names.
		return nil, fmt.Errorf("nats source %s: the consumer name %q %s", target.SourceID, target.Group, msg)
	}
	if t.env.DialerFor(target.Internal) == nil {
		return nil, fmt.Errorf("nats source %s: the node gave no dialer", target.SourceID)
	}
	c, put, err := t.conns.Get(ctx, s.Conn.poolKey(target.Internal))
	if err != nil {
		if errors.Is(err, pool.ErrFull) {
			err = fmt.Errorf("%s: %w", busyText(maxConnections(destination.Env{})), err)
		}
		return nil, fmt.Errorf("nats source %s: %w", target.SourceID, err)
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       target.Group,
		Description:   "Herald source " + target.SourceID,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy, // never AckAll: nodes share the consumer
		AckWait:       s.ackWait,
		MaxAckPending: s.MaxAckPending,
		FilterSubject: s.FilterSubject,
	}
	cons, err := c.js.CreateOrUpdateConsumer(ctx, s.Stream, cfg)
	if err != nil {
		put()
		return nil, fmt.Errorf("nats source %s: %w", target.SourceID, consumerError(err, s))
	}
	return &Consumer{c: c, put: put, cons: cons, settings: s, target: target}, nil
}

// consumerError explains a failure to create the durable consumer.
func consumerError(err error, s *SourceSettings) error {
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("stream %q does not exist on the NATS server (Herald creates its durable consumer on it, never the stream): %w", s.Stream, err)
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrJetStreamNotEnabled),
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return fmt.Errorf("JetStream is not enabled on the NATS server: %w", err)
	}
	return fmt.Errorf("create the durable consumer on stream %q: %w", s.Stream, err)
}

// Consumer is one node's handle on the durable consumer. Fetch is not for concurrent use.
type Consumer struct {
	c        *conn
	put      func() // gives c back to the pool
	cons     jetstream.Consumer
	settings *SourceSettings
	target   source.Target
}

// Fetch pulls at most max messages (bounded by max_ack_pending and maxFetchBatch), waiting up
// to maxWait for the first ones; with maxWait <= 0 only those available now. An error means the
// connection is lost or the consumer cannot be read; the messages of a failed fetch that reached
// this node are redelivered after ack_wait.
func (k *Consumer) Fetch(ctx context.Context, maxMsgs int, maxWait time.Duration) (source.Batch, error) {
	if maxMsgs < 1 {
		return nil, fmt.Errorf("fetch from NATS stream %q: max must be at least 1, not %d", k.settings.Stream, maxMsgs)
	}
	maxMsgs = min(maxMsgs, k.settings.MaxAckPending, maxFetchBatch)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("fetch from NATS stream %q: %w", k.settings.Stream, err)
	}
	if k.c.nc.IsClosed() {
		return nil, k.lost()
	}
	var mb jetstream.MessageBatch
	var err error
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if maxWait > 0 {
		fctx, cancel = context.WithTimeout(ctx, maxWait)
		defer cancel()
	}
	if dl, ok := fctx.Deadline(); maxWait <= 0 || ok && time.Until(dl) < 10*time.Millisecond {
		mb, err = k.cons.FetchNoWait(maxMsgs)
	} else {
		mb, err = k.cons.Fetch(maxMsgs, jetstream.FetchContext(fctx))
	}
	if err != nil {
		return nil, k.fetchError(err)
	}
	b := &batch{k: k}
	msgs := mb.Messages()
read:
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				break read
			}
			b.add(m)
		case <-k.c.closedCh:
			return nil, k.lost()
		case <-ctx.Done():
			b.giveBack()
			return nil, fmt.Errorf("fetch from NATS stream %q: %w", k.settings.Stream, ctx.Err())
		}
	}
	if err := mb.Error(); err != nil && !(errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil) {
		b.giveBack()
		return nil, k.fetchError(err)
	}
	if k.c.nc.IsClosed() {
		// The fetch may have ended by its own expiry after the connection was lost; acks
		// cannot be sent on it any more.
		return nil, k.lost()
	}
	return b, nil
}

func (k *Consumer) lost() error {
	return fmt.Errorf("fetch from NATS stream %q: the connection to the NATS server was lost: %w", k.settings.Stream, nats.ErrConnectionClosed)
}

func (k *Consumer) fetchError(err error) error {
	switch {
	case errors.Is(err, jetstream.ErrNoHeartbeat):
		return fmt.Errorf("fetch from NATS stream %q: the server stopped answering (no heartbeat): %w", k.settings.Stream, err)
	case errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrConsumerDeleted):
		return fmt.Errorf("fetch from NATS stream %q: the durable consumer %q was deleted on the server (the next Open creates it again): %w", k.settings.Stream, k.target.Group, err)
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrDisconnected), errors.Is(err, nats.ErrConnectionDraining):
		return k.lost()
	}
	return fmt.Errorf("fetch from NATS stream %q: %w", k.settings.Stream, err)
}

// Close gives the connection back to the pool (other sources on the same broker may share it).
// The durable consumer stays on the server, shared by the other nodes; messages this consumer
// held unsettled are redelivered after ack_wait.
func (k *Consumer) Close() error {
	k.put() // once only: the pool's put is idempotent
	return nil
}

// batch is the messages of one Fetch.
type batch struct {
	k       *Consumer
	js      []jetstream.Msg
	msgs    []source.Message
	mu      sync.Mutex
	settled bool
}

func (b *batch) add(m jetstream.Msg) {
	msg := source.Message{Body: m.Data(), Subject: m.Subject()}
	if h := m.Headers(); len(h) > 0 {
		msg.Header = make(map[string][]string, len(h))
		for k, vs := range h {
			msg.Header[k] = append([]string(nil), vs...)
		}
	}
	if meta, err := m.Metadata(); err == nil {
		// The stream sequence is the message's place in the stream: the same on every
		// redelivery, to any node.
		msg.ID = fmt.Sprintf("%s:%d", meta.Stream, meta.Sequence.Stream)
		msg.Time = meta.Timestamp
	}
	b.js = append(b.js, m)
	b.msgs = append(b.msgs, msg)
}

// giveBack naks the messages of a fetch that failed after some arrived, best effort: if the naks
// cannot be sent, JetStream redelivers them after ack_wait anyway.
func (b *batch) giveBack() {
	for _, m := range b.js {
		_ = m.Nak()
	}
}

func (b *batch) Messages() []source.Message { return b.msgs }

func (b *batch) settle() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.settled {
		return errors.New("the batch is already settled")
	}
	b.settled = true
	return nil
}

// Ack acknowledges every message: each one's ack is sent, and the last one's is awaited (the
// server answers it once it processed it, after the acks sent before it on the connection).
// On error, the messages whose ack did not reach the server are redelivered after ack_wait.
func (b *batch) Ack(ctx context.Context) error {
	if err := b.settle(); err != nil {
		return err
	}
	if len(b.js) == 0 {
		return nil
	}
	stream := b.k.settings.Stream
	last := len(b.js) - 1
	for _, m := range b.js[:last] {
		if err := m.Ack(); err != nil {
			return fmt.Errorf("acknowledge to NATS stream %q: %w", stream, err)
		}
	}
	if err := b.js[last].DoubleAck(ctx); err != nil {
		return fmt.Errorf("acknowledge to NATS stream %q (waiting for the server's confirmation): %w", stream, err)
	}
	return nil
}

// Nak gives every message back, to be delivered again not before delay (at once if delay <= 0),
// and waits until the server has received the naks.
func (b *batch) Nak(ctx context.Context, delay time.Duration) error {
	if err := b.settle(); err != nil {
		return err
	}
	if len(b.js) == 0 {
		return nil
	}
	stream := b.k.settings.Stream
	for _, m := range b.js {
		var err error
		if delay > 0 {
			err = m.NakWithDelay(delay)
		} else {
			err = m.Nak()
		}
		if err != nil {
			return fmt.Errorf("give back to NATS stream %q: %w", stream, err)
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, dialTimeout)
		defer cancel()
	}
	if err := b.k.c.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("give back to NATS stream %q: %w", stream, err)
	}
	return nil
}
