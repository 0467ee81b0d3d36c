package node

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/inbound"
	"github.com/heraldhq/herald/internal/inbound/schema"
	"github.com/heraldhq/herald/internal/outboxrelay"
	"github.com/heraldhq/herald/internal/source"
	"github.com/heraldhq/herald/internal/store"
)

// replayer is what the API replays received requests through: an HTTP source's requests go to
// internal/inbound, a broker source's held messages (quarantined or rejected, method BROKER) are
// mapped again and published as the broker source's runner does.
type replayer struct {
	in  *inbound.Service
	st  store.Store
	pub *brokerPublisher // set once the API is built (its BuildEvent checks the events)
}

var _ api.Inbound = (*replayer)(nil)

// SourceChanged implements api.Inbound.
func (r *replayer) SourceChanged(sourceID string) { r.in.SourceChanged(sourceID) }

// Replay implements api.Inbound.
func (r *replayer) Replay(ctx context.Context, tenantID, requestID string, force bool) (*inbound.ReplayResult, error) {
	rr, err := r.st.GetReceived(ctx, tenantID, requestID)
	if err != nil {
		return nil, fmt.Errorf("replay %s: %w", requestID, err)
	}
	bs, err := r.st.GetBrokerSource(ctx, tenantID, rr.SourceID)
	if errors.Is(err, store.ErrNotFound) {
		return r.in.Replay(ctx, tenantID, requestID, force)
	}
	if err != nil {
		return nil, fmt.Errorf("replay %s: broker source %s: %w", requestID, rr.SourceID, err)
	}
	if rr.Status == store.ReceiveDuplicate {
		if rr.DuplicateOf == "" {
			return nil, fmt.Errorf("replay %s: duplicate of an unknown message: %w", requestID, store.ErrNotFound)
		}
		orig := rr.DuplicateOf
		if rr, err = r.st.GetReceived(ctx, tenantID, orig); err != nil {
			return nil, fmt.Errorf("replay %s: original message %s: %w", requestID, orig, err)
		}
	}
	return r.pub.replay(ctx, bs, rr, force)
}

// replay publishes a held message of a broker source again: mapped by the source's current
// mapping and schema (the schema is skipped with force), with the event id the message got when
// it arrived (its dedup key; the broker's identity of the message is not stored), so that a
// message already published is a duplicate. A quarantined or rejected message becomes accepted,
// as its event; an accepted one is published again, which is a duplicate unless its event is
// gone. A message still quarantined returns the schema's *schema.Violation as is; one still
// refused a *source.RefusedError.
func (p *brokerPublisher) replay(ctx context.Context, bs *store.BrokerSource, rr *store.ReceivedRequest, force bool) (*inbound.ReplayResult, error) {
	m, _ := source.CheckMapping(bs.Mapping)
	mp, err := source.NewMapper(bs.ID, m, bs.Schema)
	if err != nil {
		return nil, fmt.Errorf("replay %s: %w", rr.ID, err)
	}
	ev := mp.Map(&source.Message{Body: rr.Body, Header: rr.Headers, Subject: rr.Path})
	if rr.DedupKey != "" {
		ev.ID = rr.DedupKey
	}
	switch {
	case ev.Invalid != nil && !force:
		if v, ok := errors.AsType[*schema.Violation](ev.Invalid); ok {
			// Returned as is, not wrapped, so the API can list its problems.
			return nil, v
		}
		return nil, fmt.Errorf("replay %s: %w", rr.ID, ev.Invalid)
	case ev.Invalid == nil && ev.Quarantine != "":
		return nil, &source.RefusedError{Reason: ev.Quarantine}
	}
	sev, err := p.build(ctx, event.Input{ID: ev.ID, Type: ev.Type, Data: event.Object(ev.Data), Source: bs.ID})
	if err != nil {
		if p.unavailable(err) {
			return nil, fmt.Errorf("replay %s: %w", rr.ID, err)
		}
		return nil, &source.RefusedError{Reason: "refused: " + outboxrelay.Describe(err)}
	}
	sev.TenantID = bs.TenantID
	res := &inbound.ReplayResult{RequestID: rr.ID, EventID: sev.ID}
	var pub *store.PublishResult
	if rr.Status == store.ReceiveQuarantined || rr.Status == store.ReceiveRejected {
		out, err := p.st.AcceptReceived(ctx, bs.TenantID, rr.ID, sev)
		if err != nil {
			return nil, fmt.Errorf("replay %s: accept: %w", rr.ID, err)
		}
		res.Accepted, pub = true, out.Published
	} else {
		out, err := p.st.Publish(ctx, bs.TenantID, []*store.Event{sev})
		if err != nil {
			return nil, fmt.Errorf("replay %s: publish: %w", rr.ID, err)
		}
		pub = &out[0]
	}
	if pub != nil {
		if pub.Event != nil {
			res.EventID = pub.Event.ID
		}
		res.Duplicate, res.Deliveries, res.EndpointIDs = pub.Duplicate, pub.Deliveries, slices.Clone(pub.EndpointIDs)
	}
	if !res.Duplicate {
		p.m.EventsPublished(bs.TenantID, 1)
	}
	if len(res.EndpointIDs) > 0 {
		p.notify(res.EndpointIDs...)
	}
	return res, nil
}
