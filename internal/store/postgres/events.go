package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/heraldhq/herald/internal/store"
)

// insertEvents inserts a batch of events in their order; ids the tenant already has are skipped.
const insertEvents = `INSERT INTO events (tenant_id, id, type, ts, source, payload, created_at, traceparent, tracestate)
	SELECT $1, u.id, u.type, u.ts, u.source, u.payload, u.created_at, u.traceparent, u.tracestate
	FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::bytea[], $7::timestamptz[], $8::text[], $9::text[])
		WITH ORDINALITY AS u (id, type, ts, source, payload, created_at, traceparent, tracestate, n)
	ORDER BY u.n
	ON CONFLICT (tenant_id, id) DO NOTHING
	RETURNING id, seq`

// insertDeliveries inserts the deliveries of a batch of events in one statement, in order.
const insertDeliveries = `INSERT INTO deliveries (tenant_id, event_seq, event_id, event_type, endpoint_id, next_attempt_at, created_at, updated_at, priority)
	SELECT $1, u.seq, u.event_id, u.event_type, u.endpoint_id, u.at, u.at, u.at, u.priority
	FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::smallint[])
		WITH ORDINALITY AS u (seq, event_id, event_type, endpoint_id, at, priority, n)
	ORDER BY u.n`

// enabledTargets finds which of the endpoints a publish's events matched (before its
// transaction) are still enabled. It runs after the tenant's row is locked (KEY SHARE), which
// DeleteEndpoint and DisableEndpoint lock FOR UPDATE first: an endpoint is either gone or
// disabled in what this reads, or its deletion waits for the publish to commit and then removes
// the publish's deliveries with the endpoint's.
const enabledTargets = `SELECT id FROM endpoints WHERE id = ANY($1) AND tenant_id = $2 AND enabled`

// Publish stores events and their deliveries. It matches the events to the tenant's subscribers
// first, before any transaction, so that no filter runs while a transaction (which concurrent
// publishes of the tenant share, see coalesce.go) is open; then it writes them in transactions
// of whole events with at most store.ChunkDeliveries deliveries each, so that a large publish
// never holds a connection and its locks for long. Each caller gets the results of its own
// events.
func (s *Store) Publish(ctx context.Context, tenantID string, events []*store.Event) ([]store.PublishResult, error) {
	plan, err := s.plan(ctx, tenantID, events)
	if err != nil {
		return nil, err
	}
	results := make([]store.PublishResult, 0, len(events))
	for _, c := range plan.Chunks(store.ChunkDeliveries) {
		res, err := s.publisher.publish(ctx, tenantID, events[c[0]:c[1]], plan.Targets[c[0]:c[1]])
		if err != nil {
			return nil, err
		}
		results = append(results, res...)
	}
	if s.notifier != nil {
		for _, r := range results {
			if !r.Duplicate {
				s.notifier.add(r.EndpointIDs)
			}
		}
	}
	return results, nil
}

