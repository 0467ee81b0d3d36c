package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/inbound/schema"
	"github.com/heraldhq/herald/internal/redact"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/telemetry"
)

// EventInput is one event to publish: the event package's input, which the OpenAPI document
// calls EventInput (see schemaNamer).
type EventInput = event.Input

// Object is a JSON object kept as raw bytes (event.Object), for the API's other free-form
// objects too (event type schemas, source settings).
type Object = event.Object

// object is the schema of event.Object (registered as its alias in New): the event package
// depends on nothing but the standard library, so the schema lives here.
type object event.Object

// Schema tells OpenAPI and the validator that the value must be a JSON object.
func (object) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{Type: huma.TypeObject, AdditionalProperties: true, Description: "Any JSON object."}
}

// priorities maps the API's priority names to the store's.
func priority(name string) int {
	switch name {
	case event.PriorityHigh:
		return store.PriorityHigh
	case event.PriorityLow:
		return store.PriorityLow
	}
	return store.PriorityNormal
}

// priorityName is the API's name of a store priority.
func priorityName(p int) string {
	switch p {
	case store.PriorityHigh:
		return event.PriorityHigh
	case store.PriorityLow:
		return event.PriorityLow
	}
	return event.PriorityNormal
}

// Published is the answer to a publish.
type Published struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	Timestamp  time.Time `json:"timestamp"`
	Deliveries int       `json:"deliveries" doc:"How many deliveries this publish created (0 for a duplicate)."`
	Duplicate  bool      `json:"duplicate" doc:"True when an event with this id existed: the original is returned."`
}

// Event is a published event as stored.
type Event struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Source    string          `json:"source,omitempty"`
	Resource  *event.Resource `json:"resource,omitempty"`
	Data      json.RawMessage `json:"data"`
	CreatedAt time.Time       `json:"created_at"`
}

// eventOut is an event as the API shows it: its data with the tenant's redacted fields hidden.
func eventOut(ev *store.Event, paths redact.Paths) (Event, error) {
	env, err := event.DecodeEnvelope(ev.Payload)
	if err != nil {
		return Event{}, fmt.Errorf("decode stored event %s: %w", ev.ID, err)
	}
	return Event{ID: ev.ID, Type: ev.Type, Timestamp: ev.Timestamp, Source: ev.Source, Resource: env.Resource,
		Data: paths.JSON(env.Data), CreatedAt: ev.CreatedAt}, nil
}

// redaction is the tenant's redaction setting.
func (s *Server) redaction(ctx context.Context, tenant string) (redact.Paths, error) {
	t, err := s.st.GetTenant(ctx, tenant)
	if err != nil {
		return redact.Paths{}, s.fail(err, "tenant "+tenant)
	}
	return redact.Compile(t.RedactFields), nil
}

// Publish bodies are decoded once, by the event package (event.Decode, event.DecodeBatch),
// which checks them in the same pass with the schema validator's wording and locations: huma
// would decode each body twice (into a generic value to validate it, then into the input),
// which for a large event was most of the publish's CPU. The routes take the raw body and
// document the same request body huma would have (publishBody, batchBody), and skip huma's
// validation.
type publishInput struct {
	TenantPath
	ContentType string `header:"Content-Type" hidden:"true"`
	RawBody     []byte
}

type batchInput struct {
	TenantPath
	ContentType string `header:"Content-Type" hidden:"true"`
	RawBody     []byte
}

// rawJSON refuses what huma refuses before decoding a body it validates: a content type it has
// no format for (415), JSON nested deeper than the limit (400).
func (s *Server) rawJSON(contentType string, body []byte) error {
	var probe struct{}
	if err := s.api.Unmarshal(contentType, []byte("{}"), &probe); errors.Is(err, huma.ErrUnknownContentType) {
		return huma.NewError(http.StatusUnsupportedMediaType, "validation failed", &huma.ErrorDetail{Location: "body", Message: err.Error()})
	}
	if tooDeep(body, s.cfg.MaxJSONDepth) {
		return huma.NewError(http.StatusBadRequest, "validation failed", &huma.ErrorDetail{Location: "body", Message: (&depthError{max: s.cfg.MaxJSONDepth}).Error()})
	}
	return nil
}

// publishBody and batchBody are the request bodies of the publish routes, for the OpenAPI
// document (the handlers decode with the event package).
type (
	publishBody struct {
		Body EventInput
	}
	batchBody struct {
		Body struct {
			Events []EventInput `json:"events" minItems:"1" maxItems:"1000"`
		}
	}
)

