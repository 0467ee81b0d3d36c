package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

// audited makes fn also write the audit entry that ctx carries, if any, in its transaction.
func audited(ctx context.Context, fn func(tx *sql.Tx) error) func(tx *sql.Tx) error {
	a := store.AuditFrom(ctx)
	if a == nil {
		return fn
	}
	return func(tx *sql.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return insertAudit(ctx, tx, a)
	}
}

func nullJSON(b json.RawMessage) sql.NullString {
	if b == nil {
		return sql.NullString{}
	}
	return sql.NullString{String: string(b), Valid: true}
}

func insertAudit(ctx context.Context, tx *sql.Tx, a *store.AuditEntry) error {
	err := tx.QueryRowContext(ctx, `INSERT INTO audit_log (at, actor_key_id, actor_role, actor_tenant_id, action, resource_type,
		resource_id, tenant_id, before, after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		micros(a.At), a.ActorKeyID, string(a.ActorRole), a.ActorTenant, a.Action, a.ResourceType, a.ResourceID, a.TenantID,
		nullJSON(a.Before), nullJSON(a.After)).Scan(&a.ID)
	if err != nil {
		return fmt.Errorf("insert audit entry: %w", err)
	}
	return nil
}

// RecordAudit writes an audit entry on its own.
func (s *Store) RecordAudit(ctx context.Context, a *store.AuditEntry) error {
	return s.write(store.WithAudit(ctx, nil), func(tx *sql.Tx) error { return insertAudit(ctx, tx, a) })
}

// ListAudit lists audit entries, newest first.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, string, error) {
	pos, err := before(f.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := f.Clamp()
	var w where
	w.add("id < ?", pos)
	for _, c := range []struct{ col, v string }{
		{"tenant_id", f.TenantID}, {"action", f.Action}, {"resource_type", f.ResourceType}, {"resource_id", f.ResourceID},
	} {
		if c.v != "" {
			w.add(c.col+" = ?", c.v)
		}
	}
	if !f.Since.IsZero() {
		w.add("at >= ?", micros(f.Since))
	}
	if !f.Until.IsZero() {
		w.add("at < ?", micros(f.Until))
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, at, actor_key_id, actor_role, actor_tenant_id, action, resource_type, resource_id,
		tenant_id, before, after FROM audit_log WHERE `+w.String()+` ORDER BY id DESC LIMIT ?`, append(w.args, limit+1)...)
	if err != nil {
		return nil, "", fmt.Errorf("list audit log: %w", err)
	}
	defer rows.Close()
	var out []store.AuditEntry
	for rows.Next() {
		var a store.AuditEntry
		var at int64
		var role string
		var before, after sql.NullString
		if err := rows.Scan(&a.ID, &at, &a.ActorKeyID, &role, &a.ActorTenant, &a.Action, &a.ResourceType, &a.ResourceID,
			&a.TenantID, &before, &after); err != nil {
			return nil, "", fmt.Errorf("list audit log: %w", err)
		}
		a.At, a.ActorRole = fromMicros(at), store.Role(role)
		if before.Valid {
			a.Before = json.RawMessage(before.String)
		}
		if after.Valid {
			a.After = json.RawMessage(after.String)
		}
		out = append(out, a)
	}
	return page(out, limit, rows.Err(), func(i int) int64 { return out[i].ID })
}

