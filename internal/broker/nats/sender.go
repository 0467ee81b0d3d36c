package natsdest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/internal/broker/pool"
	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/httpsend"
)

// Sender publishes one endpoint's messages. It is safe for concurrent use.
type Sender struct {
	t        *Type
	key      poolKey
	settings *Settings
	target   destination.Target
}

var (
	_ destination.Sender      = (*Sender)(nil)
	_ destination.BatchSender = (*Sender)(nil)
)

// acquire takes the pooled connection of the endpoint's broker for an attempt, with the
// attempt's context, which a permission violation for the subject cancels; done ends the
// attempt (gives the connection back). On failure it returns the attempt's Outcome.
func (s *Sender) acquire(ctx context.Context, start time.Time) (c *conn, wctx context.Context, done func(), failed *destination.Outcome) {
	c, put, err := s.t.conns.Get(ctx, s.key)
	if err != nil {
		o := connectOutcome(err, s.settings, maxConnections(s.t.env))
		o.Latency = time.Since(start)
		return nil, nil, nil, &o
	}
	wctx, cancel := context.WithCancelCause(ctx)
	w := c.watch(s.settings.Subject, cancel)
	return c, wctx, func() {
		c.unwatch(w)
		cancel(nil)
		put()
	}, nil
}

// publishFailure is the Outcome of a publish of size bytes that failed with err, naming the
// permission violation that canceled wctx if one did.
func (s *Sender) publishFailure(wctx context.Context, c *conn, err error, size int, what string) destination.Outcome {
	if cause := context.Cause(wctx); cause != nil && !errors.Is(err, cause) {
		err = fmt.Errorf("%w (%w)", cause, err)
	}
	o := errorOutcome(err, s.settings, nil)
	if errors.Is(err, nats.ErrMaxPayload) {
		o.Error = fmt.Sprintf("publish to subject %q: %s (%d bytes) is larger than the server's max_payload (%d bytes)",
			s.settings.Subject, what, size, c.nc.MaxPayload())
	}
	return o
}

// connectOutcome classifies a failure to get a pooled connection.
func connectOutcome(err error, s *Settings, limit int) destination.Outcome {
	var ce *connectError
	switch {
	case errors.Is(err, pool.ErrClosed):
		return destination.Outcome{Class: destination.Retryable, ErrorKind: destination.KindCanceled,
			Error: "the NATS destination is shut down (Herald is stopping)"}
	case errors.Is(err, pool.ErrFull):
		return destination.Outcome{Class: destination.Retryable, ErrorKind: destination.KindBrokerBusy,
			Error: busyText(limit) + "; the attempt will be retried when one is free"}
	case errors.As(err, &ce):
		return errorOutcome(ce.err, s, ce.dial)
	}
	// ctx ended while the connect was in progress
	o := errorOutcome(err, s, nil)
	o.Error = "connect to NATS: " + o.Error
	return o
}

// message builds the NATS message: the body as is, every header of m (names in lower case, as the
// Standard Webhooks specification writes them), herald-event-type, and Nats-Msg-Id = the endpoint
// and the message id, so that JetStream's duplicate window drops a retry whose first
// acknowledgement was lost, and only that: two endpoints publishing the same event into one
// stream each store their copy.
func (s *Sender) message(m *destination.Message) (*nats.Msg, []jetstream.PublishOpt) {
	h := make(nats.Header, len(m.Header)+2)
	for k, vs := range m.Header {
		h[strings.ToLower(k)] = append([]string(nil), vs...)
	}
	if m.EventType != "" {
		h[destination.HeaderEventType] = []string{m.EventType}
	}
	opts := make([]jetstream.PublishOpt, 0, 2)
	if m.ID != "" {
		opts = append(opts, jetstream.WithMsgID(s.target.EndpointID+":"+m.ID))
	}
	if s.settings.Stream != "" {
		opts = append(opts, jetstream.WithExpectStream(s.settings.Stream))
	}
	return &nats.Msg{Subject: s.settings.Subject, Data: m.Body, Header: h}, opts
}

