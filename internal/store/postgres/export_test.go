package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/heraldhq/herald/internal/store"
)

// MigrateTo brings the schema of the database at url to version upTo, as an older release would
// have left it.
func MigrateTo(ctx context.Context, url, schema string, upTo int64) error {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("parse database url: %w", err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{schema}.Sanitize()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	return migrateTo(ctx, pool, schema, upTo)
}

// NodeID is the store's name in lanes and nodes.
func (s *Store) NodeID() string { return s.node }

// PublishBetween is Publish for events that fit one transaction, running between after the
// events are matched and before they are written.
func PublishBetween(st store.Store, tenantID string, events []*store.Event, between func()) ([]store.PublishResult, error) {
	s := st.(*Store)
	ctx := context.Background()
	p, err := s.plan(ctx, tenantID, events)
	if err != nil {
		return nil, err
	}
	between()
	return s.publishTx(ctx, tenantID, events, p.Targets)
}
