package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/store"
)

// CreatePlan inserts a plan; ErrConflict if the name is taken.
func (s *Store) CreatePlan(ctx context.Context, p *store.TenantPlan) error {
	limits, err := store.EncodeTenantLimits(p.Limits)
	if err != nil {
		return err
	}
	err = s.execOne(ctx, "insert plan", `INSERT INTO plans (name, description, limits, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)`,
		p.Name, p.Description, limits, p.CreatedAt, p.UpdatedAt)
	if isUnique(err) {
		return fmt.Errorf("plan %q: %w", p.Name, store.ErrConflict)
	}
	return err
}

const planColumns = `name, description, limits, created_at, updated_at`

func scanPlan(r pgx.Row) (*store.TenantPlan, error) {
	var p store.TenantPlan
	var limits string
	if err := r.Scan(&p.Name, &p.Description, &limits, &p.CreatedAt, &p.UpdatedAt); err != nil {
		return nil, err
	}
	var err error
	if p.Limits, err = store.DecodeTenantLimits(limits); err != nil {
		return nil, fmt.Errorf("plan %s: %w", p.Name, err)
	}
	return &p, nil
}

// GetPlan reads a plan.
func (s *Store) GetPlan(ctx context.Context, name string) (*store.TenantPlan, error) {
	p, err := scanPlan(s.pool.QueryRow(ctx, `SELECT `+planColumns+` FROM plans WHERE name = $1`, name))
	if err != nil {
		return nil, notFound(err, "plan "+name)
	}
	return p, nil
}

// ListPlans lists every plan by name.
func (s *Store) ListPlans(ctx context.Context) ([]store.TenantPlan, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+planColumns+` FROM plans ORDER BY name`)
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
	return s.execOne(ctx, "plan "+p.Name, `UPDATE plans SET description = $1, limits = $2, updated_at = $3 WHERE name = $4`,
		p.Description, limits, p.UpdatedAt, p.Name)
}

// DeletePlan removes a plan no tenant is on. The plan's row is locked first, and a tenant put on
// it meanwhile is seen by the count (READ COMMITTED: the count is a statement of its own).
func (s *Store) DeletePlan(ctx context.Context, name string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM plans WHERE name = $1 FOR UPDATE`, name).Scan(&one); err != nil {
			return notFound(err, "plan "+name)
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM tenants WHERE plan = $1`, name).Scan(&n); err != nil {
			return fmt.Errorf("count plan's tenants: %w", err)
		}
		if n > 0 {
			return fmt.Errorf("plan %s has %d tenants; move them to another plan first: %w", name, n, store.ErrConflict)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM plans WHERE name = $1`, name); err != nil {
			return fmt.Errorf("delete plan: %w", err)
		}
		return nil
	})
}

// usageShards is how many counter rows one tenant, hour and endpoint may have (the shard is the
// writing connection's backend pid modulo this; see migration 00013).
const usageShards = "8"

// usageConflict adds a counter row's increments to the row already there.
const usageConflict = ` ON CONFLICT (tenant_id, hour, endpoint_id, shard) DO UPDATE SET events = usage_hourly.events + excluded.events,
	event_bytes = usage_hourly.event_bytes + excluded.event_bytes, requests = usage_hourly.requests + excluded.requests,
	request_bytes = usage_hourly.request_bytes + excluded.request_bytes, deliveries = usage_hourly.deliveries + excluded.deliveries,
	attempts_ok = usage_hourly.attempts_ok + excluded.attempts_ok, attempts_failed = usage_hourly.attempts_failed + excluded.attempts_failed,
	bytes_sent = usage_hourly.bytes_sent + excluded.bytes_sent`

// queueUsage queues in b the increments of d, one statement, rows in key order (so that two
// transactions lock counter rows in one order).
func queueUsage(b *pgx.Batch, d store.UsageDelta) {
	if len(d) == 0 {
		return
	}
	keys := d.Sorted()
	n := len(keys)
	tenants, endpoints := make([]string, n), make([]string, n)
	hours := make([]time.Time, n)
	cols := make([][]int64, 8)
	for i := range cols {
		cols[i] = make([]int64, n)
	}
	for i, k := range keys {
		c := d[k]
		tenants[i], hours[i], endpoints[i] = k.TenantID, k.Hour, k.EndpointID
		for j, v := range []int64{c.Events, c.EventBytes, c.RequestsReceived, c.BytesReceived, c.Deliveries, c.AttemptsOK, c.AttemptsFailed, c.BytesSent} {
			cols[j][i] = v
		}
	}
	b.Queue(`INSERT INTO usage_hourly (tenant_id, hour, endpoint_id, shard, events, event_bytes, requests, request_bytes, deliveries,
		attempts_ok, attempts_failed, bytes_sent)
		SELECT t, h, e, pg_backend_pid() % `+usageShards+`, ev, eb, rq, rb, dl, ok, fl, bs
		FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[],
			$9::bigint[], $10::bigint[], $11::bigint[]) WITH ORDINALITY AS u(t, h, e, ev, eb, rq, rb, dl, ok, fl, bs, n)
		ORDER BY n`+usageConflict,
		tenants, hours, endpoints, cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7])
}

// Usage sums the counter rows f selects into its buckets.
func (s *Store) Usage(ctx context.Context, f store.UsageFilter) ([]store.UsageRow, error) {
	// Hours are grouped by the column itself, in the primary key's order.
	bucket := "hour"
	if f.Daily {
		bucket = `to_timestamp(floor(extract(epoch FROM hour) / 86400) * 86400)`
	}
	endpoint := "''"
	group := "tenant_id, " + bucket
	cond := "hour >= $1 AND hour < $2"
	args := []any{f.From, f.To}
	if f.TenantID != "" {
		args = append(args, f.TenantID)
		cond += fmt.Sprintf(" AND tenant_id = $%d", len(args))
	}
	switch {
	case f.EndpointID != "":
		args = append(args, f.EndpointID)
		cond += fmt.Sprintf(" AND endpoint_id = $%d", len(args))
		endpoint, group = "endpoint_id", group+", endpoint_id"
	case f.ByEndpoint:
		cond += " AND endpoint_id <> ''"
		endpoint, group = "endpoint_id", group+", endpoint_id"
	}
	rows, err := s.pool.Query(ctx, `SELECT tenant_id, `+bucket+`, `+endpoint+`, sum(events)::bigint, sum(event_bytes)::bigint, sum(requests)::bigint,
		sum(request_bytes)::bigint, sum(deliveries)::bigint, sum(attempts_ok)::bigint, sum(attempts_failed)::bigint, sum(bytes_sent)::bigint
		FROM usage_hourly WHERE `+cond+` GROUP BY `+group+` ORDER BY `+group, args...)
	if err != nil {
		return nil, unavailable(fmt.Errorf("read usage: %w", err))
	}
	defer rows.Close()
	var out []store.UsageRow
	for rows.Next() {
		var r store.UsageRow
		c := &r.UsageCounts
		if err := rows.Scan(&r.TenantID, &r.Start, &r.EndpointID, &c.Events, &c.EventBytes, &c.RequestsReceived, &c.BytesReceived,
			&c.Deliveries, &c.AttemptsOK, &c.AttemptsFailed, &c.BytesSent); err != nil {
			return nil, fmt.Errorf("read usage: %w", err)
		}
		r.Start = r.Start.UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}
