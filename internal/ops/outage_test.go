package ops

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/postgres"
)

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
	proxy, through := pgtest.Through(t, raw)
	ctx := context.Background()
	st, err := postgres.Open(ctx, through, postgres.Options{Schema: schema})
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

	proxy.Cut()
	p.EndpointDisabled(DisabledData{Tenant: "acme", Endpoint: "ep_1"})
	waitUntil(t, "a failed try to store the event", func() bool { return strings.Contains(logs.String(), "store operational events") })
	proxy.Restore()
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
