package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heraldhq/herald/internal/inbound/schema"
	"github.com/heraldhq/herald/internal/schemaexample"
	"github.com/heraldhq/herald/internal/store"
)

// EventType is an entry of the event catalog.
type EventType struct {
	Name        string    `json:"name"`
	Family      string    `json:"family" readOnly:"true" doc:"The name without its version suffix: invoice.paid for invoice.paid.v2."`
	Version     int       `json:"version" readOnly:"true" doc:"1 for a name without a version suffix, N for one ending in .vN."`
	Versions    []string  `json:"versions,omitempty" readOnly:"true" doc:"Only when one type is read: the other versions of the same family in the catalog, newest first."`
	Description string    `json:"description"`
	Trigger     string    `json:"trigger,omitempty" doc:"What makes the event happen."`
	Deprecated  bool      `json:"deprecated"`
	Sunset      string    `json:"sunset,omitempty" doc:"When a deprecated type is no longer published: an RFC 3339 date (2027-03-01), or date-time when it was given with a time of day."`
	Schema      Object    `json:"schema,omitempty" doc:"The JSON Schema of the events' data; absent when the type has none. For documentation and examples (GET /v1/event-types/{name}/example); published events whose data does not satisfy it are refused (422 naming each failing place)."`
	Examples    []Object  `json:"examples,omitempty" doc:"Example data payloads, each valid against the schema; the first is the one GET /v1/event-types/{name}/example and the generated documentation show."`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func eventTypeOut(et *store.EventType) EventType {
	family, version := eventTypeVersion(et.Name)
	out := EventType{Name: et.Name, Family: family, Version: version, Description: et.Description, Trigger: et.Docs.Trigger,
		Deprecated: et.Deprecated, Sunset: sunsetString(et.Docs.Sunset), Schema: Object(et.Schema),
		CreatedAt: et.CreatedAt, UpdatedAt: et.UpdatedAt}
	for _, ex := range et.Docs.Examples {
		out.Examples = append(out.Examples, Object(ex))
	}
	return out
}

// versionSuffix is the .vN ending of a versioned event type name (N ≥ 2 by convention; .v1 is
// accepted and means what the bare name means).
var versionSuffix = regexp.MustCompile(`\.v([1-9][0-9]{0,5})$`)

// eventTypeVersion splits a name into its family and version: invoice.paid.v2 is version 2 of
// invoice.paid; invoice.paid is version 1. A suffix is only a version when what is left is still
// resource.action, so that a type named "report.v2" stays a family of its own.
func eventTypeVersion(name string) (string, int) {
	m := versionSuffix.FindStringSubmatchIndex(name)
	if m == nil || !strings.Contains(name[:m[0]], ".") {
		return name, 1
	}
	n, err := strconv.Atoi(name[m[2]:m[3]])
	if err != nil {
		return name, 1
	}
	return name[:m[0]], n
}

// sunsetString shows a sunset as a date when it is midnight UTC (the usual case), as a date-time
// otherwise.
func sunsetString(t *time.Time) string {
	switch {
	case t == nil:
		return ""
	case t.Equal(t.Truncate(24 * time.Hour)):
		return t.UTC().Format(time.DateOnly)
	}
	return t.UTC().Format(time.RFC3339)
}

// parseSunset reads an RFC 3339 date or date-time; "" is none.
func parseSunset(s string) (*time.Time, error) {
	if s == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		if t, err = time.Parse(time.DateOnly, s); err != nil {
			return nil, huma.Error422UnprocessableEntity("invalid event type", &huma.ErrorDetail{Location: "body.sunset",
				Message: "must be an RFC 3339 date (2027-03-01) or date-time (2027-03-01T00:00:00Z)", Value: s})
		}
	}
	t = t.UTC()
	return &t, nil
}

// eventTypeExamples compacts examples and checks each against the schema (nil: none); a failing
// place is reported at body.examples[i] followed by its path, as a publish reports data.
func eventTypeExamples(name string, sch json.RawMessage, examples []Object) ([]json.RawMessage, error) {
	if examples == nil {
		return nil, nil
	}
	var compiled *schema.Schema
	if len(sch) > 0 {
		var err error
		if compiled, err = schema.Compile(sch); err != nil {
			return nil, huma.Error422UnprocessableEntity("invalid event type", &huma.ErrorDetail{Location: "body.schema", Message: err.Error()})
		}
	}
	out := make([]json.RawMessage, 0, len(examples))
	var errs []error
	for i, ex := range examples {
		var buf bytes.Buffer
		if err := json.Compact(&buf, ex); err != nil {
			errs = append(errs, &huma.ErrorDetail{Location: fmt.Sprintf("body.examples[%d]", i), Message: "must be a JSON object"})
			continue
		}
		out = append(out, buf.Bytes())
		if compiled != nil {
			errs = append(errs, exampleProblems(compiled, name, fmt.Sprintf("body.examples[%d]", i), "", buf.Bytes())...)
		}
	}
	if len(errs) > 0 {
		return nil, huma.Error422UnprocessableEntity("an example does not satisfy the event type's schema", errs...)
	}
	return out, nil
}

