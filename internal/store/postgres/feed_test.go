package postgres_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/postgres"
)

// EventsAfter must not hand out a position past an event whose transaction is still open: it
// took a lower seq, and a reader resuming after the later one would never see it.
func TestEventsAfter_WaitsForTransactionsThatTookALowerSeq(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := newSchema(t)
	s := openSchema(t, schema, postgres.Options{Keys: testKeys(t)})
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := s.CreateTenant(ctx, &store.Tenant{ID: "acme", Name: "Acme", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(databaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["search_path"] = pgx.Identifier{schema}.Sanitize()
	connect := func() *pgx.Conn {
		t.Helper()
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		return c
	}
	conn, reader := connect(), connect()

	// A slow publisher takes a seq and keeps its transaction open; a fast one takes the next seq
	// and commits.
	insertSlow := func(id string) (pgx.Tx, int64) {
		t.Helper()
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var seq int64
		if err := tx.QueryRow(ctx, `INSERT INTO events (tenant_id, id, type, ts, payload, created_at) VALUES ('acme', $1, 'invoice.paid', $2, '{}', $2) RETURNING seq`,
			id, now).Scan(&seq); err != nil {
			t.Fatal(err)
		}
		return tx, seq
	}
	publish := func(id string) {
		t.Helper()
		if _, err := s.Publish(ctx, "acme", []*store.Event{{ID: id, Type: "invoice.paid", Timestamp: now, CreatedAt: now, Payload: []byte(`{}`)}}); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(evs []store.FeedEvent) []string {
		var out []string
		for _, ev := range evs {
			out = append(out, ev.ID)
		}
		return out
	}

	tx, slowSeq := insertSlow("slow")
	publish("fast")
	// The hazard is real: a plain read sees the later event and not the earlier one.
	var visible []string
	rows, err := reader.Query(ctx, `SELECT id FROM events ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	if visible, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(visible, []string{"fast"}) {
		t.Fatalf("a plain read sees %v, want [fast]", visible)
	}
	start := time.Now()
	evs, err := s.EventsAfter(ctx, "acme", 0, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 0 {
		t.Fatalf("with seq %d still uncommitted, EventsAfter returned %v: a reader resuming after them would skip it", slowSeq, ids(evs))
	}
	if waited := time.Since(start); waited < 900*time.Millisecond || waited > 5*time.Second {
		t.Fatalf("EventsAfter gave up after %v, want about a second", waited)
	}

	// When the slow transaction commits while EventsAfter waits, both come, in seq order.
	committed := make(chan error, 1)
	go func() {
		time.Sleep(200 * time.Millisecond)
		committed <- tx.Commit(context.Background())
	}()
	if evs, err = s.EventsAfter(ctx, "acme", 0, nil, 100); err != nil {
		t.Fatal(err)
	}
	if err := <-committed; err != nil {
		t.Fatal(err)
	}
	if got := ids(evs); !slices.Equal(got, []string{"slow", "fast"}) || evs[0].Position != slowSeq {
		t.Fatalf("after the commit: %v (positions %+v), want [slow fast]", got, evs)
	}

	// A transaction that rolls back leaves a gap, which the reader passes.
	tx, _ = insertSlow("rolled-back")
	publish("after-rollback")
	go func() {
		time.Sleep(100 * time.Millisecond)
		committed <- tx.Rollback(context.Background())
	}()
	if evs, err = s.EventsAfter(ctx, "acme", evs[1].Position, nil, 100); err != nil {
		t.Fatal(err)
	}
	if err := <-committed; err != nil {
		t.Fatal(err)
	}
	if got := ids(evs); !slices.Equal(got, []string{"after-rollback"}) {
		t.Fatalf("after the rollback: %v, want [after-rollback]", got)
	}
}
