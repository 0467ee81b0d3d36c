package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/store"
)

// The outbox (docs/outbox.md) is a table that applications write events to with the public outbox
// package, in their own transactions: an event exists if and only if the application's change
// committed. RelayOutbox moves its rows into events and deliveries. Each row is deleted in the
// transaction that publishes it, so a row is published once even when several nodes relay at
// once (they lock rows with SKIP LOCKED) or a node crashes mid-pass (the transaction rolls back
// and the rows wait for the next pass). Event ids are fixed when the row is written, so a row
// whose id the tenant already has is a duplicate, dropped as a publish of the same id would be.

// OutboxRow is one event an application wrote to the outbox table.
type OutboxRow struct {
	ID       int64 // the row's id, in the order rows were written
	TenantID string
	EventID  string
	Type     string
	Data     []byte // a JSON object, as written
	Source   string
	Resource []byte // a JSON object, or nil
	Priority string // "", "high", "normal" or "low"
	// Attempts counts the passes that failed to build this row's event; LastError is the latest
	// failure.
	Attempts  int
	LastError string
	CreatedAt time.Time
}

// OutboxBuild checks a row's event (its type is registered, its data matches the type's schema,
// its size is within the limit) and makes the event to store; an error keeps the row for a later
// pass, with the error as its last_error. An error that is store.ErrUnavailable (the check could
// not read what it needs) refuses nothing: it ends the pass, and every row stays as it was.
type OutboxBuild func(ctx context.Context, row OutboxRow) (*store.Event, error)

// RelayResult is what one RelayOutbox pass did.
type RelayResult struct {
	// Published are the events stored, duplicates included, with the endpoints that got
	// deliveries (wake the dispatcher for them).
	Published []store.PublishResult
	// Rows is how many rows the pass locked: fewer than its limit means the outbox had no
	// more rows due.
	Rows int
	// Failed are the rows whose event could not be built, kept with their error; Failed[i]
	// went with Errors[i].
	Failed []OutboxRow
	Errors []error
}

// outboxDue locks a pass's rows, oldest first, with whether their tenant exists. SKIP LOCKED lets
// other nodes' passes take the rows after these instead of waiting for them.
const outboxDue = `SELECT o.id, o.tenant_id, o.event_id, o.type, o.data, o.source, o.resource, o.priority,
		o.attempts, o.last_error, o.created_at, EXISTS (SELECT 1 FROM tenants t WHERE t.id = o.tenant_id)
	FROM outbox o WHERE o.next_attempt_at <= now() ORDER BY o.id LIMIT $1 FOR UPDATE OF o SKIP LOCKED`

// outboxFailed records failed builds; each row is tried again after a backoff that starts at 1 s
// and doubles per attempt up to 10 minutes (2^10 s is past the cap, hence the least()).
const outboxFailed = `UPDATE outbox SET attempts = attempts + 1, last_error = u.err,
		next_attempt_at = now() + least(make_interval(secs => power(2, least(attempts, 10))), interval '10 minutes')
	FROM unnest($1::bigint[], $2::text[]) AS u (id, err) WHERE outbox.id = u.id`

