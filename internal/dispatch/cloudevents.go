package dispatch

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/store"
)

// An endpoint whose format (store.EndpointOptions.Format) is one of the CloudEvents formats gets
// each event as a CloudEvent 1.0 (https://github.com/cloudevents/spec, HTTP protocol binding):
//
//   - id is the event's id, type its type, time its timestamp (RFC 3339);
//   - source is the event's source when it is a URI reference (no white space or control
//     characters), else "/herald/tenants/<tenant id>": CloudEvents requires one, and an
//     event published without a source still comes from the tenant;
//   - subject is the event's resource id, when it has a resource;
//   - data is the event's data (application/json) or, with a transformation, its output
//     (application/json when it is JSON, else text/plain; charset=utf-8).
//
// cloudevents-structured sends the event as one JSON object (Content-Type:
// application/cloudevents+json); cloudevents-binary sends data as the body with the attributes
// in ce-* headers. A batch (structured only: the API refuses binary with batching for webhooks)
// is a JSON array of CloudEvents, Content-Type: application/cloudevents-batch+json. The Standard
// Webhooks (or GitHub, Stripe) signature is computed over the body actually sent, as for the
// Herald format.

// Content types of the CloudEvents formats.
const (
	contentTypeJSON    = "application/json"
	contentTypeText    = "text/plain; charset=utf-8"
	contentTypeCE      = "application/cloudevents+json"
	contentTypeCEBatch = "application/cloudevents-batch+json"
	ceSpecVersion      = "1.0"
)

// cloudEvent is a CloudEvent in the JSON format, in the attribute order the spec lists.
type cloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            string          `json:"time,omitempty"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	Data            json.RawMessage `json:"data,omitempty"`
}

// isCloudEvents reports whether format is one of the CloudEvents formats.
func isCloudEvents(format string) bool {
	return format == store.FormatCloudEventsStructured || format == store.FormatCloudEventsBinary
}

// toCloudEvent maps an event (its stored envelope, and the body the endpoint's transformation
// made of it, or nil) to a CloudEvent whose Data is the JSON value to send in the structured
// format.
func toCloudEvent(tenant string, payload, transformed []byte) (*cloudEvent, error) {
	env, err := event.DecodeEnvelope(payload)
	if err != nil {
		return nil, err
	}
	ce := &cloudEvent{
		SpecVersion:     ceSpecVersion,
		ID:              env.ID,
		Source:          ceSource(env.Source, tenant),
		Type:            env.Type,
		Time:            env.Timestamp.UTC().Format(time.RFC3339Nano),
		DataContentType: contentTypeJSON,
		Data:            env.Data,
	}
	if env.Resource != nil {
		ce.Subject = env.Resource.ID
	}
	if transformed != nil {
		ce.Data = transformed
		if !json.Valid(transformed) {
			ce.DataContentType = contentTypeText
			if ce.Data, err = json.Marshal(string(transformed)); err != nil {
				return nil, fmt.Errorf("encode cloudevent data: %w", err)
			}
		}
	}
	return ce, nil
}

// ceSource is the CloudEvents source of an event: its own source when that is a URI reference,
// else the tenant's path.
func ceSource(source, tenant string) string {
	if source != "" && !strings.ContainsFunc(source, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		if _, err := url.Parse(source); err == nil {
			return source
		}
	}
	return "/herald/tenants/" + url.PathEscape(tenant)
}

// binary is the body and ce-* headers of the binary format: data as sent (a JSON string's
// text for non-JSON data), attributes percent-encoded as the HTTP binding requires.
func (ce *cloudEvent) binary() ([]byte, http.Header, error) {
	body := []byte(ce.Data)
	if ce.DataContentType == contentTypeText {
		var s string
		if err := json.Unmarshal(ce.Data, &s); err != nil {
			return nil, nil, fmt.Errorf("decode cloudevent data: %w", err)
		}
		body = []byte(s)
	}
	h := http.Header{}
	h.Set("Content-Type", ce.DataContentType)
	h.Set("Ce-Specversion", ce.SpecVersion)
	h.Set("Ce-Id", ceHeaderValue(ce.ID))
	h.Set("Ce-Source", ceHeaderValue(ce.Source))
	h.Set("Ce-Type", ceHeaderValue(ce.Type))
	h.Set("Ce-Time", ce.Time)
	if ce.Subject != "" {
		h.Set("Ce-Subject", ceHeaderValue(ce.Subject))
	}
	return body, h, nil
}

// ceHeaderValue percent-encodes what the HTTP binding (3.1.3.2) requires in a ce-* header: space,
// double quote, percent and every byte outside printable ASCII (UTF-8 first).
func ceHeaderValue(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c > '~' || c == '"' || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// render is what one event's attempt sends in the endpoint's format: the body, and the headers
// the format sets (nil for Herald's envelope, whose Content-Type is application/json).
func (s laneSnapshot) render(ctx context.Context, c store.Claimed) ([]byte, http.Header, error) {
	body, err := s.body(ctx, c)
	if err != nil || !isCloudEvents(s.ep.Options.Format) {
		return body, nil, err
	}
	ce, err := s.cloudEvent(c, body)
	if err != nil {
		return nil, nil, err
	}
	if s.ep.Options.Format == store.FormatCloudEventsBinary {
		return ce.binary()
	}
	out, err := event.Marshal(ce)
	if err != nil {
		return nil, nil, fmt.Errorf("encode cloudevent: %w", err)
	}
	return out, http.Header{"Content-Type": {contentTypeCE}}, nil
}

// cloudEvent is the CloudEvent of a claimed event whose body (the envelope or the
// transformation's output) is body.
func (s laneSnapshot) cloudEvent(c store.Claimed, body []byte) (*cloudEvent, error) {
	var transformed []byte
	if s.transform != nil {
		transformed = body
	}
	ce, err := toCloudEvent(s.ep.TenantID, c.Payload, transformed)
	if err != nil {
		return nil, fmt.Errorf("event %s: %w", c.EventID, err)
	}
	return ce, nil
}
