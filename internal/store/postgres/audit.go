package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/store"
)

// execOne runs one statement that must change a row (ErrNotFound about what, otherwise). With an
// audit entry in ctx (store.WithAudit) it runs in a transaction that writes the entry too.
func (s *Store) execOne(ctx context.Context, what, sql string, args ...any) error {
	run := func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, sql, args...)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return affected(tag, what)
	}
	if store.AuditFrom(ctx) == nil {
		tag, err := s.pool.Exec(ctx, sql, args...)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return affected(tag, what)
	}
	return s.inTx(ctx, run)
}

// jsonArg is a snapshot as the json column takes it: NULL for none.
func jsonArg(b json.RawMessage) any {
	if b == nil {
		return nil
	}
	return string(b)
}

const insertAuditSQL = `INSERT INTO audit_log (at, actor_key_id, actor_role, actor_tenant_id, action, resource_type,
	resource_id, tenant_id, before, after) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::json, $10::json) RETURNING id`

func auditArgs(a *store.AuditEntry) []any {
	return []any{a.At, a.ActorKeyID, string(a.ActorRole), a.ActorTenant, a.Action, a.ResourceType, a.ResourceID, a.TenantID,
		jsonArg(a.Before), jsonArg(a.After)}
}

func insertAudit(ctx context.Context, tx pgx.Tx, a *store.AuditEntry) error {
	if err := tx.QueryRow(ctx, insertAuditSQL, auditArgs(a)...).Scan(&a.ID); err != nil {
		return fmt.Errorf("insert audit entry: %w", err)
	}
	return nil
}

// queueAudit queues the insert of the audit entry a, if any, in a batch of a transaction run by
// inBatchTx (which, unlike inTx, does not write the entry ctx carries); it sets a.ID when the
// batch runs.
func queueAudit(b *pgx.Batch, a *store.AuditEntry) {
	if a == nil {
		return
	}
	b.Queue(insertAuditSQL, auditArgs(a)...).QueryRow(func(r pgx.Row) error {
		if err := r.Scan(&a.ID); err != nil {
			return fmt.Errorf("insert audit entry: %w", err)
		}
		return nil
	})
}

// RecordAudit writes an audit entry on its own.
func (s *Store) RecordAudit(ctx context.Context, a *store.AuditEntry) error {
	return s.inTx(store.WithAudit(ctx, nil), func(tx pgx.Tx) error { return insertAudit(ctx, tx, a) })
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
		w.add("at >= ?", f.Since)
	}
	if !f.Until.IsZero() {
		w.add("at < ?", f.Until)
	}
	rows, err := s.pool.Query(ctx, `SELECT id, at, actor_key_id, actor_role, actor_tenant_id, action, resource_type, resource_id,
		tenant_id, before::text, after::text FROM audit_log WHERE `+w.String()+` ORDER BY id DESC LIMIT `+w.arg(limit+1), w.args...)
	if err != nil {
		return nil, "", fmt.Errorf("list audit log: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.AuditEntry, error) {
		var a store.AuditEntry
		var role string
		var before, after *string
		err := r.Scan(&a.ID, &a.At, &a.ActorKeyID, &role, &a.ActorTenant, &a.Action, &a.ResourceType, &a.ResourceID,
			&a.TenantID, &before, &after)
		a.ActorRole = store.Role(role)
		if before != nil {
			a.Before = json.RawMessage(*before)
		}
		if after != nil {
			a.After = json.RawMessage(*after)
		}
		return a, err
	})
	if err != nil {
		return nil, "", fmt.Errorf("list audit log: %w", err)
	}
	return page(out, limit, func(i int) int64 { return out[i].ID })
}

