package dispatch

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/telemetry"
)

// A batching endpoint (store.EndpointOptions.Batch) receives its events as batches: one request
// whose body is a JSON array of what each event sends on its own (its envelope, or the
// endpoint's transformation of it), in publish order (delivery id), signed as a whole in the
// endpoint's scheme with "batch_<id>" as the message id, where id is the batch's smallest
// delivery id. The store forms batches (store.ClaimRequest.Batch); the lane queues a batch's
// members side by side and sends them as one request, which counts once against the endpoint's
// max_concurrency, rate limit and circuit breaker.
//
// The request's outcome is every member's attempt: each delivery records it. A batch that fails
// stays together: its members keep its id (store.Result.BatchID), and the store claims them
// again as one batch when their retry is due, so a receiver sees the same batch again, with the
// same message id, and can deduplicate it. One member whose transformation fails fails the
// whole batch's attempt (nothing is sent). There is no limit on a batch's body beyond
// max_events × the size of an event.
//
// An endpoint whose destination has a batch form (its Sender is a destination.BatchSender: a
// message broker) gets the batch as its members' own messages instead, each signed on its own
// with its event's id and carrying its publish's trace context, handed over together through
// SendBatch; their one outcome is every member's attempt, as above. Other destinations
// (webhooks) get the JSON array as one message.

// batchBody is the body of a batch: the JSON array of its members' bodies. A transformation's
// output that is not JSON goes in as a JSON string, so that the array stays valid. For a
// CloudEvents endpoint it is the array of the members' CloudEvents (structured, whatever the
// format: binary has no batch form), with the headers of that format.
func (s laneSnapshot) batchBody(ctx context.Context, batch []store.Claimed) ([]byte, http.Header, error) {
	if isCloudEvents(s.ep.Options.Format) {
		return s.cloudEventsBatch(ctx, batch)
	}
	body, err := s.envelopeBatch(ctx, batch)
	return body, nil, err
}

// envelopeBatch is the JSON array of a batch's members' bodies.
func (s laneSnapshot) envelopeBatch(ctx context.Context, batch []store.Claimed) ([]byte, error) {
	size := 2
	for _, c := range batch {
		size += len(c.Payload) + 1
	}
	buf := make([]byte, 0, size)
	buf = append(buf, '[')
	for i, c := range batch {
		b, err := s.body(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("event %s: %w", c.EventID, err)
		}
		if s.transform != nil && !json.Valid(b) {
			if b, err = json.Marshal(string(b)); err != nil {
				return nil, fmt.Errorf("event %s: %w", c.EventID, err)
			}
		}
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, b...)
	}
	return append(buf, ']'), nil
}

// cloudEventsBatch is the JSON array of a batch's members as CloudEvents.
func (s laneSnapshot) cloudEventsBatch(ctx context.Context, batch []store.Claimed) ([]byte, http.Header, error) {
	ces := make([]*cloudEvent, len(batch))
	for i, c := range batch {
		b, err := s.body(ctx, c)
		if err != nil {
			return nil, nil, fmt.Errorf("event %s: %w", c.EventID, err)
		}
		if ces[i], err = s.cloudEvent(c, b); err != nil {
			return nil, nil, err
		}
	}
	body, err := event.Marshal(ces)
	if err != nil {
		return nil, nil, fmt.Errorf("encode cloudevents batch: %w", err)
	}
	return body, http.Header{"Content-Type": {contentTypeCEBatch}}, nil
}

// deliverBatch hands a batch's members to a BatchSender as messages of their own, and tells
// the bytes of the bodies it sent.
func (s laneSnapshot) deliverBatch(ctx context.Context, bs destination.BatchSender, batch []store.Claimed, now time.Time) (destination.Outcome, int) {
	ms := make([]*destination.Message, len(batch))
	size := 0
	for i, c := range batch {
		body, format, err := s.render(ctx, c)
		if err != nil {
			return transformFailed(fmt.Errorf("event %s: %w", c.EventID, err)), 0
		}
		size += len(body)
		ms[i] = s.message(telemetry.Restore(ctx, c.Traceparent, c.Tracestate), c.EventID, c.EventType, body, format, now)
	}
	ctx, cancel := s.attemptContext(ctx)
	defer cancel()
	return bs.SendBatch(ctx, ms), size
}