// Send publishes m and waits for the stream's acknowledgement within ctx.
func (s *Sender) Send(ctx context.Context, m *destination.Message) destination.Outcome {
	start := time.Now()
	c, wctx, done, failed := s.acquire(ctx, start)
	if failed != nil {
		return *failed
	}
	defer done()

	msg, opts := s.message(m)
	ack, err := c.js.PublishMsg(wctx, msg, opts...)
	if err != nil {
		o := s.publishFailure(wctx, c, err, len(m.Body), "the message")
		o.Latency = time.Since(start)
		return o
	}
	return destination.Outcome{Class: destination.Success, Latency: time.Since(start), Response: ackResponse(ack, ack)}
}

// SendBatch publishes every message without waiting, then waits for every acknowledgement. One
// failure fails the batch (the dispatcher retries it whole; the duplicate window and the
// consumers' webhook-id deduplication absorb the messages already stored).
func (s *Sender) SendBatch(ctx context.Context, ms []*destination.Message) destination.Outcome {
	start := time.Now()
	if len(ms) == 0 {
		return destination.Outcome{Class: destination.Success}
	}
	c, wctx, done, failed := s.acquire(ctx, start)
	if failed != nil {
		return *failed
	}
	defer done()

	fail := func(i int, err error) destination.Outcome {
		o := s.publishFailure(wctx, c, err, len(ms[i].Body), "a message")
		o.Error = fmt.Sprintf("message %d of %d: %s", i+1, len(ms), o.Error)
		o.Latency = time.Since(start)
		return o
	}

	// Published in chunks, each awaited before the next, so that one batch never holds more
	// than batchChunk unacknowledged messages on a connection other endpoints share.
	var first, last *jetstream.PubAck
	futures := make([]jetstream.PubAckFuture, 0, min(len(ms), batchChunk))
	for base := 0; base < len(ms); base += batchChunk {
		chunk := ms[base:min(base+batchChunk, len(ms))]
		futures = futures[:0]
		for i, m := range chunk {
			msg, opts := s.message(m)
			f, err := c.js.PublishMsgAsync(msg, opts...)
			if err != nil {
				return fail(base+i, err)
			}
			futures = append(futures, f)
		}
		for i, f := range futures {
			select {
			case ack := <-f.Ok():
				if first == nil {
					first = ack
				}
				last = ack
			case err := <-f.Err():
				return fail(base+i, err)
			case <-c.closedCh:
				return fail(base+i, nats.ErrConnectionClosed)
			case <-wctx.Done():
				return fail(base+i, wctx.Err())
			}
		}
	}
	return destination.Outcome{Class: destination.Success, Latency: time.Since(start), Response: ackResponse(first, last)}
}

// ackResponse is the attempt's Response: "stream orders seq 42", "stream orders seq 42..45" for
// a batch, with " (duplicate)" when JetStream already had the message (a retry).
func ackResponse(first, last *jetstream.PubAck) []byte {
	r := fmt.Sprintf("stream %s seq %d", last.Stream, last.Sequence)
	if first != last && first.Sequence != last.Sequence {
		r = fmt.Sprintf("stream %s seq %d..%d", last.Stream, first.Sequence, last.Sequence)
	}
	if first == last && last.Duplicate {
		r += " (duplicate)"
	}
	return []byte(r)
}

