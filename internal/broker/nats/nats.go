// Package natsdest is the NATS JetStream destination type ("nats"): each attempt publishes the
// message to a subject captured by a stream and waits for the stream's acknowledgement (PubAck).
// Connections are pooled per (servers, credentials, internal) and shared by every endpoint that
// points at the same broker; every connection is opened through the node's guarded dialer.
package natsdest

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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
	env    destination.Env
	log    *slog.Logger
	max    int
	idle   time.Duration
	base   context.Context // canceled by Close: aborts dials in progress
	cancel context.CancelFunc

	mu      sync.Mutex
	conns   map[poolKey]*conn
	closed  bool
	janitor bool
	stop    chan struct{}
}

var _ destination.Type = (*Type)(nil)

// New returns the NATS destination type for a node.
func New(env destination.Env) *Type {
	t := &Type{env: env, log: env.Logger, max: env.MaxConnections, idle: env.IdleTimeout,
		conns: map[poolKey]*conn{}, stop: make(chan struct{})}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	if t.max <= 0 {
		t.max = destination.DefaultMaxConnections
	}
	if t.idle <= 0 {
		t.idle = destination.DefaultIdleTimeout
	}
	t.base, t.cancel = context.WithCancel(context.Background())
	return t
}

// Name is the endpoint type.
func (t *Type) Name() string { return "nats" }

// Secrets are the credential fields, sealed at rest.
func (t *Type) Secrets() []string { return []string{"password", "token"} }

// Check validates settings field by field and returns them normalised. It does no I/O.
func (t *Type) Check(raw json.RawMessage) (json.RawMessage, []*destination.FieldError) {
	s, errs := parseSettings(raw)
	if errs != nil {
		return nil, errs
	}
	if errs := s.check(); len(errs) > 0 {
		return nil, errs
	}
	out, err := json.Marshal(s)
	if err != nil {
		return nil, []*destination.FieldError{{Message: "encode settings: " + err.Error()}}
	}
	return out, nil
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
	dial := t.env.Dial
	if target.Internal {
		dial = t.env.InternalDial
	}
	if dial == nil {
		return nil, fmt.Errorf("nats endpoint %s: the node gave no dialer", target.EndpointID)
	}
	key := poolKey{servers: s.URL, username: s.Username, password: s.Password, token: s.Token, tls: s.TLS, internal: target.Internal}
	return &Sender{t: t, key: key, settings: s, dial: dial, target: target}, nil
}

// Close closes every pooled connection. Senders fail Retryable afterwards.
func (t *Type) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.cancel()
	if t.janitor {
		close(t.stop)
	}
	all := make([]*conn, 0, len(t.conns))
	for k, c := range t.conns {
		all = append(all, c)
		delete(t.conns, k)
	}
	t.mu.Unlock()
	for _, c := range all {
		c.closeWhenReady()
	}
	return nil
}

// poolKey identifies a pooled connection: the broker, the credentials it authenticates with, and
// the dialer (an internal endpoint's connection may reach addresses an ordinary one may not).
type poolKey struct {
	servers                   string
	username, password, token string
	tls, internal             bool
}

// conn is one pooled connection, being opened (ready not yet closed) or open.
type conn struct {
	key   poolKey
	ready chan struct{} // closed when the connect finished; then nc/js or err is set
	nc    *nats.Conn
	js    jetstream.JetStream
	err   error

	// Guarded by Type.mu.
	users    int // attempts using it now
	lastUsed time.Time

	closedCh chan struct{} // closed when the connection is closed (by the server, a failure or us)

	wmu         sync.Mutex
	waiters     map[*waiter]struct{}
	lastDialErr error
}

// waiter is an attempt waiting for acknowledgements on subject; a permission violation for it
// (which the server reports asynchronously, not as an answer) cancels the wait.
type waiter struct {
	subject string
	cancel  context.CancelCauseFunc
}

// errPermission is the cause of an attempt canceled by the server's permission violation.
type errPermission struct{ detail string }

func (e *errPermission) Error() string { return e.detail }

func (c *conn) watch(subject string, cancel context.CancelCauseFunc) *waiter {
	w := &waiter{subject: subject, cancel: cancel}
	c.wmu.Lock()
	c.waiters[w] = struct{}{}
	c.wmu.Unlock()
	return w
}

func (c *conn) unwatch(w *waiter) {
	c.wmu.Lock()
	delete(c.waiters, w)
	c.wmu.Unlock()
}

// permissionViolation cancels the attempts the server's error is about: those publishing to the
// subject named, or all of them when the reply inbox may not be subscribed to (no ack can come).
func (c *conn) permissionViolation(err error) {
	msg := err.Error()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for w := range c.waiters {
		pub := strings.Contains(msg, `Publish to "`+w.subject+`"`)
		if pub || strings.Contains(msg, "Subscription to") {
			w.cancel(&errPermission{detail: msg})
		}
	}
}

func (c *conn) setDialErr(err error) {
	c.wmu.Lock()
	c.lastDialErr = err
	c.wmu.Unlock()
}

func (c *conn) dialErr() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.lastDialErr
}

// broken reports a finished connection that cannot be used (failed to open, or closed since).
func (c *conn) broken() bool {
	select {
	case <-c.ready:
	default:
		return false
	}
	return c.err != nil || c.nc.IsClosed()
}

// closeWhenReady closes the connection once its connect finished (now, or in the background).
func (c *conn) closeWhenReady() {
	go func() {
		<-c.ready
		if c.nc != nil {
			c.nc.Close()
		}
	}()
}

