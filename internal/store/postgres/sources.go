package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/seal"
	"github.com/heraldhq/herald/internal/store"
)

const sourceColumns = `seq, id, tenant_id, name, token, settings, enabled, created_at, updated_at`

func scanSource(keys *seal.Keyring, r pgx.Row) (*store.Source, int64, error) {
	var src store.Source
	var seq int64
	var token, settings string
	if err := r.Scan(&seq, &src.ID, &src.TenantID, &src.Name, &token, &settings, &src.Enabled, &src.CreatedAt, &src.UpdatedAt); err != nil {
		return nil, 0, err
	}
	if err := store.DecodeSource(keys, &src, []byte(token), []byte(settings)); err != nil {
		return nil, 0, err
	}
	return &src, seq, nil
}

// CreateSource inserts a source of an existing tenant; ErrConflict if its id or token is taken.
func (s *Store) CreateSource(ctx context.Context, src *store.Source) error {
	token, settings, err := store.EncodeSource(s.keys, src)
	if err != nil {
		return err
	}
	// As for endpoints: a missing tenant is ErrNotFound, a taken id ErrConflict, and the tenant's
	// row is locked while its sources are counted, so that concurrent creates cannot pass the
	// limit together.
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if err := s.checkTenantSources(ctx, tx, src.TenantID, false); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO sources (id, tenant_id, name, token_hash, token, settings, enabled, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			src.ID, src.TenantID, src.Name, store.TokenHash(src.Token), string(token), string(settings), src.Enabled, src.CreatedAt, src.UpdatedAt)
		return err
	})
	switch {
	case isUnique(err):
		return fmt.Errorf("source %q: %w", src.ID, store.ErrConflict)
	case pgCode(err) == "23503":
		return fmt.Errorf("tenant %s: %w", src.TenantID, store.ErrNotFound)
	}
	return err
}

// GetSource reads one source of a tenant.
func (s *Store) GetSource(ctx context.Context, tenantID, id string) (*store.Source, error) {
	src, _, err := scanSource(s.keys, s.pool.QueryRow(ctx, `SELECT `+sourceColumns+` FROM sources WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	if err != nil {
		return nil, notFound(err, "source "+id)
	}
	return src, nil
}

// SourceByToken finds a source by the token of its ingest URL.
func (s *Store) SourceByToken(ctx context.Context, token string) (*store.Source, error) {
	src, _, err := scanSource(s.keys, s.pool.QueryRow(ctx, `SELECT `+sourceColumns+` FROM sources WHERE token_hash = $1`, store.TokenHash(token)))
	if err != nil {
		return nil, notFound(err, "source")
	}
	return src, nil
}

// ListSources lists a tenant's sources in creation order.
func (s *Store) ListSources(ctx context.Context, tenantID string, p store.Page) ([]store.Source, string, error) {
	return listBySeq(ctx, s, p, "sources", `SELECT `+sourceColumns+` FROM sources WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
		func(r pgx.CollectableRow) (*store.Source, int64, error) { return scanSource(s.keys, r) }, tenantID)
}

// UpdateSource replaces a source's name, token, state and settings.
func (s *Store) UpdateSource(ctx context.Context, src *store.Source) error {
	token, settings, err := store.EncodeSource(s.keys, src)
	if err != nil {
		return err
	}
	err = s.execOne(ctx, "source "+src.ID, `UPDATE sources SET name = $1, token_hash = $2, token = $3, settings = $4, enabled = $5,
		updated_at = $6 WHERE tenant_id = $7 AND id = $8`,
		src.Name, store.TokenHash(src.Token), string(token), string(settings), src.Enabled, src.UpdatedAt, src.TenantID, src.ID)
	if isUnique(err) {
		return fmt.Errorf("source %q token: %w", src.ID, store.ErrConflict)
	}
	return err
}

// DeleteSource removes a source with its received requests and dedup keys.
func (s *Store) DeleteSource(ctx context.Context, tenantID, id string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM sources WHERE tenant_id = $1 AND id = $2`, tenantID, id)
		if err != nil {
			return fmt.Errorf("delete source: %w", err)
		}
		if err := affected(tag, "source "+id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM inbound_dedup WHERE source_id = $1`, id); err != nil {
			return fmt.Errorf("delete source dedup keys: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM received_requests WHERE tenant_id = $1 AND source_id = $2`, tenantID, id); err != nil {
			return fmt.Errorf("delete source requests: %w", err)
		}
		return nil
	})
}

