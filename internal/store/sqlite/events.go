package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/expr"
	"github.com/heraldhq/herald/internal/store"
)

// statements are the hot-path queries, prepared once (claims on the read pool, the rest on the
// write connection).
type statements struct {
	endpointsOf, insertEvent, eventByID, insertDelivery   *sql.Stmt
	enabledOf                                             *sql.Stmt
	claim, nextDue, insertAttempt, updateDelivery, tenant *sql.Stmt
	clearStreak, startStreak                              *sql.Stmt
	// The receiving side's: a source exists, take a dedup key, read its holder, store a request.
	sourceOf, takeKey, keyHolder, insertReceived *sql.Stmt
	// addUsage increments one usage counter row (plans.go).
	addUsage *sql.Stmt
}

func (st *statements) prepare(ctx context.Context, w, r *sql.DB) error {
	for _, p := range []struct {
		s **sql.Stmt
		q string
	}{
		{&st.tenant, `SELECT 1 FROM tenants WHERE id = ?`},
		{&st.addUsage, addUsageQuery},
		{&st.sourceOf, `SELECT 1 FROM sources WHERE tenant_id = ?1 AND id = ?2 UNION ALL SELECT 1 FROM broker_sources WHERE tenant_id = ?1 AND id = ?2 LIMIT 1`},
		{&st.takeKey, takeKey},
		{&st.keyHolder, `SELECT request_id FROM inbound_dedup WHERE source_id = ? AND key = ?`},
		{&st.insertReceived, insertReceived},
		{&st.clearStreak, `UPDATE endpoints SET failing_since = NULL WHERE id = ? AND failing_since IS NOT NULL`},
		{&st.startStreak, `UPDATE endpoints SET failing_since = ? WHERE id = ? AND failing_since IS NULL`},
		{&st.endpointsOf, `/*read*/ SELECT id, event_types, options FROM endpoints WHERE tenant_id = ? AND enabled = 1`},
		{&st.insertEvent, `INSERT INTO events (tenant_id, id, type, ts, source, payload, created_at, traceparent, tracestate) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (tenant_id, id) DO NOTHING RETURNING seq`},
		{&st.eventByID, `SELECT id, type, ts, source, payload, created_at FROM events WHERE tenant_id = ? AND id = ?`},
		{&st.insertDelivery, `INSERT INTO deliveries (tenant_id, event_seq, event_id, event_type, endpoint_id, next_attempt_at, created_at, updated_at, priority)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&st.enabledOf, `SELECT id FROM endpoints WHERE tenant_id = ? AND enabled = 1`},
		{&st.claim, `/*read*/ ` + byPriority("next_attempt_at <= ?2", "id, {rank}")},
		{&st.nextDue, `/*read*/ ` + byPriority("next_attempt_at > ?2", "id, next_attempt_at")},
		{&st.insertAttempt, `INSERT INTO attempts (delivery_id, tenant_id, endpoint_id, event_id, at, status, latency_us, response, error_kind, error, success)
			SELECT id, tenant_id, endpoint_id, event_id, ?, ?, ?, ?, ?, ?, ? FROM deliveries WHERE id = ?`},
		{&st.updateDelivery, `UPDATE deliveries SET state = ?, attempts = attempts + 1, tries = tries + 1, next_attempt_at = ?,
			last_status = ?, last_error = ?, updated_at = ? WHERE id = ?`},
	} {
		db := w
		if strings.HasPrefix(p.q, "/*read*/") {
			db = r // claims are reads: they must not wait for the writer
		}
		s, err := db.PrepareContext(ctx, p.q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", p.q, err)
		}
		*p.s = s
	}
	return nil
}

func (st *statements) close() {
	for _, s := range []*sql.Stmt{st.tenant, st.endpointsOf, st.enabledOf, st.insertEvent, st.eventByID, st.insertDelivery, st.claim, st.nextDue, st.insertAttempt, st.updateDelivery, st.clearStreak, st.startStreak,
		st.sourceOf, st.takeKey, st.keyHolder, st.insertReceived, st.addUsage} {
		if s != nil {
			_ = s.Close()
		}
	}
}

// Publish stores events and their deliveries. It matches the events to the tenant's
// subscribers first, outside the writer, so that no filter runs while other writes wait; then it
// writes them in transactions of whole events with at most store.ChunkDeliveries deliveries
// each, so that the writer serves other tenants between the transactions of a large publish.
func (s *Store) Publish(ctx context.Context, tenantID string, events []*store.Event) ([]store.PublishResult, error) {
	plan, err := s.plan(ctx, tenantID, events)
	if err != nil {
		return nil, err
	}
	results := make([]store.PublishResult, len(events))
	for _, c := range plan.Chunks(store.ChunkDeliveries) {
		err := s.write(ctx, func(tx *sql.Tx) error {
			res, err := s.publishIn(ctx, tx, tenantID, events[c[0]:c[1]], plan, c[0])
			copy(results[c[0]:], res)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return results, nil
}

// plan is a store.Plan with the generation of the endpoints it was matched against.
type plan struct {
	*store.Plan
	gen uint64
}

// plan matches events to the tenant's subscribers (see store.Fanout), outside the writer.
func (s *Store) plan(ctx context.Context, tenantID string, events []*store.Event) (*plan, error) {
	subs, gen, ok := s.subs.get(tenantID)
	if !ok {
		var err error
		if subs, err = subscribers(ctx, s.stmts.endpointsOf, tenantID, s.exprs); err != nil {
			select {
			case <-s.quit: // closed: unavailable, as a write would be
				return nil, fmt.Errorf("%w: %w", store.ErrUnavailable, errClosed)
			default:
				return nil, unavailable(err)
			}
		}
		// Only tenants with endpoints are kept: the tenant is checked later, in the writer, and a
		// publish to an id that is no tenant must not grow the cache.
		if len(subs) > 0 {
			s.subs.put(tenantID, gen, subs)
		}
	}
	p, err := s.fanout.Plan(ctx, tenantID, subs, events)
	if err != nil {
		return nil, err
	}
	return &plan{Plan: p, gen: gen}, nil
}

// publishIn stores events and their deliveries to the endpoints p matched them to (events[i]
// is p's event from+i) in tx, the writer's. When an endpoint has changed since p was matched, an
// endpoint no longer enabled gets none. Publish, Receive and AcceptReceived share it, so that an
// inbound event is stored exactly as a published one.
func (s *Store) publishIn(ctx context.Context, tx *sql.Tx, tenantID string, events []*store.Event, p *plan, from int) ([]store.PublishResult, error) {
	results := make([]store.PublishResult, len(events))
	var one int
	if err := tx.StmtContext(ctx, s.stmts.tenant).QueryRowContext(ctx, tenantID).Scan(&one); err != nil {
		return nil, notFound(err, "tenant "+tenantID)
	}
	var enabled map[string]bool // nil: every target is (nothing changed since p was matched)
	if !s.subs.unchanged(p.gen) {
		ids, err := column[string](tx.StmtContext(ctx, s.stmts.enabledOf).QueryContext(ctx, tenantID))
		if err != nil {
			return nil, fmt.Errorf("read enabled endpoints: %w", err)
		}
		enabled = make(map[string]bool, len(ids))
		for _, id := range ids {
			enabled[id] = true
		}
	}
	insertEvent := tx.StmtContext(ctx, s.stmts.insertEvent)
	insertDelivery := tx.StmtContext(ctx, s.stmts.insertDelivery)
	for i, ev := range events {
		var seq int64
		err := insertEvent.QueryRowContext(ctx, tenantID, ev.ID, ev.Type, micros(ev.Timestamp), ev.Source, []byte(ev.Payload), micros(ev.CreatedAt),
			ev.Traceparent, ev.Tracestate).Scan(&seq)
		if err == sql.ErrNoRows {
			// The id exists: idempotent publish returns the stored event and fans out nothing.
			stored, err := scanEvent(tx.StmtContext(ctx, s.stmts.eventByID).QueryRowContext(ctx, tenantID, ev.ID), tenantID)
			if err != nil {
				return nil, fmt.Errorf("read existing event %s: %w", ev.ID, err)
			}
			results[i] = store.PublishResult{Event: stored, Duplicate: true}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("insert event: %w", err)
		}
		ev.TenantID = tenantID
		res := store.PublishResult{Event: ev}
		now := micros(ev.CreatedAt)
		for _, id := range p.Targets[from+i] {
			if enabled != nil && !enabled[id] {
				continue // disabled or deleted since the events were matched
			}
			if _, err := insertDelivery.ExecContext(ctx, tenantID, seq, ev.ID, ev.Type, id, now, now, now, ev.Priority); err != nil {
				return nil, fmt.Errorf("insert delivery: %w", err)
			}
			res.Deliveries++
			res.EndpointIDs = append(res.EndpointIDs, id)
		}
		results[i] = res
	}
	usage := store.UsageDelta{}
	usage.AddPublished(tenantID, results)
	if err := s.addUsage(ctx, tx, usage); err != nil {
		return nil, err
	}
	return results, nil
}

// subscribers reads the tenant's enabled endpoints as fan-out sees them.
func subscribers(ctx context.Context, stmt *sql.Stmt, tenantID string, exprs *expr.Cache) ([]store.Subscriber, error) {
	rows, err := stmt.QueryContext(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("read endpoints: %w", err)
	}
	defer rows.Close()
	var subs []store.Subscriber
	for rows.Next() {
		var id, types, options string
		var patterns []string
		if err := rows.Scan(&id, &types, &options); err != nil {
			return nil, fmt.Errorf("read endpoints: %w", err)
		}
		if err := json.Unmarshal([]byte(types), &patterns); err != nil {
			return nil, fmt.Errorf("endpoint %s event types: %w", id, err)
		}
		sub, err := store.NewSubscriber(id, patterns, options, exprs)
		if err != nil {
			return nil, fmt.Errorf("endpoint %s: %w", id, err)
		}
		subs = append(subs, sub)
	}
	return subs, rows.Err()
}

func scanEvent(r rowScanner, tenantID string) (*store.Event, error) {
	var ev store.Event
	var ts, c int64
	var payload []byte
	if err := r.Scan(&ev.ID, &ev.Type, &ts, &ev.Source, &payload, &c); err != nil {
		return nil, err
	}
	ev.TenantID, ev.Timestamp, ev.Payload, ev.CreatedAt = tenantID, fromMicros(ts), payload, fromMicros(c)
	return &ev, nil
}

// GetEvent reads one event of a tenant.
func (s *Store) GetEvent(ctx context.Context, tenantID, id string) (*store.Event, error) {
	ev, err := scanEvent(s.r.QueryRowContext(ctx, `SELECT id, type, ts, source, payload, created_at FROM events WHERE tenant_id = ? AND id = ?`, tenantID, id), tenantID)
	if err != nil {
		return nil, notFound(err, "event "+id)
	}
	return ev, nil
}

// where builds a conjunction of conditions with their arguments.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

func (w *where) in(column string, values []string) {
	if len(values) == 0 {
		return
	}
	w.conds = append(w.conds, column+" IN ("+strings.TrimSuffix(strings.Repeat("?,", len(values)), ",")+")")
	for _, v := range values {
		w.args = append(w.args, v)
	}
}

func (w *where) String() string { return strings.Join(w.conds, " AND ") }

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
	w.in("type", f.Types)
	if !f.Since.IsZero() {
		w.add("created_at >= ?", micros(f.Since))
	}
	if !f.Until.IsZero() {
		w.add("created_at < ?", micros(f.Until))
	}
	rows, err := s.r.QueryContext(ctx, `SELECT seq, id, type, ts, source, payload, created_at FROM events WHERE `+w.String()+` ORDER BY seq DESC LIMIT ?`, append(w.args, limit+1)...)
	if err != nil {
		return nil, "", fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	var out []store.Event
	var seqs []int64
	bytes := 0
	for rows.Next() {
		var ev store.Event
		var seq, ts, c int64
		if err := rows.Scan(&seq, &ev.ID, &ev.Type, &ts, &ev.Source, &ev.Payload, &c); err != nil {
			return nil, "", fmt.Errorf("list events: %w", err)
		}
		ev.TenantID, ev.Timestamp, ev.CreatedAt = f.TenantID, fromMicros(ts), fromMicros(c)
		out = append(out, ev)
		seqs = append(seqs, seq)
		if bytes += len(ev.Payload); bytes >= store.MaxPageBytes && len(out) <= limit {
			// The page is full by its bytes: the next starts after its last event.
			return out, store.EncodeCursor(seq), rows.Err()
		}
	}
	return page(out, limit, rows.Err(), func(i int) int64 { return seqs[i] })
}

// DeleteOlderThan removes old events with their deliveries and attempts, received requests
// received before t and dedup keys whose window ended before t, at most limit of each kind. It
// returns how many rows of the three kinds it removed together (events, requests, keys): less
// than limit means none of them had more to remove, so that a caller that repeats while it gets
// limit drains every kind, not only events.
func (s *Store) DeleteOlderThan(ctx context.Context, t time.Time, limit int) (int, error) {
	var n int
	err := s.write(ctx, func(tx *sql.Tx) error {
		n = 0
		// The newest event is never removed: SQLite numbers a new row one past the largest left,
		// so emptying the table would restart positions at 1, and a feed reader's cursor
		// (EventsAfter) would skip the events numbered again below it.
		found, err := int64s(tx.QueryContext(ctx, `SELECT seq FROM events WHERE created_at < ? AND seq < (SELECT max(seq) FROM events)
			ORDER BY created_at LIMIT ?`, micros(t), limit))
		if err != nil {
			return fmt.Errorf("find old events: %w", err)
		}
		if len(found) > 0 {
			seqs := make([]any, len(found))
			for i, seq := range found {
				seqs[i] = seq
			}
			in := "(" + strings.TrimSuffix(strings.Repeat("?,", len(seqs)), ",") + ")"
			for _, q := range []string{
				`DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE event_seq IN ` + in + `)`,
				`DELETE FROM deliveries WHERE event_seq IN ` + in,
				`DELETE FROM events WHERE seq IN ` + in,
			} {
				if _, err := tx.ExecContext(ctx, q, seqs...); err != nil {
					return fmt.Errorf("delete old events: %w", err)
				}
			}
			n = len(seqs)
		}
		received, err := execCount(ctx, tx, `DELETE FROM received_requests WHERE seq IN (
			SELECT seq FROM received_requests WHERE received_at < ? ORDER BY received_at LIMIT ?)`, micros(t), limit)
		if err != nil {
			return fmt.Errorf("delete old received requests: %w", err)
		}
		keys, err := execCount(ctx, tx, `DELETE FROM inbound_dedup WHERE rowid IN (
			SELECT rowid FROM inbound_dedup WHERE expires_at < ? ORDER BY expires_at LIMIT ?)`, micros(t), limit)
		if err != nil {
			return fmt.Errorf("delete expired dedup keys: %w", err)
		}
		n += received + keys
		return nil
	})
	return n, err
}

// int64s reads the values of a query of one integer column: int64s(tx.QueryContext(…)).
func int64s(rows *sql.Rows, err error) ([]int64, error) { return column[int64](rows, err) }

// column reads the values of a query of one column.
func column[T any](rows *sql.Rows, err error) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
