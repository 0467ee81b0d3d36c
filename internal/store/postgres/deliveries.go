package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/store"
)

var stateCodes = map[store.DeliveryState]int16{store.StatePending: 0, store.StateSucceeded: 1, store.StateDead: 2}
var stateNames = [...]store.DeliveryState{store.StatePending, store.StateSucceeded, store.StateDead}

const deliveryColumns = `id, tenant_id, event_id, event_type, endpoint_id, state, attempts, next_attempt_at, last_status, last_error, created_at, updated_at, priority`

func scanDelivery(r pgx.Row) (*store.Delivery, error) {
	var d store.Delivery
	var state, priority int16
	var next time.Time
	if err := r.Scan(&d.ID, &d.TenantID, &d.EventID, &d.EventType, &d.EndpointID, &state, &d.Attempts, &next, &d.LastStatus,
		&d.LastError, &d.CreatedAt, &d.UpdatedAt, &priority); err != nil {
		return nil, err
	}
	d.Priority = int(priority)
	if state < 0 || int(state) >= len(stateNames) {
		return nil, fmt.Errorf("delivery %d: unknown state %d", d.ID, state)
	}
	d.State = stateNames[state]
	if d.State == store.StatePending {
		d.NextAttemptAt = &next
	}
	return &d, nil
}