// DeleteAuditOlderThan removes the oldest audit entries recorded before t, at most limit.
func (s *Store) DeleteAuditOlderThan(ctx context.Context, t time.Time, limit int) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM audit_log WHERE id IN (
		SELECT id FROM audit_log WHERE at < $1 ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED)`, t, limit)
	if err != nil {
		return 0, fmt.Errorf("delete old audit entries: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// deleteSources removes a tenant's sources with their dedup keys and counts the sources. Each
// source goes before its keys, in the order Receive locks them (the source, then a key), so
// that a deletion and a receive wait for each other rather than deadlock.
const deleteSources = `WITH gone AS (
		DELETE FROM sources WHERE tenant_id = $1 RETURNING id
	), keys AS (
		DELETE FROM inbound_dedup WHERE source_id IN (SELECT id FROM gone)
	)
	SELECT count(*) FROM gone`

// tenantBatch bounds how many rows of one table a statement of DeleteTenant removes, so that
// deleting a large tenant never holds many row locks for long.
const tenantBatch = 1000

// DeleteTenant removes a tenant with everything it owns, in small transactions. The keys,
// endpoints and sources go first (the tenant can no longer call, new events are delivered
// nowhere, and nothing more is received), then attempts, deliveries, events and received
// requests a batch per statement, and the tenant last, with whatever arrived meanwhile: an
// interrupted deletion leaves the tenant in place, and deleting it again finishes the job. A
// re-created tenant of the same id never sees the old one's rows.
func (s *Store) DeleteTenant(ctx context.Context, id string) (*store.TenantDeletion, error) {
	audit := store.AuditFrom(ctx)
	quiet := store.WithAudit(ctx, nil) // the entry goes with the last transaction only
	var del store.TenantDeletion
	err := s.inTx(quiet, func(tx pgx.Tx) error {
		del = store.TenantDeletion{}
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM tenants WHERE id = $1`, id).Scan(&one); err != nil {
			return notFound(err, "tenant "+id)
		}
		tag, err := tx.Exec(ctx, `DELETE FROM api_keys WHERE tenant_id = $1`, id)
		if err != nil {
			return fmt.Errorf("delete tenant keys: %w", err)
		}
		del.APIKeys = int(tag.RowsAffected())
		if tag, err = tx.Exec(ctx, `DELETE FROM endpoints WHERE tenant_id = $1`, id); err != nil {
			return fmt.Errorf("delete tenant endpoints: %w", err)
		}
		del.Endpoints = int(tag.RowsAffected())
		// The sources go with the endpoints: the tenant receives nothing more.
		if err := tx.QueryRow(ctx, deleteSources, id).Scan(&del.Sources); err != nil {
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
		{`DELETE FROM attempts WHERE id IN (SELECT id FROM attempts WHERE tenant_id = $1 LIMIT $2)`, &del.Attempts},
		{`DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries WHERE tenant_id = $1 LIMIT $2)`, &del.Deliveries},
		{`DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE tenant_id = $1 LIMIT $2)`, &del.Events},
		{`DELETE FROM received_requests WHERE seq IN (SELECT seq FROM received_requests WHERE tenant_id = $1 LIMIT $2)`, &del.Received},
	} {
		for {
			tag, err := s.pool.Exec(ctx, b.q, id, tenantBatch)
			if err != nil {
				return nil, fmt.Errorf("delete tenant %s: %w", id, err)
			}
			n := int(tag.RowsAffected())
			*b.n += n
			if n < tenantBatch {
				break
			}
		}
	}
	var out store.TenantDeletion
	err = s.inTx(quiet, func(tx pgx.Tx) error {
		out = del
		// Sources first: a receive still under way holds its source, and this waits for it to
		// commit, so that the request it stored goes below.
		var sources int
		if err := tx.QueryRow(ctx, deleteSources, id).Scan(&sources); err != nil {
			return fmt.Errorf("delete tenant %s sources: %w", id, err)
		}
		out.Sources += sources
		for _, q := range []struct {
			q string
			n *int
		}{
			{`DELETE FROM attempts WHERE tenant_id = $1`, &out.Attempts},
			{`DELETE FROM deliveries WHERE tenant_id = $1`, &out.Deliveries},
			{`DELETE FROM events WHERE tenant_id = $1`, &out.Events},
			{`DELETE FROM api_keys WHERE tenant_id = $1`, &out.APIKeys},
			{`DELETE FROM usage_hourly WHERE tenant_id = $1`, new(int)},
			{`DELETE FROM endpoints WHERE tenant_id = $1`, &out.Endpoints},
			{`DELETE FROM received_requests WHERE tenant_id = $1`, &out.Received},
		} {
			tag, err := tx.Exec(ctx, q.q, id)
			if err != nil {
				return fmt.Errorf("delete tenant %s: %w", id, err)
			}
			*q.n += int(tag.RowsAffected())
		}
		tag, err := tx.Exec(ctx, `DELETE FROM tenants WHERE id = $1`, id)
		if err != nil {
			return fmt.Errorf("delete tenant %s: %w", id, err)
		}
		if err := affected(tag, "tenant "+id); err != nil {
			return err // deleted meanwhile by another call
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
