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
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/destination"
)

// Name is the endpoint type.
const Name = "rabbitmq"

// Type is the RabbitMQ destination type. Create it with New; Close it when the node stops.
type Type struct {
	env  destination.Env
	log  *slog.Logger
	max  int
	idle time.Duration

	mu     sync.Mutex
	pools  map[string]*pooled
	open   int // connections open or being dialled, over every pool entry
	closed bool

	stop    chan struct{}
	stopped sync.WaitGroup
}

var _ destination.Type = (*Type)(nil)

// New returns the type. It starts a goroutine that closes idle connections; Close stops it.
func New(env destination.Env) *Type {
	t := &Type{
		env:   env,
		log:   env.Logger,
		max:   env.MaxConnections,
		idle:  env.IdleTimeout,
		pools: make(map[string]*pooled),
		stop:  make(chan struct{}),
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	if t.max <= 0 {
		t.max = destination.DefaultMaxConnections
	}
	if t.idle <= 0 {
		t.idle = destination.DefaultIdleTimeout
	}
	t.stopped.Add(1)
	go t.janitor()
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
	dial := t.env.Dial
	if target.Internal {
		dial = t.env.InternalDial
	}
	if dial == nil {
		return nil, errNoDialer
	}
	key := poolKey(u, s.Username, s.Password, target.Internal)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, errTypeClosed
	}
	p := t.pools[key]
	if p == nil {
		p = &pooled{t: t, url: u, user: s.Username, password: s.Password, dial: dial}
		t.pools[key] = p
	}
	return &Sender{
		pool:       p,
		exchange:   *s.Exchange,
		routingKey: s.RoutingKey,
		persistent: *s.Persistent,
	}, nil
}

// Close implements destination.Type: every connection is closed; senders fail Retryable after.
func (t *Type) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	pools := make([]*pooled, 0, len(t.pools))
	for _, p := range t.pools {
		pools = append(pools, p)
	}
	t.mu.Unlock()
	close(t.stop)
	t.stopped.Wait()
	for _, p := range pools {
		p.close()
	}
	return nil
}

// reserve takes a slot for a new connection, or says the limit is reached.
func (t *Type) reserve() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return errTypeClosed
	}
	if t.open >= t.max {
		return errPoolFull
	}
	t.open++
	return nil
}

func (t *Type) release() {
	t.mu.Lock()
	t.open--
	t.mu.Unlock()
}

func (t *Type) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// openConnections is how many connections are open or being dialled (for tests).
func (t *Type) openConnections() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.open
}

// janitor closes connections unused for the idle timeout, and forgets lost ones, so that
// neither holds a slot of the limit.
func (t *Type) janitor() {
	defer t.stopped.Done()
	every := t.idle / 4
	if every < 10*time.Millisecond {
		every = 10 * time.Millisecond
	}
	if every > 30*time.Second {
		every = 30 * time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case now := <-tick.C:
			t.mu.Lock()
			pools := make([]*pooled, 0, len(t.pools))
			for _, p := range t.pools {
				pools = append(pools, p)
			}
			t.mu.Unlock()
			for _, p := range pools {
				if p.closeIdle(now, t.idle) {
					t.log.Debug("rabbitmq connection closed (idle or lost)", "address", p.url.address())
				}
			}
		}
	}
}
