package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/heraldhq/herald/internal/broker/pool"
	"github.com/heraldhq/herald/internal/destination"
)

const (
	// dialTimeout bounds one connection attempt (TCP, TLS and the AMQP handshake). The dial runs
	// on behalf of every attempt waiting for the connection, so it is not bound to any one
	// attempt's context; each attempt stops waiting at its own deadline.
	dialTimeout = 30 * time.Second
	// maxInFlight is how many messages one channel carries unconfirmed at once: a batch larger
	// than this is published in chunks. It is also the capacity of a channel's return buffer, so
	// the connection's reader never waits on us.
	maxInFlight = 256
	// maxIdleChannels is how many confirm channels a connection keeps open between attempts.
	maxIdleChannels = 64
	// maxChannels bounds the channels one connection has checked out at once (RabbitMQ's
	// default channel_max is 2047); an attempt over it is Retryable broker_busy.
	maxChannels = 1024
)

// errChannelsFull: one connection has maxChannels attempts in flight already.
var errChannelsFull = errors.New("channel limit reached")

// errBlocked: the broker blocks publishing (connection.blocked: a resource alarm).
var errBlocked = errors.New("broker blocks publishing")

// connKey identifies a shared connection: address, vhost, credentials and which dialer. It is
// what the pool dials with (so it holds the password: it is never logged nor put in an error).
type connKey struct {
	url            parsedURL
	user, password string
	internal       bool
}

// conns are the destination's connections, held by the shared broker pool (internal/broker/pool):
// one per connKey, shared by every endpoint that points there, bounded, closed when idle,
// re-dialled by the next attempt after one is lost.
type conns = pool.Pool[connKey, *amqpConn]

func newConns(env destination.Env, log *slog.Logger) *conns {
	return pool.New(pool.Config[connKey, *amqpConn]{
		Open: func(ctx context.Context, k connKey) (*amqpConn, error) {
			ctx, cancel := context.WithTimeout(ctx, dialTimeout)
			defer cancel()
			c, err := dialAMQP(ctx, env.DialerFor(k.internal), k.url, k.user, k.password, "herald")
			if err != nil {
				return nil, err
			}
			log.Debug("rabbitmq connected", "address", k.url.address(), "vhost", k.url.vhost)
			return newAMQPConn(c, k, log), nil
		},
		Close:       func(c *amqpConn) { _ = c.conn.Close() }, // a no-op if the broker closed it
		Broken:      func(c *amqpConn) bool { return c.conn.IsClosed() },
		Max:         env.MaxConnections,
		IdleTimeout: env.IdleTimeout,
	})
}

// amqpConn is one broker connection and its idle confirm channels.
type amqpConn struct {
	conn    *amqp.Connection
	blocked atomic.Bool // the connection's connection.blocked state

	mu   sync.Mutex
	free []*confirmChannel
	busy int // channels checked out by attempts
}

func newAMQPConn(c *amqp.Connection, k connKey, log *slog.Logger) *amqpConn {
	ac := &amqpConn{conn: c}
	// The broker blocks publishing connections under a resource alarm (memory or disk): while
	// it does, attempts fail fast as broker_busy instead of waiting out their timeout. The
	// notification channel is closed with the connection, which ends the goroutine.
	blocked := c.NotifyBlocked(make(chan amqp.Blocking, 4))
	go func() {
		for b := range blocked {
			ac.blocked.Store(b.Active)
			if b.Active {
				log.Warn("rabbitmq blocks publishing", "address", k.url.address(), "reason", b.Reason)
			}
		}
	}()
	return ac
}

// confirmChannel is a channel in confirm mode, used by one attempt at a time: its confirms and
// returns belong to that attempt alone, which is how they are correlated.
type confirmChannel struct {
	ch      *amqp.Channel
	returns chan amqp.Return
	closes  chan *amqp.Error
}

// dialAMQP opens a connection through the guarded dialer, for a destination's pool or a
// source's consumer: amqp091 calls Config.Dial for the TCP connection, then does TLS (amqps)
// and the AMQP handshake over it, all within ctx's deadline. name is the connection_name the
// broker shows (management UI, rabbitmqctl list_connections).
func dialAMQP(ctx context.Context, dial destination.Dialer, u parsedURL, user, password, name string) (*amqp.Connection, error) {
	if dial == nil {
		return nil, errNoDialer
	}
	cfg := amqp.Config{
		SASL:       []amqp.Authentication{&amqp.PlainAuth{Username: user, Password: password}},
		Vhost:      u.vhost,
		Heartbeat:  10 * time.Second,
		Properties: amqp.Table{"product": "Herald", "connection_name": name},
		Dial: func(network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// The handshake's deadline (amqp091 clears it once the connection is open).
			deadline, _ := ctx.Deadline()
			if err := c.SetDeadline(deadline); err != nil {
				_ = c.Close()
				return nil, err
			}
			return c, nil
		},
	}
	// amqps: amqp091 builds the default TLS configuration (system roots, ServerName = host).
	c, err := amqp.DialConfig(u.dialURL(), cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", u.address(), err)
	}
	return c, nil
}

// channel checks out a confirm channel of the connection.
func (c *amqpConn) channel() (*confirmChannel, error) {
	if c.blocked.Load() {
		return nil, errBlocked
	}
	c.mu.Lock()
	if c.busy >= maxChannels {
		c.mu.Unlock()
		return nil, errChannelsFull
	}
	c.busy++
	var stale []*confirmChannel
	var cc *confirmChannel
	for len(c.free) > 0 {
		x := c.free[len(c.free)-1]
		c.free = c.free[:len(c.free)-1]
		if !x.ch.IsClosed() {
			cc = x
			break
		}
		stale = append(stale, x)
	}
	c.mu.Unlock()
	for _, x := range stale {
		_ = x.ch.Close()
	}
	if cc != nil {
		return cc, nil
	}
	cc, err := openConfirmChannel(c.conn)
	if err != nil {
		c.mu.Lock()
		c.busy--
		c.mu.Unlock()
		return nil, err
	}
	return cc, nil
}

func openConfirmChannel(c *amqp.Connection) (*confirmChannel, error) {
	ch, err := c.Channel()
	if err != nil {
		return nil, err
	}
	cc := &confirmChannel{
		ch:      ch,
		returns: ch.NotifyReturn(make(chan amqp.Return, maxInFlight)),
		closes:  ch.NotifyClose(make(chan *amqp.Error, 1)),
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, err
	}
	return cc, nil
}

// put returns a channel after an attempt. A channel whose state is uncertain (the attempt was
// abandoned with messages unconfirmed, or the broker closed it) is closed instead of reused, so
// that a late confirm or return can never be taken for another attempt's.
func (c *amqpConn) put(cc *confirmChannel, reusable bool) {
	c.mu.Lock()
	c.busy--
	if reusable && !cc.ch.IsClosed() && len(c.free) < maxIdleChannels {
		c.free = append(c.free, cc)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	_ = cc.ch.Close()
}
