// Package webhook is the "webhook" destination type: an HTTPS POST of the message's body with
// its headers, through httpsend (the SSRF guard, redirects refused, bounded response reading,
// the outcome classified by status). It is every endpoint's default type.
package webhook

import (
	"context"
	"fmt"
	"time"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/httpsend"
)

// Type sends webhooks with two clients: the ordinary one, and the one for endpoints an admin
// marked internal (whose guard also admits the operator's --internal-cidr ranges).
type Type struct {
	client, internal *httpsend.Client
	// origin and handshakeTTL are the CloudEvents handshake's (handshake.go).
	origin       string
	handshakeTTL time.Duration
}

// New makes the webhook type. internal may be nil or client itself: internal endpoints are then
// sent with the ordinary client, so they never get more than the operator configured.
func New(client, internal *httpsend.Client, opts ...Option) *Type {
	if internal == nil {
		internal = client
	}
	t := &Type{client: client, internal: internal, origin: DefaultHandshakeOrigin, handshakeTTL: HandshakeTTL}
	for _, o := range opts {
		o(t)
	}
	return t
}

// Name is "webhook".
func (t *Type) Name() string { return destination.TypeWebhook }

// Open returns the sender for the endpoint's URL, with the client its internal flag selects.
// The flag is read from the endpoint as the dispatcher last loaded it, and each client's guard
// checks every dial, so an endpoint whose flag was turned off is refused by the ordinary
// client's guard from its next attempt on.
func (t *Type) Open(target destination.Target) (destination.Sender, error) {
	c := t.client
	if target.Internal {
		c = t.internal
	}
	settings, err := settingsOf(target.Settings)
	if err != nil {
		return nil, fmt.Errorf("endpoint %s: webhook settings: %w", target.EndpointID, err)
	}
	// A client certificate, CA bundle or proxy of the endpoint's own: a client on its route, which
	// the token fetches of OAuth2 and the CloudEvents handshake take too.
	if c, err = c.With(settings.egress()); err != nil {
		return nil, fmt.Errorf("endpoint %s: webhook settings: %w", target.EndpointID, err)
	}
	s := &sender{client: c, url: target.URL, settings: settings, auth: newAuth(c, settings)}
	if needsHandshake(target.Format) {
		s.handshake = newHandshake(t.origin, t.handshakeTTL)
	}
	return s, nil
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
	client   *httpsend.Client
	url      string
	settings Settings
	auth     authenticator // nil: the signature alone
	// handshake is the CloudEvents handshake's state, nil for formats that need none.
	handshake *handshake
}

// Send POSTs the message. The attempt's timeout is ctx's deadline (the endpoint's timeout, which
// the dispatcher sets); without one, httpsend's default. httpsend sets the trace context
// headers from ctx itself.
func (s *sender) Send(ctx context.Context, m *destination.Message) destination.Outcome {
	var timeout time.Duration
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Nanosecond)
	}
	if s.handshake != nil {
		if out, ok := s.ensureHandshake(ctx, timeout); !ok {
			return out
		}
		if dl, ok := ctx.Deadline(); ok {
			timeout = max(time.Until(dl), time.Nanosecond)
		}
	}
	return s.send(ctx, httpsend.Request{URL: s.url, Header: m.Header, Body: m.Body, Timeout: timeout})
}

// send sends a request to the receiver with the endpoint's credentials, if it has any.
func (s *sender) send(ctx context.Context, r httpsend.Request) destination.Outcome {
	if s.auth != nil {
		return s.auth.send(ctx, s.client, r)
	}
	return s.client.Send(ctx, r)
}