// plan reads the tenant's enabled endpoints and matches events to them (see store.Fanout),
// outside any transaction.
func (s *Store) plan(ctx context.Context, tenantID string, events []*store.Event) (*store.Plan, error) {
	subs, err := s.subscribers(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	return s.fanout.Plan(ctx, tenantID, subs, events)
}

// subscribers reads the tenant's enabled endpoints as fan-out sees them.
func (s *Store) subscribers(ctx context.Context, tenantID string) ([]store.Subscriber, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, event_types, options FROM endpoints WHERE tenant_id = $1 AND enabled ORDER BY seq`, tenantID)
	if err != nil {
		return nil, unavailable(fmt.Errorf("read endpoints: %w", err))
	}
	subs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Subscriber, error) {
		var id, options string
		var patterns []string
		if err := r.Scan(&id, &patterns, &options); err != nil {
			return store.Subscriber{}, err
		}
		sub, err := store.NewSubscriber(id, patterns, options, s.exprs)
		if err != nil {
			return sub, fmt.Errorf("endpoint %s: %w", id, err)
		}
		return sub, nil
	})
	if err != nil {
		return nil, unavailable(fmt.Errorf("read endpoints: %w", err))
	}
	return subs, nil
}

// publishTx stores events and their deliveries to targets in one transaction, in two round
// trips: BEGIN, the tenant, the targets still enabled and the events together; then the deliveries (and the stored
// versions of events that were already there) and COMMIT.
func (s *Store) publishTx(ctx context.Context, tenantID string, events []*store.Event, targets [][]string) ([]store.PublishResult, error) {
	var results []store.PublishResult
	err := s.inBatchTx(ctx, func(send sendFunc) error {
		var err error
		results, err = s.publishIn(ctx, send, tenantID, events, targets, nil)
		return err
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// publishIn stores events and their deliveries to targets (targets[i]: the endpoints that
// matched events[i], see plan; one no longer enabled gets none) in the transaction that send
// runs, in two batches (see publishTx), and commits it with the second. Publish, Receive and
// AcceptReceived share it, so that an inbound event is stored exactly as a published one. then,
// if not nil, queues the caller's own statements in the last batch, before the COMMIT, knowing
// what each event became: a result with a nil Event is an id the tenant already had (its stored
// event is read in that same batch).
func (s *Store) publishIn(ctx context.Context, send sendFunc, tenantID string, events []*store.Event, targets [][]string,
	then func(b *pgx.Batch, results []store.PublishResult)) ([]store.PublishResult, error) {
	results := make([]store.PublishResult, len(events))
	ids := make([]string, len(events))
	types := make([]string, len(events))
	stamps := make([]time.Time, len(events))
	sources := make([]string, len(events))
	payloads := make([][]byte, len(events))
	created := make([]time.Time, len(events))
	parents := make([]string, len(events))
	states := make([]string, len(events))
	for i, ev := range events {
		ids[i], types[i], stamps[i], sources[i], payloads[i], created[i] = ev.ID, ev.Type, ev.Timestamp, ev.Source, ev.Payload, ev.CreatedAt
		parents[i], states[i] = ev.Traceparent, ev.Tracestate
	}

	var b pgx.Batch
	tenantFound := false
	// KEY SHARE holds off a concurrent DeleteTenant until this commits, as a foreign key would.
	b.Queue(`SELECT true FROM tenants WHERE id = $1 FOR KEY SHARE`, tenantID).QueryRow(func(r pgx.Row) error {
		err := r.Scan(&tenantFound)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	})
	var targetIDs []string
	seen := map[string]bool{}
	for _, t := range targets {
		for _, id := range t {
			if !seen[id] {
				seen[id] = true
				targetIDs = append(targetIDs, id)
			}
		}
	}
	enabled := make(map[string]bool, len(targetIDs))
	if len(targetIDs) > 0 {
		b.Queue(enabledTargets, targetIDs, tenantID).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					return err
				}
				enabled[id] = true
			}
			return rows.Err()
		})
	}
	seqs := make(map[string]int64, len(events))
	b.Queue(insertEvents, tenantID, ids, types, stamps, sources, payloads, created, parents, states).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id string
			var seq int64
			if err := rows.Scan(&id, &seq); err != nil {
				return err
			}
			seqs[id] = seq
		}
		return rows.Err()
	})
	if err := send(&b, false); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	if !tenantFound {
		return nil, fmt.Errorf("tenant %s: %w", tenantID, store.ErrNotFound)
	}

	var d struct {
		seqs                       []int64
		eventIDs, types, endpoints []string
		at                         []time.Time
		priorities                 []int16
	}
	var dupIDs []string
	for i, ev := range events {
		seq, ok := seqs[ev.ID]
		if !ok {
			// The id exists: idempotent publish returns the stored event and fans out nothing.
			dupIDs = append(dupIDs, ev.ID)
			continue
		}
		// An id repeated within the batch is stored once; later copies are duplicates of it.
		delete(seqs, ev.ID)
		ev.TenantID = tenantID
		res := store.PublishResult{Event: ev}
		for _, id := range targets[i] {
			if !enabled[id] {
				continue // disabled or deleted since the events were matched
			}
			d.seqs = append(d.seqs, seq)
			d.eventIDs = append(d.eventIDs, ev.ID)
			d.types = append(d.types, ev.Type)
			d.endpoints = append(d.endpoints, id)
			d.at = append(d.at, ev.CreatedAt)
			d.priorities = append(d.priorities, int16(ev.Priority))
			res.Deliveries++
			res.EndpointIDs = append(res.EndpointIDs, id)
		}
		results[i] = res
	}

	b = pgx.Batch{}
	stored := map[string]*store.Event{}
	if len(dupIDs) > 0 {
		b.Queue(`SELECT id, type, ts, source, payload, created_at FROM events WHERE tenant_id = $1 AND id = ANY($2)`, tenantID, dupIDs).
			Query(func(rows pgx.Rows) error {
				for rows.Next() {
					ev, err := scanEvent(rows, tenantID)
					if err != nil {
						return err
					}
					stored[ev.ID] = ev
				}
				return rows.Err()
			})
	}
	if len(d.seqs) > 0 {
		b.Queue(insertDeliveries, tenantID, d.seqs, d.eventIDs, d.types, d.endpoints, d.at, d.priorities)
	}
	// The counters of what this transaction stores (the events it found already stored are
	// not in results yet, and count nothing).
	usage := store.UsageDelta{}
	usage.AddPublished(tenantID, results)
	queueUsage(&b, usage)
	if then != nil {
		then(&b, results)
	}
	if err := send(&b, true); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	for i, ev := range events {
		if results[i].Event != nil {
			continue
		}
		st, ok := stored[ev.ID]
		if !ok {
			// Its conflict was with a row deleted since (retention): not the caller's error.
			return nil, fmt.Errorf("publish: event %s conflicted with a stored event that is gone now", ev.ID)
		}
		// A copy each: a batch may repeat an id.
		dup := *st
		results[i] = store.PublishResult{Event: &dup, Duplicate: true}
	}
	return results, nil
}

func scanEvent(r pgx.Row, tenantID string) (*store.Event, error) {
	var ev store.Event
	var payload []byte
	if err := r.Scan(&ev.ID, &ev.Type, &ev.Timestamp, &ev.Source, &payload, &ev.CreatedAt); err != nil {
		return nil, err
	}
	ev.TenantID, ev.Payload = tenantID, payload
	return &ev, nil
}

// GetEvent reads one event of a tenant.
func (s *Store) GetEvent(ctx context.Context, tenantID, id string) (*store.Event, error) {
	ev, err := scanEvent(s.pool.QueryRow(ctx, `SELECT id, type, ts, source, payload, created_at FROM events WHERE tenant_id = $1 AND id = $2`,
		tenantID, id), tenantID)
	if err != nil {
		return nil, notFound(err, "event "+id)
	}
	return ev, nil
}

// where builds a conjunction of conditions, each with one argument written as ?.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, arg any) {
	w.args = append(w.args, arg)
	w.conds = append(w.conds, strings.Replace(cond, "?", w.last(), 1))
}

// last is the placeholder of the latest argument.
func (w *where) last() string { return "$" + strconv.Itoa(len(w.args)) }

// arg adds an argument used outside the conditions and returns its placeholder.
func (w *where) arg(v any) string {
	w.args = append(w.args, v)
	return w.last()
}

func (w *where) String() string { return strings.Join(w.conds, " AND ") }

// before reads a newest-first cursor: the position below which the page starts.
func before(cursor string) (int64, error) {
	pos, err := store.DecodeCursor(cursor)
	if err != nil {
		return 0, err
	}
	if pos == 0 {
		return math.MaxInt64, nil
	}
	return pos, nil
}

// ListEvents lists a tenant's events, newest first.
func (s *Store) ListEvents(ctx context.Context, f store.EventFilter) ([]store.Event, string, error) {
	pos, err := before(f.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := f.Clamp()
	var w where
	w.add("tenant_id = ?", f.TenantID)
	w.add("seq < ?", pos)
	if len(f.Types) > 0 {
		w.add("type = ANY(?)", f.Types)
	}
	if !f.Since.IsZero() {
		w.add("created_at >= ?", f.Since)
	}
	if !f.Until.IsZero() {
		w.add("created_at < ?", f.Until)
	}
	q := `SELECT seq, id, type, ts, source, payload, created_at FROM events WHERE ` + w.String() + ` ORDER BY seq DESC LIMIT ` + w.arg(limit+1)
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, "", fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	var out []store.Event
	var seqs []int64
	bytes := 0
	for rows.Next() {
		var ev store.Event
		var seq int64
		if err := rows.Scan(&seq, &ev.ID, &ev.Type, &ev.Timestamp, &ev.Source, &ev.Payload, &ev.CreatedAt); err != nil {
			return nil, "", fmt.Errorf("list events: %w", err)
		}
		ev.TenantID = f.TenantID
		out = append(out, ev)
		seqs = append(seqs, seq)
		if bytes += len(ev.Payload); bytes >= store.MaxPageBytes && len(out) <= limit {
			// The page is full by its bytes: the next starts after its last event.
			return out, store.EncodeCursor(seq), nil
		}
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list events: %w", err)
	}
	return page(out, limit, func(i int) int64 { return seqs[i] })
}

// deleteOld removes a batch of the oldest events created before $1 with their deliveries and
// attempts, in one statement. SKIP LOCKED lets two processes run retention at once.
const deleteOld = `WITH old AS (
		SELECT seq FROM events WHERE created_at < $1 ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED
	), gone AS (
		DELETE FROM deliveries WHERE event_seq IN (SELECT seq FROM old) RETURNING id
	), attempts_gone AS (
		DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM gone)
	), events_gone AS (
		DELETE FROM events WHERE seq IN (SELECT seq FROM old)
	)
	SELECT count(*) FROM old`

// DeleteOlderThan removes old events with their deliveries and attempts, received requests
// received before t and dedup keys whose window ended before t, at most limit of each kind (a
// negative limit: all of them, as in the SQLite driver), in one implicit transaction. It returns
// how many rows of the three kinds it removed together: less than limit means none of them had
// more to remove, so that a caller that repeats while it gets limit drains every kind.
func (s *Store) DeleteOlderThan(ctx context.Context, t time.Time, limit int) (int, error) {
	var lim any = limit
	if limit < 0 {
		lim = nil // LIMIT NULL is no limit
	}
	var events, received, keys int
	err := s.sendBatch(ctx, func() *pgx.Batch {
		events, received, keys = 0, 0, 0
		b := &pgx.Batch{}
		b.Queue(deleteOld, t, lim).QueryRow(func(r pgx.Row) error { return r.Scan(&events) })
		b.Queue(`DELETE FROM received_requests WHERE seq IN (
			SELECT seq FROM received_requests WHERE received_at < $1 ORDER BY received_at LIMIT $2 FOR UPDATE SKIP LOCKED)`, t, lim).
			Exec(func(tag pgconn.CommandTag) error { received = int(tag.RowsAffected()); return nil })
		b.Queue(`DELETE FROM inbound_dedup WHERE (source_id, key) IN (
			SELECT source_id, key FROM inbound_dedup WHERE expires_at < $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)`, t, lim).
			Exec(func(tag pgconn.CommandTag) error { keys = int(tag.RowsAffected()); return nil })
		return b
	})
	if err != nil {
		return 0, fmt.Errorf("delete old events and received requests: %w", err)
	}
	return events + received + keys, nil
}
