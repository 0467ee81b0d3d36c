package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/dispatch"
	"github.com/heraldhq/herald/internal/expr"
	"github.com/heraldhq/herald/internal/inbound/verify"
	"github.com/heraldhq/herald/internal/schemaexample"
	"github.com/heraldhq/herald/internal/store"
)

// Batch is an endpoint's batching as the API shows and takes it.
type Batch struct {
	Enabled   bool `json:"enabled" doc:"Send up to max_events events per request, as a JSON array of envelopes; false sends one event per request."`
	MaxEvents int  `json:"max_events,omitempty" minimum:"1" maximum:"1000" doc:"Events per request at most; default 100."`
	MaxWaitMS int  `json:"max_wait_ms,omitempty" minimum:"1" maximum:"300000" doc:"How long the oldest waiting event may wait for the batch to fill, in milliseconds; default 5000."`
}

// EndpointOptionFields are the delivery options create and update take; nil means "not given".
type EndpointOptionFields struct {
	Filter          *string `json:"filter,omitempty" maxLength:"4096" doc:"A CEL expression over the envelope (id, type, timestamp, data, source, resource, event): only events for which it is true are delivered, e.g. data.amount > 1000 && data.currency == \"EUR\". Checked when saved; an event on which it fails (a missing field) is not delivered. \"\" removes it."`
	Transform       *string `json:"transform,omitempty" maxLength:"4096" doc:"A CEL expression whose value is the body sent instead of the envelope, e.g. omit(event, [\"data.card\"]). Run with time and memory bounds; tested when saved against the example of every event type the endpoint subscribes to. \"\" removes it."`
	SignatureFormat *string `json:"signature_format,omitempty" enum:"standard-webhooks,standard_webhooks,github,stripe" doc:"How deliveries are signed: standard-webhooks (default: webhook-id, webhook-timestamp, webhook-signature; standard_webhooks, as sources spell it, is accepted too and shown as standard-webhooks), github (X-Hub-Signature-256: sha256=HMAC of the body) or stripe (Stripe-Signature: t=…,v1=HMAC of t.body). github and stripe use the whsec_ secret string as the HMAC key and need an hmac-sha256 endpoint."`
	Batch           *Batch  `json:"batch,omitempty" doc:"Batching: several events per request."`
	Ordered         *bool   `json:"ordered,omitempty" doc:"Deliver in publish order, one request at a time: a later event waits while an earlier one is retried. Not with batching."`
	Format          *string `json:"format,omitempty" enum:"herald,cloudevents-structured,cloudevents-binary" doc:"The body's format: herald (default: the envelope, or the transformation's output), cloudevents-structured (one CloudEvent 1.0 as JSON, application/cloudevents+json; a batch is application/cloudevents-batch+json) or cloudevents-binary (the data as the body, attributes in ce-* headers; not with batching for webhooks). Webhook endpoints in a CloudEvents format are sent the CloudEvents abuse-protection handshake (OPTIONS) first. See docs/endpoints-auth.md."`
}

// optionsOut is an endpoint's options as the API shows them.
func optionsOut(o store.EndpointOptions) EndpointOptions {
	out := EndpointOptions{Filter: o.Filter, Transform: o.Transform, SignatureFormat: o.Signature, Ordered: o.Ordered, Format: o.Format}
	if out.SignatureFormat == "" {
		out.SignatureFormat = store.SignatureStandard
	}
	if out.Format == "" {
		out.Format = store.FormatHerald
	}
	if o.Batch != nil {
		out.Batch = &Batch{Enabled: true, MaxEvents: o.Batch.MaxEvents, MaxWaitMS: int(o.Batch.MaxWait / time.Millisecond)}
	}
	return out
}

// EndpointOptions are the delivery options of an endpoint as answers show them.
type EndpointOptions struct {
	Filter          string `json:"filter,omitempty"`
	Transform       string `json:"transform,omitempty"`
	SignatureFormat string `json:"signature_format" enum:"standard-webhooks,github,stripe"`
	Batch           *Batch `json:"batch,omitempty"`
	Ordered         bool   `json:"ordered"`
	Format          string `json:"format" enum:"herald,cloudevents-structured,cloudevents-binary"`
}

