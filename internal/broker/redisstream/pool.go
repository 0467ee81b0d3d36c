package redisstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/heraldhq/herald/internal/destination"
)

// poolKey identifies the connections senders may share: one go-redis client per broker address,
// database, credentials and dialer.
type poolKey struct {
	address, username, password string
	db                          int
	tls, internal               bool
}

// entry is one pooled client with its use: a client is closed by the janitor only when no send
// holds it and it has been idle for the type's idle timeout.
type entry struct {
	key      poolKey
	client   *redis.Client
	inflight int
	lastUsed time.Time
	// maxBulk is the server's proto-max-bulk-len (its largest value) as read on the last
	// connection made, or 0 when the server would not say (CONFIG denied or renamed).
	maxBulk atomic.Int64
	// asked is set once a connection has asked the server for its limit.
	asked atomic.Bool
}

// errConnLimit is the dial refused because the node's connections to Redis are at their bound.
type errConnLimit struct{ max int }

func (e *errConnLimit) Error() string {
	return fmt.Sprintf("the node's limit of %d open Redis connections is reached", e.max)
}

// pool holds the type's clients and counts the connections they hold open together: every
// connection is dialled through dial, which takes one of max slots and gives it back when the
// connection is closed.
type pool struct {
	env  destination.Env
	max  int
	idle time.Duration

	mu      sync.Mutex
	clients map[poolKey]*entry
	open    int // connections open over all clients
	closed  bool

	stop chan struct{}
	done chan struct{}
}

func newPool(env destination.Env) *pool {
	p := &pool{
		env:     env,
		max:     env.MaxConnections,
		idle:    env.IdleTimeout,
		clients: map[poolKey]*entry{},
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if p.max <= 0 {
		p.max = destination.DefaultMaxConnections
	}
	if p.idle <= 0 {
		p.idle = destination.DefaultIdleTimeout
	}
	go p.janitor()
	return p
}

// lease returns the client for k, creating it if needed, and marks it in use until release.
func (p *pool) lease(k poolKey) (*entry, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errTypeClosed
	}
	e := p.clients[k]
	if e == nil {
		e = &entry{key: k}
		e.client = redis.NewClient(p.options(e))
		p.clients[k] = e
	}
	e.inflight++
	e.lastUsed = time.Now()
	return e, nil
}

func (p *pool) release(e *entry) {
	p.mu.Lock()
	e.inflight--
	e.lastUsed = time.Now()
	p.mu.Unlock()
}

var errTypeClosed = errors.New("the node's redis connections are closed (the node is shutting down)")

// options are the go-redis settings of one client. The per-client bound is the node's bound:
// the dialer's shared count keeps the total under it whatever the number of clients, and an idle
// client gives its connections back (evictIdle) when another needs one.
func (p *pool) options(e *entry) *redis.Options {
	k := e.key
	size := min(p.max, 10*runtime.GOMAXPROCS(0))
	return &redis.Options{
		Addr:                  k.address,
		Username:              k.username,
		Password:              k.password,
		DB:                    k.db,
		Protocol:              2, // no HELLO: works with every server that has streams (5.0+)
		Dialer:                p.dialer(k),
		DialerRetries:         1, // one dial per attempt: the dispatcher's schedule does the retrying
		MaxRetries:            1, // one retry on a stale pooled connection (broker restarted)
		ContextTimeoutEnabled: true,
		PoolSize:              size,
		MaxIdleConns:          size,
		MaxActiveConns:        p.max,
		PipelinePoolSize:      -1, // pipelines share the main pool, so MaxActiveConns bounds them too
		ConnMaxIdleTime:       p.idle,
		DisableIdentity:       true,
		// A message larger than the server's limit is refused by a reset of the connection in
		// the middle of the write, which looks like a lost connection. Knowing the limit (when
		// the user may read it) turns it into the permanent failure it is, without sending.
		OnConnect: func(ctx context.Context, cn *redis.Conn) error {
			defer e.asked.Store(true)
			v, err := cn.ConfigGet(ctx, "proto-max-bulk-len").Result()
			if err == nil {
				if n, err := strconv.ParseInt(v["proto-max-bulk-len"], 10, 64); err == nil && n > 0 {
					e.maxBulk.Store(n)
				}
			}
			return nil // an error here (CONFIG not allowed) must not fail the connection
		},
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	}
}

// dialer opens every connection of a client through the node's guarded dialer, counted against
// the node's bound, with TLS on top when the endpoint asks for it.
func (p *pool) dialer(k poolKey) func(ctx context.Context, network, addr string) (net.Conn, error) {
	dial := p.env.Dial
	if k.internal {
		dial = p.env.InternalDial
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dial == nil {
			return nil, errors.New("no dialer configured for redis connections")
		}
		if !p.take(k) {
			return nil, &errConnLimit{max: p.max}
		}
		c, err := dial(ctx, network, addr)
		if err != nil {
			p.give()
			return nil, err
		}
		if k.tls {
			host, _, _ := net.SplitHostPort(addr)
			tc := tls.Client(c, &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12})
			if err := tc.HandshakeContext(ctx); err != nil {
				_ = c.Close()
				p.give()
				return nil, fmt.Errorf("tls handshake with %s: %w", addr, err)
			}
			c = tc
		}
		return &countedConn{Conn: c, p: p}, nil
	}
}

// take reserves a connection slot; at the bound it first closes idle clients other than k's,
// least recently used first.
func (p *pool) take(k poolKey) bool {
	for {
		var victim *entry
		p.mu.Lock()
		if p.open < p.max {
			p.open++
			p.mu.Unlock()
			return true
		}
		for _, e := range p.clients {
			if e.key != k && e.inflight == 0 && (victim == nil || e.lastUsed.Before(victim.lastUsed)) {
				victim = e
			}
		}
		if victim != nil {
			delete(p.clients, victim.key)
		}
		p.mu.Unlock()
		if victim == nil {
			return false
		}
		_ = victim.client.Close() // gives its connections' slots back
	}
}

func (p *pool) give() {
	p.mu.Lock()
	p.open--
	p.mu.Unlock()
}

// countedConn gives its slot back once, when closed.
type countedConn struct {
	net.Conn
	p    *pool
	once sync.Once
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.p.give)
	return err
}

// janitor closes the clients no sender has used for the idle timeout.
func (p *pool) janitor() {
	defer close(p.done)
	every := max(p.idle/4, 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			var idle []*entry
			p.mu.Lock()
			for k, e := range p.clients {
				if e.inflight == 0 && now.Sub(e.lastUsed) >= p.idle {
					idle = append(idle, e)
					delete(p.clients, k)
				}
			}
			p.mu.Unlock()
			for _, e := range idle {
				_ = e.client.Close()
			}
		}
	}
}

// close closes every client; leases fail afterwards.
func (p *pool) close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	all := p.clients
	p.clients = map[poolKey]*entry{}
	p.mu.Unlock()
	close(p.stop)
	<-p.done
	var errs []error
	for _, e := range all {
		if err := e.client.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
			errs = append(errs, fmt.Errorf("close redis client for %s: %w", e.key.address, err))
		}
	}
	return errors.Join(errs...)
}

// stats are the pool's counts, for tests and metrics.
func (p *pool) stats() (clients, open int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.clients), p.open
}
