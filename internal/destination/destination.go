// Package destination is how the dispatcher hands an attempt to where an endpoint delivers: a
// webhook (an HTTPS POST, package httpsend) or a message broker (NATS JetStream, RabbitMQ, Redis
// Streams, Kafka, …). Each kind of destination is a Type: it checks an endpoint's settings, and
// opens a Sender for them that shares the type's pooled connections. The dispatcher knows nothing
// of any one type: it renders, signs and schedules the attempt, and records the Outcome.
package destination

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Message is what one attempt delivers: exactly the bytes and the Standard Webhooks headers a
// webhook receiver would get, so that a broker's consumer verifies and deduplicates the same way.
type Message struct {
	// ID is the Standard Webhooks message id (the webhook-id header): the event's id.
	ID string
	// EventType is the event's type (a broker destination puts it in a header/attribute
	// "herald-event-type").
	EventType string
	// Timestamp is when the attempt was signed (the webhook-timestamp header).
	Timestamp time.Time
	// Body is the envelope (or the endpoint's transformation of it).
	Body []byte
	// Header holds webhook-id, webhook-timestamp, webhook-signature, content-type, the endpoint's
	// own headers and the trace context (traceparent, tracestate). Read only: it may be shared.
	Header http.Header
}

// Sender delivers to one endpoint's destination. Send must return within ctx's deadline (the
// endpoint's timeout), never panic, and always return an Outcome: a broker's acknowledgement is
// Success; a lost connection, timeout or busy broker Retryable; no such stream/topic, a message
// too large or access denied Permanent. It is called concurrently (up to the endpoint's
// max_concurrency).
type Sender interface {
	Send(ctx context.Context, m *Message) Outcome
}

// BatchSender is implemented by senders whose broker has a batch form: the messages go together
// and share one Outcome (every message acknowledged is Success; otherwise the whole batch is
// retried, and a consumer deduplicates by webhook-id).
type BatchSender interface {
	SendBatch(ctx context.Context, ms []*Message) Outcome
}

// Dialer opens a network connection. The node gives each type its guarded dialer (the SSRF guard
// of webhook URLs: private and loopback addresses refused unless allowed), checked at every
// connection: a type must open every connection through it, never net.Dial.
type Dialer func(ctx context.Context, network, address string) (net.Conn, error)

// FieldError is one thing wrong with an endpoint's settings. Field is the JSON path inside the
// settings object ("subject", "brokers[1]"); the API reports it at "body.config.<Field>".
type FieldError struct {
	Field   string
	Message string
	Value   any // the offending value, never a secret's
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Env is what the node gives a Type when it starts.
type Env struct {
	// Dial is the guarded dialer for ordinary endpoints; InternalDial for endpoints an admin
	// marked internal (which may reach the operator's --internal-cidr ranges).
	Dial, InternalDial Dialer
	Logger             *slog.Logger
	// MaxConnections bounds the connections the type holds open at once, over all endpoints and
	// tenants (pooled per broker address and credentials); DefaultMaxConnections if 0.
	MaxConnections int
	// IdleTimeout closes a pooled connection no endpoint has used for this long;
	// DefaultIdleTimeout if 0.
	IdleTimeout time.Duration
}

// Defaults for Env.
const (
	DefaultMaxConnections = 256
	DefaultIdleTimeout    = 5 * time.Minute
)

// Type is one kind of destination, created once per node with its Env. A Type owns the pool of
// connections its senders share.
type Type interface {
	// Name is the endpoint's "type": "webhook", "nats", "rabbitmq", "redis", "kafka", …
	Name() string
	// Check validates an endpoint's settings (the "config" object of the API), field by field,
	// and returns them normalised (defaults filled in, unknown fields refused). It does no I/O.
	Check(settings json.RawMessage) (json.RawMessage, []*FieldError)
	// Secrets names the settings fields holding credentials (top-level keys, e.g. "password",
	// "token", or a URL whose userinfo is a credential): the store seals them at rest and the
	// API never shows them.
	Secrets() []string
	// Open returns a sender for an endpoint. It may not connect yet: a broker that is down is
	// an attempt's Retryable outcome, not an error here.
	Open(t Target) (Sender, error)
	// Close closes every pooled connection; senders fail Retryable afterwards.
	Close() error
}

// Target is the endpoint a sender delivers to.
type Target struct {
	// EndpointID and TenantID identify the endpoint (for logs and metrics only).
	EndpointID, TenantID string
	// URL is a webhook endpoint's URL; empty for the other types.
	URL string
	// Settings are the endpoint's settings as Check returned them, with the secret fields
	// unsealed. Never log them.
	Settings json.RawMessage
	// Internal selects Env.InternalDial (an endpoint an admin marked internal).
	Internal bool
	// Format is the endpoint's body format (store.EndpointOptions.Format: "", "herald",
	// "cloudevents-structured" or "cloudevents-binary"). A webhook sender performs the
	// CloudEvents abuse-protection handshake for the CloudEvents formats.
	Format string
}

// RateAdvisor is implemented by senders whose receiver may ask for a lower request rate than the
// endpoint's own (the CloudEvents handshake's WebHook-Allowed-Rate). The dispatcher limits the
// endpoint to the lower of its rate limit and AllowedRate, in requests per second; 0 is no
// limit. Safe for concurrent use.
type RateAdvisor interface {
	AllowedRate() float64
}

// Headers a broker destination adds beside Message.Header, as message headers/attributes.
const (
	HeaderEventType = "herald-event-type"
)
