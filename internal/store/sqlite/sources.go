package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/heraldhq/herald/internal/seal"
	"github.com/heraldhq/herald/internal/store"
)

const sourceColumns = `seq, id, tenant_id, name, token, settings, enabled, created_at, updated_at`

func scanSource(keys *seal.Keyring, r rowScanner) (*store.Source, int64, error) {
	var src store.Source
	var seq, c, u int64
	var token, settings string
	var enabled int
	if err := r.Scan(&seq, &src.ID, &src.TenantID, &src.Name, &token, &settings, &enabled, &c, &u); err != nil {
		return nil, 0, err
	}
	if err := store.DecodeSource(keys, &src, []byte(token), []byte(settings)); err != nil {
		return nil, 0, err
	}
	src.Enabled, src.CreatedAt, src.UpdatedAt = enabled == 1, fromMicros(c), fromMicros(u)
	return &src, seq, nil
}

// CreateSource inserts a source of an existing tenant; ErrConflict if its id or token is taken.
func (s *Store) CreateSource(ctx context.Context, src *store.Source) error {
	token, settings, err := store.EncodeSource(s.keys, src)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		// The single writer makes the count and the insert atomic.
		var sources, brokers int
		var own, planLimits string
		if err := tx.QueryRowContext(ctx, tenantSourcesQuery, src.TenantID).Scan(&sources, &brokers, &own, &planLimits); err != nil {
			return notFound(err, "tenant "+src.TenantID)
		}
		if err := checkTenantSources(s.fanout.Limits(), own, planLimits, sources, brokers, false); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO sources (id, tenant_id, name, token_hash, token, settings, enabled, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			src.ID, src.TenantID, src.Name, store.TokenHash(src.Token), string(token), string(settings), boolInt(src.Enabled),
			micros(src.CreatedAt), micros(src.UpdatedAt))
		if isUnique(err) {
			return fmt.Errorf("source %q: %w", src.ID, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("insert source: %w", err)
		}
		return nil
	})
}

// GetSource reads one source of a tenant.
func (s *Store) GetSource(ctx context.Context, tenantID, id string) (*store.Source, error) {
	src, _, err := scanSource(s.keys, s.r.QueryRowContext(ctx, `SELECT `+sourceColumns+` FROM sources WHERE tenant_id = ? AND id = ?`, tenantID, id))
	if err != nil {
		return nil, notFound(err, "source "+id)
	}
	return src, nil
}

// SourceByToken finds a source by the token of its ingest URL.
func (s *Store) SourceByToken(ctx context.Context, token string) (*store.Source, error) {
	src, _, err := scanSource(s.keys, s.r.QueryRowContext(ctx, `SELECT `+sourceColumns+` FROM sources WHERE token_hash = ?`, store.TokenHash(token)))
	if err != nil {
		return nil, notFound(err, "source")
	}
	return src, nil
}

// ListSources lists a tenant's sources in creation order.
func (s *Store) ListSources(ctx context.Context, tenantID string, p store.Page) ([]store.Source, string, error) {
	after, err := store.DecodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := p.Clamp()
	rows, err := s.r.QueryContext(ctx, `SELECT `+sourceColumns+` FROM sources WHERE tenant_id = ? AND seq > ? ORDER BY seq LIMIT ?`, tenantID, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list sources: %w", err)
	}
	defer rows.Close()
	var out []store.Source
	var pos []int64
	for rows.Next() {
		src, seq, err := scanSource(s.keys, rows)
		if err != nil {
			return nil, "", fmt.Errorf("list sources: %w", err)
		}
		out = append(out, *src)
		pos = append(pos, seq)
	}
	return page(out, limit, rows.Err(), func(i int) int64 { return pos[i] })
}

// UpdateSource replaces a source's name, token, state and settings.
func (s *Store) UpdateSource(ctx context.Context, src *store.Source) error {
	token, settings, err := store.EncodeSource(s.keys, src)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE sources SET name = ?, token_hash = ?, token = ?, settings = ?, enabled = ?, updated_at = ?
			WHERE tenant_id = ? AND id = ?`,
			src.Name, store.TokenHash(src.Token), string(token), string(settings), boolInt(src.Enabled), micros(src.UpdatedAt), src.TenantID, src.ID)
		if isUnique(err) {
			return fmt.Errorf("source %q token: %w", src.ID, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("update source: %w", err)
		}
		return affected(res, "source "+src.ID)
	})
}

// DeleteSource removes a source with its received requests and dedup keys.
func (s *Store) DeleteSource(ctx context.Context, tenantID, id string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sources WHERE tenant_id = ? AND id = ?`, tenantID, id)
		if err != nil {
			return fmt.Errorf("delete source: %w", err)
		}
		if err := affected(res, "source "+id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM inbound_dedup WHERE source_id = ?`, id); err != nil {
			return fmt.Errorf("delete source dedup keys: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM received_requests WHERE tenant_id = ? AND source_id = ?`, tenantID, id); err != nil {
			return fmt.Errorf("delete source requests: %w", err)
		}
		return nil
	})
}

