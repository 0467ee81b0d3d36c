package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/postgres"
	"github.com/heraldhq/herald/outbox"
)

// outboxSetup opens a store on a fresh schema with tenant acme and endpoint ep (subscribed to
// everything), and an application's pool on the same schema, as an application sharing Herald's
// database has.
func outboxSetup(t *testing.T) (*postgres.Store, *pgxpool.Pool, string) {
	t.Helper()
	schema := newSchema(t)
	s := openSchema(t, schema, postgres.Options{})
	now := time.Now()
	must(t, s.CreateTenant(ctx, &store.Tenant{ID: "acme", Name: "Acme", CreatedAt: now, UpdatedAt: now}))
	must(t, s.CreateEndpoint(ctx, &store.Endpoint{ID: "ep", TenantID: "acme", URL: "https://example.com/", EventTypes: []string{"*"},
		Timeout: 10 * time.Second, MaxConcurrency: 10, Enabled: true, CreatedAt: now, UpdatedAt: now}))
	pool, err := pgxpool.New(ctx, appURL(t, schema))
	must(t, err)
	t.Cleanup(pool.Close)
	return s, pool, schema
}

// appURL is the test database with schema as its search_path.
func appURL(t *testing.T, schema string) string {
	sep := "?"
	if strings.Contains(databaseURL(t), "?") {
		sep = "&"
	}
	return databaseURL(t) + sep + "search_path=" + schema
}

// accept builds every row's event, as the API's BuildEvent would for a registered type.
func accept(_ context.Context, row postgres.OutboxRow) (*store.Event, error) {
	now := time.Now().UTC()
	return &store.Event{ID: row.EventID, Type: row.Type, Timestamp: now, CreatedAt: now, Source: row.Source, Payload: row.Data}, nil
}