// requestBody documents a route's required JSON body as huma documents a Body field of shape's
// (named hint when its type has no name of its own).
func (s *Server) requestBody(shape reflect.Type, hint string) *huma.RequestBody {
	f, _ := shape.FieldByName("Body")
	return &huma.RequestBody{Required: true, Content: map[string]*huma.MediaType{
		"application/json": {Schema: huma.SchemaFromField(s.api.OpenAPI().Components.Schemas, f, hint)},
	}}
}

// decodeFailed answers a publish body the event package refused as huma answers a body that
// fails its schema: 400 when it is not JSON at all, otherwise 422, "validation failed", with
// every problem.
func decodeFailed(ps []*event.Problem, loc string) error {
	errs := make([]error, len(ps))
	status := http.StatusUnprocessableEntity
	for i, p := range ps {
		errs[i] = detail(p)
		if p.Location == loc && strings.HasPrefix(p.Message, "not valid JSON") {
			status = http.StatusBadRequest
		}
	}
	return huma.NewError(status, "validation failed", errs...)
}

// knownType is what a publish learnt of an event type: whether it exists, and its schema.
type knownType struct {
	err    error
	schema *schema.Schema
}

// eventType looks an event type up (cached for typeTTL) and compiles its schema.
func (s *Server) eventType(ctx context.Context, name string) knownType {
	now := time.Now()
	if sch, ok := s.types.lookup(name, now); ok {
		return knownType{schema: sch}
	}
	et, err := s.st.GetEventType(ctx, name)
	if err != nil {
		return knownType{err: err}
	}
	var sch *schema.Schema
	if len(et.Schema) > 0 && string(et.Schema) != "{}" {
		if sch, err = schema.Compile(et.Schema); err != nil {
			// Schemas are compiled when they are saved; one that no longer compiles is the
			// operator's to fix, and must not block publishing.
			s.log.Error("event type schema does not compile; events of the type are not checked", "event_type", name, "err", err)
			sch = nil
		}
	}
	s.types.remember(name, sch, now)
	return knownType{schema: sch}
}

// pointerPath turns a JSON pointer ("/items/0/sku") into the problem location's path
// (".items[0].sku").
func pointerPath(ptr string) string {
	var b strings.Builder
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		if tok == "" {
			continue
		}
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		if _, err := strconv.Atoi(tok); err == nil {
			b.WriteString("[" + tok + "]")
		} else {
			b.WriteString("." + tok)
		}
	}
	return b.String()
}

// build validates one event and makes its envelope; loc prefixes error locations. What is wrong
// with the event comes back as details (a 422 or 413); failed, when not nil, is why the event
// could not be checked (the store could not be read): no refusal, so the caller answers 503 and
// the client tries again.
func (s *Server) build(ctx context.Context, in *EventInput, loc string, known map[string]knownType, now time.Time) (ev *store.Event, details []error, failed error) {
	// The rules of the event package. Through the routes, huma has checked the ones the OpenAPI
	// document states already; what remains is what a schema cannot say (NUL, resource).
	problems := in.Check(loc)
	var errs []error
	kt, ok := known[in.Type]
	if !ok {
		kt = s.eventType(ctx, in.Type)
		known[in.Type] = kt
	}
	switch {
	case errors.Is(kt.err, store.ErrNotFound):
		errs = append(errs, &huma.ErrorDetail{Location: loc + ".type", Message: "unknown event type; register it with POST /v1/event-types", Value: in.Type})
	case kt.err != nil:
		// Only "not found" is the client's mistake: a type that cannot be read now may well exist.
		return nil, nil, fmt.Errorf("look up event type %s: %w", in.Type, kt.err)
	case kt.schema != nil && event.IsObject(in.Data):
		// Payloads are checked before anything is stored or sent: one that does not satisfy its
		// type's schema is refused with each failing place in data.
		if err := kt.schema.Validate(in.Data); err != nil {
			v, ok := errors.AsType[*schema.Violation](err)
			if !ok {
				return nil, nil, fmt.Errorf("check the schema of %s: %w", in.Type, err)
			}
			for _, p := range v.Problems {
				at, msg, found := strings.Cut(p, ": ")
				if !found || !strings.HasPrefix(at, "/") {
					errs = append(errs, &huma.ErrorDetail{Location: loc + ".data", Message: p})
					continue
				}
				errs = append(errs, &huma.ErrorDetail{Location: loc + ".data" + pointerPath(at), Message: "does not match the schema of " + in.Type + ": " + msg})
			}
		}
	}
	for _, p := range problems {
		errs = append(errs, detail(p))
	}
	if len(errs) > 0 {
		return nil, errs, nil
	}
	id := in.ID
	if id == "" {
		id = event.NewID(time.Now())
	}
	env := event.Envelope{ID: id, Type: in.Type, Timestamp: now, Data: json.RawMessage(in.Data), Source: in.Source, Resource: in.Resource}
	payload, err := env.Encode()
	if err != nil {
		return nil, []error{&huma.ErrorDetail{Location: loc + ".data", Message: "not valid JSON: " + err.Error()}}, nil
	}
	if len(payload) > s.cfg.MaxEventBytes {
		return nil, []error{&tooLarge{loc: loc + ".data", size: len(payload), limit: s.cfg.MaxEventBytes}}, nil
	}
	return &store.Event{ID: id, Type: in.Type, Timestamp: now, Source: in.Source, Payload: payload, CreatedAt: now, Priority: priority(in.Priority)}, nil, nil
}