// applyOptions validates the given delivery options and writes them into e; it runs after the
// other fields are applied, so that it sees the subscriptions and scheme the endpoint will have.
func (s *Server) applyOptions(ctx context.Context, f *EndpointFields, e *store.Endpoint) []error {
	var errs []error
	o := &e.Options
	if f.Filter != nil {
		o.Filter = *f.Filter
		if o.Filter != "" {
			if _, err := s.exprs.Filter(o.Filter); err != nil {
				errs = append(errs, &huma.ErrorDetail{Location: "body.filter", Message: exprMessage(err)})
			}
		}
	}
	if f.Transform != nil {
		o.Transform = *f.Transform
	}
	if f.SignatureFormat != nil {
		o.Signature = *f.SignatureFormat
		if o.Signature == store.SignatureStandard || o.Signature == string(verify.SchemeStandardWebhooks) {
			o.Signature = "" // the default is stored as none
		}
	}
	scheme := store.SchemeHMAC // what a new endpoint gets
	if len(e.Secrets) > 0 {
		scheme = e.SignatureScheme()
	}
	if f.SignatureScheme != nil {
		scheme = *f.SignatureScheme
	}
	if o.Signature != "" && scheme != store.SchemeHMAC {
		errs = append(errs, &huma.ErrorDetail{Location: "body.signature_format", Message: o.Signature + " signatures are HMACs: they need an hmac-sha256 endpoint, not " + scheme})
	}
	if f.Batch != nil {
		switch {
		case !f.Batch.Enabled:
			o.Batch = nil
		default:
			b := store.Batching{MaxEvents: f.Batch.MaxEvents, MaxWait: time.Duration(f.Batch.MaxWaitMS) * time.Millisecond}
			if b.MaxEvents == 0 {
				b.MaxEvents = dispatch.DefaultBatchEvents
			}
			if b.MaxWait == 0 {
				b.MaxWait = dispatch.DefaultBatchWait
			}
			o.Batch = &b
		}
	}
	if f.Ordered != nil {
		o.Ordered = *f.Ordered
	}
	if o.Ordered && o.Batch != nil {
		errs = append(errs, &huma.ErrorDetail{Location: "body.ordered", Message: "an ordered endpoint cannot batch: turn batching off (batch.enabled false) or ordering off"})
	}
	if f.Format != nil {
		o.Format = *f.Format
		if o.Format == store.FormatHerald {
			o.Format = "" // the default is stored as none
		}
	}
	if o.Format == store.FormatCloudEventsBinary && o.Batch != nil && e.DestinationType() == destination.TypeWebhook {
		errs = append(errs, &huma.ErrorDetail{Location: "body.format", Value: o.Format,
			Message: "binary CloudEvents have no batch form over HTTP: use cloudevents-structured (a batch is application/cloudevents-batch+json) or turn batching off"})
	}
	if o.Transform != "" && (f.Transform != nil || f.EventTypes != nil) {
		if err := s.checkTransform(ctx, o.Transform, e.EventTypes); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// checkTransform compiles a transformation and runs it on the example of every event type of
// the catalog the endpoint subscribes to (a stored example, else one made from the schema, else
// empty data), so that a transformation that cannot work is refused when saved, not found out
// at delivery.
func (s *Server) checkTransform(ctx context.Context, src string, patterns []string) error {
	t, err := s.exprs.Transform(src)
	if err != nil {
		return &huma.ErrorDetail{Location: "body.transform", Message: exprMessage(err)}
	}
	cursor := ""
	for range 40 { // at most 40 pages of the catalog (10,000 types)
		types, next, err := s.st.ListEventTypes(ctx, store.Page{Limit: store.MaxLimit, Cursor: cursor})
		if err != nil {
			return s.fail(err, "event types")
		}
		for i := range types {
			et := &types[i]
			if !store.MatchAny(patterns, et.Name) {
				continue
			}
			env, err := exampleEnvelope(et, s.eventTime())
			if err != nil {
				return s.fail(err, "event type "+et.Name)
			}
			in, err := expr.NewInput(env)
			if err != nil {
				return s.fail(err, "event type "+et.Name)
			}
			if _, err := t.Apply(ctx, in); err != nil {
				return &huma.ErrorDetail{Location: "body.transform", Message: fmt.Sprintf("fails on the example of %s: %s", et.Name, exprMessage(err))}
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	return nil
}

// exampleEnvelope is the envelope of an example event of the type: its first stored example,
// else one made from its schema, else empty data.
func exampleEnvelope(et *store.EventType, now time.Time) ([]byte, error) {
	data := json.RawMessage(`{}`)
	switch {
	case len(et.Docs.Examples) > 0:
		data = et.Docs.Examples[0]
	case et.Schema != nil:
		ex, err := schemaexample.Generate(et.Schema)
		if err != nil && !errors.Is(err, schemaexample.ErrNoExample) {
			return nil, err
		}
		if err == nil {
			data = ex
		}
	}
	return json.Marshal(event.Envelope{ID: "evt_example", Type: et.Name, Timestamp: now, Data: data, Source: "example",
		Resource: &event.Resource{ID: "example", Type: "example"}})
}

// exprMessage is the user-facing text of an expression error.
func exprMessage(err error) string {
	if e, ok := errors.AsType[*expr.Error](err); ok {
		return e.Message
	}
	return err.Error()
}