// guardedDialer adapts the node's guarded dialer to nats.go's CustomDialer.
type guardedDialer struct {
	dial destination.Dialer
	base context.Context
	c    *conn
}

func (d *guardedDialer) Dial(network, address string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(d.base, dialTimeout)
	defer cancel()
	nc, err := d.dial(ctx, network, address)
	if err != nil {
		d.c.setDialErr(err)
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	return nc, nil
}

// acquire returns the pooled connection for key, connecting if there is none, waiting for a
// connect in progress within ctx. On failure it returns the attempt's Outcome instead.
func (t *Type) acquire(ctx context.Context, s *Sender) (*conn, *destination.Outcome) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, &destination.Outcome{Class: destination.Retryable, ErrorKind: destination.KindCanceled,
			Error: "the NATS destination is shut down (Herald is stopping)"}
	}
	c := t.conns[s.key]
	if c != nil && c.broken() {
		delete(t.conns, s.key)
		c.closeWhenReady()
		c = nil
	}
	if c == nil {
		if len(t.conns) >= t.max {
			t.mu.Unlock()
			return nil, &destination.Outcome{Class: destination.Retryable, ErrorKind: destination.KindBrokerBusy,
				Error: fmt.Sprintf("Herald already holds its limit of %d NATS connections open; the attempt will be retried when one is free", t.max)}
		}
		c = &conn{key: s.key, ready: make(chan struct{}), closedCh: make(chan struct{}), waiters: map[*waiter]struct{}{}}
		t.conns[s.key] = c
		t.startJanitorLocked()
		go t.connect(c, s)
	}
	c.users++
	t.mu.Unlock()

	select {
	case <-c.ready:
	case <-ctx.Done():
		t.release(c)
		o := errorOutcome(ctx.Err(), s.settings, nil)
		o.Error = "connect to NATS: " + o.Error
		return nil, &o
	}
	if c.err != nil {
		t.release(c)
		o := errorOutcome(c.err, s.settings, c.dialErr())
		return nil, &o
	}
	return c, nil
}

func (t *Type) release(c *conn) {
	t.mu.Lock()
	c.users--
	c.lastUsed = time.Now()
	t.mu.Unlock()
}

// connect opens c (in its own goroutine, so that an attempt's deadline does not cut a connect
// others may be waiting for) and removes it from the pool if that failed.
func (t *Type) connect(c *conn, s *Sender) {
	opts := []nats.Option{
		nats.Name("herald"),
		nats.SetCustomDialer(&guardedDialer{dial: s.dial, base: t.base, c: c}),
		nats.SkipHostLookup(),          // the guarded dialer resolves, and checks every address
		nats.IgnoreDiscoveredServers(), // only the servers the endpoint lists
		nats.NoReconnect(),             // a lost connection is closed; the next attempt dials again
		nats.ReconnectBufSize(-1),
		nats.Timeout(dialTimeout),
		nats.PingInterval(pingInterval),
		nats.MaxPingsOutstanding(maxPingsOut),
		nats.NoCallbacksAfterClientClose(),
		nats.ClosedHandler(func(*nats.Conn) {
			close(c.closedCh)
			t.mu.Lock()
			if t.conns[c.key] == c {
				delete(t.conns, c.key)
			}
			t.mu.Unlock()
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				t.log.Warn("nats destination: connection lost", "endpoint", s.target.EndpointID, "servers", s.settings.URL, "err", err)
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				c.permissionViolation(err)
			}
		}),
	}
	switch {
	case s.settings.Token != "":
		opts = append(opts, nats.Token(s.settings.Token))
	case s.settings.Username != "":
		opts = append(opts, nats.UserInfo(s.settings.Username, s.settings.Password))
	}
	if s.settings.TLS {
		opts = append(opts, nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12}))
	}
	nc, err := nats.Connect(s.settings.URL, opts...)
	var js jetstream.JetStream
	if err == nil {
		js, err = jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(asyncMaxPending),
			jetstream.WithPublishAsyncTimeout(asyncAckTimeout))
		if err != nil {
			nc.Close()
			err = fmt.Errorf("jetstream: %w", err)
		}
	}
	t.mu.Lock()
	closed := t.closed
	if err != nil && t.conns[c.key] == c {
		delete(t.conns, c.key)
	}
	t.mu.Unlock()
	if err == nil && closed {
		nc.Close()
		err = nats.ErrConnectionClosed
	}
	c.nc, c.js, c.err = nc, js, err
	close(c.ready)
	if err != nil {
		t.log.Info("nats destination: connect failed", "endpoint", s.target.EndpointID, "servers", s.settings.URL, "err", err)
	}
}

// startJanitorLocked starts the goroutine closing idle connections, once. t.mu is held.
func (t *Type) startJanitorLocked() {
	if t.janitor {
		return
	}
	t.janitor = true
	every := min(max(t.idle/4, 10*time.Millisecond), 30*time.Second)
	go func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-t.stop:
				return
			case now := <-tick.C:
				t.closeIdle(now)
			}
		}
	}()
}

// closeIdle closes the connections no attempt has used for the idle timeout.
func (t *Type) closeIdle(now time.Time) {
	var idle []*conn
	t.mu.Lock()
	for k, c := range t.conns {
		select {
		case <-c.ready:
		default:
			continue
		}
		if c.users == 0 && now.Sub(c.lastUsed) >= t.idle {
			delete(t.conns, k)
			idle = append(idle, c)
		}
	}
	t.mu.Unlock()
	for _, c := range idle {
		c.closeWhenReady()
	}
}

// openConnections is how many connections the pool holds (open or opening).
func (t *Type) openConnections() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}
