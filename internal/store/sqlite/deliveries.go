package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

var stateCodes = map[store.DeliveryState]int{store.StatePending: 0, store.StateSucceeded: 1, store.StateDead: 2}
var stateNames = [...]store.DeliveryState{store.StatePending, store.StateSucceeded, store.StateDead}

const deliveryColumns = `id, tenant_id, event_id, event_type, endpoint_id, state, attempts, next_attempt_at, last_status, last_error, created_at, updated_at, priority`

func scanDelivery(r rowScanner) (*store.Delivery, error) {
	var d store.Delivery
	var state int
	var next, c, u int64
	if err := r.Scan(&d.ID, &d.TenantID, &d.EventID, &d.EventType, &d.EndpointID, &state, &d.Attempts, &next, &d.LastStatus, &d.LastError, &c, &u, &d.Priority); err != nil {
		return nil, err
	}
	if state < 0 || state >= len(stateNames) {
		return nil, fmt.Errorf("delivery %d: unknown state %d", d.ID, state)
	}
	d.State = stateNames[state]
	if d.State == store.StatePending {
		t := fromMicros(next)
		d.NextAttemptAt = &t
	}
	d.CreatedAt, d.UpdatedAt = fromMicros(c), fromMicros(u)
	return &d, nil
}

// GetDelivery reads one delivery of a tenant.
func (s *Store) GetDelivery(ctx context.Context, tenantID string, id int64) (*store.Delivery, error) {
	d, err := scanDelivery(s.r.QueryRowContext(ctx, `SELECT `+deliveryColumns+` FROM deliveries WHERE tenant_id = ? AND id = ?`, tenantID, id))
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
	w.in("event_type", f.EventTypes)
	if len(f.States) > 0 {
		codes := make([]string, len(f.States))
		for i, st := range f.States {
			codes[i] = fmt.Sprint(stateCodes[st])
		}
		w.in("state", codes)
	}
	if !f.Since.IsZero() {
		w.add("created_at >= ?", micros(f.Since))
	}
	if !f.Until.IsZero() {
		w.add("created_at < ?", micros(f.Until))
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
	rows, err := s.r.QueryContext(ctx, `SELECT `+deliveryColumns+` FROM deliveries WHERE `+w.String()+` ORDER BY id DESC LIMIT ?`, append(w.args, limit+1)...)
	if err != nil {
		return nil, "", fmt.Errorf("list deliveries: %w", err)
	}
	defer rows.Close()
	var out []store.Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list deliveries: %w", err)
		}
		out = append(out, *d)
	}
	return page(out, limit, rows.Err(), func(i int) int64 { return out[i].ID })
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
		w.add("at >= ?", micros(f.Since))
	}
	if !f.Until.IsZero() {
		w.add("at < ?", micros(f.Until))
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, delivery_id, tenant_id, endpoint_id, event_id, at, status, latency_us, response, error_kind, error, success
		FROM attempts WHERE `+w.String()+` ORDER BY id DESC LIMIT ?`, append(w.args, limit+1)...)
	if err != nil {
		return nil, "", fmt.Errorf("list attempts: %w", err)
	}
	defer rows.Close()
	var out []store.Attempt
	for rows.Next() {
		var a store.Attempt
		var at, lat int64
		var ok int
		if err := rows.Scan(&a.ID, &a.DeliveryID, &a.TenantID, &a.EndpointID, &a.EventID, &at, &a.StatusCode, &lat, &a.Response, &a.ErrorKind, &a.Error, &ok); err != nil {
			return nil, "", fmt.Errorf("list attempts: %w", err)
		}
		a.At, a.Latency, a.Success = fromMicros(at), time.Duration(lat)*time.Microsecond, ok == 1
		out = append(out, a)
	}
	return page(out, limit, rows.Err(), func(i int) int64 { return out[i].ID })
}

// Retry re-queues one delivery, due now, with a fresh schedule.
func (s *Store) Retry(ctx context.Context, tenantID string, id int64) (*store.Delivery, error) {
	err := s.write(ctx, func(tx *sql.Tx) error {
		now := micros(time.Now())
		if s.leases.inFlight(id, time.Now()) {
			// An attempt is in flight: the delivery is queued already.
			var one int
			if err := tx.QueryRowContext(ctx, `SELECT 1 FROM deliveries WHERE tenant_id = ? AND id = ?`, tenantID, id).Scan(&one); err != nil {
				return notFound(err, fmt.Sprintf("delivery %d", id))
			}
			return nil
		}
		res, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = 0, tries = 0, next_attempt_at = ?, updated_at = ?
			WHERE tenant_id = ? AND id = ?`, now, now, tenantID, id)
		if err != nil {
			return fmt.Errorf("retry delivery: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("retry delivery: %w", err)
		}
		if n == 0 {
			// Either it does not exist, or an attempt is in flight right now: then it is already queued.
			var one int
			if err := tx.QueryRowContext(ctx, `SELECT 1 FROM deliveries WHERE tenant_id = ? AND id = ?`, tenantID, id).Scan(&one); err != nil {
				return notFound(err, fmt.Sprintf("delivery %d", id))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.GetDelivery(ctx, tenantID, id)
}

// Replay re-queues matching deliveries in batches, so that the writer is never held for long.
func (s *Store) Replay(ctx context.Context, f store.DeliveryFilter) (int, error) {
	total := 0
	var after int64
	for {
		var n, queued int
		from := after
		err := s.write(ctx, func(tx *sql.Tx) error {
			n, queued = 0, 0
			w := deliveryWhere(f)
			w.add("id > ?", from)
			now := micros(time.Now())
			ids, err := int64s(tx.QueryContext(ctx, `SELECT id FROM deliveries WHERE `+w.String()+` ORDER BY id LIMIT 1000`, w.args...))
			if err != nil {
				return fmt.Errorf("replay: %w", err)
			}
			n = len(ids)
			if n > 0 {
				after = ids[n-1]
			}
			for _, id := range ids {
				if s.leases.inFlight(id, time.Now()) {
					// An attempt is in flight: the delivery is queued already.
					queued--
					continue
				}
				if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = 0, tries = 0, next_attempt_at = ?, updated_at = ? WHERE id = ?`, now, now, id); err != nil {
					return fmt.Errorf("replay: %w", err)
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n + queued
		if n < 1000 {
			return total, nil
		}
	}
}

// Resend queues an event for one endpoint again, creating the delivery if there was none.
func (s *Store) Resend(ctx context.Context, tenantID, eventID, endpointID string) (*store.Delivery, error) {
	var id int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		var seq int64
		var typ string
		if err := tx.QueryRowContext(ctx, `SELECT seq, type FROM events WHERE tenant_id = ? AND id = ?`, tenantID, eventID).Scan(&seq, &typ); err != nil {
			return notFound(err, "event "+eventID)
		}
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM endpoints WHERE tenant_id = ? AND id = ?`, tenantID, endpointID).Scan(&one); err != nil {
			return notFound(err, "endpoint "+endpointID)
		}
		now := micros(time.Now())
		err := tx.QueryRowContext(ctx, `INSERT INTO deliveries (tenant_id, event_seq, event_id, event_type, endpoint_id, next_attempt_at, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (event_seq, endpoint_id) DO UPDATE SET state = 0, tries = 0, next_attempt_at = excluded.next_attempt_at,
				updated_at = excluded.updated_at
			RETURNING id`, tenantID, seq, eventID, typ, endpointID, now, now, now).Scan(&id)
		if err != nil {
			return fmt.Errorf("resend: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.GetDelivery(ctx, tenantID, id)
}

// Stats counts a tenant's traffic since a moment.
func (s *Store) Stats(ctx context.Context, tenantID string, since time.Time) (*store.Stats, error) {
	st := &store.Stats{Since: since}
	t := micros(since)
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE tenant_id = ? AND created_at >= ?`, tenantID, t).Scan(&st.Events); err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT state, count(*) FROM deliveries WHERE tenant_id = ? AND created_at >= ? GROUP BY state`, tenantID, t)
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var state, n int
		if err := rows.Scan(&state, &n); err != nil {
			return nil, fmt.Errorf("stats: %w", err)
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
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	err = s.r.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(1 - success), 0), count(DISTINCT CASE WHEN success = 0 THEN delivery_id END)
		FROM attempts WHERE tenant_id = ? AND at >= ?`, tenantID, t).Scan(&st.Attempts, &st.FailedAttempts, &st.FailedDeliveries)
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	return st, nil
}

// byPriority reads, for endpoint ?1, up to ?3 pending deliveries of each priority matching cond
// (on next_attempt_at, bound to ?2), each priority oldest first: three short range scans of the
// (endpoint_id, priority, next_attempt_at) index rather than one sort of every due delivery.
// Rows are cols, where {rank} is the delivery's rank in microseconds (its due time plus its
// priority's delay; see store.ClaimRequest), unordered: the caller ranks them. Few columns: with
// a backlog, a claim reads hundreds of rows, and each column costs.
//
// The limit is bound as "(?3+0)", not "?3": SQLite (3.4x, which modernc.org/sqlite is built from)
// reads a bare LIMIT parameter's value while planning and marks the prepared statement to be
// planned again whenever a different value is bound, so a claim re-parsed and re-planned its
// whole statement at each execution (4× its cost; measured in BenchmarkClaimLimit). An
// expression is not a bare parameter, and the statement keeps its plan.
func byPriority(cond, cols string) string {
	var b strings.Builder
	for p := store.PriorityHigh; p <= store.PriorityLow; p++ {
		if p > store.PriorityHigh {
			b.WriteString(" UNION ALL ")
		}
		c := strings.ReplaceAll(cols, "{rank}", fmt.Sprintf("next_attempt_at + %d", store.PriorityDelay(p).Microseconds()))
		fmt.Fprintf(&b, `SELECT %s FROM (SELECT id, next_attempt_at FROM deliveries
			WHERE endpoint_id = ?1 AND state = 0 AND priority = %d AND %s ORDER BY next_attempt_at LIMIT (?3+0))`, c, p, cond)
	}
	return b.String()
}

// candidate is a due delivery a claim may take.
type candidate struct {
	id, next, rank int64 // next and rank in microseconds
}

// ranked reads candidates from a byPriority query of "id, {rank}" (and "next_attempt_at" if
// withNext), drops those leased at now, and sorts the rest by rank, then id.
func (s *Store) ranked(rows *sql.Rows, now time.Time, withNext bool) ([]candidate, error) {
	defer rows.Close()
	var out []candidate
	for rows.Next() {
		var c candidate
		var err error
		if withNext {
			err = rows.Scan(&c.id, &c.rank, &c.next)
		} else {
			err = rows.Scan(&c.id, &c.rank)
		}
		if err != nil {
			return nil, err
		}
		if s.leases.held(c.id, now) {
			continue
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b candidate) int { return cmp.Or(cmp.Compare(a.rank, b.rank), cmp.Compare(a.id, b.id)) })
	return out, nil
}

// ClaimDue leases due deliveries of several endpoints. Leases live in memory (see leases), so a
// claim is a read on the read pool.
func (s *Store) ClaimDue(ctx context.Context, now, leaseUntil time.Time, reqs []store.ClaimRequest) ([]store.ClaimResult, error) {
	s.leases.claimMu.Lock()
	defer s.leases.claimMu.Unlock()
	s.leases.applyReleases()
	out := make([]store.ClaimResult, len(reqs))
	for i, req := range reqs {
		var err error
		switch {
		case req.Ordered:
			out[i], err = s.claimOrdered(ctx, req, now, leaseUntil)
		case req.Batch != nil:
			out[i], err = s.claimBatches(ctx, req, now, leaseUntil)
		default:
			out[i], err = s.claimRanked(ctx, req, now, leaseUntil)
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// claimRanked takes up to Limit due deliveries by rank (store.ClaimRequest).
func (s *Store) claimRanked(ctx context.Context, req store.ClaimRequest, now, leaseUntil time.Time) (store.ClaimResult, error) {
	res := store.ClaimResult{EndpointID: req.EndpointID}
	if req.Limit > 0 {
		// First the ids, from the index alone (leased ones are skipped here, so their payloads
		// are never read), then each new claim's row and payload. Reading Limit + held rows of
		// each priority finds Limit unleased ones of it if there are.
		rows, err := s.stmts.claim.QueryContext(ctx, req.EndpointID, micros(now), req.Limit+s.leases.countFor(req.EndpointID))
		if err != nil {
			return res, fmt.Errorf("claim: %w", err)
		}
		cands, err := s.ranked(rows, now, false)
		if err != nil {
			return res, fmt.Errorf("claim: %w", err)
		}
		ids := make([]int64, 0, min(len(cands), req.Limit))
		for _, c := range cands[:min(len(cands), req.Limit)] {
			ids = append(ids, c.id)
		}
		if res.Claimed, err = s.claimRows(ctx, ids); err != nil {
			return res, err
		}
		s.lease(res.Claimed, req.EndpointID, leaseUntil)
	}
	if len(res.Claimed) < req.Limit || req.Limit == 0 {
		next, err := s.nextDue(ctx, req.EndpointID, now, s.leases.countFor(req.EndpointID))
		if err != nil {
			return res, err
		}
		res.NextDue = next
	}
	return res, nil
}

func (s *Store) lease(claimed []store.Claimed, endpointID string, until time.Time) {
	for _, c := range claimed {
		s.leases.add(c.DeliveryID, endpointID, until)
	}
}

// Keys of claimStmts for the statements of ordered and batching claims (positive keys are
// claimRows' statements by number of ids).
const (
	stmtFirstPending = -1 - iota
	stmtFailedBatches
	stmtBatchMembers
	stmtUnbatched
)

var modeQueries = map[int]string{
	// The endpoint's first pending delivery in publish order (deliveries_pending).
	stmtFirstPending: `SELECT id, next_attempt_at FROM deliveries WHERE endpoint_id = ? AND state = 0 ORDER BY id LIMIT 1`,
	// Due members of failed batches, oldest first (deliveries_batch_due). The limit is (?+0):
	// see byPriority.
	stmtFailedBatches: `SELECT id, batch_id FROM deliveries WHERE endpoint_id = ? AND state = 0 AND batch_id IS NOT NULL
		AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT (?+0)`,
	// A failed batch's pending members (deliveries_batch).
	stmtBatchMembers: `SELECT id FROM deliveries WHERE batch_id = ? AND state = 0 ORDER BY id`,
	// Due deliveries in no batch yet, by priority.
	stmtUnbatched: byPriority("next_attempt_at <= ?2 AND batch_id IS NULL", "id, {rank}, next_attempt_at"),
}

// modeStmt prepares the statement of key on the read pool once. Call with claimMu held.
func (s *Store) modeStmt(ctx context.Context, key int) (*sql.Stmt, error) {
	if st, ok := s.claimStmts[key]; ok {
		return st, nil
	}
	st, err := s.r.PrepareContext(ctx, modeQueries[key])
	if err != nil {
		return nil, fmt.Errorf("prepare claim: %w", err)
	}
	s.claimStmts[key] = st
	return st, nil
}

// claimOrdered takes the endpoint's first pending delivery in publish order if it is due and not
// leased; otherwise nothing, so that no later delivery overtakes it.
func (s *Store) claimOrdered(ctx context.Context, req store.ClaimRequest, now, leaseUntil time.Time) (store.ClaimResult, error) {
	res := store.ClaimResult{EndpointID: req.EndpointID}
	st, err := s.modeStmt(ctx, stmtFirstPending)
	if err != nil {
		return res, err
	}
	var id, next int64
	switch err := st.QueryRowContext(ctx, req.EndpointID).Scan(&id, &next); {
	case errors.Is(err, sql.ErrNoRows):
		return res, nil
	case err != nil:
		return res, fmt.Errorf("claim: %w", err)
	}
	switch {
	case s.leases.held(id, now):
		// In flight: its result (or release) wakes the lane.
	case next > micros(now):
		res.NextDue = fromMicros(next)
	case req.Limit > 0:
		if res.Claimed, err = s.claimRows(ctx, []int64{id}); err != nil {
			return res, err
		}
		s.lease(res.Claimed, req.EndpointID, leaseUntil)
	}
	return res, nil
}

// claimBatches takes up to Limit batches: failed batches due again first, each with all its
// pending members, then new ones of up to MaxEvents due deliveries in no batch, by rank, each
// only if it is full or its oldest delivery has been due for MaxWait.
func (s *Store) claimBatches(ctx context.Context, req store.ClaimRequest, now, leaseUntil time.Time) (store.ClaimResult, error) {
	res := store.ClaimResult{EndpointID: req.EndpointID}
	maxEvents := max(req.Batch.MaxEvents, 1)
	held := s.leases.countFor(req.EndpointID)
	batches := 0
	var waitUntil time.Time
	if req.Limit > 0 {
		st, err := s.modeStmt(ctx, stmtFailedBatches)
		if err != nil {
			return res, err
		}
		rows, err := st.QueryContext(ctx, req.EndpointID, micros(now), held+req.Limit*maxEvents)
		if err != nil {
			return res, fmt.Errorf("claim: %w", err)
		}
		var failed []int64
		for rows.Next() && len(failed) < req.Limit {
			var id, batch int64
			if err := rows.Scan(&id, &batch); err != nil {
				rows.Close()
				return res, fmt.Errorf("claim: %w", err)
			}
			if !s.leases.held(id, now) && !slices.Contains(failed, batch) {
				failed = append(failed, batch)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return res, fmt.Errorf("claim: %w", err)
		}
		members, err := s.modeStmt(ctx, stmtBatchMembers)
		if err != nil {
			return res, err
		}
		for _, batch := range failed {
			ids, err := int64s(members.QueryContext(ctx, batch))
			if err != nil {
				return res, fmt.Errorf("claim: %w", err)
			}
			ids = slices.DeleteFunc(ids, func(id int64) bool { return s.leases.held(id, now) })
			if err := s.claimBatch(ctx, &res, ids, batch, leaseUntil); err != nil {
				return res, err
			}
			batches++
		}
	}
	if batches < req.Limit {
		st, err := s.modeStmt(ctx, stmtUnbatched)
		if err != nil {
			return res, err
		}
		rows, err := st.QueryContext(ctx, req.EndpointID, micros(now), held+(req.Limit-batches)*maxEvents)
		if err != nil {
			return res, fmt.Errorf("claim: %w", err)
		}
		cands, err := s.ranked(rows, now, true)
		if err != nil {
			return res, fmt.Errorf("claim: %w", err)
		}
		due := make([]store.BatchCandidate, len(cands))
		for i, c := range cands {
			due[i] = store.BatchCandidate{ID: c.id, Due: fromMicros(c.next)}
		}
		var groups [][]int64
		groups, waitUntil = store.FormBatches(due, req.Limit-batches, maxEvents, req.Batch.MaxWait, now)
		for _, ids := range groups {
			if err := s.claimBatch(ctx, &res, ids, ids[0], leaseUntil); err != nil {
				return res, err
			}
			batches++
		}
	}
	if batches < req.Limit || req.Limit == 0 {
		next, err := s.nextDue(ctx, req.EndpointID, now, s.leases.countFor(req.EndpointID))
		if err != nil {
			return res, err
		}
		res.NextDue = store.Earliest(next, waitUntil)
	}
	return res, nil
}

// claimBatch leases the deliveries ids as one batch.
func (s *Store) claimBatch(ctx context.Context, res *store.ClaimResult, ids []int64, batch int64, leaseUntil time.Time) error {
	claimed, err := s.claimRows(ctx, ids)
	if err != nil {
		return err
	}
	for i := range claimed {
		claimed[i].BatchID = batch
	}
	s.lease(claimed, res.EndpointID, leaseUntil)
	res.Claimed = append(res.Claimed, claimed...)
	return nil
}

// claimRows reads the rows and payloads of deliveries still pending, in the order of ids, with
// one query per call. Statements are prepared once per number of ids (claims ask for at most a
// few times an endpoint's concurrency), under claimMu.
func (s *Store) claimRows(ctx context.Context, ids []int64) ([]store.Claimed, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	stmt, ok := s.claimStmts[len(ids)]
	if !ok {
		q := `SELECT d.id, d.attempts, d.tries, e.id, e.type, e.ts, e.payload, e.traceparent, e.tracestate FROM deliveries d
			JOIN events e ON e.seq = d.event_seq WHERE d.state = 0 AND d.id IN (` + strings.TrimSuffix(strings.Repeat("?,", len(ids)), ",") + `)`
		var err error
		if stmt, err = s.r.PrepareContext(ctx, q); err != nil {
			return nil, fmt.Errorf("prepare claim: %w", err)
		}
		s.claimStmts[len(ids)] = stmt
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := stmt.QueryContext(ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	defer rows.Close()
	byID := make(map[int64]store.Claimed, len(ids))
	for rows.Next() {
		var c store.Claimed
		var ts int64
		if err := rows.Scan(&c.DeliveryID, &c.Attempts, &c.Tries, &c.EventID, &c.EventType, &ts, &c.Payload, &c.Traceparent, &c.Tracestate); err != nil {
			return nil, fmt.Errorf("claim: %w", err)
		}
		c.EventTime = fromMicros(ts)
		byID[c.DeliveryID] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	out := make([]store.Claimed, 0, len(byID))
	for _, id := range ids { // keep the due order; a missing id is no longer pending
		if c, ok := byID[id]; ok {
			out = append(out, c)
		}
	}
	return out, nil
}

// nextDue finds when the endpoint's earliest pending, unleased delivery after now is due, of any
// priority.
func (s *Store) nextDue(ctx context.Context, endpointID string, now time.Time, held int) (time.Time, error) {
	rows, err := s.stmts.nextDue.QueryContext(ctx, endpointID, micros(now), held+1)
	if err != nil {
		return time.Time{}, fmt.Errorf("next due: %w", err)
	}
	defer rows.Close()
	var first int64
	for rows.Next() {
		var id, next int64
		if err := rows.Scan(&id, &next); err != nil {
			return time.Time{}, fmt.Errorf("next due: %w", err)
		}
		if !s.leases.held(id, now) && (first == 0 || next < first) {
			first = next
		}
	}
	if err := rows.Err(); err != nil || first == 0 {
		return time.Time{}, err
	}
	return fromMicros(first), nil
}

func nextMicros(r store.Result) int64 {
	if r.State == store.StatePending {
		return micros(r.NextAttemptAt)
	}
	return 0
}

// batchOf is the batch a delivery stays in after the result: a pending member of a batch keeps
// it, so that its retries send the same batch; anything else leaves its batch.
func batchOf(r store.Result) any {
	if r.State == store.StatePending && r.BatchID != 0 {
		return r.BatchID
	}
	return nil
}

// resultChunk is how many results one multi-row statement writes.
const resultChunk = 32

// resultStmts write a chunk of results of one size.
type resultStmts struct{ insert, update *sql.Stmt }

// prepareResultStmts prepares the chunk statements for every size up to resultChunk, at open:
// they cannot be prepared later on the single write connection while a transaction holds it.
func prepareResultStmts(ctx context.Context, w *sql.DB) ([]resultStmts, error) {
	out := make([]resultStmts, resultChunk)
	for n := 1; n <= resultChunk; n++ {
		ins := `INSERT INTO attempts (delivery_id, tenant_id, endpoint_id, event_id, at, status, latency_us, response, error_kind, error, success) VALUES ` +
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?),", n), ",")
		upd := `UPDATE deliveries SET state = v.column2, attempts = attempts + 1, tries = tries + 1, next_attempt_at = v.column3,
			last_status = v.column4, last_error = v.column5, batch_id = v.column6, updated_at = ?
			FROM (VALUES ` + strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?),", n), ",") + `) AS v WHERE deliveries.id = v.column1`
		var err error
		if out[n-1].insert, err = w.PrepareContext(ctx, ins); err != nil {
			return nil, fmt.Errorf("prepare result insert: %w", err)
		}
		if out[n-1].update, err = w.PrepareContext(ctx, upd); err != nil {
			return nil, fmt.Errorf("prepare result update: %w", err)
		}
	}
	return out, nil
}

// RecordResults writes attempts and the deliveries' new states, and tracks endpoints' failing streaks.
func (s *Store) RecordResults(ctx context.Context, results []store.Result) error {
	err := s.writeLazy(ctx, func(tx *sql.Tx) error {
		insert := tx.StmtContext(ctx, s.stmts.insertAttempt)
		update := tx.StmtContext(ctx, s.stmts.updateDelivery)
		now := micros(time.Now())
		succeeded := map[string]bool{}
		failedAt := map[string]int64{}
		clearStreak := tx.StmtContext(ctx, s.stmts.clearStreak)
		startStreak := tx.StmtContext(ctx, s.stmts.startStreak)
		// Results whose attempt names its tenant and event (the dispatcher's do) are written in
		// chunks: one multi-row INSERT and one UPDATE … FROM (VALUES …) per chunk, instead of two
		// statements per result. Others go one by one.
		var known []store.Result
		usage := store.UsageDelta{}
		for _, r := range results {
			a := r.Attempt
			if a.TenantID == "" {
				// Whose attempt it is comes from the delivery (as the insert below reads it).
				if err := tx.QueryRowContext(ctx, `SELECT tenant_id FROM deliveries WHERE id = ?`, r.DeliveryID).Scan(&a.TenantID); err != nil {
					if errors.Is(err, sql.ErrNoRows) {
						continue // the delivery is gone (its tenant or endpoint deleted): nothing is written
					}
					return fmt.Errorf("read delivery's tenant: %w", err)
				}
			}
			a.EndpointID = r.EndpointID
			usage.AddAttempt(a)
			a = r.Attempt
			if a.Success {
				succeeded[r.EndpointID] = true
			} else if _, ok := failedAt[r.EndpointID]; !ok {
				failedAt[r.EndpointID] = micros(a.At)
			}
			if a.TenantID != "" && a.EventID != "" {
				known = append(known, r)
				continue
			}
			if _, err := insert.ExecContext(ctx, micros(a.At), a.StatusCode, a.Latency.Microseconds(), a.Response, a.ErrorKind, a.Error, boolInt(a.Success), r.DeliveryID); err != nil {
				return fmt.Errorf("insert attempt: %w", err)
			}
			if _, err := update.ExecContext(ctx, stateCodes[r.State], nextMicros(r), a.StatusCode, a.Error, now, r.DeliveryID); err != nil {
				return fmt.Errorf("update delivery: %w", err)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET batch_id = ? WHERE id = ? AND batch_id IS NOT ?`, batchOf(r), r.DeliveryID, batchOf(r)); err != nil {
				return fmt.Errorf("update delivery: %w", err)
			}
		}
		for len(known) > 0 {
			chunk := known[:min(len(known), resultChunk)]
			known = known[len(chunk):]
			st := s.resultStmts[len(chunk)-1]
			ins := make([]any, 0, len(chunk)*11)
			upd := make([]any, 0, len(chunk)*6+1)
			upd = append(upd, now)
			for _, r := range chunk {
				a := r.Attempt
				ins = append(ins, r.DeliveryID, a.TenantID, r.EndpointID, a.EventID, micros(a.At), a.StatusCode, a.Latency.Microseconds(), a.Response, a.ErrorKind, a.Error, boolInt(a.Success))
				upd = append(upd, r.DeliveryID, stateCodes[r.State], nextMicros(r), a.StatusCode, a.Error, batchOf(r))
			}
			if _, err := tx.StmtContext(ctx, st.insert).ExecContext(ctx, ins...); err != nil {
				return fmt.Errorf("insert attempts: %w", err)
			}
			if _, err := tx.StmtContext(ctx, st.update).ExecContext(ctx, upd...); err != nil {
				return fmt.Errorf("update deliveries: %w", err)
			}
		}
		if err := s.addUsage(ctx, tx, usage); err != nil {
			return err
		}
		for id := range succeeded {
			if _, err := clearStreak.ExecContext(ctx, id); err != nil {
				return fmt.Errorf("endpoint streak: %w", err)
			}
		}
		for id, at := range failedAt {
			if succeeded[id] {
				continue
			}
			if _, err := startStreak.ExecContext(ctx, at, id); err != nil {
				return fmt.Errorf("endpoint streak: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		// The leases stay: the deliveries are attempted again when they expire.
		return err
	}
	ids := make([]int64, len(results))
	for i, r := range results {
		ids[i] = r.DeliveryID
	}
	s.leases.queueRelease(ids...)
	return nil
}

// LeaseEnd is when the lease of id ends, zero if there is none in force or it was released.
func (s *Store) LeaseEnd(id int64) time.Time { return s.leases.end(id) }

// ReleaseClaims ends leases without recording attempts.
func (s *Store) ReleaseClaims(ctx context.Context, ids []int64) error {
	s.leases.queueRelease(ids...)
	return nil
}

// RenewClaims extends the leases in force; they live in memory, so this writes nothing.
func (s *Store) RenewClaims(ctx context.Context, now, until time.Time) (int, error) {
	return s.leases.renew(now, until), nil
}

// ReleaseAllClaims ends every lease. The SQLite store belongs to one process (it holds the file
// lock) and keeps leases in memory, so this only matters within a run.
func (s *Store) ReleaseAllClaims(ctx context.Context) (int, error) {
	s.leases.claimMu.Lock()
	defer s.leases.claimMu.Unlock()
	return s.leases.clear(), nil
}

// dueEndpoints is DueEndpoints' query. A GROUP BY would read every pending delivery (a second
// and more at millions of them: BenchmarkDueEndpoints): instead the partial index deliveries_due
// is walked from one endpoint to the next, and for each its first entry is its earliest, a few
// index seeks per endpoint with work.
const dueEndpoints = `WITH RECURSIVE e(id) AS (
		SELECT (SELECT min(endpoint_id) FROM deliveries WHERE state = 0)
		UNION ALL
		SELECT (SELECT min(endpoint_id) FROM deliveries WHERE state = 0 AND endpoint_id > e.id) FROM e WHERE e.id IS NOT NULL)
	SELECT id, (SELECT min(next_attempt_at) FROM deliveries WHERE state = 0 AND endpoint_id = e.id) FROM e WHERE id IS NOT NULL`

// DueEndpoints lists endpoints with pending unleased deliveries and their earliest due time.
func (s *Store) DueEndpoints(ctx context.Context, now time.Time) (map[string]time.Time, error) {
	rows, err := s.r.QueryContext(ctx, dueEndpoints)
	if err != nil {
		return nil, fmt.Errorf("due endpoints: %w", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var id string
		var next int64
		if err := rows.Scan(&id, &next); err != nil {
			return nil, fmt.Errorf("due endpoints: %w", err)
		}
		out[id] = fromMicros(next)
	}
	return out, rows.Err()
}
