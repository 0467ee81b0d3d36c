package sqlite

import (
	"context"
	"database/sql"

	"github.com/heraldhq/herald/internal/store"
)

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
	var res []store.PublishResult
	err = s.write(ctx, func(tx *sql.Tx) error {
		var err error
		res, err = s.publishIn(ctx, tx, tenantID, events, p, 0)
		return err
	})
	return res, err
}

// DueEndpointsQuery is DueEndpoints' statement, for its benchmark.
const DueEndpointsQuery = dueEndpoints
