package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

// CreatePlan inserts a plan; ErrConflict if the name is taken.
func (s *Store) CreatePlan(ctx context.Context, p *store.TenantPlan) error {
	limits, err := store.EncodeTenantLimits(p.Limits)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO plans (name, description, limits, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
			p.Name, p.Description, limits, micros(p.CreatedAt), micros(p.UpdatedAt))
		if isUnique(err) {
			return fmt.Errorf("plan %q: %w", p.Name, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("insert plan: %w", err)
		}
		return nil
	})
}

func scanPlan(r rowScanner) (*store.TenantPlan, error) {
	var p store.TenantPlan
	var limits string
	var c, u int64
	if err := r.Scan(&p.Name, &p.Description, &limits, &c, &u); err != nil {
		return nil, err
	}
	var err error
	if p.Limits, err = store.DecodeTenantLimits(limits); err != nil {
		return nil, fmt.Errorf("plan %s: %w", p.Name, err)
	}
	p.CreatedAt, p.UpdatedAt = fromMicros(c), fromMicros(u)
	return &p, nil
}

// GetPlan reads a plan.
func (s *Store) GetPlan(ctx context.Context, name string) (*store.TenantPlan, error) {
	p, err := scanPlan(s.r.QueryRowContext(ctx, `SELECT name, description, limits, created_at, updated_at FROM plans WHERE name = ?`, name))
	if err != nil {
		return nil, notFound(err, "plan "+name)
	}
	return p, nil
}

// ListPlans lists every plan by name.
func (s *Store) ListPlans(ctx context.Context) ([]store.TenantPlan, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name, description, limits, created_at, updated_at FROM plans ORDER BY name`)
	if err != nil {
		return nil, unavailable(fmt.Errorf("list plans: %w", err))
	}
	defer rows.Close()
	var out []store.TenantPlan
	for rows.Next() {
		p, err := scanPlan(rows)
		if err != nil {
			return nil, fmt.Errorf("list plans: %w", err)
		}
		out = append(out, *p)
	}
	return out, rows.Err()
}

// UpdatePlan writes a plan's description and limits.
func (s *Store) UpdatePlan(ctx context.Context, p *store.TenantPlan) error {
	limits, err := store.EncodeTenantLimits(p.Limits)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE plans SET description = ?, limits = ?, updated_at = ? WHERE name = ?`,
			p.Description, limits, micros(p.UpdatedAt), p.Name)
		if err != nil {
			return fmt.Errorf("update plan: %w", err)
		}
		return affected(res, "plan "+p.Name)
	})
}

// DeletePlan removes a plan no tenant is on.
func (s *Store) DeletePlan(ctx context.Context, name string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM tenants WHERE plan = ?`, name).Scan(&n); err != nil {
			return fmt.Errorf("count plan's tenants: %w", err)
		}
		if n > 0 {
			return fmt.Errorf("plan %s has %d tenants; move them to another plan first: %w", name, n, store.ErrConflict)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM plans WHERE name = ?`, name)
		if err != nil {
			return fmt.Errorf("delete plan: %w", err)
		}
		return affected(res, "plan "+name)
	})
}

// addUsageQuery increments one counter row.
const addUsageQuery = `INSERT INTO usage_hourly (tenant_id, hour, endpoint_id, events, event_bytes, requests, request_bytes,
	deliveries, attempts_ok, attempts_failed, bytes_sent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (tenant_id, hour, endpoint_id) DO UPDATE SET events = events + excluded.events, event_bytes = event_bytes + excluded.event_bytes,
	requests = requests + excluded.requests, request_bytes = request_bytes + excluded.request_bytes,
	deliveries = deliveries + excluded.deliveries, attempts_ok = attempts_ok + excluded.attempts_ok,
	attempts_failed = attempts_failed + excluded.attempts_failed, bytes_sent = bytes_sent + excluded.bytes_sent`

// addUsage increments the counter rows of d in tx, the writer's.
func (s *Store) addUsage(ctx context.Context, tx *sql.Tx, d store.UsageDelta) error {
	if len(d) == 0 {
		return nil
	}
	stmt := tx.StmtContext(ctx, s.stmts.addUsage)
	for _, k := range d.Sorted() {
		c := d[k]
		if _, err := stmt.ExecContext(ctx, k.TenantID, k.Hour.Unix(), k.EndpointID, c.Events, c.EventBytes, c.RequestsReceived, c.BytesReceived,
			c.Deliveries, c.AttemptsOK, c.AttemptsFailed, c.BytesSent); err != nil {
			return fmt.Errorf("count usage: %w", err)
		}
	}
	return nil
}

// Usage sums the counter rows f selects into its buckets.
func (s *Store) Usage(ctx context.Context, f store.UsageFilter) ([]store.UsageRow, error) {
	// Hours are grouped by the column itself, in the primary key's order: no sort.
	bucket, size := "hour", int64(3600)
	if f.Daily {
		bucket, size = "hour / 86400 * 86400", 86400
	}
	endpoint := "''"
	group := "tenant_id, " + bucket
	cond := "hour >= ? AND hour < ?"
	args := []any{f.From.Unix(), f.To.Unix()}
	if f.TenantID != "" {
		cond += " AND tenant_id = ?"
		args = append(args, f.TenantID)
	}
	switch {
	case f.EndpointID != "":
		cond += " AND endpoint_id = ?"
		args = append(args, f.EndpointID)
		endpoint = "endpoint_id"
		group += ", endpoint_id"
	case f.ByEndpoint:
		cond += " AND endpoint_id <> ''"
		endpoint = "endpoint_id"
		group += ", endpoint_id"
	}
	rows, err := s.r.QueryContext(ctx, `SELECT tenant_id, `+bucket+`, `+endpoint+`, sum(events), sum(event_bytes), sum(requests), sum(request_bytes),
		sum(deliveries), sum(attempts_ok), sum(attempts_failed), sum(bytes_sent)
		FROM usage_hourly WHERE `+cond+` GROUP BY `+group+` ORDER BY `+group, args...)
	if err != nil {
		return nil, unavailable(fmt.Errorf("read usage: %w", err))
	}
	defer rows.Close()
	var out []store.UsageRow
	for rows.Next() {
		var r store.UsageRow
		var start int64
		c := &r.UsageCounts
		if err := rows.Scan(&r.TenantID, &start, &r.EndpointID, &c.Events, &c.EventBytes, &c.RequestsReceived, &c.BytesReceived,
			&c.Deliveries, &c.AttemptsOK, &c.AttemptsFailed, &c.BytesSent); err != nil {
			return nil, fmt.Errorf("read usage: %w", err)
		}
		r.Start = time.Unix(start-start%size, 0).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}
