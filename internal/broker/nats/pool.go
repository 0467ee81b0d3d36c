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
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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

// errPoolClosed is what acquire returns once the type is closed.
var errPoolClosed = errors.New("the NATS connections are shut down (Herald is stopping)")

// busyError is what acquire returns when opening one more connection would exceed the limit.
type busyError struct{ max int }

func (e *busyError) Error() string {
	return fmt.Sprintf("Herald already holds its limit of %d NATS connections open", e.max)
}

// connectError is a failed connect, with the guarded dialer's last error (nats.go may report only
// that no server could be reached, the dialer says why).
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

// pool holds the connections of one type (the destination, or the source), per poolKey: shared by
// every endpoint or source that points at the same broker with the same credentials, bounded by
// max, closed after idle without users.
type pool struct {
	what   string // "destination" or "source", for logs
	log    *slog.Logger
	max    int
	idle   time.Duration
	base   context.Context // canceled by close: aborts dials in progress
	cancel context.CancelFunc

	mu      sync.Mutex
	conns   map[poolKey]*conn
	closed  bool
	janitor bool
	stop    chan struct{}
}

func newPool(what string, log *slog.Logger, maxConns int, idle time.Duration) *pool {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if maxConns <= 0 {
		maxConns = destination.DefaultMaxConnections
	}
	if idle <= 0 {
		idle = destination.DefaultIdleTimeout
	}
	p := &pool{what: what, log: log, max: maxConns, idle: idle, conns: map[poolKey]*conn{}, stop: make(chan struct{})}
	p.base, p.cancel = context.WithCancel(context.Background())
	return p
}

// dialSpec is what a connect needs: the connection settings, the guarded dialer, and who asks (for
// logs: "endpoint", "ep_…").
type dialSpec struct {
	conn     *Conn
	dial     destination.Dialer
	whoKey   string
	whoValue string
}

// acquire returns the pooled connection for key, connecting if there is none, waiting for a
// connect in progress within ctx. Errors: errPoolClosed, *busyError, ctx's error, *connectError.
// A connection acquired is released with release.
func (p *pool) acquire(ctx context.Context, key poolKey, spec dialSpec) (*conn, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errPoolClosed
	}
	c := p.conns[key]
	if c != nil && c.broken() {
		delete(p.conns, key)
		c.closeWhenReady()
		c = nil
	}
	if c == nil {
		if len(p.conns) >= p.max {
			p.mu.Unlock()
			return nil, &busyError{max: p.max}
		}
		c = &conn{key: key, ready: make(chan struct{}), closedCh: make(chan struct{}), waiters: map[*waiter]struct{}{}}
		p.conns[key] = c
		p.startJanitorLocked()
		go p.connect(c, spec)
	}
	c.users++
	p.mu.Unlock()

	select {
	case <-c.ready:
	case <-ctx.Done():
		p.release(c)
		return nil, fmt.Errorf("connect to NATS: %w", ctx.Err())
	}
	if c.err != nil {
		p.release(c)
		return nil, &connectError{err: c.err, dial: c.dialErr()}
	}
	return c, nil
}

func (p *pool) release(c *conn) {
	p.mu.Lock()
	c.users--
	c.lastUsed = time.Now()
	p.mu.Unlock()
}

// connect opens c (in its own goroutine, so that an attempt's deadline does not cut a connect
// others may be waiting for) and removes it from the pool if that failed.
func (p *pool) connect(c *conn, spec dialSpec) {
	cs := spec.conn
	opts := []nats.Option{
		nats.Name("herald"),
		nats.SetCustomDialer(&guardedDialer{dial: spec.dial, base: p.base, c: c}),
		nats.SkipHostLookup(),          // the guarded dialer resolves, and checks every address
		nats.IgnoreDiscoveredServers(), // only the servers the settings list
		nats.NoReconnect(),             // a lost connection is closed; the next attempt dials again
		nats.ReconnectBufSize(-1),
		nats.Timeout(dialTimeout),
		nats.PingInterval(pingInterval),
		nats.MaxPingsOutstanding(maxPingsOut),
		nats.NoCallbacksAfterClientClose(),
		nats.ClosedHandler(func(*nats.Conn) {
			close(c.closedCh)
			p.mu.Lock()
			if p.conns[c.key] == c {
				delete(p.conns, c.key)
			}
			p.mu.Unlock()
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				p.log.Warn("nats "+p.what+": connection lost", spec.whoKey, spec.whoValue, "servers", cs.URL, "err", err)
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				c.permissionViolation(err)
			}
		}),
	}
	switch {
	case cs.Token != "":
		opts = append(opts, nats.Token(cs.Token))
	case cs.Username != "":
		opts = append(opts, nats.UserInfo(cs.Username, cs.Password))
	}
	if cs.TLS {
		opts = append(opts, nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12}))
	}
	nc, err := nats.Connect(cs.URL, opts...)
	var js jetstream.JetStream
	if err == nil {
		js, err = jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(asyncMaxPending),
			jetstream.WithPublishAsyncTimeout(asyncAckTimeout))
		if err != nil {
			nc.Close()
			err = fmt.Errorf("jetstream: %w", err)
		}
	}
	p.mu.Lock()
	closed := p.closed
	if err != nil && p.conns[c.key] == c {
		delete(p.conns, c.key)
	}
	p.mu.Unlock()
	if err == nil && closed {
		nc.Close()
		err = nats.ErrConnectionClosed
	}
	c.nc, c.js, c.err = nc, js, err
	close(c.ready)
	if err != nil {
		p.log.Info("nats "+p.what+": connect failed", spec.whoKey, spec.whoValue, "servers", cs.URL, "err", err)
	}
}

// close closes every pooled connection (waiting for connects in progress to end, which the
// canceled base context hastens); acquire fails afterwards.
func (p *pool) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.cancel()
	if p.janitor {
		close(p.stop)
	}
	all := make([]*conn, 0, len(p.conns))
	for k, c := range p.conns {
		all = append(all, c)
		delete(p.conns, k)
	}
	p.mu.Unlock()
	for _, c := range all {
		<-c.ready
		if c.nc != nil {
			c.nc.Close()
		}
	}
}

// startJanitorLocked starts the goroutine closing idle connections, once. p.mu is held.
func (p *pool) startJanitorLocked() {
	if p.janitor {
		return
	}
	p.janitor = true
	every := min(max(p.idle/4, 10*time.Millisecond), 30*time.Second)
	go func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				return
			case now := <-tick.C:
				p.closeIdle(now)
			}
		}
	}()
}

// closeIdle closes the connections nobody has used for the idle timeout.
func (p *pool) closeIdle(now time.Time) {
	var idle []*conn
	p.mu.Lock()
	for k, c := range p.conns {
		select {
		case <-c.ready:
		default:
			continue
		}
		if c.users == 0 && now.Sub(c.lastUsed) >= p.idle {
			delete(p.conns, k)
			idle = append(idle, c)
		}
	}
	p.mu.Unlock()
	for _, c := range idle {
		c.closeWhenReady()
	}
}

// openConnections is how many connections the pool holds (open or opening).
func (p *pool) openConnections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}