// detail is an event package problem as huma reports it.
func detail(p *event.Problem) *huma.ErrorDetail {
	return &huma.ErrorDetail{Location: p.Location, Message: p.Message, Value: p.Value}
}

// BuildEvent checks an event as a publish through the API does (the event package's rules,
// registered type, schema, size) and makes what the store takes, for publishers inside the
// process (the outbox relay). A refusal is a huma.StatusError (422 or 413) whose details name
// each failing place; any other error means the event could not be checked now (the store's
// error, wrapped) and refuses nothing.
func (s *Server) BuildEvent(ctx context.Context, in event.Input) (*store.Event, error) {
	ev, errs, err := s.build(ctx, &in, "", map[string]knownType{}, s.eventTime())
	if err != nil {
		return nil, err
	}
	if errs != nil {
		return nil, invalid(errs)
	}
	return ev, nil
}

type tooLarge struct {
	loc         string
	size, limit int
}

func (e *tooLarge) Error() string {
	return fmt.Sprintf("event is %d bytes; the limit is %d", e.size, e.limit)
}

func (e *tooLarge) ErrorDetail() *huma.ErrorDetail {
	return &huma.ErrorDetail{Location: e.loc, Message: e.Error()}
}

func invalid(errs []error) error {
	for _, err := range errs {
		if _, ok := err.(*tooLarge); ok {
			return huma.NewError(http.StatusRequestEntityTooLarge, "event too large", errs...)
		}
	}
	return huma.Error422UnprocessableEntity("invalid event", errs...)
}