// lockSource finds a request's source and holds off its deletion (and so its tenant's, which
// deletes the sources first) until the transaction ends; updates of the source do not wait.
// A broker source's quarantined messages are its received requests too.
const lockSource = `SELECT true WHERE EXISTS (SELECT 1 FROM sources WHERE tenant_id = $1 AND id = $2 FOR KEY SHARE)
	OR EXISTS (SELECT 1 FROM broker_sources WHERE tenant_id = $1 AND id = $2 FOR KEY SHARE)`

// takeKey takes a dedup key for a request unless another request holds it with a window that
// has not ended at the request's arrival; it returns a row only when the key was taken. Two
// transactions taking one key meet on the primary key: the second waits for the first to end,
// then sees its row (and, finding it held, leaves it locked, so that it cannot expire away).
const takeKey = `INSERT INTO inbound_dedup (source_id, key, request_id, expires_at) VALUES ($1, $2, $3, $4)
	ON CONFLICT (source_id, key) DO UPDATE SET request_id = excluded.request_id, expires_at = excluded.expires_at
	WHERE inbound_dedup.expires_at <= $5
	RETURNING true`

// takesKey reports whether a request is deduplicated: only what was verified (accepted or
// quarantined) takes a key, so that forged or refused requests can never hold one.
func takesKey(r *store.ReceivedRequest) bool {
	return r.DedupKey != "" && (r.Status == store.ReceiveAccepted || r.Status == store.ReceiveQuarantined)
}

const insertReceived = `INSERT INTO received_requests (id, tenant_id, source_id, received_at, method, path, query, headers, body,
	remote_addr, status, reason, dedup_key, dedup_until, duplicate_of, event_id, event_type, deliveries)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8::json, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`

func queueReceived(b *pgx.Batch, r *store.ReceivedRequest, headers string) {
	var until *time.Time
	if !r.DedupUntil.IsZero() {
		until = &r.DedupUntil
	}
	b.Queue(insertReceived, r.ID, r.TenantID, r.SourceID, r.ReceivedAt, r.Method, r.Path, r.Query, headers, store.BodyArg(r.Body),
		r.RemoteAddr, string(r.Status), r.Reason, r.DedupKey, until, r.DuplicateOf, r.EventID, r.EventType, r.Deliveries)
}

// storedEventType sets the event type of a request whose event id the tenant already had to
// the stored event's (known only once the batch that reads it has run).
const storedEventType = `UPDATE received_requests r SET event_type = e.type FROM events e
	WHERE r.id = $1 AND e.tenant_id = $2 AND e.id = $3`

// foundRow scans a row of "SELECT true" into found, and no row as false.
func foundRow(found *bool) func(pgx.Row) error {
	return func(r pgx.Row) error {
		err := r.Scan(found)
		if errors.Is(err, pgx.ErrNoRows) {
			*found = false
			return nil
		}
		return err
	}
}

// Receive stores a received request and, for an accepted one that is not a duplicate, its event
// and deliveries (see store.Store), in one transaction of three round trips at most: the source
// and the dedup key; the event (publishIn's first batch) or the holder of the key; the rest with
// the COMMIT. A duplicate keeps the fields the caller gave, but for Status, DuplicateOf, and
// EventID and Deliveries, which stay empty: it became no event. It records the audit entry ctx
// carries, if any, with the request.
func (s *Store) Receive(ctx context.Context, req *store.ReceivedRequest, ev *store.Event) (*store.ReceiveResult, error) {
	headers, err := store.EncodeHeaders(req.Headers)
	if err != nil {
		return nil, err
	}
	var plan *store.Plan
	if req.Status == store.ReceiveAccepted && ev != nil {
		if plan, err = s.plan(ctx, req.TenantID, []*store.Event{ev}); err != nil {
			return nil, fmt.Errorf("receive: %w", err)
		}
	}
	audit := store.AuditFrom(ctx)
	var res *store.ReceiveResult
	err = s.inBatchTx(ctx, func(send sendFunc) error {
		r := *req
		res = &store.ReceiveResult{Request: &r}
		var b pgx.Batch
		var found, taken bool
		b.Queue(lockSource, r.TenantID, r.SourceID).QueryRow(foundRow(&found))
		take := takesKey(&r)
		if take {
			b.Queue(takeKey, r.SourceID, r.DedupKey, r.ID, r.DedupUntil, r.ReceivedAt).QueryRow(foundRow(&taken))
		}
		if err := send(&b, false); err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("source %s: %w", r.SourceID, store.ErrNotFound)
		}
		if take && !taken {
			// Read in a statement of its own: one that started before the holder committed would
			// not see it. The holder's row is locked by takeKey, so it is still there.
			b = pgx.Batch{}
			b.Queue(`SELECT request_id FROM inbound_dedup WHERE source_id = $1 AND key = $2`, r.SourceID, r.DedupKey).
				QueryRow(func(row pgx.Row) error { return row.Scan(&r.DuplicateOf) })
			if err := send(&b, false); err != nil {
				return fmt.Errorf("read dedup key holder: %w", err)
			}
			r.Status, r.EventID, r.Deliveries = store.ReceiveDuplicate, "", 0
		}
		if r.Status == store.ReceiveAccepted && plan != nil {
			results, err := s.publishIn(ctx, send, r.TenantID, []*store.Event{ev}, plan.Targets, func(b *pgx.Batch, results []store.PublishResult) {
				r.EventID, r.EventType, r.Deliveries = ev.ID, ev.Type, results[0].Deliveries
				queueReceived(b, &r, headers)
				queueUsage(b, receivedUsage(&r))
				if results[0].Event == nil {
					b.Queue(storedEventType, r.ID, r.TenantID, ev.ID)
				}
				queueAudit(b, audit)
			})
			if err != nil {
				return err
			}
			res.Published = &results[0]
			r.EventType = results[0].Event.Type
			return nil
		}
		b = pgx.Batch{}
		queueReceived(&b, &r, headers)
		queueUsage(&b, receivedUsage(&r))
		queueAudit(&b, audit)
		return send(&b, true)
	})
	if isUnique(err) {
		return nil, fmt.Errorf("received request %q: %w", req.ID, store.ErrConflict)
	}
	if err != nil {
		return nil, fmt.Errorf("receive: %w", err)
	}
	if s.notifier != nil && res.Published != nil && !res.Published.Duplicate {
		s.notifier.add(res.Published.EndpointIDs)
	}
	return res, nil
}

