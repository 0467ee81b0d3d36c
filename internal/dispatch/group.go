package dispatch

import (
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/telemetry"
)

// A message broker acknowledges many messages about as fast as one: its batch form
// (destination.BatchSender) pipelines them over one connection. So a lane whose sender has one
// hands it several of its queued deliveries at once, a group, instead of one per slot of its
// max_concurrency: each is still its own message (signed on its own with its event's id, with
// its publish's trace context), its own delivery and its own attempt record, and it keeps its own
// retry schedule. What they share is the one SendBatch call, which counts once against the
// endpoint's max_concurrency and circuit breaker, and its outcome when it is a success or a
// retryable failure (the broker was unreachable or busy for all of them; a consumer deduplicates
// by webhook-id). A permanent failure may be one message's alone (too large), so the members are
// then sent again one by one and each records its own outcome.
//
// Not grouped: webhooks (a POST is one message), endpoints that batch (their batches are formed
// by the store and sent as such), ordered endpoints (one at a time), and rate-limited endpoints
// (the limit counts messages, and a group would spend it unevenly).

// maxGroup bounds the messages of one group: a broker's batch stays well within its limits
// (SQS takes 10 a call and splits, Kafka and NATS pipeline), and one slow group holds no more.
const maxGroup = 64

// groupSize is how many queued deliveries the lane's next send takes: the queue spread evenly
// over the free slots, at most maxGroup; 1 when the lane does not group.
func (l *lane) groupSize() int {
	if l.batch != nil || l.limiter != nil || l.ep.Options.Ordered || len(l.queue) < 2 {
		return 1
	}
	if _, ok := l.sender.(destination.BatchSender); !ok {
		return 1
	}
	free := max(1, l.concurrency()-l.inFlight)
	n := (len(l.queue) + free - 1) / free
	for i := 1; i < n && i < len(l.queue); i++ {
		if l.queue[i].BatchID != 0 {
			return i
		}
	}
	return min(n, maxGroup, len(l.queue))
}

// sendGroup sends a group of single deliveries through the sender's batch form and records each
// one's attempt with its own schedule.
func (d *Dispatcher) sendGroup(ctx context.Context, s laneSnapshot, group []store.Claimed, breakerDone func(error)) {
	defer d.sends.Done()
	ctx = d.liveCheck(ctx)
	var opts []trace.SpanStartOption
	if d.cfg.TracerProvider != nil {
		for _, c := range group {
			if sc := trace.SpanContextFromContext(telemetry.Restore(ctx, c.Traceparent, c.Tracestate)); sc.IsValid() {
				opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
			}
		}
	}
	opts = append(opts, trace.WithSpanKind(trace.SpanKindClient), trace.WithNewRoot())
	ctx, span := d.tracer.Start(ctx, "herald.group", opts...)
	defer span.End()
	tracing := span.IsRecording()
	if tracing {
		span.SetAttributes(telemetry.AttrTenant.String(s.ep.TenantID), telemetry.AttrEndpoint.String(s.ep.ID),
			telemetry.AttrEventCount.Int(len(group)))
	}
	now := time.Now()
	// A member whose transformation fails is its own failed attempt; the others go.
	outs := make([]destination.Outcome, len(group))
	var ms []*destination.Message
	var sent []int
	sizes := make([]int, len(group)) // the bytes of each member's body, for the usage counters
	for i, c := range group {
		body, format, err := s.render(ctx, c)
		if err != nil {
			outs[i] = transformFailed(err)
			continue
		}
		sizes[i] = len(body)
		ms = append(ms, s.message(telemetry.Restore(ctx, c.Traceparent, c.Tracestate), c.EventID, c.EventType, body, format, now))
		sent = append(sent, i)
	}
	var out destination.Outcome
	if len(ms) > 0 {
		actx, cancel := s.attemptContext(ctx)
		out = s.sender.(destination.BatchSender).SendBatch(actx, ms)
		cancel()
		for _, i := range sent {
			outs[i] = out
		}
		if out.Class == destination.Permanent && len(ms) > 1 && ctx.Err() == nil {
			// A permanent refusal may be about one message (too large, say): each is sent on
			// its own, so that its neighbours are not dead-lettered for it.
			for j, i := range sent {
				outs[i] = s.deliver(ctx, ms[j])
			}
			out = outs[sent[0]]
		}
	} else {
		out = outs[0]
	}
	if ctx.Err() != nil {
		// Shutdown cut the attempt short: the members go back to the queue as they were.
		span.SetStatus(codes.Error, "canceled by shutdown")
		ids := make([]int64, len(group))
		for i, c := range group {
			ids[i] = c.DeliveryID
		}
		if err := d.st.ReleaseClaims(context.WithoutCancel(ctx), ids); err != nil {
			d.log.Error("release claims", "endpoint", s.ep.ID, "tenant", s.ep.TenantID, "deliveries", ids, "err", err)
		}
		d.done <- doneMsg{lane: s.lane, released: true, held: len(group)}
		return
	}
	var retryAt time.Time
	end := time.Now()
	for i, c := range group {
		state, next := d.cfg.Policy.Next(s.schedule, c.Tries+1, outs[i], end)
		d.cfg.Metrics.Attempt(s.ep.TenantID, s.ep.ID, attemptOutcome(state), outs[i])
		if d.log.Enabled(ctx, slog.LevelDebug) {
			d.logAttempt(ctx, slog.LevelDebug, "attempt", s, c, "group", len(group), "status", outs[i].StatusCode,
				"error_class", metrics.ErrorClass(outs[i]), "err", outs[i].Error, "latency", outs[i].Latency, "next_attempt_at", next)
		}
		if !next.IsZero() && (retryAt.IsZero() || next.Before(retryAt)) {
			retryAt = next
		}
		if tracing && i == 0 {
			spanOutcome(span, state, out)
		}
		d.results <- attemptResult(s, c, outs[i], state, next, now, 0, sizes[i])
	}
	d.done <- doneMsg{lane: s.lane, out: out, retryAt: retryAt, breaker: breakerDone, at: now, eventID: group[0].EventID, attempt: group[0].Attempts + 1, held: len(group)}
}
