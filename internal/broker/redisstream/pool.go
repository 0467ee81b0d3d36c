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

	brokerpool "github.com/heraldhq/herald/internal/broker/pool"
	"github.com/heraldhq/herald/internal/destination"
)

// poolKey identifies the connections senders may share: one go-redis client per broker address,
// database, credentials and dialer.
type poolKey struct {
	address, username, password string
	db                          int
	tls, internal               bool
}

// entry is one pooled go-redis client (which holds connections of its own, re-dialled by
// go-redis when lost) and what it learnt of its server.
type entry struct {
	key    poolKey
	client *redis.Client
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

// pool holds the type's clients in the shared broker pool (internal/broker/pool: one per key,
// shared, closed when idle, bounded, closed all by close) and counts the network connections
// they hold open together, which is Redis's own part: a client opens several, every one dialled
// through dial, which takes one of max slots and gives it back when the connection is closed.
type pool struct {
	env     destination.Env
	max     int
	idle    time.Duration
	clients *brokerpool.Pool[poolKey, *entry]

	mu   sync.Mutex
	open int // connections open over all clients
}

func newPool(env destination.Env) *pool {
	p := &pool{env: env, max: env.MaxConnections, idle: env.IdleTimeout}
	if p.max <= 0 {
		p.max = destination.DefaultMaxConnections
	}
	if p.idle <= 0 {
		p.idle = destination.DefaultIdleTimeout
	}
	p.clients = brokerpool.New(brokerpool.Config[poolKey, *entry]{
		// A client connects at its first command: creating it does no I/O.
		Open: func(_ context.Context, k poolKey) (*entry, error) {
			e := &entry{key: k}
			e.client = redis.NewClient(p.options(e))
			return e, nil
		},
		Close:       func(e *entry) { _ = e.client.Close() }, // gives its connections' slots back
		Max:         p.max,
		IdleTimeout: p.idle,
	})
	return p
}

// lease returns the client for k, creating it if needed, in use until put is called.
func (p *pool) lease(ctx context.Context, k poolKey) (*entry, func(), error) {
	e, put, err := p.clients.Get(ctx, k)
	switch {
	case errors.Is(err, brokerpool.ErrClosed):
		return nil, nil, errTypeClosed
	case errors.Is(err, brokerpool.ErrFull):
		return nil, nil, &errConnLimit{max: p.max}
	case err != nil:
		return nil, nil, err
	}
	return e, put, nil
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
	dial := p.env.DialerFor(k.internal)
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dial == nil {
			return nil, errors.New("no dialer configured for redis connections")
		}
		if !p.take() {
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

// take reserves a connection slot; at the bound it first closes idle clients, least recently
// used first (never the caller's: it is in use).
func (p *pool) take() bool {
	for {
		p.mu.Lock()
		if p.open < p.max {
			p.open++
			p.mu.Unlock()
			return true
		}
		p.mu.Unlock()
		if !p.clients.EvictIdle() {
			return false
		}
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

// close closes every client; leases fail afterwards.
func (p *pool) close() error {
	p.clients.Close()
	return nil
}

// stats are the pool's counts, for tests and metrics.
func (p *pool) stats() (clients, open int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.clients.Len(), p.open
}
