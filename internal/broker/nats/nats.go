// Package natsdest is the NATS JetStream destination type ("nats"): each attempt publishes the
// message to a subject captured by a stream and waits for the stream's acknowledgement (PubAck).
// Connections are pooled per (servers, credentials, internal) and shared by every endpoint that
// points at the same broker; every connection is opened through the node's guarded dialer.
package natsdest

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/heraldhq/herald/internal/destination"
)

// Connection tuning. The client never reconnects by itself and buffers nothing while
// disconnected: a lost connection is closed, the attempt during the outage fails Retryable, and
// the next attempt dials again. So memory is bounded and no reconnect loop runs for a broker
// nobody uses.
const (
	dialTimeout     = 10 * time.Second // one TCP connect (through the guarded dialer), and the handshake
	pingInterval    = 20 * time.Second // a silently dead connection is noticed within ~2 intervals
	maxPingsOut     = 2
	asyncMaxPending = 4096        // outstanding async publishes per connection (batches)
	asyncAckTimeout = time.Minute // an async publish nobody waits for any more is forgotten after this
	batchChunk      = 512         // a batch's messages in flight at once
)

// Type is the "nats" destination type. Create it with New.
type Type struct {
	env   destination.Env
	conns *conns
}

var _ destination.Type = (*Type)(nil)

// New returns the NATS destination type for a node.
func New(env destination.Env) *Type {
	return &Type{env: env, conns: newConns("destination", env)}
}

// Name is the endpoint type.
func (t *Type) Name() string { return "nats" }

// Secrets are the credential fields, sealed at rest.
func (t *Type) Secrets() []string { return []string{"password", "token"} }

// Check validates settings field by field and returns them normalised. It does no I/O.
func (t *Type) Check(raw json.RawMessage) (json.RawMessage, []*destination.FieldError) {
	s, errs := parseSettings(raw)
	if errs == nil {
		errs = s.check()
	}
	return destination.EncodeSettings(s, errs)
}

// Open returns the sender of an endpoint. It does not connect: the first attempt does.
func (t *Type) Open(target destination.Target) (destination.Sender, error) {
	s, errs := parseSettings(target.Settings)
	if errs == nil {
		errs = s.check()
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("nats endpoint %s: invalid settings: %w", target.EndpointID, errs[0])
	}
	if t.env.DialerFor(target.Internal) == nil {
		return nil, fmt.Errorf("nats endpoint %s: the node gave no dialer", target.EndpointID)
	}
	return &Sender{t: t, key: s.Conn.poolKey(target.Internal), settings: s, target: target}, nil
}

// Close closes every pooled connection. Senders fail Retryable afterwards.
func (t *Type) Close() error {
	t.conns.Close()
	return nil
}

// openConnections is how many connections the pool holds (open or opening).
func (t *Type) openConnections() int { return t.conns.Len() }
