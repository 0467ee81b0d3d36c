package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heraldhq/herald/internal/inbound/schema"
	"github.com/heraldhq/herald/internal/schemaexample"
	"github.com/heraldhq/herald/internal/store"
)

// EventType is an entry of the event catalog.
type EventType struct {
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Deprecated  bool      `json:"deprecated"`
	Schema      Object    `json:"schema,omitempty" doc:"The JSON Schema of the events' data; absent when the type has none. For documentation and examples (GET /v1/event-types/{name}/example); published events whose data does not satisfy it are refused (422 naming each failing place)."`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func eventTypeOut(et *store.EventType) EventType {
	return EventType{Name: et.Name, Description: et.Description, Deprecated: et.Deprecated, Schema: Object(et.Schema),
		CreatedAt: et.CreatedAt, UpdatedAt: et.UpdatedAt}
}

// eventTypeSchema checks a schema given on create or update and returns what to store: nil for
// {}, which accepts everything and so says nothing; the document, compacted, otherwise.
func eventTypeSchema(doc Object) (json.RawMessage, error) {
	raw := json.RawMessage(doc)
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err == nil {
		raw = compact.Bytes()
	}
	if _, err := schema.Compile(raw); err != nil {
		return nil, huma.Error422UnprocessableEntity("invalid event type", &huma.ErrorDetail{Location: "body.schema", Message: err.Error()})
	}
	if string(raw) == "{}" {
		return nil, nil
	}
	return raw, nil
}

// EventTypeExample is an example of an event type's data.
type EventTypeExample struct {
	Data json.RawMessage `json:"data" doc:"An example of the data of an event of the type, made from its schema: the schema's own examples, defaults, consts and enums where it has them, otherwise the plainest value of each type. {} when the type has no schema."`
}

// eventTypePattern is resource.action in lower case, with optional sub-resources and a version
// suffix: invoice.paid, invoice.line_item.created, invoice.paid.v2.
const eventTypePattern = `^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$`

type createEventTypeInput struct {
	Body struct {
		Name        string `json:"name" maxLength:"128" pattern:"^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+$" doc:"resource.action in lower case, by convention in the past tense (invoice.paid), with an optional version suffix (invoice.paid.v2)." example:"invoice.paid"`
		Description string `json:"description,omitempty" maxLength:"2000" example:"An invoice was paid in full."`
		Deprecated  bool   `json:"deprecated,omitempty"`
		Schema      Object `json:"schema,omitempty" doc:"A JSON Schema (draft 4 to 2020-12, no external $ref) of the events' data, for documentation and examples (GET /v1/event-types/{name}/example); published events whose data does not satisfy it are refused (422 naming each failing place). {} is the same as none."`
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
		Schema      Object  `json:"schema,omitempty" doc:"A JSON Schema (draft 4 to 2020-12, no external $ref) of the events' data, for documentation and examples (GET /v1/event-types/{name}/example); published events whose data does not satisfy it are refused (422 naming each failing place). Replaces the schema; {} removes it; absent keeps it."`
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
		var sch json.RawMessage
		if in.Body.Schema != nil {
			var err error
			if sch, err = eventTypeSchema(in.Body.Schema); err != nil {
				return nil, err
			}
		}
		now := s.now()
		et := &store.EventType{Name: in.Body.Name, Description: in.Body.Description, Deprecated: in.Body.Deprecated, Schema: sch,
			CreatedAt: now, UpdatedAt: now}
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
		OperationID: "get-event-type-example", Method: http.MethodGet, Path: "/v1/event-types/{name}/example", Tags: []string{"Event types"},
		Summary: "Get an example of an event type's data",
		Description: "Makes an example of the data of an event of the type from its schema, for herald trigger and for " +
			"trying an endpoint out. A type without a schema gives {}; a schema no example can be made of (one that " +
			"accepts nothing, or requires itself all the way down) answers 422.",
	}, func(ctx context.Context, in *EventTypePath) (*Out[EventTypeExample], error) {
		et, err := s.st.GetEventType(ctx, in.Name)
		if err != nil {
			return nil, s.fail(err, "event type "+in.Name)
		}
		if et.Schema == nil {
			return &Out[EventTypeExample]{Body: EventTypeExample{Data: json.RawMessage("{}")}}, nil
		}
		ex, err := schemaexample.Generate(et.Schema)
		if errors.Is(err, schemaexample.ErrNoExample) {
			return nil, huma.Error422UnprocessableEntity("the event type's schema gives no example", &huma.ErrorDetail{Location: "schema", Message: err.Error()})
		}
		if err != nil {
			return nil, s.fail(err, "example of event type "+in.Name)
		}
		return &Out[EventTypeExample]{Body: EventTypeExample{Data: ex}}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "update-event-type", Method: http.MethodPatch, Path: "/v1/event-types/{name}", Tags: []string{"Event types"},
		Summary: "Change an event type's description, deprecation or schema", Metadata: admin,
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
		if in.Body.Schema != nil {
			if et.Schema, err = eventTypeSchema(in.Body.Schema); err != nil {
				return nil, err
			}
		}
		et.UpdatedAt = s.now()
		a := s.audit(ctx, "event_type.update", "event_type", et.Name, "", before, eventTypeOut(et))
		s.types.forget(et.Name)
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