// RelayOutbox publishes up to limit due rows of the outbox in one transaction, as Publish would,
// and deletes them in it; rows whose event build refuses (or whose tenant does not exist) stay,
// with attempts counted and their error in last_error, and are tried again after a backoff. A
// row that keeps failing stays until an operator fixes its cause (registers the type, say) or
// deletes it.
func (s *Store) RelayOutbox(ctx context.Context, limit int, build OutboxBuild) (RelayResult, error) {
	var res RelayResult
	err := s.inBatchTx(ctx, func(send sendFunc) error {
		res = RelayResult{}
		var rows []OutboxRow
		var tenantOK []bool
		b := &pgx.Batch{}
		b.Queue(outboxDue, limit).Query(func(r pgx.Rows) error {
			for r.Next() {
				var row OutboxRow
				var data string
				var resource *string
				var ok bool
				if err := r.Scan(&row.ID, &row.TenantID, &row.EventID, &row.Type, &data, &row.Source, &resource, &row.Priority,
					&row.Attempts, &row.LastError, &row.CreatedAt, &ok); err != nil {
					return err
				}
				row.Data = []byte(data)
				if resource != nil {
					row.Resource = []byte(*resource)
				}
				rows, tenantOK = append(rows, row), append(tenantOK, ok)
			}
			return r.Err()
		})
		if err := send(b, false); err != nil {
			return fmt.Errorf("relay outbox: lock rows: %w", err)
		}
		res.Rows = len(rows)

		// The good events, by tenant in the order their first row was written, each matched to
		// its tenant's endpoints as one publish (a row over a limit fails like a bad one).
		var tenants []string
		events := map[string][]*store.Event{}
		targets := map[string][][]string{}
		subs := map[string][]store.Subscriber{}
		var done []int64
		for i, row := range rows {
			var ev *store.Event
			var plan *store.Plan
			err := fmt.Errorf("tenant %s does not exist", row.TenantID)
			if tenantOK[i] {
				ev, err = build(ctx, row)
			}
			if errors.Is(err, store.ErrUnavailable) {
				return fmt.Errorf("relay outbox: check event %s: %w", row.EventID, err)
			}
			if err == nil {
				if plan, err = s.planRow(ctx, subs, row.TenantID, ev); err != nil && !errors.Is(err, store.ErrLimit) {
					return fmt.Errorf("relay outbox: %w", err) // the store's failure, not the row's
				}
			}
			if err != nil {
				res.Failed, res.Errors = append(res.Failed, row), append(res.Errors, err)
				continue
			}
			if _, seen := events[row.TenantID]; !seen {
				tenants = append(tenants, row.TenantID)
			}
			events[row.TenantID] = append(events[row.TenantID], ev)
			targets[row.TenantID] = append(targets[row.TenantID], plan.Targets[0])
			done = append(done, row.ID)
		}
		finish := func(b *pgx.Batch) {
			if len(done) > 0 {
				b.Queue(`DELETE FROM outbox WHERE id = ANY($1)`, done)
			}
			if len(res.Failed) > 0 {
				ids := make([]int64, len(res.Failed))
				msgs := make([]string, len(res.Failed))
				for i, row := range res.Failed {
					ids[i], msgs[i] = row.ID, truncate(res.Errors[i].Error(), 2000)
				}
				b.Queue(outboxFailed, ids, msgs)
			}
		}
		if len(tenants) == 0 {
			b = &pgx.Batch{}
			finish(b)
			return send(b, true)
		}
		// publishIn commits with its last batch: every tenant but the last publishes with that
		// batch sent uncommitted, and the last one commits the lot, rows' deletions included.
		open := func(b *pgx.Batch, _ bool) error { return send(b, false) }
		for i, tenant := range tenants {
			sendTo, then := open, (func(*pgx.Batch, []store.PublishResult))(nil)
			if i == len(tenants)-1 {
				sendTo, then = send, func(b *pgx.Batch, _ []store.PublishResult) { finish(b) }
			}
			published, err := s.publishIn(ctx, sendTo, tenant, events[tenant], targets[tenant], then)
			if err != nil {
				return fmt.Errorf("relay outbox: %w", err)
			}
			res.Published = append(res.Published, published...)
		}
		return nil
	})
	if err != nil {
		return RelayResult{}, err
	}
	if s.notifier != nil {
		for _, r := range res.Published {
			if !r.Duplicate {
				s.notifier.add(r.EndpointIDs)
			}
		}
	}
	return res, nil
}

// planRow matches a relayed event to its tenant's endpoints, reading them once per relay into
// subs.
func (s *Store) planRow(ctx context.Context, subs map[string][]store.Subscriber, tenantID string, ev *store.Event) (*store.Plan, error) {
	ss, ok := subs[tenantID]
	if !ok {
		var err error
		if ss, err = s.subscribers(ctx, tenantID); err != nil {
			return nil, err
		}
		subs[tenantID] = ss
	}
	return s.fanout.Plan(ctx, tenantID, ss, []*store.Event{ev})
}

// truncate bounds an error kept in a row: a build error lists every failing place.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