// publishIn writes events in one application transaction, which commits or rolls back.
func publishIn(t *testing.T, pool *pgxpool.Pool, commit bool, events ...outbox.Event) []string {
	t.Helper()
	w := outbox.New()
	var ids []string
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY)`); err != nil {
			return err
		}
		for _, ev := range events {
			if _, err := tx.Exec(ctx, `INSERT INTO orders (id) VALUES ($1)`, outbox.NewID()); err != nil {
				return err
			}
			id, err := w.Publish(ctx, tx, "acme", ev)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		if !commit {
			return errRollback
		}
		return nil
	})
	if err != nil && !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	return ids
}

var errRollback = errors.New("roll back")

func count(t *testing.T, pool *pgxpool.Pool, query string, args ...any) int {
	t.Helper()
	var n int
	must(t, pool.QueryRow(ctx, query, args...).Scan(&n))
	return n
}

func TestRelayOutbox_CommittedOnceRolledBackNever(t *testing.T) {
	t.Parallel()
	s, pool, _ := outboxSetup(t)
	committed := publishIn(t, pool, true,
		outbox.Event{Type: "order.created", Data: map[string]any{"n": 1}},
		outbox.Event{ID: "mine-1", Type: "order.paid", Data: map[string]any{"n": 2}, Source: "shop", Resource: &outbox.Resource{ID: "o1"}})
	rolledBack := publishIn(t, pool, false, outbox.Event{Type: "order.created", Data: map[string]any{"n": 3}})
	if committed[1] != "mine-1" || !strings.HasPrefix(committed[0], "evt_") {
		t.Fatalf("ids %v: want a generated evt_ id and the caller's", committed)
	}
	if n := count(t, pool, `SELECT count(*) FROM outbox`); n != 2 {
		t.Fatalf("outbox has %d rows, want the 2 committed", n)
	}

	res, err := s.RelayOutbox(ctx, 100, accept)
	must(t, err)
	if res.Rows != 2 || len(res.Published) != 2 || len(res.Failed) != 0 {
		t.Fatalf("relayed %+v, want 2 rows published", res)
	}
	for i, r := range res.Published {
		if r.Event.ID != committed[i] || r.Duplicate || r.Deliveries != 1 || len(r.EndpointIDs) != 1 || r.EndpointIDs[0] != "ep" {
			t.Fatalf("result %d = %+v, want event %s with one delivery to ep", i, r, committed[i])
		}
	}
	for _, id := range committed {
		if _, err := s.GetEvent(ctx, "acme", id); err != nil {
			t.Fatalf("committed event %s: %v", id, err)
		}
	}
	if _, err := s.GetEvent(ctx, "acme", rolledBack[0]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rolled back event %s: got %v, want not found", rolledBack[0], err)
	}
	if n := count(t, pool, `SELECT count(*) FROM outbox`); n != 0 {
		t.Fatalf("outbox has %d rows after the relay, want none", n)
	}
	res, err = s.RelayOutbox(ctx, 100, accept)
	must(t, err)
	if res.Rows != 0 || count(t, pool, `SELECT count(*) FROM deliveries`) != 2 {
		t.Fatalf("second pass %+v: want nothing more relayed, 2 deliveries in all", res)
	}
}

// Several nodes relay at once: SKIP LOCKED gives each row to one of them, and each row is
// published exactly once.
func TestRelayOutbox_ConcurrentRelaysPublishEachRowOnce(t *testing.T) {
	t.Parallel()
	a, pool, schema := outboxSetup(t)
	b := openSchema(t, schema, postgres.Options{})
	const total = 300
	var want []string
	for range total / 10 {
		var evs []outbox.Event
		for range 10 {
			evs = append(evs, outbox.Event{Type: "order.created", Data: map[string]any{}})
		}
		want = append(want, publishIn(t, pool, true, evs...)...)
	}

	var mu sync.Mutex
	got := map[string]int{}
	var passes atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Go(func() {
			for {
				res, err := s.RelayOutbox(ctx, 7, accept)
				if err != nil {
					t.Error(err)
					return
				}
				passes.Add(1)
				mu.Lock()
				for _, r := range res.Published {
					got[r.Event.ID]++
				}
				mu.Unlock()
				if res.Rows == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	for _, id := range want {
		if got[id] != 1 {
			t.Fatalf("event %s relayed %d times, want once", id, got[id])
		}
	}
	if len(got) != total {
		t.Fatalf("relayed %d events, want %d", len(got), total)
	}
	if n := count(t, pool, `SELECT count(*) FROM events`); n != total {
		t.Fatalf("%d events stored, want %d", n, total)
	}
	if n := count(t, pool, `SELECT count(*) FROM deliveries`); n != total {
		t.Fatalf("%d deliveries, want %d", n, total)
	}
	t.Logf("%d passes", passes.Load())
}

// A row whose event is refused stays, with its error and attempts, and is not tried again before
// its backoff; once the cause is fixed it goes out. A tenant that does not exist is such a cause.
func TestRelayOutbox_RefusedRowStaysUntilFixed(t *testing.T) {
	t.Parallel()
	s, pool, _ := outboxSetup(t)
	ids := publishIn(t, pool, true,
		outbox.Event{Type: "order.created", Data: map[string]any{}},
		outbox.Event{Type: "order.unregistered", Data: map[string]any{}})
	w := outbox.New()
	var ghost string
	must(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		ghost, err = w.Publish(ctx, tx, "ghost", outbox.Event{Type: "order.created"})
		return err
	}))
	registered := map[string]bool{"order.created": true}
	build := func(ctx context.Context, row postgres.OutboxRow) (*store.Event, error) {
		if !registered[row.Type] {
			return nil, fmt.Errorf("unknown event type %s", row.Type)
		}
		return accept(ctx, row)
	}

	// The backoff is counted from the relay's transaction, which lies between before and after:
	// the checks below compare with those, not with a later now(), which a loaded machine would
	// push past the backoff. PostgreSQL keeps microseconds.
	before := time.Now().Truncate(time.Microsecond)
	res, err := s.RelayOutbox(ctx, 100, build)
	must(t, err)
	after := time.Now()
	if len(res.Published) != 1 || res.Published[0].Event.ID != ids[0] || len(res.Failed) != 2 {
		t.Fatalf("relayed %+v, want %s published and 2 rows refused", res, ids[0])
	}
	rows, err := pool.Query(ctx, `SELECT event_id, attempts, last_error, next_attempt_at FROM outbox ORDER BY id`)
	must(t, err)
	type kept struct {
		id, lastError string
		attempts      int
		later         bool // due again a second (the first backoff) after the relay
	}
	left, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (kept, error) {
		var k kept
		var next time.Time
		err := r.Scan(&k.id, &k.attempts, &k.lastError, &next)
		k.later = !next.Before(before.Add(time.Second)) && !next.After(after.Add(time.Second))
		return k, err
	})
	must(t, err)
	want := []kept{
		{id: ids[1], attempts: 1, lastError: "unknown event type order.unregistered", later: true},
		{id: ghost, attempts: 1, lastError: "tenant ghost does not exist", later: true},
	}
	if fmt.Sprint(left) != fmt.Sprint(want) {
		t.Fatalf("rows left %+v, want %+v", left, want)
	}
	// Not due again before the backoff: a pass that ended before the earliest end of the backoff
	// takes nothing (on a machine too slow to make the pass in time there is nothing to check).
	res, err = s.RelayOutbox(ctx, 100, build)
	must(t, err)
	if within := time.Now().Before(before.Add(time.Second)); within && res.Rows != 0 {
		t.Fatalf("a pass within the backoff took %d rows", res.Rows)
	} else if !within {
		t.Log("the second pass ended after the backoff: not checked")
	}

	// The operator registers the type; the backoff passes (here, by hand).
	registered["order.unregistered"] = true
	_, err = pool.Exec(ctx, `UPDATE outbox SET next_attempt_at = now()`)
	must(t, err)
	before = time.Now().Truncate(time.Microsecond)
	res, err = s.RelayOutbox(ctx, 100, build)
	must(t, err)
	after = time.Now()
	if len(res.Published) != 1 || res.Published[0].Event.ID != ids[1] || len(res.Failed) != 1 || res.Failed[0].Attempts != 1 {
		t.Fatalf("after the fix %+v, want %s published and the ghost tenant's row refused again", res, ids[1])
	}
	var attempts int
	var next time.Time
	must(t, pool.QueryRow(ctx, `SELECT attempts, next_attempt_at FROM outbox`).Scan(&attempts, &next))
	if lo, hi := before.Add(2*time.Second), after.Add(2*time.Second); attempts != 2 || next.Before(lo) || next.After(hi) {
		t.Fatalf("ghost row: attempts %d, next try at %s; want 2 and 2 s after the relay, between %s and %s (the backoff doubles)",
			attempts, next.Format(time.StampMicro), lo.Format(time.StampMicro), hi.Format(time.StampMicro))
	}
}

// A row whose event id the tenant already has is a duplicate: the relay drops it, publishing
// nothing new, as a publish of the same id does.
func TestRelayOutbox_KnownIDIsDuplicate(t *testing.T) {
	t.Parallel()
	s, pool, _ := outboxSetup(t)
	now := time.Now()
	_, err := s.Publish(ctx, "acme", []*store.Event{{ID: "evt_1", Type: "order.created", Timestamp: now, CreatedAt: now, Payload: []byte(`{}`)}})
	must(t, err)
	publishIn(t, pool, true, outbox.Event{ID: "evt_1", Type: "order.created"}, outbox.Event{ID: "evt_1", Type: "order.created"})
	res, err := s.RelayOutbox(ctx, 100, accept)
	must(t, err)
	if len(res.Published) != 2 || !res.Published[0].Duplicate || !res.Published[1].Duplicate {
		t.Fatalf("relayed %+v, want two duplicates", res.Published)
	}
	if count(t, pool, `SELECT count(*) FROM outbox`) != 0 || count(t, pool, `SELECT count(*) FROM deliveries`) != 1 {
		t.Fatal("want the rows gone and no new delivery")
	}
}

// database/sql with pgx's stdlib driver: the same guarantees.
func TestRelayOutbox_DatabaseSQL(t *testing.T) {
	t.Parallel()
	s, pool, schema := outboxSetup(t)
	db, err := sql.Open("pgx", appURL(t, schema))
	must(t, err)
	t.Cleanup(func() { db.Close() })
	w := outbox.New()
	write := func(commit bool) string {
		tx, err := db.BeginTx(ctx, nil)
		must(t, err)
		defer tx.Rollback()
		id, err := w.PublishSQL(ctx, tx, "acme", outbox.Event{Type: "order.created", Data: map[string]any{"via": "database/sql"},
			Resource: &outbox.Resource{ID: "o1", Type: "order"}, Priority: "high"})
		must(t, err)
		if commit {
			must(t, tx.Commit())
		}
		return id
	}
	committed, rolledBack := write(true), write(false)
	res, err := s.RelayOutbox(ctx, 100, accept)
	must(t, err)
	if len(res.Published) != 1 || res.Published[0].Event.ID != committed {
		t.Fatalf("relayed %+v, want only %s", res.Published, committed)
	}
	if _, err := s.GetEvent(ctx, "acme", rolledBack); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rolled back event: %v", err)
	}
	if count(t, pool, `SELECT count(*) FROM outbox`) != 0 {
		t.Fatal("outbox not empty")
	}
}

// A schema-qualified table name reaches Herald's outbox from a connection whose search_path
// does not include Herald's schema.
func TestOutboxWriter_QualifiedTable(t *testing.T) {
	t.Parallel()
	s, pool, schema := outboxSetup(t)
	conn, err := pgx.Connect(ctx, databaseURL(t))
	must(t, err)
	t.Cleanup(func() { conn.Close(ctx) })
	w := outbox.New(outbox.WithTable(schema + ".outbox"))
	tx, err := conn.Begin(ctx)
	must(t, err)
	id, err := w.Publish(ctx, tx, "acme", outbox.Event{Type: "order.created"})
	must(t, err)
	must(t, tx.Commit(ctx))
	res, err := s.RelayOutbox(ctx, 100, accept)
	must(t, err)
	if len(res.Published) != 1 || res.Published[0].Event.ID != id || count(t, pool, `SELECT count(*) FROM outbox`) != 0 {
		t.Fatalf("relayed %+v, want %s", res.Published, id)
	}
}

// A row whose event would create more deliveries than a request may is refused like a bad row:
// it stays, with the limit in last_error, and the relay goes on with the others.
func TestRelayOutbox_RowOverTheDeliveryLimitStays(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	s := openSchema(t, schema, postgres.Options{Limits: store.Limits{MaxDeliveries: 1}})
	now := time.Now()
	must(t, s.CreateTenant(ctx, &store.Tenant{ID: "acme", Name: "Acme", CreatedAt: now, UpdatedAt: now}))
	for _, id := range []string{"ep1", "ep2"} {
		must(t, s.CreateEndpoint(ctx, &store.Endpoint{ID: id, TenantID: "acme", URL: "https://example.com/", EventTypes: []string{"order.*"},
			Timeout: 10 * time.Second, MaxConcurrency: 10, Enabled: true, CreatedAt: now, UpdatedAt: now}))
	}
	pool, err := pgxpool.New(ctx, appURL(t, schema))
	must(t, err)
	t.Cleanup(pool.Close)
	ids := publishIn(t, pool, true, outbox.Event{Type: "order.created"}, outbox.Event{Type: "user.created"})
	res, err := s.RelayOutbox(ctx, 100, accept)
	must(t, err)
	if len(res.Published) != 1 || res.Published[0].Event.ID != ids[1] || len(res.Failed) != 1 || !errors.Is(res.Errors[0], store.ErrLimit) {
		t.Fatalf("relayed %+v, want %s published and the row over the limit refused", res, ids[1])
	}
	var lastError string
	must(t, pool.QueryRow(ctx, `SELECT last_error FROM outbox WHERE event_id = $1`, ids[0]).Scan(&lastError))
	if !strings.Contains(lastError, "the limit is 1") {
		t.Fatalf("last_error %q, want the limit", lastError)
	}
}
