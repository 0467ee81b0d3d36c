package natsdest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/internal/broker/pool"
	"github.com/heraldhq/herald/internal/destination"
)

// poolKey identifies a pooled connection: the broker, the credentials it authenticates with, and
// the dialer (an internal endpoint's connection may reach addresses an ordinary one may not).
type poolKey struct {
	servers                   string
	username, password, token string
	tls, internal             bool
}

// poolKey is the key of the connection these settings open.
func (c *Conn) poolKey(internal bool) poolKey {
	return poolKey{servers: c.URL, username: c.Username, password: c.Password, token: c.Token, tls: c.TLS, internal: internal}
}

// conns are the connections of one type (the destination, or the source), held by the shared
// broker pool (internal/broker/pool): one per poolKey, shared by every endpoint or source that
// points at the same broker with the same credentials, bounded, closed after idle.
type conns = pool.Pool[poolKey, *conn]

// newConns returns the pool of a type. what ("destination", "source") is for logs.
func newConns(what string, env destination.Env) *conns {
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return pool.New(pool.Config[poolKey, *conn]{
		Open: func(ctx context.Context, key poolKey) (*conn, error) {
			return connect(ctx, key, env.DialerFor(key.internal), log.With("nats", what))
		},
		Close:       func(c *conn) { c.nc.Close() },
		Broken:      func(c *conn) bool { return c.nc.IsClosed() },
		Max:         maxConnections(env),
		IdleTimeout: env.IdleTimeout,
	})
}

func maxConnections(env destination.Env) int {
	if env.MaxConnections > 0 {
		return env.MaxConnections
	}
	return destination.DefaultMaxConnections
}

// conn is one open connection with what the attempts on it share: the waiters a permission
// violation (reported asynchronously by the server) cancels.
type conn struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	closedCh chan struct{} // closed when the connection is closed (by the server, a failure or us)

	wmu     sync.Mutex
	waiters map[*waiter]struct{}
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

// guardedDialer adapts the node's guarded dialer to nats.go's CustomDialer, and keeps its last
// error: nats.go may report only that no server could be reached, the dialer says why.
type guardedDialer struct {
	dial destination.Dialer
	base context.Context

	mu      sync.Mutex
	lastErr error
}

func (d *guardedDialer) Dial(network, address string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(d.base, dialTimeout)
	defer cancel()
	nc, err := d.dial(ctx, network, address)
	if err != nil {
		d.mu.Lock()
		d.lastErr = err
		d.mu.Unlock()
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	return nc, nil
}

func (d *guardedDialer) err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastErr
}

// busyText is the attempt's Error when opening one more connection would exceed the limit.
func busyText(limit int) string {
	return fmt.Sprintf("Herald already holds its limit of %d NATS connections open", limit)
}

// connectError is a failed connect, with the guarded dialer's last error.
type connectError struct {
	err, dial error
}

func (e *connectError) Error() string {
	if e.dial != nil {
		return "connect to NATS: " + e.dial.Error()
	}
	return "connect to NATS: " + e.err.Error()
}

func (e *connectError) Unwrap() []error {
	if e.dial != nil {
		return []error{e.err, e.dial}
	}
	return []error{e.err}
}

// connect opens a connection for key through dial. ctx is the pool's: it ends when the type
// closes, which aborts a dial in progress.
func connect(ctx context.Context, key poolKey, dial destination.Dialer, log *slog.Logger) (*conn, error) {
	if dial == nil {
		return nil, &connectError{err: errors.New("the node gave no dialer")}
	}
	c := &conn{closedCh: make(chan struct{}), waiters: map[*waiter]struct{}{}}
	gd := &guardedDialer{dial: dial, base: ctx}
	opts := []nats.Option{
		nats.Name("herald"),
		nats.SetCustomDialer(gd),
		nats.SkipHostLookup(),          // the guarded dialer resolves, and checks every address
		nats.IgnoreDiscoveredServers(), // only the servers the settings list
		nats.NoReconnect(),             // a lost connection is closed; the next attempt dials again
		nats.ReconnectBufSize(-1),
		nats.Timeout(dialTimeout),
		nats.PingInterval(pingInterval),
		nats.MaxPingsOutstanding(maxPingsOut),
		nats.NoCallbacksAfterClientClose(),
		nats.ClosedHandler(func(*nats.Conn) { close(c.closedCh) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats: connection lost", "servers", key.servers, "err", err)
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				c.permissionViolation(err)
			}
		}),
	}
	switch {
	case key.token != "":
		opts = append(opts, nats.Token(key.token))
	case key.username != "":
		opts = append(opts, nats.UserInfo(key.username, key.password))
	}
	if key.tls {
		opts = append(opts, nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12}))
	}
	nc, err := nats.Connect(key.servers, opts...)
	if err == nil {
		c.nc = nc
		c.js, err = jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(asyncMaxPending),
			jetstream.WithPublishAsyncTimeout(asyncAckTimeout))
		if err != nil {
			nc.Close()
			err = fmt.Errorf("jetstream: %w", err)
		}
	}
	if err != nil {
		log.Info("nats: connect failed", "servers", key.servers, "err", err)
		return nil, &connectError{err: err, dial: gd.err()}
	}
	return c, nil
}