// exampleProblems validates one example and returns each failing place as an error at loc plus
// its path; what prefixes the message ("" or "stored example 0: ").
func exampleProblems(compiled *schema.Schema, name, loc, what string, ex json.RawMessage) []error {
	err := compiled.Validate(ex)
	if err == nil {
		return nil
	}
	v, ok := errors.AsType[*schema.Violation](err)
	if !ok {
		return []error{&huma.ErrorDetail{Location: loc, Message: what + err.Error()}}
	}
	var errs []error
	for _, p := range v.Problems {
		at, msg, found := strings.Cut(p, ": ")
		if !found || !strings.HasPrefix(at, "/") {
			errs = append(errs, &huma.ErrorDetail{Location: loc, Message: what + "does not match the schema of " + name + ": " + p})
			continue
		}
		errs = append(errs, &huma.ErrorDetail{Location: loc + pointerPath(at), Message: what + "does not match the schema of " + name + ": " + msg})
	}
	return errs
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
	Data json.RawMessage `json:"data" doc:"An example of the data of an event of the type: its first stored example when it has one; otherwise one made from its schema (the schema's own examples, defaults, consts and enums where it has them, otherwise the plainest value of each type); {} when the type has neither."`
}

// eventTypePattern is resource.action in lower case, with optional sub-resources and a version
// suffix: invoice.paid, invoice.line_item.created, invoice.paid.v2.
const eventTypePattern = `^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$`

type createEventTypeInput struct {
	Body struct {
		Name        string   `json:"name" maxLength:"128" pattern:"^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+$" doc:"resource.action in lower case, by convention in the past tense (invoice.paid), with an optional version suffix (invoice.paid.v2)." example:"invoice.paid"`
		Description string   `json:"description,omitempty" maxLength:"2000" example:"An invoice was paid in full."`
		Deprecated  bool     `json:"deprecated,omitempty"`
		Schema      Object   `json:"schema,omitempty" doc:"A JSON Schema (draft 4 to 2020-12, no external $ref) of the events' data, for documentation and examples (GET /v1/event-types/{name}/example); published events whose data does not satisfy it are refused (422 naming each failing place). {} is the same as none."`
		Trigger     string   `json:"trigger,omitempty" maxLength:"500" doc:"What makes the event happen, for the generated documentation." example:"The customer's payment of an invoice settled in full."`
		Examples    []Object `json:"examples,omitempty" maxItems:"10" doc:"Example data payloads (JSON objects), each valid against the schema; the first is the one the example route and the documentation show."`
		Sunset      string   `json:"sunset,omitempty" maxLength:"40" doc:"With deprecated: when the type stops being published, an RFC 3339 date (2027-03-01) or date-time." example:"2027-03-01"`
	}
}

type EventTypePath struct {
	Name string `path:"name" maxLength:"128"`
}

type updateEventTypeInput struct {
	EventTypePath
	Body struct {
		Description *string  `json:"description,omitempty" maxLength:"2000"`
		Deprecated  *bool    `json:"deprecated,omitempty"`
		Schema      Object   `json:"schema,omitempty" doc:"A JSON Schema (draft 4 to 2020-12, no external $ref) of the events' data, for documentation and examples (GET /v1/event-types/{name}/example); published events whose data does not satisfy it are refused (422 naming each failing place). Replaces the schema; {} removes it; absent keeps it. Stored examples that the new schema refuses make the update fail (422): send new examples with it, or examples: [] to remove them."`
		Trigger     *string  `json:"trigger,omitempty" maxLength:"500" doc:"What makes the event happen; \"\" removes it."`
		Examples    []Object `json:"examples,omitempty" maxItems:"10" doc:"Replaces the examples; [] removes them; absent keeps them. Each must satisfy the (new) schema."`
		Sunset      *string  `json:"sunset,omitempty" maxLength:"40" doc:"An RFC 3339 date or date-time; \"\" removes it."`
	}
}

