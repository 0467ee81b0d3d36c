package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heraldhq/herald/internal/inbound"
	"github.com/heraldhq/herald/internal/inbound/schema"
	"github.com/heraldhq/herald/internal/redact"
	"github.com/heraldhq/herald/internal/source"
	"github.com/heraldhq/herald/internal/store"
)

// ReceivedRequest is one request to a source and what became of it.
type ReceivedRequest struct {
	ID          string    `json:"id" doc:"req_…"`
	SourceID    string    `json:"source_id"`
	ReceivedAt  time.Time `json:"received_at"`
	Method      string    `json:"method"`
	Path        string    `json:"path" doc:"The request path; the token in it is replaced by [REDACTED]."`
	Query       string    `json:"query,omitempty"`
	Status      string    `json:"status" enum:"accepted,duplicate,quarantined,rejected" doc:"accepted: forwarded as event_id; duplicate: its dedup key was seen (duplicate_of), acknowledged, not forwarded; quarantined: failed the source's schema, kept, replayable; rejected: refused (reason)."`
	Reason      string    `json:"reason,omitempty" doc:"Why it was rejected or quarantined; the first word is a code, such as bad_signature or schema."`
	DedupKey    string    `json:"dedup_key,omitempty"`
	DuplicateOf string    `json:"duplicate_of,omitempty" doc:"The request that first carried the dedup key."`
	EventID     string    `json:"event_id,omitempty" doc:"The event it became."`
	EventType   string    `json:"event_type,omitempty"`
	Deliveries  int       `json:"deliveries" doc:"How many deliveries its event got when it was stored."`
	RemoteAddr  string    `json:"remote_addr"`
	BodySize    int       `json:"body_size"`
}

// ReceivedRequestDetail is a received request with its headers, body and forwarding.
type ReceivedRequestDetail struct {
	ReceivedRequest
	Headers    map[string][]string `json:"headers" doc:"As received, with the values of Authorization, Proxy-Authorization, Cookie and the headers the source reads a credential or signature from replaced by [REDACTED]."`
	Body       *string             `json:"body,omitempty" doc:"The body when it is valid UTF-8; a JSON body with the tenant's redact_fields hidden."`
	BodyBase64 string              `json:"body_base64,omitempty" doc:"The body, base64, when it is not UTF-8."`
	Forwarding []Delivery          `json:"forwarding" doc:"The event's deliveries to the tenant's endpoints (the first 50), with their state, attempt_count and last_status."`
}

func receivedOut(r *store.ReceivedRequest) ReceivedRequest {
	return ReceivedRequest{
		ID: r.ID, SourceID: r.SourceID, ReceivedAt: r.ReceivedAt, Method: r.Method, Path: hideToken(r.Path), Query: r.Query,
		Status: string(r.Status), Reason: r.Reason, DedupKey: r.DedupKey, DuplicateOf: r.DuplicateOf, EventID: r.EventID,
		EventType: r.EventType, Deliveries: r.Deliveries, RemoteAddr: r.RemoteAddr, BodySize: r.BodySize,
	}
}

// hideToken replaces the ingest token in a request path: a rotated-out token is harmless, but a
// list of requests is no place for credentials.
func hideToken(path string) string {
	segs := strings.Split(path, "/")
	for i, seg := range segs {
		if strings.HasPrefix(seg, TokenPrefix) {
			segs[i] = redact.Marker
		}
	}
	return strings.Join(segs, "/")
}

// bodyOut shows a stored body: as text when it is UTF-8, with the tenant's redacted fields
// hidden when it is JSON; otherwise as base64.
func bodyOut(b []byte, paths redact.Paths) (text *string, b64 string) {
	if !utf8.Valid(b) {
		return nil, base64.StdEncoding.EncodeToString(b)
	}
	if json.Valid(b) {
		b = paths.JSON(b)
	}
	s := string(b)
	return &s, ""
}

// ReceivedQuery filters received requests.
type ReceivedQuery struct {
	ListParams
	SourceID string    `query:"source_id" maxLength:"64" doc:"Only this source's requests."`
	Statuses []string  `query:"status,explode" enum:"accepted,duplicate,quarantined,rejected" maxItems:"4" doc:"Only requests with these statuses."`
	Since    time.Time `query:"since" doc:"Only requests received at or after this time (RFC 3339)."`
	Until    time.Time `query:"until" doc:"Only requests received before this time (RFC 3339)."`
}

type ReceivedPath struct {
	TenantPath
	ID string `path:"id" maxLength:"64" doc:"A received request id, req_…"`
}

// Replayed is the answer to a replay.
type Replayed struct {
	RequestID  string `json:"request_id"`
	EventID    string `json:"event_id"`
	Deliveries int    `json:"deliveries" doc:"How many deliveries were queued."`
	Accepted   bool   `json:"accepted" doc:"True when a quarantined request (or a broker source's rejected message) became an event now."`
	Duplicate  bool   `json:"duplicate" doc:"True when the tenant already had the event (a broker source's message replayed after it was published): nothing was queued."`
}

// replayFailed maps what Inbound.Replay returns to a problem.
func (s *Server) replayFailed(err error, id string) error {
	var v *schema.Violation
	var refused *source.RefusedError
	switch {
	case errors.Is(err, inbound.ErrNotReplayable):
		return huma.Error409Conflict("request " + id + " was rejected: it never verified, so it cannot be replayed")
	case errors.As(err, &v):
		details := make([]error, len(v.Problems))
		for i, p := range v.Problems {
			loc := "payload"
			if ptr, msg, ok := strings.Cut(p, ": "); ok && strings.HasPrefix(ptr, "/") {
				loc, p = "payload"+strings.TrimSuffix(ptr, "/"), msg
			}
			details[i] = &huma.ErrorDetail{Location: loc, Message: p}
		}
		return huma.Error422UnprocessableEntity("the request's payload does not match the source's schema; replay with force to forward it anyway", details...)
	case errors.As(err, &refused):
		return huma.Error422UnprocessableEntity("message "+id+" still cannot become an event: "+refused.Reason, &huma.ErrorDetail{Location: "message", Message: refused.Reason})
	case errors.Is(err, store.ErrConflict):
		return huma.Error409Conflict("request " + id + " changed meanwhile; read it and try again")
	}
	return s.fail(err, "received request "+id)
}

