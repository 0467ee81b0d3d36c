package ops

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/postgres"
)

// cutProxy forwards TCP connections to upstream until cut, which closes them all and makes new
// ones fail (their upstream side is closed at once) until restore.
type cutProxy struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	cut      bool
	conns    []net.Conn
}

func newCutProxy(t *testing.T, upstream string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, upstream: upstream}
	t.Cleanup(func() { _ = ln.Close(); p.setCut(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
	return p
}

func (p *cutProxy) forward(c net.Conn) {
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		_ = c.Close()
		return
	}
	p.mu.Unlock()
	up, err := net.Dial("tcp", p.upstream)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, c, up)
	p.mu.Unlock()
	go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
	_, _ = io.Copy(c, up)
	_ = c.Close()
}

func (p *cutProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.conns = nil
	}
}

// syncBuffer is a log that the test reads while the publisher writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// An operational event published while PostgreSQL cannot be reached is stored once it can be,
// not dropped.
func TestPublisher_StoreOutageDelaysEventsInsteadOfLosingThem(t *testing.T) {
	t.Parallel()
	raw, schema := pgtest.Schema(t, "herald_ops_")
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCutProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	ctx := context.Background()
	st, err := postgres.Open(ctx, u.String(), postgres.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Now()
	if err := st.CreateTenant(ctx, &store.Tenant{ID: "ops", Name: "Ops", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	p := New(Config{Tenant: "ops", Store: st, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err := p.Register(ctx); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { p.Run(runCtx, nil); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	proxy.setCut(true)
	p.EndpointDisabled(DisabledData{Tenant: "acme", Endpoint: "ep_1"})
	waitUntil(t, "a failed try to store the event", func() bool { return strings.Contains(logs.String(), "store operational events") })
	proxy.setCut(false)
	waitUntil(t, "the event stored after the outage", func() bool {
		evs, _, err := st.ListEvents(ctx, store.EventFilter{TenantID: "ops", Page: store.Page{Limit: 10}})
		return err == nil && len(evs) == 1 && evs[0].Type == EndpointDisabled
	})
}

// waitUntil polls cond until it holds; it fails only on a hang.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 30 s for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