func (s *Server) registerEventTypes() {
	// Readable by any key, like the catalog it documents (eventtypes_docs.go).
	s.registerEventTypeDocs()
	admin := map[string]any{metaAdminOnly: true}
	huma.Register(s.api, huma.Operation{
		OperationID: "create-event-type", Method: http.MethodPost, Path: "/v1/event-types", Tags: []string{"Event types"},
		Summary: "Register an event type", DefaultStatus: http.StatusCreated, Metadata: admin,
	}, func(ctx context.Context, in *createEventTypeInput) (*Out[EventType], error) {
		if err := noNUL("body.description", in.Body.Description, "body.trigger", in.Body.Trigger); err != nil {
			return nil, err
		}
		var sch json.RawMessage
		if in.Body.Schema != nil {
			var err error
			if sch, err = eventTypeSchema(in.Body.Schema); err != nil {
				return nil, err
			}
		}
		sunset, err := parseSunset(in.Body.Sunset)
		if err != nil {
			return nil, err
		}
		examples, err := eventTypeExamples(in.Body.Name, sch, in.Body.Examples)
		if err != nil {
			return nil, err
		}
		now := s.now()
		et := &store.EventType{Name: in.Body.Name, Description: in.Body.Description, Deprecated: in.Body.Deprecated, Schema: sch,
			Docs:      store.EventTypeDocs{Trigger: in.Body.Trigger, Examples: examples, Sunset: sunset},
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
		out := eventTypeOut(et)
		// The catalog is small (a few hundred types at most), so reading it whole to find the
		// family's other versions is cheap enough for reading one type.
		all, err := s.allEventTypes(ctx)
		if err != nil {
			return nil, s.fail(err, "event types")
		}
		for _, v := range families(all)[out.Family] {
			if v.Name != et.Name {
				out.Versions = append(out.Versions, v.Name)
			}
		}
		return &Out[EventType]{Body: out}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "get-event-type-example", Method: http.MethodGet, Path: "/v1/event-types/{name}/example", Tags: []string{"Event types"},
		Summary: "Get an example of an event type's data",
		Description: "The first of the type's stored examples when it has some; otherwise an example made from its schema. " +
			"For herald trigger and for trying an endpoint out. A type with neither gives {}; a schema no example can be made of (one that " +
			"accepts nothing, or requires itself all the way down) answers 422.",
	}, func(ctx context.Context, in *EventTypePath) (*Out[EventTypeExample], error) {
		et, err := s.st.GetEventType(ctx, in.Name)
		if err != nil {
			return nil, s.fail(err, "event type "+in.Name)
		}
		if len(et.Docs.Examples) > 0 {
			return &Out[EventTypeExample]{Body: EventTypeExample{Data: et.Docs.Examples[0]}}, nil
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
		Summary: "Change an event type's description, deprecation, schema or documentation", Metadata: admin,
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
		if in.Body.Trigger != nil {
			if err := noNUL("body.trigger", *in.Body.Trigger); err != nil {
				return nil, err
			}
			et.Docs.Trigger = *in.Body.Trigger
		}
		if in.Body.Sunset != nil {
			if et.Docs.Sunset, err = parseSunset(*in.Body.Sunset); err != nil {
				return nil, err
			}
		}
		if in.Body.Schema != nil {
			if et.Schema, err = eventTypeSchema(in.Body.Schema); err != nil {
				return nil, err
			}
		}
		if in.Body.Examples != nil {
			if et.Docs.Examples, err = eventTypeExamples(et.Name, et.Schema, in.Body.Examples); err != nil {
				return nil, err
			}
			if len(et.Docs.Examples) == 0 {
				et.Docs.Examples = nil
			}
		} else if in.Body.Schema != nil {
			if err := storedExamplesSatisfy(et); err != nil {
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

// storedExamplesSatisfy refuses a new schema that the type's stored examples do not satisfy: the
// documentation would otherwise show payloads that publishing refuses. The problem is reported at
// body.schema, since the examples were not sent, and names each stored example's failing place.
func storedExamplesSatisfy(et *store.EventType) error {
	if len(et.Schema) == 0 || len(et.Docs.Examples) == 0 {
		return nil
	}
	compiled, err := schema.Compile(et.Schema)
	if err != nil {
		return huma.Error422UnprocessableEntity("invalid event type", &huma.ErrorDetail{Location: "body.schema", Message: err.Error()})
	}
	var errs []error
	for i, ex := range et.Docs.Examples {
		for _, e := range exampleProblems(compiled, et.Name, fmt.Sprintf("examples[%d]", i), "", ex) {
			d := e.(*huma.ErrorDetail)
			d.Message = "stored example at " + d.Location + " " + d.Message
			d.Location = "body.schema"
			errs = append(errs, d)
		}
	}
	if len(errs) > 0 {
		return huma.Error422UnprocessableEntity("the new schema refuses the type's stored examples; send examples that satisfy it in the same request, or examples: [] to remove them", errs...)
	}
	return nil
}

// allEventTypes reads the whole catalog, page by page.
func (s *Server) allEventTypes(ctx context.Context) ([]store.EventType, error) {
	var all []store.EventType
	cursor := ""
	for {
		ets, next, err := s.st.ListEventTypes(ctx, store.Page{Limit: store.MaxLimit, Cursor: cursor})
		if err != nil {
			return nil, err
		}
		all = append(all, ets...)
		if next == "" || len(ets) == 0 {
			return all, nil
		}
		cursor = next
	}
}

// families groups event types by family, each family's versions newest first.
func families(ets []store.EventType) map[string][]*store.EventType {
	out := make(map[string][]*store.EventType)
	for i := range ets {
		f, _ := eventTypeVersion(ets[i].Name)
		out[f] = append(out[f], &ets[i])
	}
	for _, vs := range out {
		slices.SortFunc(vs, func(a, b *store.EventType) int {
			_, va := eventTypeVersion(a.Name)
			_, vb := eventTypeVersion(b.Name)
			if va != vb {
				return vb - va
			}
			return strings.Compare(a.Name, b.Name)
		})
	}
	return out
}