func (s *Server) registerReceived() {
	tags := []string{"Received requests"}
	huma.Register(s.api, huma.Operation{
		OperationID: "list-received-requests", Method: http.MethodGet, Path: "/v1/tenants/{tenant}/received-requests", Tags: tags,
		Summary:     "List requests received by the tenant's sources, newest first",
		Description: "Without headers and bodies: get one request to see them.",
	}, func(ctx context.Context, in *struct {
		TenantPath
		ReceivedQuery
	}) (*Out[ListBody[ReceivedRequest]], error) {
		if err := noNUL("query.source_id", in.SourceID); err != nil {
			return nil, err
		}
		if _, err := s.st.GetTenant(ctx, in.Tenant); err != nil {
			return nil, s.fail(err, "tenant "+in.Tenant)
		}
		f := store.ReceivedFilter{TenantID: in.Tenant, SourceID: in.SourceID, Since: in.Since, Until: in.Until, Page: in.page()}
		for _, st := range in.Statuses {
			f.Statuses = append(f.Statuses, store.ReceiveStatus(st))
		}
		rs, next, err := s.st.ListReceived(ctx, f)
		if err != nil {
			return nil, s.fail(err, "received requests")
		}
		out := make([]ReceivedRequest, len(rs))
		for i := range rs {
			out[i] = receivedOut(&rs[i])
		}
		return &Out[ListBody[ReceivedRequest]]{Body: list(out, next)}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "get-received-request", Method: http.MethodGet, Path: "/v1/tenants/{tenant}/received-requests/{id}", Tags: tags,
		Summary: "Get a received request with its headers, body and forwarding",
	}, func(ctx context.Context, in *ReceivedPath) (*Out[ReceivedRequestDetail], error) {
		r, err := s.st.GetReceived(ctx, in.Tenant, in.ID)
		if err != nil {
			return nil, s.fail(err, "received request "+in.ID)
		}
		paths, err := s.redaction(ctx, in.Tenant)
		if err != nil {
			return nil, err
		}
		out := ReceivedRequestDetail{ReceivedRequest: receivedOut(r), Headers: r.Headers, Forwarding: []Delivery{}}
		if out.Headers == nil {
			out.Headers = map[string][]string{}
		}
		out.Body, out.BodyBase64 = bodyOut(r.Body, paths)
		if r.EventID != "" {
			ds, _, err := s.st.ListDeliveries(ctx, store.DeliveryFilter{TenantID: in.Tenant, EventID: r.EventID, Page: store.Page{Limit: store.DefaultLimit}})
			if err != nil {
				return nil, s.fail(err, "deliveries")
			}
			for i := range ds {
				out.Forwarding = append(out.Forwarding, deliveryOut(&ds[i], nil, paths))
			}
		}
		return &Out[ReceivedRequestDetail]{Body: out}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "replay-received-request", Method: http.MethodPost, Path: "/v1/tenants/{tenant}/received-requests/{id}/replay", Tags: tags,
		Summary: "Forward a received request again",
		Description: "An accepted request's event is queued again for the tenant's endpoints (receivers see the same event id). " +
			"A quarantined request is checked against the source's current schema first (422 if it still fails, unless force) " +
			"and becomes an event. A rejected request never verified and cannot be replayed (409). " +
			"A broker source's held message (method BROKER) is mapped again by the source's current mapping and schema and published " +
			"with the event id it had: quarantined or rejected, it becomes an event (422 while it is still refused); " +
			"already published, the answer says duplicate and nothing is queued.",
		DefaultStatus: http.StatusAccepted,
	}, func(ctx context.Context, in *struct {
		ReceivedPath
		Body *ReplayReceivedInput
	}) (*Out[Replayed], error) {
		// Looked up first, so that another tenant's id is a 404 whatever else is true.
		if _, err := s.st.GetReceived(ctx, in.Tenant, in.ID); err != nil {
			return nil, s.fail(err, "received request "+in.ID)
		}
		if s.cfg.Inbound == nil {
			return nil, huma.Error503ServiceUnavailable("this server does not receive webhooks, so it cannot replay them")
		}
		force := in.Body != nil && in.Body.Force
		// Replay wakes the delivery engine for the deliveries it queues.
		res, err := s.cfg.Inbound.Replay(ctx, in.Tenant, in.ID, force)
		if err != nil {
			return nil, s.replayFailed(err, in.ID)
		}
		out := Replayed{RequestID: res.RequestID, EventID: res.EventID, Deliveries: res.Deliveries, Accepted: res.Accepted, Duplicate: res.Duplicate}
		if out.RequestID == "" {
			out.RequestID = in.ID
		}
		s.recordAfter(ctx, s.audit(ctx, "received_request.replay", "received_request", in.ID, in.Tenant, nil,
			map[string]any{"replay": out, "force": force}))
		return &Out[Replayed]{Body: out}, nil
	})
}

// ReplayReceivedInput is the optional body of a received request's replay.
type ReplayReceivedInput struct {
	Force bool `json:"force,omitempty" doc:"Forward a quarantined request even though its payload fails the schema."`
}
