package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/seal"
	"github.com/heraldhq/herald/internal/store"
)

const brokerSourceColumns = `seq, id, tenant_id, name, type, settings, mapping, schema, enabled, health_state, health_error,
	health_since, created_at, updated_at`

func scanBrokerSource(keys *seal.Keyring, r pgx.Row) (*store.BrokerSource, int64, error) {
	var b store.BrokerSource
	var seq int64
	var settings, mapping string
	var sch *string
	var since *time.Time
	if err := r.Scan(&seq, &b.ID, &b.TenantID, &b.Name, &b.Type, &settings, &mapping, &sch, &b.Enabled, &b.Health.State,
		&b.Health.LastError, &since, &b.CreatedAt, &b.UpdatedAt); err != nil {
		return nil, 0, err
	}
	var err error
	if b.Settings, err = store.DecodeBrokerSettings(keys, b.ID, settings); err != nil {
		return nil, 0, err
	}
	b.Mapping = json.RawMessage(mapping)
	if sch != nil {
		b.Schema = json.RawMessage(*sch)
	}
	if since != nil {
		b.Health.Since = *since
	}
	return &b, seq, nil
}

func mappingArg(b *store.BrokerSource) string {
	if len(b.Mapping) == 0 {
		return "{}"
	}
	return string(b.Mapping)
}

func schemaArg(b *store.BrokerSource) *string {
	if b.Schema == nil {
		return nil
	}
	s := string(b.Schema)
	return &s
}

// CreateBrokerSource inserts a broker source of an existing tenant, its health starting.
func (s *Store) CreateBrokerSource(ctx context.Context, b *store.BrokerSource) error {
	settings, err := store.EncodeBrokerSettings(s.keys, b.ID, b.Settings)
	if err != nil {
		return err
	}
	b.Health = store.BrokerHealth{State: store.BrokerStarting, Since: b.CreatedAt}
	// As for sources: the tenant's row is locked while its broker sources are counted, so that
	// concurrent creates cannot pass the limit together.
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if err := s.checkTenantSources(ctx, tx, b.TenantID, true); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO broker_sources (id, tenant_id, name, type, settings, mapping, schema, enabled,
			health_state, health_error, health_since, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, '', $10, $11, $12)`,
			b.ID, b.TenantID, b.Name, b.Type, settings, mappingArg(b), schemaArg(b), b.Enabled, b.Health.State, b.Health.Since,
			b.CreatedAt, b.UpdatedAt)
		return err
	})
	switch {
	case isUnique(err):
		return fmt.Errorf("broker source %q: %w", b.ID, store.ErrConflict)
	case pgCode(err) == "23503":
		return fmt.Errorf("tenant %s: %w", b.TenantID, store.ErrNotFound)
	}
	return err
}

// GetBrokerSource reads one broker source of a tenant.
func (s *Store) GetBrokerSource(ctx context.Context, tenantID, id string) (*store.BrokerSource, error) {
	b, _, err := scanBrokerSource(s.keys, s.pool.QueryRow(ctx, `SELECT `+brokerSourceColumns+` FROM broker_sources WHERE tenant_id = $1 AND id = $2`,
		tenantID, id))
	if err != nil {
		return nil, notFound(err, "broker source "+id)
	}
	return b, nil
}

// ListBrokerSources lists a tenant's broker sources in creation order.
func (s *Store) ListBrokerSources(ctx context.Context, tenantID string, p store.Page) ([]store.BrokerSource, string, error) {
	return listBySeq(ctx, s, p, "broker sources", `SELECT `+brokerSourceColumns+` FROM broker_sources WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
		func(r pgx.CollectableRow) (*store.BrokerSource, int64, error) { return scanBrokerSource(s.keys, r) }, tenantID)
}

// EnabledBrokerSources lists every tenant's enabled broker sources.
func (s *Store) EnabledBrokerSources(ctx context.Context) ([]store.BrokerSource, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+brokerSourceColumns+` FROM broker_sources WHERE enabled ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("list enabled broker sources: %w", unavailable(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.BrokerSource, error) {
		b, _, err := scanBrokerSource(s.keys, r)
		if err != nil {
			return store.BrokerSource{}, err
		}
		return *b, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list enabled broker sources: %w", unavailable(err))
	}
	return out, nil
}

// UpdateBrokerSource replaces a broker source's configuration; its health stays.
func (s *Store) UpdateBrokerSource(ctx context.Context, b *store.BrokerSource) error {
	settings, err := store.EncodeBrokerSettings(s.keys, b.ID, b.Settings)
	if err != nil {
		return err
	}
	return s.execOne(ctx, "broker source "+b.ID, `UPDATE broker_sources SET name = $1, type = $2, settings = $3, mapping = $4, schema = $5,
		enabled = $6, updated_at = $7 WHERE tenant_id = $8 AND id = $9`,
		b.Name, b.Type, settings, mappingArg(b), schemaArg(b), b.Enabled, b.UpdatedAt, b.TenantID, b.ID)
}

// SetBrokerSourceHealth records a runner's report, keeping Since while the state holds.
func (s *Store) SetBrokerSourceHealth(ctx context.Context, tenantID, id string, h store.BrokerHealth) error {
	tag, err := s.pool.Exec(ctx, `UPDATE broker_sources SET health_error = $1,
		health_since = CASE WHEN health_state = $2 THEN health_since ELSE $3 END, health_state = $2
		WHERE tenant_id = $4 AND id = $5`, h.LastError, h.State, h.Since, tenantID, id)
	if err != nil {
		return fmt.Errorf("set broker source health: %w", unavailable(err))
	}
	return affected(tag, "broker source "+id)
}

// DeleteBrokerSource removes a broker source with its received messages and their dedup keys.
func (s *Store) DeleteBrokerSource(ctx context.Context, tenantID, id string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM broker_sources WHERE tenant_id = $1 AND id = $2`, tenantID, id)
		if err != nil {
			return fmt.Errorf("delete broker source: %w", err)
		}
		if err := affected(tag, "broker source "+id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM inbound_dedup WHERE source_id = $1`, id); err != nil {
			return fmt.Errorf("delete broker source dedup keys: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM received_requests WHERE tenant_id = $1 AND source_id = $2`, tenantID, id); err != nil {
			return fmt.Errorf("delete broker source messages: %w", err)
		}
		return nil
	})
}