// errorOutcome classifies a failed connect or publish. dialErr is the last error of the guarded
// dialer (nats.go may report only that no server could be reached). The Error never holds a
// credential: the settings' URLs have none, and no credential is put in an error.
func errorOutcome(err error, s *Settings, dialErr error) destination.Outcome {
	o := func(class destination.Class, kind, msg string) destination.Outcome {
		return destination.Outcome{Class: class, ErrorKind: kind, Error: msg}
	}
	subj := fmt.Sprintf("publish to subject %q: ", s.Subject)
	var perm *errPermission
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &perm), errors.Is(err, nats.ErrPermissionViolation):
		return o(destination.Permanent, destination.KindDenied,
			subj+"the server refused it: the credentials are not allowed to publish there ("+permissionText(err)+")")
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired), errors.Is(err, nats.ErrAuthRevoked),
		errors.Is(err, nats.ErrAccountAuthExpired):
		return o(destination.Permanent, destination.KindDenied,
			"connect to NATS: the server refused the credentials ("+err.Error()+")")
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		return o(destination.Permanent, destination.KindNoRoute,
			subj+"no JetStream stream captures this subject (nats: no responders)")
	case errors.Is(err, nats.ErrMaxPayload):
		return o(destination.Permanent, destination.KindTooLarge, subj+"the message is larger than the server's max_payload")
	case errors.As(err, &apiErr):
		return apiOutcome(apiErr, s, subj)
	case errors.Is(err, nats.ErrSecureConnRequired):
		return o(destination.Permanent, destination.KindTLS, "connect to NATS: the server requires TLS: set tls to true")
	case errors.Is(err, nats.ErrSecureConnWanted):
		return o(destination.Permanent, destination.KindTLS, "connect to NATS: the server does not offer TLS: set tls to false, or enable TLS on the server")
	case errors.Is(err, jetstream.ErrTooManyStalledMsgs), errors.Is(err, nats.ErrMaxConnectionsExceeded),
		errors.Is(err, nats.ErrMaxAccountConnectionsExceeded), errors.Is(err, nats.ErrSlowConsumer):
		return o(destination.Retryable, destination.KindBrokerBusy, "NATS is busy: "+err.Error())
	case errors.Is(err, context.Canceled):
		return o(destination.Retryable, destination.KindCanceled, subj+"the attempt was canceled (Herald is stopping)")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout), errors.Is(err, jetstream.ErrAsyncPublishTimeout):
		return o(destination.Retryable, destination.KindTimeout, subj+"no acknowledgement from the stream within the attempt's timeout")
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrDisconnected), errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, nats.ErrReconnectBufExceeded), errors.Is(err, nats.ErrStaleConnection):
		return o(destination.Retryable, destination.KindConnReset, subj+"the connection to the NATS server was lost")
	case errors.Is(err, jetstream.ErrInvalidJSAck):
		return o(destination.Retryable, destination.KindBrokerError, subj+"the server's answer was not a JetStream acknowledgement")
	}
	if dialErr != nil {
		class, kind := httpsend.ClassifyDialError(dialErr)
		return o(class, kind, "connect to NATS: "+dialErr.Error())
	}
	if errors.Is(err, nats.ErrNoServers) {
		return o(destination.Retryable, destination.KindConnFailed, "connect to NATS: no server could be reached")
	}
	class, kind := httpsend.ClassifyDialError(err)
	if kind == destination.KindInvalidResponse {
		kind = destination.KindBrokerError
	}
	return o(class, kind, "NATS: "+err.Error())
}

// apiOutcome classifies an error JetStream answered a publish with.
func apiOutcome(e *jetstream.APIError, s *Settings, subj string) destination.Outcome {
	const errCodeExpectedStream = 10060 // "expected stream does not match"
	o := destination.Outcome{Class: destination.Retryable, ErrorKind: destination.KindBrokerError,
		Error: subj + "JetStream refused the message: " + e.Description}
	switch {
	case e.ErrorCode == errCodeExpectedStream:
		o.Class, o.ErrorKind = destination.Permanent, destination.KindNoRoute
		o.Error = fmt.Sprintf("%sthe stream that captures this subject is not %q (%s)", subj, s.Stream, e.Description)
	case e.ErrorCode == jetstream.JSErrCodeStreamNotFound:
		o.Class, o.ErrorKind = destination.Permanent, destination.KindNoRoute
	case e.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum:
		o.Class, o.ErrorKind = destination.Permanent, destination.KindTooLarge
		o.Error = subj + "the message is larger than the stream's max_msg_size (" + e.Description + ")"
	case e.Code == 503 || e.Code == 429:
		// A full stream with discard=new ("maximum messages exceeded"), no leader, insufficient
		// resources: the broker is alive and may take it later.
		o.ErrorKind = destination.KindBrokerBusy
		o.Error = subj + "JetStream cannot take the message now: " + e.Description
	case e.Code == 401 || e.Code == 403:
		o.Class, o.ErrorKind = destination.Permanent, destination.KindDenied
	}
	return o
}

// permissionText is the server's permission violation without the "nats: " prefix.
func permissionText(err error) string {
	var perm *errPermission
	if errors.As(err, &perm) {
		return strings.TrimPrefix(perm.detail, "nats: ")
	}
	return "permissions violation"
}
