// Package webhook is the "webhook" destination type: an HTTPS POST of the message's body with
// its headers, through httpsend (the SSRF guard, redirects refused, bounded response reading,
// the outcome classified by status). It is every endpoint's default type.
package webhook

import (
	"context"
	"encoding/json"
	"time"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/httpsend"
)

// Type sends webhooks with two clients: the ordinary one, and the one for endpoints an admin
// marked internal (whose guard also admits the operator's --internal-cidr ranges).
type Type struct {
	client, internal *httpsend.Client
}

// New makes the webhook type. internal may be nil or client itself: internal endpoints are then
// sent with the ordinary client, so they never get more than the operator configured.
func New(client, internal *httpsend.Client) *Type {
	if internal == nil {
		internal = client
	}
	return &Type{client: client, internal: internal}
}

// Name is "webhook".
func (t *Type) Name() string { return destination.TypeWebhook }

// Check accepts no settings: a webhook's destination is its URL, checked by the API. An absent,
// null or empty settings object is normalised to nothing.
func (t *Type) Check(settings json.RawMessage) (json.RawMessage, []*destination.FieldError) {
	if len(settings) == 0 || string(settings) == "null" {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(settings, &m); err != nil {
		return nil, []*destination.FieldError{{Field: "", Message: "must be a JSON object"}}
	}
	var errs []*destination.FieldError
	for k := range m {
		errs = append(errs, &destination.FieldError{Field: k, Message: "unknown setting: webhook endpoints have no settings (their destination is the url)"})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return nil, nil
}

// Secrets: none (a webhook's signing secrets are the endpoint's, for every type).
func (t *Type) Secrets() []string { return nil }

// Open returns the sender for the endpoint's URL, with the client its internal flag selects.
// The flag is read from the endpoint as the dispatcher last loaded it, and each client's guard
// checks every dial, so an endpoint whose flag was turned off is refused by the ordinary
// client's guard from its next attempt on.
func (t *Type) Open(target destination.Target) (destination.Sender, error) {
	c := t.client
	if target.Internal {
		c = t.internal
	}
	return &sender{client: c, url: target.URL}, nil
}

// Close closes both clients' kept-alive connections.
func (t *Type) Close() error {
	t.client.Close()
	if t.internal != t.client {
		t.internal.Close()
	}
	return nil
}

type sender struct {
	client *httpsend.Client
	url    string
}

// Send POSTs the message. The attempt's timeout is ctx's deadline (the endpoint's timeout, which
// the dispatcher sets); without one, httpsend's default. httpsend sets the trace context
// headers from ctx itself.
func (s *sender) Send(ctx context.Context, m *destination.Message) destination.Outcome {
	var timeout time.Duration
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Nanosecond)
	}
	return s.client.Send(ctx, httpsend.Request{URL: s.url, Header: m.Header, Body: m.Body, Timeout: timeout})
}