const receivedColumns = `seq, id, tenant_id, source_id, received_at, method, path, query, headers::text, body, remote_addr, status,
	reason, dedup_key, dedup_until, duplicate_of, event_id, event_type, deliveries, octet_length(body)`

// receivedListColumns are receivedColumns without the body (a list shows only its size): a page
// of requests whose bodies may each be up to 10 MiB must not read them all.
const receivedListColumns = `seq, id, tenant_id, source_id, received_at, method, path, query, headers::text, ''::bytea, remote_addr, status,
	reason, dedup_key, dedup_until, duplicate_of, event_id, event_type, deliveries, octet_length(body)`

func scanReceived(row pgx.Row) (*store.ReceivedRequest, int64, error) {
	var r store.ReceivedRequest
	var seq int64
	var headers, status string
	var until *time.Time
	if err := row.Scan(&seq, &r.ID, &r.TenantID, &r.SourceID, &r.ReceivedAt, &r.Method, &r.Path, &r.Query, &headers, &r.Body,
		&r.RemoteAddr, &status, &r.Reason, &r.DedupKey, &until, &r.DuplicateOf, &r.EventID, &r.EventType, &r.Deliveries, &r.BodySize); err != nil {
		return nil, 0, err
	}
	var err error
	if r.Headers, err = store.DecodeHeaders([]byte(headers)); err != nil {
		return nil, 0, fmt.Errorf("received request %s: %w", r.ID, err)
	}
	if until != nil {
		r.DedupUntil = *until
	}
	r.Status = store.ReceiveStatus(status)
	return &r, seq, nil
}

