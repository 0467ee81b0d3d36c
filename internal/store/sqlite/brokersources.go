package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/heraldhq/herald/internal/seal"
	"github.com/heraldhq/herald/internal/store"
)

const brokerSourceColumns = `seq, id, tenant_id, name, type, settings, mapping, schema, enabled, health_state, health_error,
	health_since, created_at, updated_at`

func scanBrokerSource(keys *seal.Keyring, r rowScanner) (*store.BrokerSource, int64, error) {
	var b store.BrokerSource
	var seq, since, c, u int64
	var settings, mapping string
	var sch sql.NullString
	var enabled int
	if err := r.Scan(&seq, &b.ID, &b.TenantID, &b.Name, &b.Type, &settings, &mapping, &sch, &enabled, &b.Health.State,
		&b.Health.LastError, &since, &c, &u); err != nil {
		return nil, 0, err
	}
	var err error
	if b.Settings, err = store.DecodeBrokerSettings(keys, b.ID, settings); err != nil {
		return nil, 0, err
	}
	b.Mapping, b.Schema = []byte(mapping), fromNullJSON(sch)
	b.Enabled, b.CreatedAt, b.UpdatedAt = enabled == 1, fromMicros(c), fromMicros(u)
	if since != 0 {
		b.Health.Since = fromMicros(since)
	}
	return &b, seq, nil
}

func mappingArg(b *store.BrokerSource) string {
	if len(b.Mapping) == 0 {
		return "{}"
	}
	return string(b.Mapping)
}

// CreateBrokerSource inserts a broker source of an existing tenant, its health starting.
func (s *Store) CreateBrokerSource(ctx context.Context, b *store.BrokerSource) error {
	settings, err := store.EncodeBrokerSettings(s.keys, b.ID, b.Settings)
	if err != nil {
		return err
	}
	b.Health = store.BrokerHealth{State: store.BrokerStarting, Since: b.CreatedAt}
	return s.write(ctx, func(tx *sql.Tx) error {
		// The single writer makes the count and the insert atomic.
		var sources, brokers int
		var own, planLimits string
		if err := tx.QueryRowContext(ctx, tenantSourcesQuery, b.TenantID).Scan(&sources, &brokers, &own, &planLimits); err != nil {
			return notFound(err, "tenant "+b.TenantID)
		}
		if err := checkTenantSources(s.fanout.Limits(), own, planLimits, sources, brokers, true); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO broker_sources (id, tenant_id, name, type, settings, mapping, schema, enabled,
			health_state, health_error, health_since, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?, ?)`,
			b.ID, b.TenantID, b.Name, b.Type, settings, mappingArg(b), nullJSON(b.Schema), boolInt(b.Enabled),
			b.Health.State, micros(b.Health.Since), micros(b.CreatedAt), micros(b.UpdatedAt))
		if isUnique(err) {
			return fmt.Errorf("broker source %q: %w", b.ID, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("insert broker source: %w", err)
		}
		return nil
	})
}

// GetBrokerSource reads one broker source of a tenant.
func (s *Store) GetBrokerSource(ctx context.Context, tenantID, id string) (*store.BrokerSource, error) {
	b, _, err := scanBrokerSource(s.keys, s.r.QueryRowContext(ctx, `SELECT `+brokerSourceColumns+` FROM broker_sources WHERE tenant_id = ? AND id = ?`, tenantID, id))
	if err != nil {
		return nil, notFound(err, "broker source "+id)
	}
	return b, nil
}

// ListBrokerSources lists a tenant's broker sources in creation order.
func (s *Store) ListBrokerSources(ctx context.Context, tenantID string, p store.Page) ([]store.BrokerSource, string, error) {
	after, err := store.DecodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := p.Clamp()
	rows, err := s.r.QueryContext(ctx, `SELECT `+brokerSourceColumns+` FROM broker_sources WHERE tenant_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
		tenantID, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list broker sources: %w", err)
	}
	defer rows.Close()
	var out []store.BrokerSource
	var pos []int64
	for rows.Next() {
		b, seq, err := scanBrokerSource(s.keys, rows)
		if err != nil {
			return nil, "", fmt.Errorf("list broker sources: %w", err)
		}
		out = append(out, *b)
		pos = append(pos, seq)
	}
	return page(out, limit, rows.Err(), func(i int) int64 { return pos[i] })
}

// EnabledBrokerSources lists every tenant's enabled broker sources.
func (s *Store) EnabledBrokerSources(ctx context.Context) ([]store.BrokerSource, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+brokerSourceColumns+` FROM broker_sources WHERE enabled = 1 ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("list enabled broker sources: %w", err)
	}
	defer rows.Close()
	var out []store.BrokerSource
	for rows.Next() {
		b, _, err := scanBrokerSource(s.keys, rows)
		if err != nil {
			return nil, fmt.Errorf("list enabled broker sources: %w", err)
		}
		out = append(out, *b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list enabled broker sources: %w", err)
	}
	return out, nil
}

// UpdateBrokerSource replaces a broker source's configuration; its health stays.
func (s *Store) UpdateBrokerSource(ctx context.Context, b *store.BrokerSource) error {
	settings, err := store.EncodeBrokerSettings(s.keys, b.ID, b.Settings)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE broker_sources SET name = ?, type = ?, settings = ?, mapping = ?, schema = ?, enabled = ?,
			updated_at = ? WHERE tenant_id = ? AND id = ?`,
			b.Name, b.Type, settings, mappingArg(b), nullJSON(b.Schema), boolInt(b.Enabled), micros(b.UpdatedAt), b.TenantID, b.ID)
		if err != nil {
			return fmt.Errorf("update broker source: %w", err)
		}
		return affected(res, "broker source "+b.ID)
	})
}

// SetBrokerSourceHealth records a runner's report, keeping Since while the state holds.
func (s *Store) SetBrokerSourceHealth(ctx context.Context, tenantID, id string, h store.BrokerHealth) error {
	return s.writeLazy(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE broker_sources SET health_error = ?,
			health_since = CASE WHEN health_state = ? THEN health_since ELSE ? END, health_state = ?
			WHERE tenant_id = ? AND id = ?`, h.LastError, h.State, micros(h.Since), h.State, tenantID, id)
		if err != nil {
			return fmt.Errorf("set broker source health: %w", err)
		}
		return affected(res, "broker source "+id)
	})
}

// DeleteBrokerSource removes a broker source with its received messages and their dedup keys.
func (s *Store) DeleteBrokerSource(ctx context.Context, tenantID, id string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM broker_sources WHERE tenant_id = ? AND id = ?`, tenantID, id)
		if err != nil {
			return fmt.Errorf("delete broker source: %w", err)
		}
		if err := affected(res, "broker source "+id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM inbound_dedup WHERE source_id = ?`, id); err != nil {
			return fmt.Errorf("delete broker source dedup keys: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM received_requests WHERE tenant_id = ? AND source_id = ?`, tenantID, id); err != nil {
			return fmt.Errorf("delete broker source messages: %w", err)
		}
		return nil
	})
}
