package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/heraldhq/herald/internal/broker/pool"
	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/httpsend"
)

var errNoDialer = errors.New("rabbitmq: the node gave no dialer for this endpoint")

// settingsError: Open was given settings Check would refuse.
type settingsError struct{ errs []*destination.FieldError }

func (e *settingsError) Error() string {
	msgs := make([]string, len(e.errs))
	for i, fe := range e.errs {
		msgs[i] = fe.Error()
	}
	return "rabbitmq settings: " + strings.Join(msgs, "; ")
}

// Sender publishes an endpoint's messages. It is safe for concurrent use.
type Sender struct {
	t          *Type
	key        connKey
	exchange   string
	routingKey string
	persistent bool
}

var (
	_ destination.Sender      = (*Sender)(nil)
	_ destination.BatchSender = (*Sender)(nil)
)

// Send implements destination.Sender: one message, confirmed by the broker.
func (s *Sender) Send(ctx context.Context, m *destination.Message) destination.Outcome {
	return s.SendBatch(ctx, []*destination.Message{m})
}

// SendBatch implements destination.BatchSender: the messages are published on one confirm
// channel (in chunks of maxInFlight), then every confirm is awaited. Success only if the broker
// confirmed them all and returned none.
func (s *Sender) SendBatch(ctx context.Context, ms []*destination.Message) destination.Outcome {
	start := time.Now()
	if len(ms) == 0 {
		return destination.Outcome{Class: destination.Success, Response: []byte("nothing to publish")}
	}
	// The attempt runs in its own goroutine so that Send returns at ctx's deadline even if a
	// call amqp091 does not bound by a context (opening a channel, a publish blocked by the
	// broker's flow control) is stuck; the goroutine ends when that call does (the connection's
	// heartbeat bounds it) and cleans up after itself.
	done := make(chan destination.Outcome, 1)
	go func() { done <- s.publish(ctx, ms) }()
	var o destination.Outcome
	select {
	case o = <-done:
	case <-ctx.Done():
		o = s.failure(ctx.Err())
	}
	o.Latency = time.Since(start)
	return o
}

func (s *Sender) publish(ctx context.Context, ms []*destination.Message) destination.Outcome {
	c, put, err := s.t.conns.Get(ctx, s.key)
	if err != nil {
		return s.failure(err)
	}
	defer put()
	cc, err := c.channel()
	if err != nil {
		if !errors.Is(err, errBlocked) && !errors.Is(err, errChannelsFull) {
			err = fmt.Errorf("open a channel to %s: %w", s.key.url.address(), err)
		}
		return s.failure(err)
	}
	reusable := false
	defer func() { c.put(cc, reusable) }()

	for off := 0; off < len(ms); off += maxInFlight {
		chunk := ms[off:min(off+maxInFlight, len(ms))]
		dcs := make([]*amqp.DeferredConfirmation, 0, len(chunk))
		for _, m := range chunk {
			dc, err := cc.ch.PublishWithDeferredConfirmWithContext(ctx, s.exchange, s.routingKey, true, false, s.publishing(m))
			if err != nil {
				return s.failure(s.closeReason(cc, err))
			}
			dcs = append(dcs, dc)
		}
		nacked := 0
		for _, dc := range dcs {
			select {
			case <-dc.Done():
			case <-ctx.Done():
				// Abandoned with messages unconfirmed: the channel is not reused.
				return s.failure(ctx.Err())
			}
			if !dc.Acked() {
				nacked++
			}
		}
		if nacked > 0 {
			if cc.ch.IsClosed() {
				// Pending confirms are nacked when the channel closes: say why it closed.
				return s.failure(s.closeReason(cc, amqp.ErrClosed))
			}
			return destination.Outcome{
				Class:     destination.Retryable,
				ErrorKind: destination.KindBrokerBusy,
				Error:     fmt.Sprintf("RabbitMQ at %s did not take %d of %d message(s) (negative acknowledgement: a queue is full or the broker is under pressure)", s.key.url.address(), nacked, len(ms)),
			}
		}
		// A return is dispatched before the confirm of the same message, on the same goroutine
		// of amqp091's reader, into a buffer as large as a chunk: every return of this chunk is
		// already buffered now.
		if n, r := drainReturns(cc.returns); n > 0 {
			reusable = true
			return destination.Outcome{
				Class:     destination.Permanent,
				ErrorKind: destination.KindNoRoute,
				Error: fmt.Sprintf("RabbitMQ returned %d of %d message(s) as unroutable: exchange %s routes routing key %q to no queue (%d %s)",
					n, len(ms), exchangeName(s.exchange), s.routingKey, r.ReplyCode, r.ReplyText),
			}
		}
	}
	reusable = true
	resp := fmt.Sprintf("confirmed by %s: exchange %s, routing key %q", s.key.url.address(), exchangeName(s.exchange), s.routingKey)
	if len(ms) > 1 {
		resp = fmt.Sprintf("%d messages %s", len(ms), resp)
	}
	return destination.Outcome{Class: destination.Success, Response: []byte(resp)}
}

func drainReturns(c chan amqp.Return) (int, amqp.Return) {
	var first amqp.Return
	n := 0
	for {
		select {
		case r, ok := <-c:
			if !ok {
				return n, first
			}
			if n == 0 {
				first = r
			}
			n++
		default:
			return n, first
		}
	}
}

// closeReason prefers the broker's reason for closing the channel (a 404 for a missing
// exchange, a 406 for a message over max_message_size…) over the error a publish saw.
func (s *Sender) closeReason(cc *confirmChannel, err error) error {
	select {
	case e, ok := <-cc.closes:
		if ok && e != nil {
			return e
		}
	default:
	}
	return err
}