// GetReceived reads one received request of a tenant.
func (s *Store) GetReceived(ctx context.Context, tenantID, id string) (*store.ReceivedRequest, error) {
	r, _, err := scanReceived(s.pool.QueryRow(ctx, `SELECT `+receivedColumns+` FROM received_requests WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	if err != nil {
		return nil, notFound(err, "received request "+id)
	}
	return r, nil
}

// ListReceived lists a tenant's received requests, newest first.
func (s *Store) ListReceived(ctx context.Context, f store.ReceivedFilter) ([]store.ReceivedRequest, string, error) {
	pos, err := before(f.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := f.Clamp()
	var w where
	w.add("tenant_id = ?", f.TenantID)
	w.add("seq < ?", pos)
	if f.SourceID != "" {
		w.add("source_id = ?", f.SourceID)
	}
	if len(f.Statuses) > 0 {
		statuses := make([]string, len(f.Statuses))
		for i, st := range f.Statuses {
			statuses[i] = string(st)
		}
		w.add("status = ANY(?)", statuses)
	}
	if !f.Since.IsZero() {
		w.add("received_at >= ?", f.Since)
	}
	if !f.Until.IsZero() {
		w.add("received_at < ?", f.Until)
	}
	q := `SELECT ` + receivedListColumns + ` FROM received_requests WHERE ` + w.String() + ` ORDER BY seq DESC LIMIT ` + w.arg(limit+1)
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, "", fmt.Errorf("list received requests: %w", err)
	}
	var seqs []int64
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.ReceivedRequest, error) {
		r, seq, err := scanReceived(row)
		if err != nil {
			return store.ReceivedRequest{}, err
		}
		seqs = append(seqs, seq)
		return *r, nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("list received requests: %w", err)
	}
	return page(out, limit, func(i int) int64 { return seqs[i] })
}

// AcceptReceived turns a quarantined request into the event ev (see store.Store), in three
// round trips: the request, locked; the event (publishIn's first batch); its deliveries, the
// request's new state and the COMMIT. The request keeps its Reason, so that it still tells why
// it was held before it was accepted. It records the audit entry ctx carries, if any.
func (s *Store) AcceptReceived(ctx context.Context, tenantID, id string, ev *store.Event) (*store.ReceiveResult, error) {
	if ev == nil {
		return nil, fmt.Errorf("accept received request %s: no event", id)
	}
	plan, err := s.plan(ctx, tenantID, []*store.Event{ev})
	if err != nil {
		return nil, fmt.Errorf("accept received request: %w", err)
	}
	audit := store.AuditFrom(ctx)
	var res *store.ReceiveResult
	err = s.inBatchTx(ctx, func(send sendFunc) error {
		res = nil
		var r *store.ReceivedRequest
		var seq int64
		var b pgx.Batch
		b.Queue(`SELECT `+receivedColumns+` FROM received_requests WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, tenantID, id).
			QueryRow(func(row pgx.Row) error {
				var err error
				r, seq, err = scanReceived(row)
				if errors.Is(err, pgx.ErrNoRows) {
					return nil
				}
				return err
			})
		if err := send(&b, false); err != nil {
			return err
		}
		if r == nil {
			return fmt.Errorf("received request %s: %w", id, store.ErrNotFound)
		}
		if r.Status != store.ReceiveQuarantined && r.Status != store.ReceiveRejected {
			return fmt.Errorf("received request %s is %s, neither quarantined nor rejected: %w", id, r.Status, store.ErrConflict)
		}
		results, err := s.publishIn(ctx, send, tenantID, []*store.Event{ev}, plan.Targets, func(b *pgx.Batch, results []store.PublishResult) {
			r.Status, r.EventID, r.EventType, r.Deliveries = store.ReceiveAccepted, ev.ID, ev.Type, results[0].Deliveries
			b.Queue(`UPDATE received_requests SET status = $1, event_id = $2, event_type = $3, deliveries = $4 WHERE seq = $5`,
				string(r.Status), r.EventID, r.EventType, r.Deliveries, seq)
			if results[0].Event == nil {
				b.Queue(storedEventType, r.ID, tenantID, ev.ID)
			}
			queueAudit(b, audit)
		})
		if err != nil {
			return err
		}
		r.EventType = results[0].Event.Type
		res = &store.ReceiveResult{Request: r, Published: &results[0]}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("accept received request: %w", err)
	}
	if s.notifier != nil && !res.Published.Duplicate {
		s.notifier.add(res.Published.EndpointIDs)
	}
	return res, nil
}

// checkTenantSources refuses a new source (broker: a broker source) over the tenant's limits
// (store.Limits.CheckTenantSources). The tenant's row is locked (FOR NO KEY UPDATE) while its
// sources are counted, so that concurrent creates cannot pass the limits together.
func (s *Store) checkTenantSources(ctx context.Context, tx pgx.Tx, tenantID string, broker bool) error {
	var own, plan string
	if err := tx.QueryRow(ctx, `SELECT limits, coalesce((SELECT limits FROM plans WHERE name = tenants.plan), '')
		FROM tenants WHERE id = $1 FOR NO KEY UPDATE OF tenants`, tenantID).Scan(&own, &plan); err != nil {
		return notFound(err, "tenant "+tenantID)
	}
	// A statement of its own: its snapshot sees what creates that held the lock committed.
	var sources, brokers int
	if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM sources WHERE tenant_id = $1), (SELECT count(*) FROM broker_sources WHERE tenant_id = $1)`,
		tenantID).Scan(&sources, &brokers); err != nil {
		return fmt.Errorf("count sources: %w", err)
	}
	o, err := store.DecodeTenantLimits(own)
	if err != nil {
		return err
	}
	p, err := store.DecodeTenantLimits(plan)
	if err != nil {
		return err
	}
	return s.fanout.Limits().CheckTenantSources(o, p, sources, brokers, broker)
}

// receivedUsage counts a received request.
func receivedUsage(r *store.ReceivedRequest) store.UsageDelta {
	d := store.UsageDelta{}
	d.Add(r.TenantID, r.ReceivedAt, "", store.UsageCounts{RequestsReceived: 1, BytesReceived: int64(len(r.Body))})
	return d
}
