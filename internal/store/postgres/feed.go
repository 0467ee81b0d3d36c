package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/store"
)

// A feed position is an event's seq, which PostgreSQL hands out when the row is inserted, not
// when it commits: transactions A and B take seq 10 and 11, B commits first, and a reader that
// saw 11 and resumes after it would never see 10. EventsAfter therefore only returns events up
// to a bound below which nothing can still appear:
//
//  1. read the bound: the last value the seq's sequence handed out (every seq at or below it is
//     taken, by a transaction committed, rolled back or still running);
//  2. then list the transactions holding a ROW EXCLUSIVE lock on events: a transaction takes it
//     when its INSERT starts, before the INSERT draws its seq, and keeps it until it ends, so
//     every transaction that may still commit a seq at or below the bound is on this list;
//  3. wait until those transactions have ended (publishes take milliseconds), and read.
//
// The wait is bounded by feedSettle: if a transaction writing events stays open longer (a manual
// session, a very large delete), the call returns no event at all rather than risk skipping
// one, and the reader tries again later. Nothing blocks a writer: pg_locks is only read.
const feedSettle = time.Second

// feedLast and feedWriters are steps 1 and 2, sent in one batch, whose statements run in order
// on one connection: a transaction that drew a seq before step 1 holds its lock at step 2.
const (
	feedLast    = `SELECT pg_sequence_last_value(pg_get_serial_sequence('events', 'seq')::regclass)`
	feedWriters = `SELECT coalesce(array_agg(DISTINCT virtualtransaction), '{}') FROM pg_locks
		WHERE locktype = 'relation' AND relation = 'events'::regclass AND mode = 'RowExclusiveLock' AND granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND pid <> pg_backend_pid()`
	// feedStillWriting is which of the listed transactions still hold their lock.
	feedStillWriting = `SELECT coalesce(array_agg(DISTINCT virtualtransaction), '{}') FROM pg_locks
		WHERE locktype = 'relation' AND relation = 'events'::regclass AND mode = 'RowExclusiveLock' AND virtualtransaction = ANY($1)`
)

// EventsAfter lists a tenant's events after a position, oldest first (see store.Store and the
// comment above).
func (s *Store) EventsAfter(ctx context.Context, tenantID string, after int64, patterns []string, limit int) ([]store.FeedEvent, error) {
	bound, ok, err := s.feedBound(ctx)
	if err != nil {
		return nil, fmt.Errorf("events after %d: %w", after, err)
	}
	if !ok || bound <= after {
		return nil, nil
	}
	var w where
	w.add("tenant_id = ?", tenantID)
	w.add("seq > ?", after)
	w.add("seq <= ?", bound)
	if p := store.SplitPatterns(patterns); !p.All {
		var or []string
		if len(p.Exact) > 0 {
			or = append(or, "type = ANY("+w.arg(p.Exact)+")")
		}
		for _, prefix := range p.Prefixes {
			or = append(or, "starts_with(type, "+w.arg(prefix)+")")
		}
		w.conds = append(w.conds, "("+strings.Join(or, " OR ")+")")
	}
	// The page ends with the event that reaches store.MaxFeedBytes: the server sends no row
	// after it (octet_length reads a stored value's size without decompressing it).
	q := `SELECT seq, id, type, ts, source, payload, created_at FROM (
		SELECT seq, id, type, ts, source, payload, created_at,
			sum(octet_length(payload)) OVER (ORDER BY seq) - octet_length(payload) AS before
		FROM events WHERE ` + w.String() + ` ORDER BY seq LIMIT ` + w.arg(store.ClampFeed(limit)) + `) page
		WHERE before < ` + w.arg(store.MaxFeedBytes) + ` ORDER BY seq`
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, fmt.Errorf("events after %d: %w", after, unavailable(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.FeedEvent, error) {
		var ev store.FeedEvent
		var payload []byte
		err := r.Scan(&ev.Position, &ev.ID, &ev.Type, &ev.Timestamp, &ev.Source, &payload, &ev.CreatedAt)
		ev.TenantID, ev.Payload = tenantID, payload
		return ev, err
	})
	if err != nil {
		return nil, fmt.Errorf("events after %d: %w", after, unavailable(err))
	}
	return out, nil
}

// feedBound returns the highest seq below which every event has committed or never will; false
// when no event was ever inserted, or when writers did not finish within feedSettle.
func (s *Store) feedBound(ctx context.Context) (int64, bool, error) {
	var last *int64
	var writers []string
	err := s.sendBatch(ctx, func() *pgx.Batch {
		b := &pgx.Batch{}
		b.Queue(feedLast).QueryRow(func(r pgx.Row) error { return r.Scan(&last) })
		b.Queue(feedWriters).QueryRow(func(r pgx.Row) error { return r.Scan(&writers) })
		return b
	})
	if err != nil {
		return 0, false, err
	}
	if last == nil {
		return 0, false, nil
	}
	deadline := time.Now().Add(feedSettle)
	wait := time.Millisecond
	for len(writers) > 0 {
		if time.Now().After(deadline) {
			return 0, false, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, false, ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 20*time.Millisecond)
		if err := s.pool.QueryRow(ctx, feedStillWriting, writers).Scan(&writers); err != nil {
			return 0, false, unavailable(err)
		}
	}
	return *last, true, nil
}

// LatestPosition is the seq of the tenant's newest visible event (see store.Store). An event
// still in flight with a lower seq is passed over: its publish began before the reader asked.
func (s *Store) LatestPosition(ctx context.Context, tenantID string) (int64, error) {
	var pos int64
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM events WHERE tenant_id = $1`, tenantID).Scan(&pos); err != nil {
		return 0, fmt.Errorf("latest position of %s: %w", tenantID, unavailable(err))
	}
	return pos, nil
}
