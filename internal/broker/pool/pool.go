// Package pool holds the connections of the broker types (internal/broker/*): one per key (a
// broker's address, credentials and network), shared by every endpoint and source that uses the
// same broker, opened once whatever the number of callers waiting for it, replaced when it is
// lost, closed when no one has used it for a while, and bounded in number. Each broker type keeps
// what is its own (how to dial, what "lost" means, how a failure reads); the bookkeeping is here,
// once.
package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrFull is returned by Get when the pool holds its limit of connections, all in use: the
// caller's attempt is a retryable "broker busy", never an unbounded dial.
var ErrFull = errors.New("connection limit reached")

// ErrClosed is returned by Get after Close.
var ErrClosed = errors.New("pool closed")

// Config is what a pool of C keyed by K needs.
type Config[K, C comparable] struct {
	// Open connects for key. It runs in a goroutine of its own, with a context that ends when the
	// pool closes (not with a caller's: a caller giving up must not cut a connect others wait
	// for); it should bound itself (a dial timeout).
	Open func(ctx context.Context, key K) (C, error)
	// Close closes a connection the pool no longer holds. It may be called while Open's result
	// is still in use by a caller that got it before: a broker type's connection must fail
	// cleanly then.
	Close func(C)
	// Broken, if set, reports a connection that can no longer be used (closed by the broker): Get
	// replaces it.
	Broken func(C) bool
	// Max bounds the connections held at once (default 256). IdleTimeout closes one no caller has
	// used for that long (default 5 minutes).
	Max         int
	IdleTimeout time.Duration
}

// Pool holds connections by key. It is safe for concurrent use.
type Pool[K, C comparable] struct {
	cfg     Config[K, C]
	base    context.Context
	cancel  context.CancelFunc
	mu      sync.Mutex
	entries map[K]*entry[C]
	closed  bool
	janitor bool // a janitor goroutine runs
	wg      sync.WaitGroup
}

type entry[C any] struct {
	ready    chan struct{} // closed when Open returned
	conn     C
	err      error
	users    int
	lastUsed time.Time
}

// New returns an empty pool.
func New[K, C comparable](cfg Config[K, C]) *Pool[K, C] {
	if cfg.Max <= 0 {
		cfg.Max = 256
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 5 * time.Minute
	}
	base, cancel := context.WithCancel(context.Background())
	return &Pool[K, C]{cfg: cfg, base: base, cancel: cancel, entries: map[K]*entry[C]{}}
}

// Get returns key's connection, opening it if the pool has none (or only a broken one), and
// waiting within ctx for an open in progress. put must be called once the caller is done with
// the connection (it then counts as idle from that moment). The error is ErrFull, ErrClosed,
// ctx's, or Open's (wrapped).
func (p *Pool[K, C]) Get(ctx context.Context, key K) (conn C, put func(), err error) {
	var zero C
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return zero, nil, ErrClosed
	}
	e := p.entries[key]
	if e != nil && p.brokenLocked(e) {
		p.dropLocked(key, e)
		e = nil
	}
	if e == nil {
		if len(p.entries) >= p.cfg.Max && !p.evictIdleLocked() {
			p.mu.Unlock()
			return zero, nil, fmt.Errorf("%w (%d)", ErrFull, p.cfg.Max)
		}
		e = &entry[C]{ready: make(chan struct{})}
		p.entries[key] = e
		p.startJanitorLocked()
		p.wg.Add(1)
		go p.open(key, e)
	}
	e.users++
	p.mu.Unlock()

	select {
	case <-e.ready:
	case <-ctx.Done():
		p.put(e)
		return zero, nil, ctx.Err()
	}
	if e.err != nil {
		p.put(e)
		return zero, nil, e.err
	}
	var once sync.Once
	return e.conn, func() { once.Do(func() { p.put(e) }) }, nil
}

// Discard drops key's connection if it is still conn (the caller found it lost) and closes it,
// so that the next Get opens a new one.
func (p *Pool[K, C]) Discard(key K, conn C) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.entries[key]; e != nil && isReady(e) && e.err == nil && e.conn == conn {
		p.dropLocked(key, e)
	}
}

