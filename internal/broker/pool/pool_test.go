package pool_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/broker/pool"
)

// fakeConn stands for a broker connection: the pool only opens, shares and closes it.
type fakeConn struct {
	key    string
	closed atomic.Bool
	lost   atomic.Bool
}

type opener struct {
	opens  atomic.Int64
	closes atomic.Int64
	delay  time.Duration
	fail   atomic.Bool
}

func (o *opener) config(max int, idle time.Duration) pool.Config[string, *fakeConn] {
	return pool.Config[string, *fakeConn]{
		Open: func(ctx context.Context, key string) (*fakeConn, error) {
			o.opens.Add(1)
			select {
			case <-time.After(o.delay):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if o.fail.Load() {
				return nil, errors.New("connection refused")
			}
			return &fakeConn{key: key}, nil
		},
		Close:  func(c *fakeConn) { c.closed.Store(true); o.closes.Add(1) },
		Broken: func(c *fakeConn) bool { return c.lost.Load() },
		Max:    max, IdleTimeout: idle,
	}
}

func TestGet_OneOpenPerKeyWhateverTheCallers(t *testing.T) {
	o := &opener{delay: 50 * time.Millisecond}
	p := pool.New(o.config(4, time.Minute))
	defer p.Close()
	var wg sync.WaitGroup
	conns := make([]*fakeConn, 40)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, put, err := p.Get(context.Background(), "a")
			if err != nil {
				t.Error(err)
				return
			}
			conns[i] = c
			put()
		}()
	}
	wg.Wait()
	if o.opens.Load() != 1 || p.Len() != 1 {
		t.Fatalf("%d opens, %d held, want 1 and 1", o.opens.Load(), p.Len())
	}
	for _, c := range conns {
		if c != conns[0] {
			t.Fatal("callers got different connections for one key")
		}
	}
}

func TestGet_LimitEvictsIdleThenRefuses(t *testing.T) {
	o := &opener{}
	p := pool.New(o.config(2, time.Minute))
	defer p.Close()
	ctx := context.Background()
	a, putA, err := p.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	putA() // a is idle now
	_, putB, err := p.Get(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	defer putB()
	// Full, but a is idle: it makes room.
	_, putC, err := p.Get(ctx, "c")
	if err != nil {
		t.Fatalf("with an idle connection to evict: %v", err)
	}
	defer putC()
	deadline := time.Now().Add(5 * time.Second)
	for !a.closed.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the evicted idle connection was not closed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Full and every connection in use: refused, nothing opened.
	opens := o.opens.Load()
	if _, _, err := p.Get(ctx, "d"); !errors.Is(err, pool.ErrFull) {
		t.Fatalf("Get over the limit = %v, want ErrFull", err)
	}
	if o.opens.Load() != opens || p.Len() != 2 {
		t.Fatalf("over the limit: %d opens (was %d), %d held", o.opens.Load(), opens, p.Len())
	}
}

func TestGet_IdleConnectionsAreClosed(t *testing.T) {
	o := &opener{}
	p := pool.New(o.config(4, 50*time.Millisecond))
	defer p.Close()
	c, put, err := p.Get(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	held, putHeld, err := p.Get(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	put()
	deadline := time.Now().Add(5 * time.Second)
	for !c.closed.Load() || p.Len() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("idle connection still open (%d held)", p.Len())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if held.closed.Load() {
		t.Fatal("a connection in use was closed as idle")
	}
	putHeld()
}

func TestGet_FailedOpenIsTriedAgain(t *testing.T) {
	o := &opener{}
	o.fail.Store(true)
	p := pool.New(o.config(4, time.Minute))
	defer p.Close()
	if _, _, err := p.Get(context.Background(), "a"); err == nil || err.Error() != "connection refused" {
		t.Fatalf("Get while the broker refuses = %v", err)
	}
	if p.Len() != 0 {
		t.Fatalf("a failed open is held: %d", p.Len())
	}
	o.fail.Store(false)
	if _, put, err := p.Get(context.Background(), "a"); err != nil {
		t.Fatalf("Get once the broker is back = %v", err)
	} else {
		put()
	}
	if o.opens.Load() != 2 {
		t.Fatalf("%d opens, want 2", o.opens.Load())
	}
}

func TestGet_LostConnectionsAreReplaced(t *testing.T) {
	o := &opener{}
	p := pool.New(o.config(4, time.Minute))
	defer p.Close()
	ctx := context.Background()
	c1, put, _ := p.Get(ctx, "a")
	put()
	c1.lost.Store(true) // the broker closed it
	c2, put, err := p.Get(ctx, "a")
	if err != nil || c2 == c1 {
		t.Fatalf("Get after the connection was lost = %v (same: %v)", err, c2 == c1)
	}
	put()
	// A caller that finds its connection lost discards it.
	p.Discard("a", c2)
	c3, put, err := p.Get(ctx, "a")
	if err != nil || c3 == c2 {
		t.Fatalf("Get after Discard = %v (same: %v)", err, c3 == c2)
	}
	put()
	deadline := time.Now().Add(5 * time.Second)
	for !c1.closed.Load() || !c2.closed.Load() {
		if time.Now().After(deadline) {
			t.Fatal("replaced connections were not closed")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestGet_CallerGivingUpDoesNotCutTheOpen(t *testing.T) {
	o := &opener{delay: 200 * time.Millisecond}
	p := pool.New(o.config(4, time.Minute))
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, _, err := p.Get(ctx, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get past its deadline = %v", err)
	}
	c, put, err := p.Get(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	put()
	if o.opens.Load() != 1 || c == nil {
		t.Fatalf("%d opens, want the first one to have gone on", o.opens.Load())
	}
}

func TestClose_ClosesEverythingAndRefusesAfter(t *testing.T) {
	o := &opener{delay: time.Hour} // an open in progress, ended by Close
	p := pool.New(o.config(4, time.Minute))
	o2 := &opener{}
	p2 := pool.New(o2.config(4, time.Minute))
	c, put, err := p2.Get(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	put()
	go func() { _, _, _ = p.Get(context.Background(), "slow") }()
	for o.opens.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	done := make(chan struct{})
	go func() { p.Close(); p2.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for an open in progress")
	}
	if !c.closed.Load() {
		t.Fatal("Close left a connection open")
	}
	if _, _, err := p2.Get(context.Background(), "a"); !errors.Is(err, pool.ErrClosed) {
		t.Fatalf("Get after Close = %v", err)
	}
}

func TestEvictIdle_ClosesTheOldestUnheldOnly(t *testing.T) {
	o := &opener{}
	p := pool.New(o.config(4, time.Hour))
	defer p.Close()
	ctx := context.Background()
	a, putA, err := p.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	putA()
	b, putB, err := p.Get(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	putB()
	held, putHeld, err := p.Get(ctx, "held")
	if err != nil {
		t.Fatal(err)
	}
	defer putHeld()

	if !p.EvictIdle() {
		t.Fatal("EvictIdle with idle connections: false")
	}
	if !a.closed.Load() || b.closed.Load() {
		t.Fatalf("after one EvictIdle: a closed %v, b closed %v; want the oldest (a) closed, before it returns", a.closed.Load(), b.closed.Load())
	}
	if !p.EvictIdle() || !b.closed.Load() {
		t.Fatal("second EvictIdle did not close b")
	}
	if p.EvictIdle() {
		t.Fatal("EvictIdle closed a connection a caller holds")
	}
	if held.closed.Load() || p.Len() != 1 {
		t.Fatalf("held closed %v, Len %d; want the held one kept", held.closed.Load(), p.Len())
	}
}