// GetDelivery reads one delivery of a tenant.
func (s *Store) GetDelivery(ctx context.Context, tenantID string, id int64) (*store.Delivery, error) {
	d, err := scanDelivery(s.pool.QueryRow(ctx, `SELECT `+deliveryColumns+` FROM deliveries WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	if err != nil {
		return nil, notFound(err, fmt.Sprintf("delivery %d", id))
	}
	return d, nil
}

func deliveryWhere(f store.DeliveryFilter) where {
	var w where
	w.add("tenant_id = ?", f.TenantID)
	if f.EventID != "" {
		w.add("event_id = ?", f.EventID)
	}
	if f.EndpointID != "" {
		w.add("endpoint_id = ?", f.EndpointID)
	}
	if len(f.EventTypes) > 0 {
		w.add("event_type = ANY(?)", f.EventTypes)
	}
	if len(f.States) > 0 {
		codes := make([]int16, len(f.States))
		for i, st := range f.States {
			codes[i] = stateCodes[st]
		}
		w.add("state = ANY(?::smallint[])", codes)
	}
	if !f.Since.IsZero() {
		w.add("created_at >= ?", f.Since)
	}
	if !f.Until.IsZero() {
		w.add("created_at < ?", f.Until)
	}
	return w
}

// ListDeliveries lists a tenant's deliveries, newest first.
func (s *Store) ListDeliveries(ctx context.Context, f store.DeliveryFilter) ([]store.Delivery, string, error) {
	pos, err := before(f.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := f.Clamp()
	w := deliveryWhere(f)
	w.add("id < ?", pos)
	rows, err := s.pool.Query(ctx, `SELECT `+deliveryColumns+` FROM deliveries WHERE `+w.String()+` ORDER BY id DESC LIMIT `+w.arg(limit+1), w.args...)
	if err != nil {
		return nil, "", fmt.Errorf("list deliveries: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Delivery, error) {
		d, err := scanDelivery(r)
		if err != nil {
			return store.Delivery{}, err
		}
		return *d, nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("list deliveries: %w", err)
	}
	return page(out, limit, func(i int) int64 { return out[i].ID })
}

// ListAttempts lists a tenant's attempts, newest first.
func (s *Store) ListAttempts(ctx context.Context, f store.AttemptFilter) ([]store.Attempt, string, error) {
	pos, err := before(f.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := f.Clamp()
	var w where
	w.add("tenant_id = ?", f.TenantID)
	w.add("id < ?", pos)
	if f.DeliveryID != 0 {
		w.add("delivery_id = ?", f.DeliveryID)
	}
	if f.EventID != "" {
		w.add("event_id = ?", f.EventID)
	}
	if f.EndpointID != "" {
		w.add("endpoint_id = ?", f.EndpointID)
	}
	if !f.Since.IsZero() {
		w.add("at >= ?", f.Since)
	}
	if !f.Until.IsZero() {
		w.add("at < ?", f.Until)
	}
	rows, err := s.pool.Query(ctx, `SELECT id, delivery_id, tenant_id, endpoint_id, event_id, at, status, latency_us, response, error_kind, error, success
		FROM attempts WHERE `+w.String()+` ORDER BY id DESC LIMIT `+w.arg(limit+1), w.args...)
	if err != nil {
		return nil, "", fmt.Errorf("list attempts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Attempt, error) {
		var a store.Attempt
		var lat int64
		err := r.Scan(&a.ID, &a.DeliveryID, &a.TenantID, &a.EndpointID, &a.EventID, &a.At, &a.StatusCode, &lat, &a.Response, &a.ErrorKind, &a.Error, &a.Success)
		a.Latency = time.Duration(lat) * time.Microsecond
		return a, err
	})
	if err != nil {
		return nil, "", fmt.Errorf("list attempts: %w", err)
	}
	return page(out, limit, func(i int) int64 { return out[i].ID })
}

// Retry re-queues one delivery, due now, with a fresh schedule. A delivery with an attempt in
// flight (an unexpired lease) is left as it is: it is queued already, and its attempt's result
// would overwrite the re-queue anyway.
func (s *Store) Retry(ctx context.Context, tenantID string, id int64) (*store.Delivery, error) {
	now := time.Now()
	d, err := scanDelivery(s.pool.QueryRow(ctx, `UPDATE deliveries SET state = 0, tries = 0, next_attempt_at = $1, updated_at = $1
		WHERE tenant_id = $2 AND id = $3 AND lease_until <= $1 RETURNING `+deliveryColumns, now, tenantID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		// Either it does not exist, or an attempt is in flight: then it is returned as it is.
		return s.GetDelivery(ctx, tenantID, id)
	}
	if err != nil {
		return nil, fmt.Errorf("retry delivery %d: %w", id, err)
	}
	return d, nil
}

// replayBatch bounds how many deliveries one statement of Replay re-queues, so that none holds
// many row locks for long.
const replayBatch = 1000

// Replay re-queues matching deliveries, a batch of ids at a time, each batch in a statement of its
// own. Deliveries with an attempt in flight are skipped and not counted (they are queued already).
func (s *Store) Replay(ctx context.Context, f store.DeliveryFilter) (int, error) {
	total := 0
	var after int64
	for {
		now := time.Now()
		w := deliveryWhere(f)
		filter := w.String()
		pAfter, pNow, pLimit := w.arg(after), w.arg(now), w.arg(replayBatch)
		// The filter is checked again by the UPDATE so that a row changed since the batch was read
		// (PostgreSQL re-evaluates an UPDATE's WHERE on the newest version of a row) still matches.
		q := `WITH batch AS (
				SELECT id FROM deliveries WHERE ` + filter + ` AND id > ` + pAfter + ` ORDER BY id LIMIT ` + pLimit + `
			), requeued AS (
				UPDATE deliveries SET state = 0, tries = 0, next_attempt_at = ` + pNow + `, updated_at = ` + pNow + `
				WHERE id IN (SELECT id FROM batch) AND lease_until <= ` + pNow + ` AND ` + filter + `
				RETURNING 1
			)
			SELECT (SELECT count(*) FROM batch), (SELECT coalesce(max(id), 0) FROM batch), (SELECT count(*) FROM requeued)`
		var n, requeued int
		var last int64
		if err := s.pool.QueryRow(ctx, q, w.args...).Scan(&n, &last, &requeued); err != nil {
			return total, fmt.Errorf("replay: %w", err)
		}
		total += requeued
		if n < replayBatch {
			return total, nil
		}
		after = last
	}
}

// Resend queues an event for one endpoint again, creating the delivery if there was none.
func (s *Store) Resend(ctx context.Context, tenantID, eventID, endpointID string) (*store.Delivery, error) {
	var d *store.Delivery
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var seq int64
		var typ string
		if err := tx.QueryRow(ctx, `SELECT seq, type FROM events WHERE tenant_id = $1 AND id = $2`, tenantID, eventID).Scan(&seq, &typ); err != nil {
			return notFound(err, "event "+eventID)
		}
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM endpoints WHERE tenant_id = $1 AND id = $2`, tenantID, endpointID).Scan(&one); err != nil {
			return notFound(err, "endpoint "+endpointID)
		}
		var err error
		d, err = scanDelivery(tx.QueryRow(ctx, `INSERT INTO deliveries (tenant_id, event_seq, event_id, event_type, endpoint_id, next_attempt_at, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $6, $6)
			ON CONFLICT (event_seq, endpoint_id) DO UPDATE SET state = 0, tries = 0, next_attempt_at = excluded.next_attempt_at,
				updated_at = excluded.updated_at
			RETURNING `+deliveryColumns, tenantID, seq, eventID, typ, endpointID, time.Now()))
		if err != nil {
			return fmt.Errorf("resend: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// Stats counts a tenant's traffic since a moment, in one round trip.
func (s *Store) Stats(ctx context.Context, tenantID string, since time.Time) (*store.Stats, error) {
	st := &store.Stats{Since: since}
	var b pgx.Batch
	b.Queue(`SELECT count(*) FROM events WHERE tenant_id = $1 AND created_at >= $2`, tenantID, since).QueryRow(func(r pgx.Row) error {
		return r.Scan(&st.Events)
	})
	b.Queue(`SELECT state, count(*) FROM deliveries WHERE tenant_id = $1 AND created_at >= $2 GROUP BY state`, tenantID, since).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var state int16
			var n int
			if err := rows.Scan(&state, &n); err != nil {
				return err
			}
			st.Deliveries += n
			switch state {
			case 0:
				st.Pending = n
			case 1:
				st.Succeeded = n
			case 2:
				st.Dead = n
			}
		}
		return rows.Err()
	})
	b.Queue(`SELECT count(*), count(*) FILTER (WHERE NOT success), count(DISTINCT delivery_id) FILTER (WHERE NOT success)
		FROM attempts WHERE tenant_id = $1 AND at >= $2`, tenantID, since).QueryRow(func(r pgx.Row) error {
		return r.Scan(&st.Attempts, &st.FailedAttempts, &st.FailedDeliveries)
	})
	if err := s.pool.SendBatch(ctx, &b).Close(); err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	return st, nil
}

// DueEndpoints lists endpoints that have pending deliveries, with the earliest due time. It asks
// the due index once per endpoint rather than grouping every pending delivery: a backlog of a
// million costs no more than an empty queue. Leased deliveries count (the contract allows it).
func (s *Store) DueEndpoints(ctx context.Context, now time.Time) (map[string]time.Time, error) {
	rows, err := s.pool.Query(ctx, `SELECT e.id, d.next FROM endpoints e CROSS JOIN LATERAL (
			SELECT next_attempt_at AS next FROM deliveries WHERE endpoint_id = e.id AND state = 0 ORDER BY next_attempt_at LIMIT 1
		) d`)
	if err != nil {
		return nil, fmt.Errorf("due endpoints: %w", err)
	}
	out := map[string]time.Time{}
	var id string
	var next time.Time
	_, err = pgx.ForEachRow(rows, []any{&id, &next}, func() error {
		out[id] = next
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("due endpoints: %w", err)
	}
	return out, nil
}
