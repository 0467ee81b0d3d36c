// Package source is how Herald takes events from a company's message broker: a broker source
// reads a NATS JetStream stream, a RabbitMQ queue, a Redis stream or a Kafka topic and turns each
// message into an event of one tenant, fanned out to that tenant's endpoints like a published
// event. Each kind of broker is a Type whose Consumer hands over messages in batches; the
// runner (package source, runner.go) maps them to events, stores them, and only then
// acknowledges them to the broker: at least once, nothing lost, and a redelivered message fans
// out once because its event id is stable.
package source

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/heraldhq/herald/internal/destination"
)

// Message is one message a Consumer took from its broker.
type Message struct {
	// Body is the message's payload as the broker holds it.
	Body []byte
	// Header holds the message's headers or attributes, names as the broker gives them (NATS
	// headers, AMQP headers table with string values, Kafka record headers, Redis entry fields
	// other than the body field).
	Header map[string][]string
	// Subject is where the message was published: the NATS subject, the AMQP routing key, the
	// Kafka topic, the Redis stream key. A mapping may take the event type from it.
	Subject string
	// ID is the broker's own identity of the message, the same on every redelivery: JetStream
	// "<stream>:<stream sequence>", Kafka "<topic>:<partition>:<offset>", the Redis entry id,
	// RabbitMQ's message-id property. "" when the broker gives none (RabbitMQ without
	// message-id): the runner then derives the event id from the body.
	ID string
	// Time is the broker's timestamp of the message, zero if it has none.
	Time time.Time
}

// Batch is messages taken together and settled together, after the runner has committed (or
// refused) their events.
type Batch interface {
	Messages() []Message
	// Ack tells the broker every message of the batch is handled: it will not deliver them
	// again (JetStream ack, AMQP ack multiple, Kafka offset commit, XACK).
	Ack(ctx context.Context) error
	// Nak gives the messages back to be delivered again, not before delay where the broker
	// can say so (JetStream NakWithDelay, AMQP nack with requeue, Kafka: seek back, Redis: leave
	// pending for reclaim). Used when the store could not take the events.
	Nak(ctx context.Context, delay time.Duration) error
}

// Consumer reads one source. It holds at most the max messages of the batch it last returned
// unsettled (bounded prefetch): the broker keeps the rest, so a slow or unavailable store stops
// consumption instead of filling memory.
type Consumer interface {
	// Fetch waits up to maxWait for messages and returns at most max of them; an empty batch
	// (no messages) when none came. An error means the broker could not be read (the runner
	// reports the source unhealthy, closes the consumer and opens a new one with backoff).
	Fetch(ctx context.Context, max int, maxWait time.Duration) (Batch, error)
	Close() error
}

// Target is the source a Consumer reads.
type Target struct {
	// SourceID and TenantID identify the source (logs, metrics).
	SourceID, TenantID string
	// Group names the consumer every node uses for this source (JetStream durable consumer,
	// Kafka consumer group, Redis consumer group; RabbitMQ consumers of one queue compete
	// anyway), so that several Herald nodes share its messages and a node's death hands its
	// share to the others. Member names this node within the group (Redis consumer name).
	Group, Member string
	// Settings are the source's settings as Check returned them, secrets unsealed. Never log them.
	Settings json.RawMessage
	// Internal selects Env.InternalDial.
	Internal bool
	// Created is when the source was created (zero if unknown). A source that starts with "new"
	// messages reads those published after this time where its broker can say so (Redis Streams),
	// so that a message published once the API answered is never skipped because the consumer
	// was not open yet.
	Created time.Time
}

// Env is what the node gives a Type.
type Env struct {
	// Dial and InternalDial are the guarded dialers of destinations: a broker address is held
	// to the SSRF rules of a webhook URL.
	Dial, InternalDial destination.Dialer
	Logger             *slog.Logger
}

// Type is one kind of broker source.
type Type interface {
	// Name is the source's "type": "nats", "rabbitmq", "redis", "kafka".
	Name() string
	// Check validates the settings field by field, without I/O, and returns them normalised.
	Check(settings json.RawMessage) (json.RawMessage, []*destination.FieldError)
	// Secrets names the settings fields holding credentials, sealed at rest, never shown.
	Secrets() []string
	// Open connects to the broker and returns a consumer of the target; creating what the
	// source needs on the broker's side that belongs to Herald (a durable consumer, a consumer
	// group), never the stream, queue or topic itself. Errors are reported as the source's
	// health and retried by the runner with backoff.
	Open(ctx context.Context, t Target) (Consumer, error)
}

// DialerFor is the guarded dialer of a target: InternalDial when internal, Dial otherwise.
func (e Env) DialerFor(internal bool) destination.Dialer {
	return destination.Env{Dial: e.Dial, InternalDial: e.InternalDial}.DialerFor(internal)
}
