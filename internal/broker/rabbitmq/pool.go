package rabbitmq

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

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

// errPoolFull: the type holds MaxConnections connections already.
var errPoolFull = errors.New("connection limit reached")

// errChannelsFull: one connection has maxChannels attempts in flight already.
var errChannelsFull = errors.New("channel limit reached")

// errBlocked: the broker blocks publishing (connection.blocked: a resource alarm).
var errBlocked = errors.New("broker blocks publishing")

// errTypeClosed: the Type was closed (the node is shutting down).
var errTypeClosed = errors.New("destination type closed")

// poolKey identifies a shared connection: address, vhost, user, password and which dialer.
// The password is hashed so that the key, which may show up in a debugger, does not hold it.
func poolKey(u parsedURL, user, password string, internal bool) string {
	h := sha256.Sum256([]byte(password))
	return fmt.Sprintf("%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%t", u.scheme, u.host, u.port, u.vhost, user, hex.EncodeToString(h[:]), internal)
}

// pooled is one shared broker connection (dialled when first needed, re-dialled after it is
// lost) and its idle confirm channels. Entries stay in the Type's map for its life; only their
// connection comes and goes.
type pooled struct {
	t        *Type
	url      parsedURL
	user     string
	password string
	dial     destination.Dialer

	mu       sync.Mutex
	conn     *amqp.Connection // nil when not connected
	round    *dialRound       // non-nil while a dial is in progress
	free     []*confirmChannel
	busy     int          // channels checked out by attempts
	blocked  *atomic.Bool // the live connection's connection.blocked state
	lastUsed time.Time
}

// dialRound is one dial that every attempt arriving meanwhile waits for.
type dialRound struct {
	done chan struct{}
	err  error
}

// confirmChannel is a channel in confirm mode, used by one attempt at a time: its confirms and
// returns belong to that attempt alone, which is how they are correlated.
type confirmChannel struct {
	conn    *amqp.Connection
	ch      *amqp.Channel
	returns chan amqp.Return
	closes  chan *amqp.Error
}

// connection returns the live connection, dialling one (shared by every waiting attempt) if
// there is none or the last one was lost.
func (p *pooled) connection(ctx context.Context) (*amqp.Connection, error) {
	p.mu.Lock()
	if p.conn != nil && !p.conn.IsClosed() {
		c := p.conn
		p.lastUsed = time.Now()
		p.mu.Unlock()
		return c, nil
	}
	if p.conn != nil {
		p.dropLocked()
	}
	r := p.round
	if r == nil {
		if err := p.t.reserve(); err != nil {
			p.mu.Unlock()
			return nil, err
		}
		r = &dialRound{done: make(chan struct{})}
		p.round = r
		go p.dialRound(context.WithoutCancel(ctx), r)
	}
	p.mu.Unlock()

	select {
	case <-r.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("connect to %s: %w", p.url.address(), ctx.Err())
	}
	if r.err != nil {
		return nil, r.err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil || p.conn.IsClosed() {
		return nil, fmt.Errorf("connect to %s: %w", p.url.address(), amqp.ErrClosed)
	}
	p.lastUsed = time.Now()
	return p.conn, nil
}

func (p *pooled) dialRound(ctx context.Context, r *dialRound) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	c, err := p.connect(ctx)

	p.mu.Lock()
	defer p.mu.Unlock()
	defer close(r.done)
	p.round = nil
	if err != nil {
		r.err = err
		p.t.release()
		return
	}
	if p.t.isClosed() {
		_ = c.Close()
		p.t.release()
		r.err = errTypeClosed
		return
	}
	p.conn = c
	p.lastUsed = time.Now()
	// The broker blocks publishing connections under a resource alarm (memory or disk): while
	// it does, attempts fail fast as broker_busy instead of waiting out their timeout. The
	// notification channel is closed with the connection, which ends the goroutine.
	state := new(atomic.Bool)
	p.blocked = state
	blocked := c.NotifyBlocked(make(chan amqp.Blocking, 4))
	go func() {
		for b := range blocked {
			state.Store(b.Active)
			if b.Active {
				p.t.log.Warn("rabbitmq blocks publishing", "address", p.url.address(), "reason", b.Reason)
			}
		}
	}()
	p.t.log.Debug("rabbitmq connected", "address", p.url.address(), "vhost", p.url.vhost)
}

// connect dials the pool's connection.
func (p *pooled) connect(ctx context.Context) (*amqp.Connection, error) {
	return dialAMQP(ctx, p.dial, p.url, p.user, p.password, "herald")
}

// dialAMQP opens a connection through the guarded dialer, for a destination's pool or a
// source's consumer: amqp091 calls Config.Dial for the TCP connection, then does TLS (amqps)
// and the AMQP handshake over it, all within ctx's deadline. name is the connection_name the
// broker shows (management UI, rabbitmqctl list_connections).
func dialAMQP(ctx context.Context, dial destination.Dialer, u parsedURL, user, password, name string) (*amqp.Connection, error) {
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

// dropLocked forgets a lost (or idle) connection: its channels are discarded and its slot in the
// Type's limit freed. The caller holds p.mu.
func (p *pooled) dropLocked() {
	if p.conn == nil {
		return
	}
	_ = p.conn.Close() // a no-op if the broker already closed it
	p.conn = nil
	p.free = nil
	p.t.release()
}

// channel checks out a confirm channel of the live connection.
func (p *pooled) channel(ctx context.Context) (*confirmChannel, error) {
	c, err := p.connection(ctx)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	if p.blocked != nil && p.blocked.Load() {
		p.mu.Unlock()
		return nil, errBlocked
	}
	if p.busy >= maxChannels {
		p.mu.Unlock()
		return nil, errChannelsFull
	}
	p.busy++
	var stale []*confirmChannel
	var cc *confirmChannel
	for len(p.free) > 0 {
		x := p.free[len(p.free)-1]
		p.free = p.free[:len(p.free)-1]
		if x.conn == c && !x.ch.IsClosed() {
			cc = x
			break
		}
		stale = append(stale, x)
	}
	p.mu.Unlock()
	for _, x := range stale {
		_ = x.ch.Close()
	}
	if cc != nil {
		return cc, nil
	}
	cc, err = openConfirmChannel(c)
	if err != nil {
		p.mu.Lock()
		p.busy--
		p.mu.Unlock()
		return nil, fmt.Errorf("open a channel to %s: %w", p.url.address(), err)
	}
	return cc, nil
}

func openConfirmChannel(c *amqp.Connection) (*confirmChannel, error) {
	ch, err := c.Channel()
	if err != nil {
		return nil, err
	}
	cc := &confirmChannel{
		conn:    c,
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
func (p *pooled) put(cc *confirmChannel, reusable bool) {
	p.mu.Lock()
	p.busy--
	p.lastUsed = time.Now()
	if reusable && cc.conn == p.conn && !cc.ch.IsClosed() && len(p.free) < maxIdleChannels {
		p.free = append(p.free, cc)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	_ = cc.ch.Close()
}

// closeIdle closes the connection if no attempt has used it for idle (or it is lost), and
// reports whether it did.
func (p *pooled) closeIdle(now time.Time, idle time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil || p.busy > 0 {
		return false
	}
	if p.conn.IsClosed() || now.Sub(p.lastUsed) >= idle {
		p.dropLocked()
		return true
	}
	return false
}

func (p *pooled) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropLocked()
}

// connected reports whether the entry holds a live connection (for tests).
func (p *pooled) connected() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conn != nil && !p.conn.IsClosed()
}