func (s *Sender) publishing(m *destination.Message) amqp.Publishing {
	h := make(amqp.Table, len(m.Header)+1)
	contentType := ""
	for k, vs := range m.Header {
		if len(vs) == 0 {
			continue
		}
		k = strings.ToLower(k)
		v := strings.Join(vs, ", ")
		h[k] = v
		if k == "content-type" {
			contentType = v
		}
	}
	h[destination.HeaderEventType] = m.EventType
	mode := amqp.Transient
	if s.persistent {
		mode = amqp.Persistent
	}
	return amqp.Publishing{
		Headers:      h,
		ContentType:  contentType,
		DeliveryMode: mode,
		MessageId:    m.ID,
		Timestamp:    m.Timestamp,
		Type:         m.EventType,
		AppId:        "herald",
		Body:         m.Body,
	}
}

func exchangeName(x string) string {
	if x == "" {
		return "(default)"
	}
	return fmt.Sprintf("%q", x)
}

// failure turns an error into an attempt's outcome, with a sentence a tenant understands and
// no credentials (none of these errors can hold one: the URL never has a password and amqp091's
// errors do not repeat the one it was given).
func (s *Sender) failure(err error) destination.Outcome {
	addr := s.key.url.address()
	o := destination.Outcome{Class: destination.Retryable}
	var ae *amqp.Error
	switch {
	case errors.Is(err, pool.ErrFull):
		o.ErrorKind = destination.KindBrokerBusy
		o.Error = fmt.Sprintf("too many RabbitMQ connections open on this node (limit %d): the attempt will be retried", s.t.max)
	case errors.Is(err, errChannelsFull):
		o.ErrorKind = destination.KindBrokerBusy
		o.Error = fmt.Sprintf("too many attempts in flight on the connection to %s (limit %d): the attempt will be retried", addr, maxChannels)
	case errors.Is(err, errBlocked):
		o.ErrorKind = destination.KindBrokerBusy
		o.Error = fmt.Sprintf("RabbitMQ at %s is blocking publishers (a memory or disk alarm): the attempt will be retried", addr)
	case errors.Is(err, pool.ErrClosed):
		o.ErrorKind = destination.KindCanceled
		o.Error = "the node is shutting down: the attempt will be retried"
	case errors.As(err, &ae):
		s.classifyAMQP(&o, ae, addr)
	default:
		class, kind := httpsend.ClassifyDialError(err)
		o.Class, o.ErrorKind = class, kind
		switch kind {
		case destination.KindBlocked:
			o.Error = err.Error()
		case destination.KindTimeout:
			o.Error = fmt.Sprintf("no answer from RabbitMQ at %s in time", addr)
		case destination.KindCanceled:
			o.Error = "the attempt was canceled (the node is shutting down)"
		case destination.KindInvalidResponse:
			o.ErrorKind = destination.KindBrokerError
			o.Error = fmt.Sprintf("RabbitMQ at %s: %v", addr, err)
		default:
			o.Error = fmt.Sprintf("cannot reach RabbitMQ at %s: %v", addr, err)
		}
	}
	return o
}

func (s *Sender) classifyAMQP(o *destination.Outcome, e *amqp.Error, addr string) {
	reason := e.Reason
	switch e.Code {
	case amqp.NotFound: // 404: no such exchange
		o.Class, o.ErrorKind = destination.Permanent, destination.KindNoRoute
		o.Error = fmt.Sprintf("RabbitMQ at %s has no exchange %s on vhost %q (%s)", addr, exchangeName(s.exchange), s.key.url.vhost, reason)
	case amqp.AccessRefused, amqp.NotAllowed: // 403, 530: credentials, vhost or permission
		o.Class, o.ErrorKind = destination.Permanent, destination.KindDenied
		o.Error = fmt.Sprintf("RabbitMQ at %s refused user %q: %s", addr, s.key.user, reason)
	case amqp.PreconditionFailed: // 406
		o.Class = destination.Permanent
		if strings.Contains(reason, "larger than") || strings.Contains(reason, "max size") {
			o.ErrorKind = destination.KindTooLarge
			o.Error = fmt.Sprintf("RabbitMQ at %s refused the message for its size: %s", addr, reason)
		} else {
			o.ErrorKind = destination.KindBrokerError
			o.Error = fmt.Sprintf("RabbitMQ at %s refused the message: %s", addr, reason)
		}
	case amqp.FrameError, amqp.ContentTooLarge: // 501, 311
		o.Class, o.ErrorKind = destination.Permanent, destination.KindTooLarge
		o.Error = fmt.Sprintf("RabbitMQ at %s refused the message for its size: %s", addr, reason)
	case amqp.ResourceError: // 506: the broker is out of a resource
		o.ErrorKind = destination.KindBrokerBusy
		o.Error = fmt.Sprintf("RabbitMQ at %s is out of resources: %s", addr, reason)
	case amqp.ConnectionForced: // 320: the broker is shutting down or an operator closed us
		o.ErrorKind = destination.KindConnReset
		o.Error = fmt.Sprintf("RabbitMQ at %s closed the connection: %s", addr, reason)
	case amqp.ChannelError: // 504: amqp091's ErrClosed, the connection or channel is gone
		o.ErrorKind = destination.KindConnReset
		o.Error = fmt.Sprintf("the connection to RabbitMQ at %s was lost: the attempt will be retried on a new one", addr)
	default:
		o.ErrorKind = destination.KindBrokerError
		o.Error = fmt.Sprintf("RabbitMQ at %s: %s (code %d)", addr, reason, e.Code)
	}
}
