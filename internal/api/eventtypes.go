package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heraldhq/herald/internal/store"
)

// EventType is an entry of the event catalog.
type EventType struct {
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Deprecated  bool      `json:"deprecated"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func eventTypeOut(et *store.EventType) EventType {
	return EventType{Name: et.Name, Description: et.Description, Deprecated: et.Deprecated, CreatedAt: et.CreatedAt, UpdatedAt: et.UpdatedAt}
}

// eventTypePattern is resource.action in lower case, with optional sub-resources and a version
// suffix: invoice.paid, invoice.line_item.created, invoice.paid.v2.
const eventTypePattern = `^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$`

type createEventTypeInput struct {
	Body struct {
		Name        string `json:"name" maxLength:"128" pattern:"^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+$" doc:"resource.action in lower case, by convention in the past tense (invoice.paid), with an optional version suffix (invoice.paid.v2)." example:"invoice.paid"`
		Description string `json:"description,omitempty" maxLength:"2000" example:"An invoice was paid in full."`
		Deprecated  bool   `json:"deprecated,omitempty"`
	}
}

type EventTypePath struct {
	Name string `path:"name" maxLength:"128"`
}

type updateEventTypeInput struct {
	EventTypePath
	Body struct {
		Description *string `json:"description,omitempty" maxLength:"2000"`
		Deprecated  *bool   `json:"deprecated,omitempty"`
	}
}

func (s *Server) registerEventTypes() {
	admin := map[string]any{metaAdminOnly: true}
	huma.Register(s.api, huma.Operation{
		OperationID: "create-event-type", Method: http.MethodPost, Path: "/v1/event-types", Tags: []string{"Event types"},
		Summary: "Register an event type", DefaultStatus: http.StatusCreated, Metadata: admin,
	}, func(ctx context.Context, in *createEventTypeInput) (*Out[EventType], error) {
		if err := noNUL("body.description", in.Body.Description); err != nil {
			return nil, err
		}
		now := s.now()
		et := &store.EventType{Name: in.Body.Name, Description: in.Body.Description, Deprecated: in.Body.Deprecated, CreatedAt: now, UpdatedAt: now}
		a := s.audit(ctx, "event_type.create", "event_type", et.Name, "", nil, eventTypeOut(et))
		if err := s.st.CreateEventType(store.WithAudit(ctx, a), et); err != nil {
			return nil, s.fail(err, "event type "+et.Name)
		}
		return &Out[EventType]{Body: eventTypeOut(et)}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "list-event-types", Method: http.MethodGet, Path: "/v1/event-types", Tags: []string{"Event types"},
		Summary: "List event types",
	}, func(ctx context.Context, in *struct{ ListParams }) (*Out[ListBody[EventType]], error) {
		ets, next, err := s.st.ListEventTypes(ctx, in.page())
		if err != nil {
			return nil, s.fail(err, "event types")
		}
		out := make([]EventType, len(ets))
		for i := range ets {
			out[i] = eventTypeOut(&ets[i])
		}
		return &Out[ListBody[EventType]]{Body: list(out, next)}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "get-event-type", Method: http.MethodGet, Path: "/v1/event-types/{name}", Tags: []string{"Event types"},
		Summary: "Get an event type",
	}, func(ctx context.Context, in *EventTypePath) (*Out[EventType], error) {
		et, err := s.st.GetEventType(ctx, in.Name)
		if err != nil {
			return nil, s.fail(err, "event type "+in.Name)
		}
		return &Out[EventType]{Body: eventTypeOut(et)}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "update-event-type", Method: http.MethodPatch, Path: "/v1/event-types/{name}", Tags: []string{"Event types"},
		Summary: "Change an event type's description or deprecation", Metadata: admin,
	}, func(ctx context.Context, in *updateEventTypeInput) (*Out[EventType], error) {
		et, err := s.st.GetEventType(ctx, in.Name)
		if err != nil {
			return nil, s.fail(err, "event type "+in.Name)
		}
		before := eventTypeOut(et)
		if in.Body.Description != nil {
			if err := noNUL("body.description", *in.Body.Description); err != nil {
				return nil, err
			}
			et.Description = *in.Body.Description
		}
		if in.Body.Deprecated != nil {
			et.Deprecated = *in.Body.Deprecated
		}
		et.UpdatedAt = s.now()
		a := s.audit(ctx, "event_type.update", "event_type", et.Name, "", before, eventTypeOut(et))
		if err := s.st.UpdateEventType(store.WithAudit(ctx, a), et); err != nil {
			return nil, s.fail(err, "event type "+in.Name)
		}
		return &Out[EventType]{Body: eventTypeOut(et)}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "delete-event-type", Method: http.MethodDelete, Path: "/v1/event-types/{name}", Tags: []string{"Event types"},
		Summary: "Remove an event type from the catalog", DefaultStatus: http.StatusNoContent, Metadata: admin,
	}, func(ctx context.Context, in *EventTypePath) (*struct{}, error) {
		et, err := s.st.GetEventType(ctx, in.Name)
		if err != nil {
			return nil, s.fail(err, "event type "+in.Name)
		}
		a := s.audit(ctx, "event_type.delete", "event_type", et.Name, "", eventTypeOut(et), nil)
		s.types.forget(in.Name)
		if err := s.st.DeleteEventType(store.WithAudit(ctx, a), in.Name); err != nil {
			return nil, s.fail(err, "event type "+in.Name)
		}
		return nil, nil
	})
}
