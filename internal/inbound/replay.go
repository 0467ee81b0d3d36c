package inbound

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/heraldhq/herald/internal/inbound/schema"
	"github.com/heraldhq/herald/internal/inbound/verify"
	"github.com/heraldhq/herald/internal/store"
)

// Replay sends a received request's event to the tenant's endpoints again.
//
//   - accepted: its event is queued again for every enabled endpoint of the tenant that
//     subscribes to its type (today's subscriptions, not those of when it arrived);
//   - duplicate: the request it duplicates is replayed, and RequestID names that one;
//   - quarantined: the payload is checked against the source's current schema (unless force),
//     a *schema.Violation is returned when it still fails, and otherwise the request becomes an
//     event with its deliveries and is marked accepted (Accepted is then true);
//   - rejected: ErrNotReplayable, since it never verified.
//
// Store errors are wrapped: store.ErrNotFound for an unknown request (or one whose event or
// source is gone), store.ErrConflict when another replay accepted a quarantined request first.
func (s *Service) Replay(ctx context.Context, tenantID, requestID string, force bool) (*ReplayResult, error) {
	rr, err := s.st.GetReceived(ctx, tenantID, requestID)
	if err != nil {
		return nil, fmt.Errorf("replay %s: %w", requestID, err)
	}
	if rr.Status == store.ReceiveDuplicate {
		if rr.DuplicateOf == "" {
			return nil, fmt.Errorf("replay %s: duplicate of an unknown request: %w", requestID, store.ErrNotFound)
		}
		orig := rr.DuplicateOf
		if rr, err = s.st.GetReceived(ctx, tenantID, orig); err != nil {
			return nil, fmt.Errorf("replay %s: original request %s: %w", requestID, orig, err)
		}
	}
	var res *ReplayResult
	switch rr.Status {
	case store.ReceiveAccepted:
		res, err = s.resend(ctx, rr)
	case store.ReceiveQuarantined:
		res, err = s.accept(ctx, rr, force)
	default: // rejected, or a duplicate of a duplicate, which the store never makes
		return nil, fmt.Errorf("replay %s: %w", rr.ID, ErrNotReplayable)
	}
	if err != nil {
		return nil, err
	}
	if len(res.EndpointIDs) > 0 && s.cfg.Notifier != nil {
		s.cfg.Notifier.Notify(res.EndpointIDs...)
	}
	return res, nil
}

// resend queues an accepted request's event again for each endpoint that wants it now.
func (s *Service) resend(ctx context.Context, rr *store.ReceivedRequest) (*ReplayResult, error) {
	ev, err := s.st.GetEvent(ctx, rr.TenantID, rr.EventID)
	if err != nil {
		return nil, fmt.Errorf("replay %s: event %s: %w", rr.ID, rr.EventID, err)
	}
	res := &ReplayResult{RequestID: rr.ID, EventID: ev.ID}
	page := store.Page{Limit: store.MaxLimit}
	for {
		eps, next, err := s.st.ListEndpoints(ctx, rr.TenantID, page)
		if err != nil {
			return nil, fmt.Errorf("replay %s: list endpoints: %w", rr.ID, err)
		}
		for i := range eps {
			ep := &eps[i]
			if !ep.Enabled || !ep.Subscribes(ev.Type) {
				continue
			}
			if _, err := s.st.Resend(ctx, rr.TenantID, ev.ID, ep.ID); err != nil {
				return nil, fmt.Errorf("replay %s: resend to %s: %w", rr.ID, ep.ID, err)
			}
			res.Deliveries++
			res.EndpointIDs = append(res.EndpointIDs, ep.ID)
		}
		if next == "" {
			return res, nil
		}
		page.Cursor = next
	}
}

// accept turns a quarantined request into an event, by its source's current settings.
func (s *Service) accept(ctx context.Context, rr *store.ReceivedRequest, force bool) (*ReplayResult, error) {
	st, err := s.st.GetSource(ctx, rr.TenantID, rr.SourceID)
	if err != nil {
		return nil, fmt.Errorf("replay %s: source %s: %w", rr.ID, rr.SourceID, err)
	}
	src, err := compile(st, fingerprint(st))
	if err != nil {
		return nil, fmt.Errorf("replay %s: %w", rr.ID, err)
	}
	data := eventData(rr.Headers, rr.Body)
	if !force && src.schema != nil {
		if err := src.schema.Validate(data); err != nil {
			if v, ok := errors.AsType[*schema.Violation](err); ok {
				// Returned as is, not wrapped, so the API can list its problems.
				return nil, v
			}
			return nil, fmt.Errorf("replay %s: %w", rr.ID, err)
		}
	}
	// The request verified when it arrived; it is not verified again (its timestamp is stale by
	// now), only read for its event type.
	vreq := &verify.Request{Method: rr.Method, Header: rr.Headers, Body: rr.Body}
	pev := src.verifier.Event(vreq)
	now := s.now()
	ev, err := buildEvent(rr.TenantID, src.id, eventType(&src.settings, pev.Type), data, now, Origin{RequestID: rr.ID, ProviderID: pev.ID})
	if err != nil {
		return nil, fmt.Errorf("replay %s: %w", rr.ID, err)
	}
	out, err := s.st.AcceptReceived(ctx, rr.TenantID, rr.ID, ev)
	if err != nil {
		return nil, fmt.Errorf("replay %s: accept: %w", rr.ID, err)
	}
	res := &ReplayResult{RequestID: rr.ID, EventID: ev.ID, Accepted: true}
	if out.Published != nil {
		res.EventID = out.Published.Event.ID
		res.Deliveries = out.Published.Deliveries
		res.EndpointIDs = slices.Clone(out.Published.EndpointIDs)
	}
	return res, nil
}

// compile-time check: what the API calls.
var _ interface {
	Replay(ctx context.Context, tenantID, requestID string, force bool) (*ReplayResult, error)
	SourceChanged(sourceID string)
} = (*Service)(nil)