// takeKey takes a dedup key for a request unless another request holds it with a window that
// has not ended at the request's arrival; it returns a row only when the key was taken. The
// writer runs one transaction at a time, so the check and the take cannot interleave.
const takeKey = `INSERT INTO inbound_dedup (source_id, key, request_id, expires_at) VALUES (?, ?, ?, ?)
	ON CONFLICT (source_id, key) DO UPDATE SET request_id = excluded.request_id, expires_at = excluded.expires_at
	WHERE inbound_dedup.expires_at <= ?
	RETURNING request_id`

// takesKey reports whether a request is deduplicated: only what was verified (accepted or
// quarantined) takes a key, so that forged or refused requests can never hold one.
func takesKey(r *store.ReceivedRequest) bool {
	return r.DedupKey != "" && (r.Status == store.ReceiveAccepted || r.Status == store.ReceiveQuarantined)
}

// Receive stores a received request and, for an accepted one that is not a duplicate, its event
// and deliveries (see store.Store). A duplicate keeps the fields the caller gave, but for Status,
// DuplicateOf, and EventID and Deliveries, which stay empty: it became no event.
func (s *Store) Receive(ctx context.Context, req *store.ReceivedRequest, ev *store.Event) (*store.ReceiveResult, error) {
	headers, err := store.EncodeHeaders(req.Headers)
	if err != nil {
		return nil, err
	}
	var plan *plan
	if req.Status == store.ReceiveAccepted && ev != nil {
		if plan, err = s.plan(ctx, req.TenantID, []*store.Event{ev}); err != nil {
			return nil, err
		}
	}
	var res *store.ReceiveResult
	err = s.write(ctx, func(tx *sql.Tx) error {
		r := *req
		res = &store.ReceiveResult{Request: &r}
		var one int
		if err := tx.StmtContext(ctx, s.stmts.sourceOf).QueryRowContext(ctx, r.TenantID, r.SourceID).Scan(&one); err != nil {
			return notFound(err, "source "+r.SourceID)
		}
		if takesKey(&r) {
			var taken string
			err := tx.StmtContext(ctx, s.stmts.takeKey).QueryRowContext(ctx, r.SourceID, r.DedupKey, r.ID, micros(r.DedupUntil), micros(r.ReceivedAt)).Scan(&taken)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				if err := tx.StmtContext(ctx, s.stmts.keyHolder).QueryRowContext(ctx, r.SourceID, r.DedupKey).Scan(&r.DuplicateOf); err != nil {
					return fmt.Errorf("read dedup key holder: %w", err)
				}
				r.Status, r.EventID, r.Deliveries = store.ReceiveDuplicate, "", 0
			case err != nil:
				return fmt.Errorf("take dedup key: %w", err)
			}
		}
		if r.Status == store.ReceiveAccepted && plan != nil {
			results, err := s.publishIn(ctx, tx, r.TenantID, []*store.Event{ev}, plan, 0)
			if err != nil {
				return err
			}
			res.Published = &results[0]
			r.EventID, r.EventType, r.Deliveries = results[0].Event.ID, results[0].Event.Type, results[0].Deliveries
		}
		_, err := tx.StmtContext(ctx, s.stmts.insertReceived).ExecContext(ctx,
			r.ID, r.TenantID, r.SourceID, micros(r.ReceivedAt), r.Method, r.Path, r.Query, headers, store.BodyArg(r.Body), r.RemoteAddr,
			string(r.Status), r.Reason, r.DedupKey, micros(r.DedupUntil), r.DuplicateOf, r.EventID, r.EventType, r.Deliveries)
		if isUnique(err) {
			return fmt.Errorf("received request %q: %w", r.ID, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("insert received request: %w", err)
		}
		usage := store.UsageDelta{}
		usage.Add(r.TenantID, r.ReceivedAt, "", store.UsageCounts{RequestsReceived: 1, BytesReceived: int64(len(r.Body))})
		return s.addUsage(ctx, tx, usage)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// insertReceived stores one received request.
const insertReceived = `INSERT INTO received_requests (id, tenant_id, source_id, received_at, method, path, query,
	headers, body, remote_addr, status, reason, dedup_key, dedup_until, duplicate_of, event_id, event_type, deliveries)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

const receivedColumns = `seq, id, tenant_id, source_id, received_at, method, path, query, headers, body, remote_addr, status,
	reason, dedup_key, dedup_until, duplicate_of, event_id, event_type, deliveries, length(body)`

// receivedListColumns are receivedColumns without the body (a list shows only its size): a page
// of requests whose bodies may each be up to 10 MiB must not read them all.
const receivedListColumns = `seq, id, tenant_id, source_id, received_at, method, path, query, headers, X'', remote_addr, status,
	reason, dedup_key, dedup_until, duplicate_of, event_id, event_type, deliveries, length(body)`

func scanReceived(row rowScanner) (*store.ReceivedRequest, int64, error) {
	var r store.ReceivedRequest
	var seq, at, until int64
	var headers, status string
	if err := row.Scan(&seq, &r.ID, &r.TenantID, &r.SourceID, &at, &r.Method, &r.Path, &r.Query, &headers, &r.Body, &r.RemoteAddr,
		&status, &r.Reason, &r.DedupKey, &until, &r.DuplicateOf, &r.EventID, &r.EventType, &r.Deliveries, &r.BodySize); err != nil {
		return nil, 0, err
	}
	var err error
	if r.Headers, err = store.DecodeHeaders([]byte(headers)); err != nil {
		return nil, 0, fmt.Errorf("received request %s: %w", r.ID, err)
	}
	r.ReceivedAt, r.DedupUntil, r.Status = fromMicros(at), fromMicros(until), store.ReceiveStatus(status)
	return &r, seq, nil
}

// GetReceived reads one received request of a tenant.
func (s *Store) GetReceived(ctx context.Context, tenantID, id string) (*store.ReceivedRequest, error) {
	r, _, err := scanReceived(s.r.QueryRowContext(ctx, `SELECT `+receivedColumns+` FROM received_requests WHERE tenant_id = ? AND id = ?`, tenantID, id))
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
	statuses := make([]string, len(f.Statuses))
	for i, st := range f.Statuses {
		statuses[i] = string(st)
	}
	w.in("status", statuses)
	if !f.Since.IsZero() {
		w.add("received_at >= ?", micros(f.Since))
	}
	if !f.Until.IsZero() {
		w.add("received_at < ?", micros(f.Until))
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+receivedListColumns+` FROM received_requests WHERE `+w.String()+` ORDER BY seq DESC LIMIT ?`,
		append(w.args, limit+1)...)
	if err != nil {
		return nil, "", fmt.Errorf("list received requests: %w", err)
	}
	defer rows.Close()
	var out []store.ReceivedRequest
	var seqs []int64
	for rows.Next() {
		r, seq, err := scanReceived(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list received requests: %w", err)
		}
		out = append(out, *r)
		seqs = append(seqs, seq)
	}
	return page(out, limit, rows.Err(), func(i int) int64 { return seqs[i] })
}

// AcceptReceived turns a quarantined request into the event ev (see store.Store). The request
// keeps its Reason, so that it still tells why it was held before it was accepted.
func (s *Store) AcceptReceived(ctx context.Context, tenantID, id string, ev *store.Event) (*store.ReceiveResult, error) {
	if ev == nil {
		return nil, fmt.Errorf("accept received request %s: no event", id)
	}
	plan, err := s.plan(ctx, tenantID, []*store.Event{ev})
	if err != nil {
		return nil, err
	}
	var res *store.ReceiveResult
	err = s.write(ctx, func(tx *sql.Tx) error {
		r, seq, err := scanReceived(tx.QueryRowContext(ctx, `SELECT `+receivedColumns+` FROM received_requests WHERE tenant_id = ? AND id = ?`, tenantID, id))
		if err != nil {
			return notFound(err, "received request "+id)
		}
		if r.Status != store.ReceiveQuarantined && r.Status != store.ReceiveRejected {
			return fmt.Errorf("received request %s is %s, neither quarantined nor rejected: %w", id, r.Status, store.ErrConflict)
		}
		results, err := s.publishIn(ctx, tx, tenantID, []*store.Event{ev}, plan, 0)
		if err != nil {
			return err
		}
		pub := results[0]
		r.Status, r.EventID, r.EventType, r.Deliveries = store.ReceiveAccepted, pub.Event.ID, pub.Event.Type, pub.Deliveries
		if _, err := tx.ExecContext(ctx, `UPDATE received_requests SET status = ?, event_id = ?, event_type = ?, deliveries = ? WHERE seq = ?`,
			string(r.Status), r.EventID, r.EventType, r.Deliveries, seq); err != nil {
			return fmt.Errorf("accept received request: %w", err)
		}
		res = &store.ReceiveResult{Request: r, Published: &pub}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// tenantSourcesQuery reads what checkTenantSources needs of a tenant.
const tenantSourcesQuery = `SELECT (SELECT count(*) FROM sources WHERE tenant_id = tenants.id),
	(SELECT count(*) FROM broker_sources WHERE tenant_id = tenants.id), limits,
	coalesce((SELECT limits FROM plans WHERE name = tenants.plan), '') FROM tenants WHERE id = ?`

// checkTenantSources refuses a new source over the tenant's limits (store.Limits.CheckTenantSources).
func checkTenantSources(l store.Limits, own, plan string, sources, brokers int, broker bool) error {
	o, err := store.DecodeTenantLimits(own)
	if err != nil {
		return err
	}
	p, err := store.DecodeTenantLimits(plan)
	if err != nil {
		return err
	}
	return l.CheckTenantSources(o, p, sources, brokers, broker)
}
