package outboxrelay_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/outbox"

	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/outboxrelay"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/postgres"
	"github.com/heraldhq/herald/internal/store/sqlite"
)

// openStore opens a PostgreSQL store in a fresh schema, dropped when the test ends, with tenant
// acme, types order.created and order.shipped registered and an endpoint subscribed to both.
func openStore(t *testing.T) (*postgres.Store, *pgx.Conn) {
	t.Helper()
	url, schema := pgtest.Schema(t, "herald_relay_")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	st, err := postgres.Open(ctx, url, postgres.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := conn.Exec(ctx, "SET search_path TO "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := st.CreateTenant(ctx, &store.Tenant{ID: "acme", Name: "Acme", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateEndpoint(ctx, &store.Endpoint{ID: "ep_acme", TenantID: "acme", URL: "https://example.com/hook", EventTypes: []string{"order.*"},
		Secrets: []store.Secret{{Key: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}, Timeout: time.Second, MaxConcurrency: 1, Enabled: true,
		CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	return st, conn
}

// A backlog is drained pass after pass without waiting for the interval; each published event
// wakes its endpoint; a refused row is logged with its tenant, event and Herald's reason, stays
// in the outbox, and counts in the metrics.
func TestRun_DrainsBacklogAndWakesEndpoints(t *testing.T) {
	t.Parallel()
	st, conn := openStore(t)
	ctx := context.Background()
	w := outbox.New()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var refused string
	for i := range 25 {
		typ := "order.created"
		if i == 7 {
			typ = "order.unknown"
		}
		id, err := w.Publish(ctx, tx, "acme", outbox.Event{Type: typ, Data: map[string]any{"i": i},
			Resource: &outbox.Resource{ID: "o1", Type: "order"}, Priority: "high"})
		if err != nil {
			t.Fatal(err)
		}
		if i == 7 {
			refused = id
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var woken []string
	built := 0
	var logs bytes.Buffer
	m := metrics.New(metrics.Options{})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() {
		done <- outboxrelay.Run(runCtx, outboxrelay.Config{
			Store: st,
			Build: func(_ context.Context, in api.EventInput) (*store.Event, error) {
				if in.Type == "order.unknown" {
					return nil, huma.Error422UnprocessableEntity("invalid event",
						&huma.ErrorDetail{Location: ".type", Message: "unknown event type; register it with POST /v1/event-types"})
				}
				if in.Resource == nil || in.Resource.ID != "o1" || in.Priority != "high" || !strings.HasPrefix(string(in.Data), `{"i":`) {
					t.Errorf("input %+v: the row's fields are lost", in)
				}
				mu.Lock()
				built++
				mu.Unlock()
				now := time.Now()
				return &store.Event{ID: in.ID, Type: in.Type, Timestamp: now, CreatedAt: now, Payload: []byte(`{"id":"` + in.ID + `"}`), Priority: store.PriorityHigh}, nil
			},
			Notify: func(ids ...string) {
				mu.Lock()
				woken = append(woken, ids...)
				mu.Unlock()
			},
			Interval: time.Hour, // only full batches may chain passes
			Batch:    10,
			Logger:   slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil)),
			Metrics:  m,
		})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var left int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&left); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		n := len(woken)
		mu.Unlock()
		if left == 1 && n == 24 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d rows left and %d wake-ups: the backlog was not drained without waiting for the interval", left, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ds, _, err := st.ListDeliveries(ctx, store.DeliveryFilter{TenantID: "acme", Page: store.Page{Limit: 100}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 24 || ds[0].Priority != store.PriorityHigh || built != 24 {
		t.Fatalf("%d deliveries (priority %d) from %d built events, want 24 of high priority", len(ds), ds[0].Priority, built)
	}
	var lastError string
	if err := conn.QueryRow(ctx, `SELECT last_error FROM outbox WHERE event_id = $1`, refused).Scan(&lastError); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(lastError, "type: unknown event type") {
		t.Fatalf("the refused row's last_error %q", lastError)
	}
	log := logs.String()
	if !strings.Contains(log, "level=WARN") || !strings.Contains(log, "tenant=acme") || !strings.Contains(log, "event="+refused) ||
		!strings.Contains(log, "type: unknown event type") {
		t.Fatalf("log %q: want a warning naming the tenant, the event and the reason", log)
	}
	if got := counterValue(t, m, "herald_outbox_refused_total"); got != 1 {
		t.Errorf("herald_outbox_refused_total = %v, want 1", got)
	}
}

// counterValue is the value of a counter's only series in the registry.
func counterValue(t *testing.T, m *metrics.Metrics, name string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no single series of %s", name)
	return 0
}

func TestDescribe_NamesEachFailingPlace(t *testing.T) {
	t.Parallel()
	err := huma.Error422UnprocessableEntity("invalid event",
		&huma.ErrorDetail{Location: ".type", Message: "unknown event type"},
		&huma.ErrorDetail{Location: ".data.total", Message: "does not match the schema"})
	if got, want := outboxrelay.Describe(err), "invalid event: type: unknown event type; data.total: does not match the schema"; got != want {
		t.Fatalf("Describe = %q, want %q", got, want)
	}
	if got := outboxrelay.Describe(errors.New("tenant x does not exist")); got != "tenant x does not exist" {
		t.Fatalf("Describe = %q", got)
	}
}

func TestInput_RefusesMalformedRows(t *testing.T) {
	t.Parallel()
	if _, err := outboxrelay.Input(postgres.OutboxRow{Type: "a", Data: []byte(`{`)}); err == nil {
		t.Fatal("invalid data accepted")
	}
	if _, err := outboxrelay.Input(postgres.OutboxRow{Type: "a", Data: []byte(`{}`), Resource: []byte(`[1]`)}); err == nil {
		t.Fatal("invalid resource accepted")
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// A row whose event cannot be checked because the API's store cannot be read (the type lookup
// fails, as while PostgreSQL restarts) is not refused: the pass fails and leaves every row as it
// was, with no attempt counted, no last_error and no refusal in the metrics; the next pass, with
// the store back, publishes them.
func TestPass_StoreOutageRefusesNothing(t *testing.T) {
	t.Parallel()
	st, conn := openStore(t)
	ctx := context.Background()
	w := outbox.New()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := w.Publish(ctx, tx, "acme", outbox.Event{Type: "order.created", Data: map[string]any{"i": i}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// The API's catalog lives in a store of its own here, so that it can fail alone.
	catalog, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "catalog.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = catalog.Close() })
	if err := catalog.CreateEventType(ctx, &store.EventType{Name: "order.created", CreatedAt: time.Now(), UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	down := api.New(api.Config{Store: catalog, Logger: quiet})
	if err := catalog.Close(); err != nil {
		t.Fatal(err)
	}
	m := metrics.New(metrics.Options{})
	cfg := outboxrelay.Config{Store: st, Build: down.BuildEvent, Logger: quiet, Metrics: m}
	if _, err := outboxrelay.Pass(ctx, cfg); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("a pass whose checks cannot read the catalog: %v, want store.ErrUnavailable", err)
	}
	var rows, attempts int
	var lastErrors string
	if err := conn.QueryRow(ctx, `SELECT count(*), coalesce(sum(attempts), 0), string_agg(last_error, '') FROM outbox`).Scan(&rows, &attempts, &lastErrors); err != nil {
		t.Fatal(err)
	}
	if rows != 3 || attempts != 0 || lastErrors != "" {
		t.Fatalf("after the outage: %d rows, %d attempts, last errors %q; want 3 rows untouched", rows, attempts, lastErrors)
	}
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "herald_outbox_refused_total" {
			t.Errorf("herald_outbox_refused_total has %d series, want none: nothing was refused", len(mf.GetMetric()))
		}
	}

	if err := st.CreateEventType(ctx, &store.EventType{Name: "order.created", CreatedAt: time.Now(), UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	up := api.New(api.Config{Store: st, Logger: quiet})
	cfg.Build = up.BuildEvent
	if _, err := outboxrelay.Pass(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("%d rows left after the store came back (%v), want 0", rows, err)
	}
}
