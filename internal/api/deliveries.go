package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heraldhq/herald/internal/redact"
	"github.com/heraldhq/herald/internal/store"
)

// Delivery is one event to one endpoint.
type Delivery struct {
	ID            string     `json:"id"`
	EventID       string     `json:"event_id"`
	EventType     string     `json:"event_type"`
	EndpointID    string     `json:"endpoint_id"`
	State         string     `json:"state" enum:"pending,succeeded,dead"`
	AttemptCount  int        `json:"attempt_count"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	LastStatus    int        `json:"last_status,omitempty"`
	LastError     string     `json:"last_error,omitempty" doc:"Why the last attempt failed; for a dead delivery, why it died."`
	Priority      string     `json:"priority" enum:"high,normal,low" doc:"The priority of the publish that made it."`
	Attempts      []Attempt  `json:"attempts,omitempty" doc:"Every attempt, newest first."`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
}

// Attempt is one HTTP try.
type Attempt struct {
	ID         string    `json:"id"`
	DeliveryID string    `json:"delivery_id"`
	EndpointID string    `json:"endpoint_id"`
	EventID    string    `json:"event_id"`
	At         time.Time `json:"at"`
	Success    bool      `json:"success"`
	StatusCode int       `json:"status_code" doc:"0 when no response arrived."`
	LatencyMS  float64   `json:"latency_ms"`
	Response   string    `json:"response,omitempty" doc:"The first 4 KiB of the response body."`
	ErrorKind  string    `json:"error_kind,omitempty" doc:"timeout, connection_refused, connection_reset, dns, tls, blocked_destination, redirect, http_status, invalid_response, body_timeout."`
	Error      string    `json:"error,omitempty"`
}

func deliveryID(id int64) string { return "dlv_" + strconv.FormatInt(id, 10) }

func parseDeliveryID(s string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimPrefix(s, "dlv_"), 10, 64)
	return n, err == nil && n > 0 && strings.HasPrefix(s, "dlv_")
}

func deliveryOut(d *store.Delivery, attempts []store.Attempt, paths redact.Paths) Delivery {
	out := Delivery{
		ID: deliveryID(d.ID), EventID: d.EventID, EventType: d.EventType, EndpointID: d.EndpointID, State: string(d.State),
		AttemptCount: d.Attempts, NextAttemptAt: d.NextAttemptAt, LastStatus: d.LastStatus, LastError: d.LastError,
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, Priority: priorityName(d.Priority),
	}
	for i := range attempts {
		out.Attempts = append(out.Attempts, attemptOut(&attempts[i], paths))
	}
	return out
}

// attemptOut is an attempt as the API shows it. Its response was redacted when it was stored;
// it is redacted again here, for attempts stored before the tenant's setting last changed.
func attemptOut(a *store.Attempt, paths redact.Paths) Attempt {
	return Attempt{
		ID: "att_" + strconv.FormatInt(a.ID, 10), DeliveryID: deliveryID(a.DeliveryID), EndpointID: a.EndpointID, EventID: a.EventID,
		At: a.At, Success: a.Success, StatusCode: a.StatusCode, LatencyMS: float64(a.Latency.Microseconds()) / 1000,
		Response: string(paths.JSON([]byte(a.Response))), ErrorKind: a.ErrorKind, Error: a.Error,
	}
}

// deliveries lists deliveries with each one's attempt history.
func (s *Server) deliveries(ctx context.Context, f store.DeliveryFilter) (*Out[ListBody[Delivery]], error) {
	paths, err := s.redaction(ctx, f.TenantID)
	if err != nil {
		return nil, err
	}
	ds, next, err := s.st.ListDeliveries(ctx, f)
	if err != nil {
		return nil, s.fail(err, "deliveries")
	}
	out := make([]Delivery, len(ds))
	for i := range ds {
		var atts []store.Attempt
		if ds[i].Attempts > 0 {
			if atts, _, err = s.st.ListAttempts(ctx, store.AttemptFilter{TenantID: f.TenantID, DeliveryID: ds[i].ID, Page: store.Page{Limit: store.MaxLimit}}); err != nil {
				return nil, s.fail(err, "attempts")
			}
		}
		out[i] = deliveryOut(&ds[i], atts, paths)
	}
	return &Out[ListBody[Delivery]]{Body: list(out, next)}, nil
}

type DeliveryFilterParams struct {
	EndpointID string   `query:"endpoint_id" maxLength:"64" doc:"Only this endpoint's deliveries."`
	EventTypes []string `query:"event_type,explode" maxItems:"50" doc:"Only these event types."`
	States     []string `query:"state,explode" enum:"pending,succeeded,dead" maxItems:"3" doc:"Only deliveries in these states."`
	TimeRange
}

func (f DeliveryFilterParams) filter(tenant string) store.DeliveryFilter {
	out := store.DeliveryFilter{TenantID: tenant, EndpointID: f.EndpointID, EventTypes: f.EventTypes, Since: f.Since, Until: f.Until}
	for _, st := range f.States {
		out.States = append(out.States, store.DeliveryState(st))
	}
	return out
}

type DeliveryPath struct {
	TenantPath
	ID string `path:"id" maxLength:"32" doc:"A delivery id, dlv_…"`
}

// ReplayInput selects deliveries to queue again.
type ReplayInput struct {
	EndpointID string     `json:"endpoint_id,omitempty" maxLength:"64"`
	EventTypes []string   `json:"event_types,omitempty" maxItems:"50"`
	States     []string   `json:"states,omitempty" maxItems:"3" doc:"Default: dead." enum:"pending,succeeded,dead"`
	Since      *time.Time `json:"since,omitempty" doc:"Deliveries created at or after."`
	Until      *time.Time `json:"until,omitempty" doc:"Deliveries created before."`
}

// ParseSince reads "1h", "30m", "7d" (a duration back from now) or an RFC 3339 time.
func ParseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 3650 {
			return time.Time{}, fmt.Errorf("not a number of days")
		}
		return now.Add(-time.Duration(n) * 24 * time.Hour), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("want a duration like 1h, 30m or 7d, or an RFC 3339 time")
	}
	return now.Add(-d), nil
}

func (s *Server) registerDeliveries() {
	tags := []string{"Deliveries"}
	huma.Register(s.api, huma.Operation{
		OperationID: "list-deliveries", Method: http.MethodGet, Path: "/v1/tenants/{tenant}/deliveries", Tags: tags,
		Summary:     "List deliveries, newest first, with their attempts",
		Description: "With state=dead this is the dead-letter queue: each delivery carries its failure reason and full attempt history.",
	}, func(ctx context.Context, in *struct {
		TenantPath
		ListParams
		DeliveryFilterParams
	}) (*Out[ListBody[Delivery]], error) {
		f := in.filter(in.Tenant)
		f.Page = in.page()
		return s.deliveries(ctx, f) // 404 for an unknown tenant
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "get-delivery", Method: http.MethodGet, Path: "/v1/tenants/{tenant}/deliveries/{id}", Tags: tags,
		Summary: "Get a delivery with its attempts",
	}, func(ctx context.Context, in *DeliveryPath) (*Out[Delivery], error) {
		d, err := s.delivery(ctx, in.Tenant, in.ID)
		if err != nil {
			return nil, err
		}
		atts, _, err := s.st.ListAttempts(ctx, store.AttemptFilter{TenantID: in.Tenant, DeliveryID: d.ID, Page: store.Page{Limit: store.MaxLimit}})
		if err != nil {
			return nil, s.fail(err, "attempts")
		}
		paths, err := s.redaction(ctx, in.Tenant)
		if err != nil {
			return nil, err
		}
		return &Out[Delivery]{Body: deliveryOut(d, atts, paths)}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "retry-delivery", Method: http.MethodPost, Path: "/v1/tenants/{tenant}/deliveries/{id}/retry", Tags: tags,
		Summary: "Retry a delivery now", Description: "Queues it with a fresh retry schedule, whatever its state. The same webhook-id is sent.",
		DefaultStatus: http.StatusAccepted,
	}, func(ctx context.Context, in *DeliveryPath) (*Out[Delivery], error) {
		id, ok := parseDeliveryID(in.ID)
		if !ok {
			return nil, huma.Error404NotFound("delivery " + in.ID + " not found")
		}
		d, err := s.st.Retry(ctx, in.Tenant, id)
		if err != nil {
			return nil, s.fail(err, "delivery "+in.ID)
		}
		s.cfg.Notifier.Notify(d.EndpointID)
		out := deliveryOut(d, nil, redact.Paths{})
		s.recordAfter(ctx, s.audit(ctx, "delivery.retry", "delivery", out.ID, in.Tenant, nil, out))
		return &Out[Delivery]{Body: out}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "list-attempts", Method: http.MethodGet, Path: "/v1/tenants/{tenant}/attempts", Tags: tags,
		Summary: "List attempts, newest first",
	}, func(ctx context.Context, in *struct {
		TenantPath
		ListParams
		TimeRange
		EndpointID string `query:"endpoint_id" maxLength:"64"`
		EventID    string `query:"event_id" maxLength:"128"`
	}) (*Out[ListBody[Attempt]], error) {
		paths, err := s.redaction(ctx, in.Tenant)
		if err != nil {
			return nil, err
		}
		atts, next, err := s.st.ListAttempts(ctx, store.AttemptFilter{TenantID: in.Tenant, EndpointID: in.EndpointID, EventID: in.EventID, Since: in.Since, Until: in.Until, Page: in.page()})
		if err != nil {
			return nil, s.fail(err, "attempts")
		}
		out := make([]Attempt, len(atts))
		for i := range atts {
			out[i] = attemptOut(&atts[i], paths)
		}
		return &Out[ListBody[Attempt]]{Body: list(out, next)}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "replay-deliveries", Method: http.MethodPost, Path: "/v1/tenants/{tenant}/replays", Tags: tags,
		Summary:       "Queue matching deliveries again (bulk replay)",
		Description:   "By default replays dead deliveries; filter by endpoint, event type, state and creation time. Answers how many were queued.",
		DefaultStatus: http.StatusAccepted,
	}, func(ctx context.Context, in *struct {
		TenantPath
		Body ReplayInput
	}) (*Out[ReplayQueued], error) {
		if _, err := s.st.GetTenant(ctx, in.Tenant); err != nil {
			return nil, s.fail(err, "tenant "+in.Tenant)
		}
		f := store.DeliveryFilter{TenantID: in.Tenant, EndpointID: in.Body.EndpointID, EventTypes: in.Body.EventTypes}
		if in.Body.Since != nil {
			f.Since = *in.Body.Since
		}
		if in.Body.Until != nil {
			f.Until = *in.Body.Until
		}
		for _, st := range in.Body.States {
			f.States = append(f.States, store.DeliveryState(st))
		}
		if len(f.States) == 0 {
			f.States = []store.DeliveryState{store.StateDead}
		}
		n, err := s.st.Replay(ctx, f)
		if err != nil {
			return nil, s.fail(err, "replay")
		}
		if n > 0 {
			s.cfg.Notifier.Rescan()
		}
		// Recorded after the replay, which runs in many transactions; After holds the request and
		// how many deliveries it queued.
		s.recordAfter(ctx, s.audit(ctx, "delivery.replay", "delivery", "", in.Tenant, nil, struct {
			ReplayInput
			Queued int `json:"queued"`
		}{in.Body, n}))
		return &Out[ReplayQueued]{Body: ReplayQueued{Queued: n}}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "get-stats", Method: http.MethodGet, Path: "/v1/tenants/{tenant}/stats", Tags: tags,
		Summary:     "Count events, deliveries and failures since a moment",
		Description: "since is a duration back from now (1h, 30m, 7d) or an RFC 3339 time; default 24h. failed_deliveries counts deliveries with at least one failed attempt in the period.",
	}, func(ctx context.Context, in *struct {
		TenantPath
		Since string `query:"since" default:"24h" maxLength:"40"`
	}) (*Out[store.Stats], error) {
		since, err := ParseSince(in.Since, s.now())
		if err != nil {
			return nil, huma.Error422UnprocessableEntity("invalid since", &huma.ErrorDetail{Location: "query.since", Message: err.Error(), Value: in.Since})
		}
		if _, err := s.st.GetTenant(ctx, in.Tenant); err != nil {
			return nil, s.fail(err, "tenant "+in.Tenant)
		}
		st, err := s.st.Stats(ctx, in.Tenant, since)
		if err != nil {
			return nil, s.fail(err, "stats")
		}
		return &Out[store.Stats]{Body: *st}, nil
	})
}

func (s *Server) delivery(ctx context.Context, tenant, raw string) (*store.Delivery, error) {
	id, ok := parseDeliveryID(raw)
	if !ok {
		return nil, huma.Error404NotFound("delivery " + raw + " not found")
	}
	d, err := s.st.GetDelivery(ctx, tenant, id)
	if err != nil {
		return nil, s.fail(err, "delivery "+raw)
	}
	return d, nil
}

// ReplayQueued is the answer to a bulk replay.
type ReplayQueued struct {
	Queued int `json:"queued" doc:"How many deliveries were queued again."`
}