// EvictIdle closes, before returning, the connection unused for longest among those no caller
// holds, and reports whether there was one. It is for a broker type whose connection C holds
// several network connections (a client with its own pool) and counts them against a bound of
// its own: at that bound it makes room the way Get does at Max.
func (p *Pool[K, C]) EvictIdle() bool {
	p.mu.Lock()
	k, e := p.oldestIdleLocked()
	if e == nil {
		p.mu.Unlock()
		return false
	}
	delete(p.entries, k)
	p.mu.Unlock()
	if e.err == nil {
		p.cfg.Close(e.conn)
	}
	return true
}

// Len is how many connections the pool holds (opening or open).
func (p *Pool[K, C]) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.entries)
}

// Close closes every connection, ends opens in progress, and makes Get fail with ErrClosed.
func (p *Pool[K, C]) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	all := p.entries
	p.entries = map[K]*entry[C]{}
	p.mu.Unlock()
	p.cancel()
	for _, e := range all {
		p.closeWhenReady(e)
	}
	p.wg.Wait()
}

func (p *Pool[K, C]) open(key K, e *entry[C]) {
	defer p.wg.Done()
	conn, err := p.cfg.Open(p.base, key)
	p.mu.Lock()
	e.conn, e.err, e.lastUsed = conn, err, time.Now()
	close(e.ready)
	if err != nil && p.entries[key] == e {
		delete(p.entries, key) // the next Get tries again
	}
	p.mu.Unlock()
}

func (p *Pool[K, C]) put(e *entry[C]) {
	p.mu.Lock()
	e.users--
	e.lastUsed = time.Now()
	p.mu.Unlock()
}

func isReady[C any](e *entry[C]) bool {
	select {
	case <-e.ready:
		return true
	default:
		return false
	}
}

// brokenLocked reports an entry whose open finished and whose connection cannot be used.
func (p *Pool[K, C]) brokenLocked(e *entry[C]) bool {
	if !isReady(e) {
		return false
	}
	return e.err != nil || (p.cfg.Broken != nil && p.cfg.Broken(e.conn))
}

// dropLocked removes e from the pool and closes its connection (once its open finished).
func (p *Pool[K, C]) dropLocked(key K, e *entry[C]) {
	if p.entries[key] == e {
		delete(p.entries, key)
	}
	p.closeWhenReady(e)
}

func (p *Pool[K, C]) closeWhenReady(e *entry[C]) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		<-e.ready
		if e.err == nil {
			p.cfg.Close(e.conn)
		}
	}()
}

// evictIdleLocked closes the connection unused for longest among those no caller holds, to make
// room; false if every connection is in use.
func (p *Pool[K, C]) evictIdleLocked() bool {
	k, e := p.oldestIdleLocked()
	if e == nil {
		return false
	}
	p.dropLocked(k, e)
	return true
}

// oldestIdleLocked is the entry unused for longest among those no caller holds, or nil.
func (p *Pool[K, C]) oldestIdleLocked() (K, *entry[C]) {
	var oldestKey K
	var oldest *entry[C]
	for k, e := range p.entries {
		if e.users == 0 && isReady(e) && (oldest == nil || e.lastUsed.Before(oldest.lastUsed)) {
			oldestKey, oldest = k, e
		}
	}
	return oldestKey, oldest
}

// startJanitorLocked starts the goroutine that closes idle connections, while the pool holds any.
func (p *Pool[K, C]) startJanitorLocked() {
	if p.janitor {
		return
	}
	p.janitor = true
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(max(p.cfg.IdleTimeout/4, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-p.base.Done():
				return
			case <-t.C:
			}
			p.mu.Lock()
			now := time.Now()
			for k, e := range p.entries {
				if e.users == 0 && isReady(e) && now.Sub(e.lastUsed) >= p.cfg.IdleTimeout {
					p.dropLocked(k, e)
				}
			}
			if len(p.entries) == 0 {
				p.janitor = false
				p.mu.Unlock()
				return
			}
			p.mu.Unlock()
		}
	}()
}
