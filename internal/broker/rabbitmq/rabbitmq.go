// Package rabbitmq is the RabbitMQ destination type: each attempt publishes the message to an
// exchange with a routing key, with the mandatory flag, on a channel in confirm mode, and its
// outcome is the broker's answer: confirmed (Success), returned as unroutable (Permanent
// no_route), negatively acknowledged (Retryable broker_busy), or the channel or connection
// closed with the reason the broker gave.
//
// Connections (github.com/rabbitmq/amqp091-go, which does not reconnect by itself) are pooled per
// broker address, vhost, credentials and dialer, shared by every endpoint that points there,
// dialled through the node's guarded dialer, bounded by Env.MaxConnections, closed after
// Env.IdleTimeout unused, and re-dialled by the next attempt after one is lost. Each connection
// keeps a set of confirm channels; an attempt checks one out for itself, so every confirm and
// return on it belongs to that attempt.
package rabbitmq

import (
	"log/slog"

	"github.com/heraldhq/herald/internal/destination"
)

// Name is the endpoint type.
const Name = "rabbitmq"

// Type is the RabbitMQ destination type. Create it with New; Close it when the node stops.
type Type struct {
	env   destination.Env
	max   int
	conns *conns
}

var _ destination.Type = (*Type)(nil)

// New returns the type.
func New(env destination.Env) *Type {
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Type{env: env, max: env.MaxConnections, conns: newConns(env, log)}
	if t.max <= 0 {
		t.max = destination.DefaultMaxConnections
	}
	return t
}

// Name implements destination.Type.
func (t *Type) Name() string { return Name }

// Secrets implements destination.Type: the password is the only credential (the URL cannot
// hold one: Check refuses it).
func (t *Type) Secrets() []string { return []string{"password"} }

// Open implements destination.Type. It does not connect: the first attempt does.
func (t *Type) Open(target destination.Target) (destination.Sender, error) {
	s, u, errs := decodeSettings(target.Settings)
	if len(errs) > 0 {
		return nil, &settingsError{errs: errs}
	}
	if t.env.DialerFor(target.Internal) == nil {
		return nil, errNoDialer
	}
	return &Sender{
		t:          t,
		key:        connKey{url: u, user: s.Username, password: s.Password, internal: target.Internal},
		exchange:   *s.Exchange,
		routingKey: s.RoutingKey,
		persistent: *s.Persistent,
	}, nil
}

// Close implements destination.Type: every connection is closed; senders fail Retryable after.
func (t *Type) Close() error {
	t.conns.Close()
	return nil
}

// openConnections is how many connections are open or being dialled (for tests).
func (t *Type) openConnections() int { return t.conns.Len() }