// sendBatch sends a batch's members as one request and records the outcome for each of them.
func (d *Dispatcher) sendBatch(ctx context.Context, s laneSnapshot, batch []store.Claimed, breakerDone func(error)) {
	defer d.sends.Done()
	ctx = d.liveCheck(ctx)
	id := batch[0].BatchID
	msgID := "batch_" + strconv.FormatInt(id, 10)
	// The members were published by different requests: the batch's span starts a trace of its
	// own, linked to each of theirs.
	var opts []trace.SpanStartOption
	if d.cfg.TracerProvider != nil {
		for _, c := range batch {
			if sc := trace.SpanContextFromContext(telemetry.Restore(ctx, c.Traceparent, c.Tracestate)); sc.IsValid() {
				opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
			}
		}
	}
	opts = append(opts, trace.WithSpanKind(trace.SpanKindClient), trace.WithNewRoot())
	ctx, span := d.tracer.Start(ctx, "herald.batch", opts...)
	defer span.End()
	tracing := span.IsRecording()
	if tracing {
		span.SetAttributes(telemetry.AttrTenant.String(s.ep.TenantID), telemetry.AttrEndpoint.String(s.ep.ID),
			telemetry.AttrEventCount.Int(len(batch)), telemetry.AttrDelivery.Int64(id))
	}
	// Members' schedules may differ (a member retried on its own was reset): the batch follows
	// the one with the most attempts left, so that the batch stays whole while any member has.
	tries := batch[0].Tries
	for _, c := range batch {
		tries = min(tries, c.Tries)
	}
	now := time.Now()
	var out destination.Outcome
	sent := 0 // the bytes sent, counted with the first member's attempt
	if bs, ok := s.sender.(destination.BatchSender); ok {
		out, sent = s.deliverBatch(ctx, bs, batch, now)
	} else if body, format, err := s.batchBody(ctx, batch); err != nil {
		out = transformFailed(err)
	} else {
		sent = len(body)
		out = s.deliver(ctx, s.message(ctx, msgID, "", body, format, now))
	}
	if ctx.Err() != nil {
		// Shutdown cut the attempt short: the members go back to the queue as they were.
		span.SetStatus(codes.Error, "canceled by shutdown")
		ids := make([]int64, len(batch))
		for i, c := range batch {
			ids[i] = c.DeliveryID
		}
		if err := d.st.ReleaseClaims(context.WithoutCancel(ctx), ids); err != nil {
			d.log.Error("release claims", "endpoint", s.ep.ID, "tenant", s.ep.TenantID, "batch", msgID, "deliveries", ids, "err", err)
		}
		d.done <- doneMsg{lane: s.lane, released: true, held: len(batch)}
		return
	}
	state, next := d.cfg.Policy.Next(s.schedule, tries+1, out, time.Now())
	if tracing {
		spanOutcome(span, state, out)
	}
	if d.log.Enabled(ctx, slog.LevelDebug) {
		d.log.Debug("batch attempt", "batch", msgID, "tenant", s.ep.TenantID, "endpoint", s.ep.ID, "events", len(batch),
			"status", out.StatusCode, "error_class", metrics.ErrorClass(out), "err", out.Error, "latency", out.Latency, "next_attempt_at", next)
	}
	for i, c := range batch {
		// Counted per delivery, as single attempts are: the metric counts deliveries' attempts.
		d.cfg.Metrics.Attempt(s.ep.TenantID, s.ep.ID, attemptOutcome(state), out)
		bytes := 0
		if i == 0 {
			bytes = sent
		}
		d.results <- attemptResult(s, c, out, state, next, now, id, bytes)
	}
	d.done <- doneMsg{lane: s.lane, out: out, retryAt: next, breaker: breakerDone, at: now, eventID: msgID, attempt: batch[0].Attempts + 1, held: len(batch)}
}