// publish stores events; loc is where the request holds them (a refusal over a limit names it).
func (s *Server) publish(ctx context.Context, tenant, loc string, events []*store.Event) ([]Published, error) {
	ctx, span := s.tracer.Start(ctx, "herald.publish", trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	if span.IsRecording() {
		// The ids of a batch, up to 100 of them: enough to find an event's publish.
		ids := make([]string, 0, min(len(events), 100))
		for _, ev := range events[:cap(ids)] {
			ids = append(ids, ev.ID)
		}
		span.SetAttributes(telemetry.AttrTenant.String(tenant), telemetry.AttrEventCount.Int(len(events)),
			telemetry.AttrEventID.StringSlice(ids), telemetry.AttrEventType.String(events[0].Type))
	}
	// The publish's trace context is stored with its events: their attempts, later and maybe on
	// another node, continue this trace.
	traceparent, tracestate := telemetry.Capture(ctx)
	for _, ev := range events {
		ev.Traceparent, ev.Tracestate = traceparent, tracestate
	}
	if err := s.checkPublish(ctx, tenant, loc, events); err != nil {
		span.SetStatus(codes.Error, "limits")
		if re := (*errEventRate)(nil); errors.As(err, &re) {
			secs := max(1, int(math.Ceil(re.wait.Seconds())))
			return nil, huma.ErrorWithHeaders(huma.NewError(http.StatusTooManyRequests, fmt.Sprintf("%s; retry after %d s", re.Error(), secs)),
				http.Header{"Retry-After": []string{strconv.Itoa(secs)}})
		}
		if _, ok := err.(huma.StatusError); ok {
			return nil, err
		}
		return nil, s.fail(err, "tenant "+tenant)
	}
	storeCtx, storeSpan := s.tracer.Start(ctx, "herald.store.publish")
	results, err := s.st.Publish(storeCtx, tenant, events)
	if err != nil {
		storeSpan.SetStatus(codes.Error, err.Error())
		storeSpan.End()
		span.SetStatus(codes.Error, "store")
		if le := (*store.LimitError)(nil); errors.As(err, &le) {
			return nil, limitProblem(le, loc)
		}
		return nil, s.fail(err, "tenant "+tenant)
	}
	storeSpan.End()
	out := make([]Published, len(results))
	var wake []string
	stored := 0
	for i, r := range results {
		out[i] = Published{ID: r.Event.ID, Type: r.Event.Type, Timestamp: r.Event.Timestamp, Deliveries: r.Deliveries, Duplicate: r.Duplicate}
		wake = append(wake, r.EndpointIDs...)
		if !r.Duplicate {
			stored++
		}
	}
	s.cfg.Metrics.EventsPublished(tenant, stored)
	if len(wake) > 0 {
		s.cfg.Notifier.Notify(wake...)
	}
	return out, nil
}

func (s *Server) registerEvents() {
	tags := []string{"Events"}
	huma.Register(s.api, huma.Operation{
		OperationID: "publish-event", Method: http.MethodPost, Path: "/v1/tenants/{tenant}/events", Tags: tags,
		Summary: "Publish an event",
		Description: "Stores the event and one delivery per subscribed endpoint, and answers 202 once they are committed. " +
			"Publishing an id that exists returns the original event and creates no deliveries.",
		DefaultStatus: http.StatusAccepted, MaxBodyBytes: int64(s.cfg.MaxEventBytes) + 64<<10,
		RequestBody: s.requestBody(reflect.TypeFor[publishBody](), "publishInputBody"), SkipValidateBody: true,
	}, func(ctx context.Context, in *publishInput) (*Out[Published], error) {
		if err := s.rawJSON(in.ContentType, in.RawBody); err != nil {
			return nil, err
		}
		body, ps := event.Decode(in.RawBody, "body")
		if len(ps) > 0 {
			return nil, decodeFailed(ps, "body")
		}
		ev, errs, err := s.build(ctx, &body, "body", map[string]knownType{}, s.eventTime())
		if err != nil {
			return nil, s.fail(err, "event type "+body.Type)
		}
		if errs != nil {
			return nil, invalid(errs)
		}
		out, err := s.publish(ctx, in.Tenant, "body", []*store.Event{ev})
		if err != nil {
			return nil, err
		}
		return &Out[Published]{Body: out[0]}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "publish-events", Method: http.MethodPost, Path: "/v1/tenants/{tenant}/events/batch", Tags: tags,
		Summary: "Publish up to 1000 events at once",
		Description: "All or nothing: if any event is invalid, none is stored, and the problem names each invalid one. " +
			"A batch whose events would create more deliveries than the node allows per request (--max-deliveries-per-request, default 20000) is refused with 422 at body.events, nothing stored. " +
			"A batch that creates more than 1000 deliveries is written in several transactions of whole events: a request that fails without a 2xx may have stored some of its events, and its retry with the same ids stores the rest (the stored ones answer as duplicates).",
		DefaultStatus: http.StatusAccepted, MaxBodyBytes: min(int64(s.cfg.MaxEventBytes)*1000, 32<<20),
		RequestBody: s.requestBody(reflect.TypeFor[batchBody](), "batchInputBody"), SkipValidateBody: true,
	}, func(ctx context.Context, in *batchInput) (*Out[PublishedBatch], error) {
		if err := s.rawJSON(in.ContentType, in.RawBody); err != nil {
			return nil, err
		}
		inputs, ps := event.DecodeBatch(in.RawBody, "body")
		if len(ps) > 0 {
			return nil, decodeFailed(ps, "body")
		}
		now := s.eventTime()
		known := map[string]knownType{}
		events := make([]*store.Event, 0, len(inputs))
		var errs []error
		seen := map[string]int{}
		for i := range inputs {
			loc := fmt.Sprintf("body.events[%d]", i)
			ev, e, err := s.build(ctx, &inputs[i], loc, known, now)
			if err != nil {
				return nil, s.fail(err, "event type "+inputs[i].Type)
			}
			errs = append(errs, e...)
			if ev == nil {
				continue
			}
			if j, dup := seen[ev.ID]; dup && inputs[i].ID != "" {
				errs = append(errs, &huma.ErrorDetail{Location: loc + ".id", Message: fmt.Sprintf("same id as events[%d]", j), Value: ev.ID})
			}
			seen[ev.ID] = i
			events = append(events, ev)
		}
		if len(errs) > 0 {
			return nil, invalid(errs)
		}
		out, err := s.publish(ctx, in.Tenant, "body.events", events)
		if err != nil {
			return nil, err
		}
		return &Out[PublishedBatch]{Body: PublishedBatch{Events: out}}, nil
	})
	// A RawBody makes huma document an octet-stream body beside the JSON one: the routes take
	// JSON only.
	for _, path := range []string{"/v1/tenants/{tenant}/events", "/v1/tenants/{tenant}/events/batch"} {
		delete(s.api.OpenAPI().Paths[path].Post.RequestBody.Content, "application/octet-stream")
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "list-events", Method: http.MethodGet, Path: "/v1/tenants/{tenant}/events", Tags: tags,
		Summary: "List events, newest first",
	}, func(ctx context.Context, in *struct {
		TenantPath
		ListParams
		TimeRange
		Types []string `query:"event_type,explode" maxItems:"50" doc:"Only these event types."`
	}) (*Out[ListBody[Event]], error) {
		paths, err := s.redaction(ctx, in.Tenant)
		if err != nil {
			return nil, err
		}
		evs, next, err := s.st.ListEvents(ctx, store.EventFilter{TenantID: in.Tenant, Types: in.Types, Since: in.Since, Until: in.Until, Page: in.page()})
		if err != nil {
			return nil, s.fail(err, "events")
		}
		out := make([]Event, len(evs))
		for i := range evs {
			if out[i], err = eventOut(&evs[i], paths); err != nil {
				return nil, s.fail(err, "events")
			}
		}
		return &Out[ListBody[Event]]{Body: list(out, next)}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "get-event", Method: http.MethodGet, Path: "/v1/tenants/{tenant}/events/{id}", Tags: tags,
		Summary: "Get an event",
	}, func(ctx context.Context, in *EventPath) (*Out[Event], error) {
		ev, err := s.st.GetEvent(ctx, in.Tenant, in.ID)
		if err != nil {
			return nil, s.fail(err, "event "+in.ID)
		}
		paths, err := s.redaction(ctx, in.Tenant)
		if err != nil {
			return nil, err
		}
		out, err := eventOut(ev, paths)
		if err != nil {
			return nil, s.fail(err, "event "+in.ID)
		}
		return &Out[Event]{Body: out}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "list-event-deliveries", Method: http.MethodGet, Path: "/v1/tenants/{tenant}/events/{id}/deliveries", Tags: tags,
		Summary: "List an event's deliveries with their attempts",
	}, func(ctx context.Context, in *struct {
		EventPath
		ListParams
	}) (*Out[ListBody[Delivery]], error) {
		if _, err := s.st.GetEvent(ctx, in.Tenant, in.ID); err != nil {
			return nil, s.fail(err, "event "+in.ID)
		}
		return s.deliveries(ctx, store.DeliveryFilter{TenantID: in.Tenant, EventID: in.ID, Page: in.page()})
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "resend-event", Method: http.MethodPost, Path: "/v1/tenants/{tenant}/events/{id}/resend", Tags: tags,
		Summary: "Send an event to one endpoint again", Description: "The delivery carries the same webhook-id, so the receiver can drop it if it has it.",
		DefaultStatus: http.StatusAccepted,
	}, func(ctx context.Context, in *struct {
		EventPath
		Body ResendInput
	}) (*Out[Delivery], error) {
		d, err := s.st.Resend(ctx, in.Tenant, in.ID, in.Body.EndpointID)
		if err != nil {
			return nil, s.fail(err, "event or endpoint")
		}
		s.cfg.Notifier.Notify(d.EndpointID)
		out := deliveryOut(d, nil, redact.Paths{})
		s.recordAfter(ctx, s.audit(ctx, "event.resend", "event", in.ID, in.Tenant, nil, out))
		return &Out[Delivery]{Body: out}, nil
	})
}

type EventPath struct {
	TenantPath
	ID string `path:"id" maxLength:"128"`
}

// TimeRange filters lists by creation time.
type TimeRange struct {
	Since time.Time `query:"since" doc:"Only items created at or after this time (RFC 3339)."`
	Until time.Time `query:"until" doc:"Only items created before this time (RFC 3339)."`
}

// eventTime is the timestamp of a new event, at the precision the store keeps, so that the
// envelope sent and the event read back later carry the same value.
func (s *Server) eventTime() time.Time { return event.Timestamp(s.now()) }

// PublishedBatch is the answer to a batch publish: one entry per event, in the request's order.
type PublishedBatch struct {
	Events []Published `json:"events"`
}

// ResendInput names the endpoint an event is sent to again.
type ResendInput struct {
	EndpointID string `json:"endpoint_id" maxLength:"64" doc:"The endpoint to send the event to."`
}