// DeleteAuditOlderThan removes the oldest audit entries recorded before t, at most limit.
func (s *Store) DeleteAuditOlderThan(ctx context.Context, t time.Time, limit int) (int, error) {
	var n int64
	err := s.write(store.WithAudit(ctx, nil), func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < ? ORDER BY at LIMIT ?)`,
			micros(t), limit)
		if err != nil {
			return fmt.Errorf("delete old audit entries: %w", err)
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// tenantBatch bounds how many rows of one table a transaction of DeleteTenant removes, so that
// deleting a large tenant never holds the writer for long.
const tenantBatch = 1000

// DeleteTenant removes a tenant with everything it owns, in small transactions. The keys,
// endpoints and sources go first (the tenant can no longer call, new events are delivered
// nowhere, and nothing more is received), then attempts, deliveries, events and received
// requests a batch at a time, and the tenant last, with whatever arrived meanwhile: an
// interrupted deletion leaves the tenant in place, and deleting it again finishes the job. A re-created tenant of the same id never sees the old one's rows.
func (s *Store) DeleteTenant(ctx context.Context, id string) (*store.TenantDeletion, error) {
	audit := store.AuditFrom(ctx)
	quiet := store.WithAudit(ctx, nil) // the entry goes with the last transaction only
	var del store.TenantDeletion
	err := s.write(quiet, func(tx *sql.Tx) error {
		s.subs.invalidate()
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM tenants WHERE id = ?`, id).Scan(&one); err != nil {
			return notFound(err, "tenant "+id)
		}
		var err error
		del = store.TenantDeletion{}
		if del.APIKeys, err = execCount(ctx, tx, `DELETE FROM api_keys WHERE tenant_id = ?`, id); err != nil {
			return fmt.Errorf("delete tenant keys: %w", err)
		}
		if del.Endpoints, err = execCount(ctx, tx, `DELETE FROM endpoints WHERE tenant_id = ?`, id); err != nil {
			return fmt.Errorf("delete tenant endpoints: %w", err)
		}
		// The sources go with the endpoints: the tenant receives nothing more.
		if _, err := tx.ExecContext(ctx, `DELETE FROM inbound_dedup WHERE source_id IN (SELECT id FROM sources WHERE tenant_id = ?)`, id); err != nil {
			return fmt.Errorf("delete tenant dedup keys: %w", err)
		}
		if del.Sources, err = execCount(ctx, tx, `DELETE FROM sources WHERE tenant_id = ?`, id); err != nil {
			return fmt.Errorf("delete tenant sources: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, b := range []struct {
		q string
		n *int
	}{
		{`DELETE FROM attempts WHERE id IN (SELECT id FROM attempts WHERE tenant_id = ? LIMIT ?)`, &del.Attempts},
		{`DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries WHERE tenant_id = ? LIMIT ?)`, &del.Deliveries},
		{`DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE tenant_id = ? LIMIT ?)`, &del.Events},
		{`DELETE FROM received_requests WHERE seq IN (SELECT seq FROM received_requests WHERE tenant_id = ? LIMIT ?)`, &del.Received},
	} {
		for {
			var n int
			err := s.write(quiet, func(tx *sql.Tx) error {
				var err error
				n, err = execCount(ctx, tx, b.q, id, tenantBatch)
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("delete tenant %s: %w", id, err)
			}
			*b.n += n
			if n < tenantBatch {
				break
			}
		}
	}
	var out store.TenantDeletion
	err = s.write(quiet, func(tx *sql.Tx) error {
		s.subs.invalidate()
		out = del
		for _, q := range []struct {
			q string
			n *int
		}{
			{`DELETE FROM attempts WHERE tenant_id = ?`, &out.Attempts},
			{`DELETE FROM deliveries WHERE tenant_id = ?`, &out.Deliveries},
			{`DELETE FROM events WHERE tenant_id = ?`, &out.Events},
			{`DELETE FROM api_keys WHERE tenant_id = ?`, &out.APIKeys},
			{`DELETE FROM usage_hourly WHERE tenant_id = ?`, new(int)},
			{`DELETE FROM endpoints WHERE tenant_id = ?`, &out.Endpoints},
			{`DELETE FROM inbound_dedup WHERE source_id IN (SELECT id FROM sources WHERE tenant_id = ?)`, new(int)},
			{`DELETE FROM sources WHERE tenant_id = ?`, &out.Sources},
			{`DELETE FROM received_requests WHERE tenant_id = ?`, &out.Received},
		} {
			n, err := execCount(ctx, tx, q.q, id)
			if err != nil {
				return fmt.Errorf("delete tenant %s: %w", id, err)
			}
			*q.n += n
		}
		n, err := execCount(ctx, tx, `DELETE FROM tenants WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("delete tenant %s: %w", id, err)
		}
		if n == 0 {
			return fmt.Errorf("tenant %s: %w", id, store.ErrNotFound) // deleted meanwhile by another call
		}
		if audit == nil {
			return nil
		}
		if audit.After, err = json.Marshal(out); err != nil {
			return fmt.Errorf("encode tenant deletion: %w", err)
		}
		return insertAudit(ctx, tx, audit)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// execCount runs a statement and returns how many rows it changed.
func execCount(ctx context.Context, tx *sql.Tx, q string, args ...any) (int, error) {
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}
