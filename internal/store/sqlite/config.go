package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/seal"
	"github.com/heraldhq/herald/internal/store"
)

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// notFound maps "no rows" to store.ErrNotFound, with what was looked for; any other error is
// kept (as store.ErrUnavailable when it means the database cannot be used now), never "absent".
func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return unavailable(fmt.Errorf("%s: %w", what, err))
}

func affected(res sql.Result, what string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

// CreateTenant inserts a tenant; ErrConflict if the id is taken.
func (s *Store) CreateTenant(ctx context.Context, t *store.Tenant) error {
	uid := store.NewTenantUID()
	maxEndpoints, limits, err := tenantLimitsArgs(t.Limits)
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO tenants (id, name, redact_fields, max_endpoints, plan, limits, created_at, updated_at, uid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			t.ID, t.Name, redactArg(t.RedactFields), maxEndpoints, t.Plan, limits, micros(t.CreatedAt), micros(t.UpdatedAt), uid)
		if isUnique(err) {
			return fmt.Errorf("tenant %q: %w", t.ID, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("insert tenant: %w", err)
		}
		return nil
	})
	if err == nil {
		t.UID = uid
	}
	return err
}

const tenantColumns = `id, name, redact_fields, max_endpoints, plan, limits, created_at, updated_at, uid, rowid`

// tenantLimitsArgs are the max_endpoints and limits columns of a tenant's own limits.
func tenantLimitsArgs(l store.TenantLimits) (int, string, error) {
	max := 0
	if l.MaxEndpoints != nil {
		max = *l.MaxEndpoints
	}
	l.MaxEndpoints = nil
	enc, err := store.EncodeTenantLimits(l)
	return max, enc, err
}

func scanTenant(r rowScanner) (*store.Tenant, int64, error) {
	var t store.Tenant
	var redact, limits string
	var rowid, c, u int64
	var maxEndpoints int
	if err := r.Scan(&t.ID, &t.Name, &redact, &maxEndpoints, &t.Plan, &limits, &c, &u, &t.UID, &rowid); err != nil {
		return nil, 0, err
	}
	var err error
	if t.Limits, err = store.DecodeTenantLimits(limits); err != nil {
		return nil, 0, fmt.Errorf("tenant %s: %w", t.ID, err)
	}
	if maxEndpoints > 0 {
		t.Limits.MaxEndpoints = &maxEndpoints
	}
	if err := json.Unmarshal([]byte(redact), &t.RedactFields); err != nil {
		return nil, 0, fmt.Errorf("tenant %s redact fields: %w", t.ID, err)
	}
	if len(t.RedactFields) == 0 {
		t.RedactFields = nil
	}
	t.CreatedAt, t.UpdatedAt = fromMicros(c), fromMicros(u)
	return &t, rowid, nil
}

// redactArg is the column value of a tenant's redaction paths: a JSON array.
func redactArg(paths []string) string {
	if len(paths) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(paths) // a []string always encodes
	return string(b)
}

// GetTenant reads one tenant.
func (s *Store) GetTenant(ctx context.Context, id string) (*store.Tenant, error) {
	t, _, err := scanTenant(s.r.QueryRowContext(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = ?`, id))
	if err != nil {
		return nil, notFound(err, "tenant "+id)
	}
	return t, nil
}

// ListTenants lists tenants in creation order.
func (s *Store) ListTenants(ctx context.Context, p store.Page) ([]store.Tenant, string, error) {
	after, err := store.DecodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := p.Clamp()
	rows, err := s.r.QueryContext(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE rowid > ? ORDER BY rowid LIMIT ?`, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list tenants: %w", err)
	}
	defer rows.Close()
	var out []store.Tenant
	var pos []int64
	for rows.Next() {
		t, rowid, err := scanTenant(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list tenants: %w", err)
		}
		out = append(out, *t)
		pos = append(pos, rowid)
	}
	return page(out, limit, rows.Err(), func(i int) int64 { return pos[i] })
}

// page trims a result read with limit+1 rows and computes the next cursor.
func page[T any](items []T, limit int, err error, pos func(i int) int64) ([]T, string, error) {
	if err != nil {
		return nil, "", fmt.Errorf("list: %w", err)
	}
	if len(items) <= limit {
		return items, "", nil
	}
	items = items[:limit]
	return items, store.EncodeCursor(pos(limit - 1)), nil
}

// UpdateTenant changes a tenant's name, redaction paths, plan and limits.
func (s *Store) UpdateTenant(ctx context.Context, t *store.Tenant) error {
	maxEndpoints, limits, err := tenantLimitsArgs(t.Limits)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE tenants SET name = ?, redact_fields = ?, max_endpoints = ?, plan = ?, limits = ?, updated_at = ? WHERE id = ?`,
			t.Name, redactArg(t.RedactFields), maxEndpoints, t.Plan, limits, micros(t.UpdatedAt), t.ID)
		if err != nil {
			return fmt.Errorf("update tenant: %w", err)
		}
		return affected(res, "tenant "+t.ID)
	})
}

// CreateEventType adds an event type to the catalog.
func (s *Store) CreateEventType(ctx context.Context, et *store.EventType) error {
	docs, err := store.EncodeEventTypeDocs(et.Docs)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO event_types (name, description, deprecated, schema, docs, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			et.Name, et.Description, boolInt(et.Deprecated), nullJSON(et.Schema), docs, micros(et.CreatedAt), micros(et.UpdatedAt))
		if isUnique(err) {
			return fmt.Errorf("event type %q: %w", et.Name, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("insert event type: %w", err)
		}
		return nil
	})
}

// GetEventType reads one event type.
func (s *Store) GetEventType(ctx context.Context, name string) (*store.EventType, error) {
	var et store.EventType
	var dep int
	var c, u int64
	var sch sql.NullString
	var docs string
	err := s.r.QueryRowContext(ctx, `SELECT name, description, deprecated, schema, docs, created_at, updated_at FROM event_types WHERE name = ?`, name).
		Scan(&et.Name, &et.Description, &dep, &sch, &docs, &c, &u)
	if err != nil {
		return nil, notFound(err, "event type "+name)
	}
	if et.Docs, err = store.DecodeEventTypeDocs(docs); err != nil {
		return nil, fmt.Errorf("event type %s: %w", name, err)
	}
	et.Deprecated, et.Schema, et.CreatedAt, et.UpdatedAt = dep == 1, fromNullJSON(sch), fromMicros(c), fromMicros(u)
	return &et, nil
}

// ListEventTypes lists the catalog in creation order.
func (s *Store) ListEventTypes(ctx context.Context, p store.Page) ([]store.EventType, string, error) {
	after, err := store.DecodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := p.Clamp()
	rows, err := s.r.QueryContext(ctx, `SELECT rowid, name, description, deprecated, schema, docs, created_at, updated_at FROM event_types WHERE rowid > ? ORDER BY rowid LIMIT ?`, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list event types: %w", err)
	}
	defer rows.Close()
	var out []store.EventType
	var pos []int64
	for rows.Next() {
		var et store.EventType
		var rowid, c, u int64
		var dep int
		var sch sql.NullString
		var docs string
		if err := rows.Scan(&rowid, &et.Name, &et.Description, &dep, &sch, &docs, &c, &u); err != nil {
			return nil, "", fmt.Errorf("list event types: %w", err)
		}
		if et.Docs, err = store.DecodeEventTypeDocs(docs); err != nil {
			return nil, "", fmt.Errorf("event type %s: %w", et.Name, err)
		}
		et.Deprecated, et.Schema, et.CreatedAt, et.UpdatedAt = dep == 1, fromNullJSON(sch), fromMicros(c), fromMicros(u)
		out = append(out, et)
		pos = append(pos, rowid)
	}
	return page(out, limit, rows.Err(), func(i int) int64 { return pos[i] })
}

// UpdateEventType changes description, deprecation and schema.
func (s *Store) UpdateEventType(ctx context.Context, et *store.EventType) error {
	docs, err := store.EncodeEventTypeDocs(et.Docs)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE event_types SET description = ?, deprecated = ?, schema = ?, docs = ?, updated_at = ? WHERE name = ?`,
			et.Description, boolInt(et.Deprecated), nullJSON(et.Schema), docs, micros(et.UpdatedAt), et.Name)
		if err != nil {
			return fmt.Errorf("update event type: %w", err)
		}
		return affected(res, "event type "+et.Name)
	})
}

// DeleteEventType removes an event type from the catalog; events already published keep their type.
func (s *Store) DeleteEventType(ctx context.Context, name string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM event_types WHERE name = ?`, name)
		if err != nil {
			return fmt.Errorf("delete event type: %w", err)
		}
		return affected(res, "event type "+name)
	})
}

// fromNullJSON reads a nullable JSON text column: NULL is nil.
func fromNullJSON(v sql.NullString) json.RawMessage {
	if !v.Valid {
		return nil
	}
	return json.RawMessage(v.String)
}

const endpointColumns = `rowid, id, tenant_id, url, description, event_types, secrets, timeout_ms, max_concurrency, rate_limit,
	retry_schedule, headers, enabled, disabled_reason, failing_since, internal, options, created_at, updated_at,
	type, settings, settings_secrets`

type rowScanner interface{ Scan(dest ...any) error }

func scanEndpoint(keys *seal.Keyring, r rowScanner) (*store.Endpoint, int64, error) {
	var e store.Endpoint
	var rowid, timeoutMS, c, u int64
	var types, secrets, headers, options, settings, settingsSecrets string
	var schedule sql.NullString
	var enabled, internal int
	var failing sql.NullInt64
	if err := r.Scan(&rowid, &e.ID, &e.TenantID, &e.URL, &e.Description, &types, &secrets, &timeoutMS, &e.MaxConcurrency,
		&e.RateLimit, &schedule, &headers, &enabled, &e.DisabledReason, &failing, &internal, &options, &c, &u,
		&e.Type, &settings, &settingsSecrets); err != nil {
		return nil, 0, err
	}
	if err := json.Unmarshal([]byte(types), &e.EventTypes); err != nil {
		return nil, 0, fmt.Errorf("endpoint %s event types: %w", e.ID, err)
	}
	var err error
	if e.Secrets, err = store.DecodeSecrets(keys, e.ID, []byte(secrets)); err != nil {
		return nil, 0, err
	}
	if err := json.Unmarshal([]byte(headers), &e.Headers); err != nil {
		return nil, 0, fmt.Errorf("endpoint %s headers: %w", e.ID, err)
	}
	if schedule.Valid {
		var ms []int64
		if err := json.Unmarshal([]byte(schedule.String), &ms); err != nil {
			return nil, 0, fmt.Errorf("endpoint %s retry schedule: %w", e.ID, err)
		}
		e.RetrySchedule = make([]time.Duration, len(ms))
		for i, v := range ms {
			e.RetrySchedule[i] = time.Duration(v) * time.Millisecond
		}
	}
	e.Timeout = time.Duration(timeoutMS) * time.Millisecond
	e.Enabled = enabled == 1
	e.Internal = internal == 1
	if e.Options, err = store.DecodeEndpointOptions(options); err != nil {
		return nil, 0, fmt.Errorf("endpoint %s: %w", e.ID, err)
	}
	if err := store.DecodeEndpointSettings(keys, &e, settings, settingsSecrets); err != nil {
		return nil, 0, err
	}
	e.FailingSince = fromNullMicros(failing)
	e.CreatedAt, e.UpdatedAt = fromMicros(c), fromMicros(u)
	return &e, rowid, nil
}

type endpointArgs struct {
	types, secrets, headers, options string
	schedule                         sql.NullString
	typ, settings, settingsSecrets   string
}

func encodeEndpoint(keys *seal.Keyring, e *store.Endpoint) (endpointArgs, error) {
	var a endpointArgs
	types, err := json.Marshal(e.EventTypes)
	if err != nil {
		return a, fmt.Errorf("encode event types: %w", err)
	}
	secrets, err := store.EncodeSecrets(keys, e.ID, e.Secrets)
	if err != nil {
		return a, err
	}
	h := e.Headers
	if h == nil {
		h = map[string]string{}
	}
	headers, err := json.Marshal(h)
	if err != nil {
		return a, fmt.Errorf("encode headers: %w", err)
	}
	a.types, a.secrets, a.headers = string(types), string(secrets), string(headers)
	if a.options, err = store.EncodeEndpointOptions(e.Options); err != nil {
		return a, err
	}
	a.typ = e.DestinationType()
	if a.settings, a.settingsSecrets, err = store.EncodeEndpointSettings(keys, e); err != nil {
		return a, err
	}
	if e.RetrySchedule != nil {
		ms := make([]int64, len(e.RetrySchedule))
		for i, d := range e.RetrySchedule {
			ms[i] = d.Milliseconds()
		}
		b, err := json.Marshal(ms)
		if err != nil {
			return a, fmt.Errorf("encode retry schedule: %w", err)
		}
		a.schedule = sql.NullString{String: string(b), Valid: true}
	}
	return a, nil
}

// CreateEndpoint inserts an endpoint of an existing tenant that has fewer endpoints than its
// limit (a *store.LimitError otherwise). The single writer makes the count and the insert atomic.
func (s *Store) CreateEndpoint(ctx context.Context, e *store.Endpoint) error {
	a, err := encodeEndpoint(s.keys, e)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		s.subs.invalidate()
		var max, n int
		var planLimits string
		if err := tx.QueryRowContext(ctx, `SELECT max_endpoints, (SELECT count(*) FROM endpoints WHERE tenant_id = tenants.id),
			coalesce((SELECT limits FROM plans WHERE name = tenants.plan), '') FROM tenants WHERE id = ?`,
			e.TenantID).Scan(&max, &n, &planLimits); err != nil {
			return notFound(err, "tenant "+e.TenantID)
		}
		plan, err := store.DecodeTenantLimits(planLimits)
		if err != nil {
			return err
		}
		if err := s.fanout.Limits().CheckEndpoints(store.TenantMaxEndpoints(max, plan), n); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO endpoints (id, tenant_id, url, description, event_types, secrets, timeout_ms,
			max_concurrency, rate_limit, retry_schedule, headers, enabled, disabled_reason, failing_since, internal, options, created_at, updated_at,
			type, settings, settings_secrets)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			e.ID, e.TenantID, e.URL, e.Description, a.types, a.secrets, e.Timeout.Milliseconds(), e.MaxConcurrency, e.RateLimit,
			a.schedule, a.headers, boolInt(e.Enabled), e.DisabledReason, nullMicros(e.FailingSince), boolInt(e.Internal), a.options,
			micros(e.CreatedAt), micros(e.UpdatedAt), a.typ, a.settings, a.settingsSecrets)
		if isUnique(err) {
			return fmt.Errorf("endpoint %q: %w", e.ID, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("insert endpoint: %w", err)
		}
		return nil
	})
}

// GetEndpoint reads one endpoint of a tenant.
func (s *Store) GetEndpoint(ctx context.Context, tenantID, id string) (*store.Endpoint, error) {
	e, _, err := scanEndpoint(s.keys, s.r.QueryRowContext(ctx, `SELECT `+endpointColumns+` FROM endpoints WHERE tenant_id = ? AND id = ?`, tenantID, id))
	if err != nil {
		return nil, notFound(err, "endpoint "+id)
	}
	return e, nil
}

// EndpointByID reads one endpoint whatever its tenant.
func (s *Store) EndpointByID(ctx context.Context, id string) (*store.Endpoint, error) {
	e, _, err := scanEndpoint(s.keys, s.r.QueryRowContext(ctx, `SELECT `+endpointColumns+` FROM endpoints WHERE id = ?`, id))
	if err != nil {
		return nil, notFound(err, "endpoint "+id)
	}
	return e, nil
}

// ListEndpoints lists a tenant's endpoints in creation order.
func (s *Store) ListEndpoints(ctx context.Context, tenantID string, p store.Page) ([]store.Endpoint, string, error) {
	after, err := store.DecodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := p.Clamp()
	rows, err := s.r.QueryContext(ctx, `SELECT `+endpointColumns+` FROM endpoints WHERE tenant_id = ? AND rowid > ? ORDER BY rowid LIMIT ?`, tenantID, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list endpoints: %w", err)
	}
	defer rows.Close()
	var out []store.Endpoint
	var pos []int64
	for rows.Next() {
		e, rowid, err := scanEndpoint(s.keys, rows)
		if err != nil {
			return nil, "", fmt.Errorf("list endpoints: %w", err)
		}
		out = append(out, *e)
		pos = append(pos, rowid)
	}
	return page(out, limit, rows.Err(), func(i int) int64 { return pos[i] })
}

// UpdateEndpoint replaces an endpoint's settings.
func (s *Store) UpdateEndpoint(ctx context.Context, e *store.Endpoint) error {
	a, err := encodeEndpoint(s.keys, e)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		s.subs.invalidate()
		res, err := tx.ExecContext(ctx, `UPDATE endpoints SET url = ?, description = ?, event_types = ?, secrets = ?, timeout_ms = ?,
			max_concurrency = ?, rate_limit = ?, retry_schedule = ?, headers = ?, enabled = ?, disabled_reason = ?, failing_since = ?,
			internal = ?, options = ?, updated_at = ?, type = ?, settings = ?, settings_secrets = ? WHERE tenant_id = ? AND id = ?`,
			e.URL, e.Description, a.types, a.secrets, e.Timeout.Milliseconds(), e.MaxConcurrency, e.RateLimit, a.schedule, a.headers,
			boolInt(e.Enabled), e.DisabledReason, nullMicros(e.FailingSince), boolInt(e.Internal), a.options, micros(e.UpdatedAt),
			a.typ, a.settings, a.settingsSecrets, e.TenantID, e.ID)
		if err != nil {
			return fmt.Errorf("update endpoint: %w", err)
		}
		return affected(res, "endpoint "+e.ID)
	})
}

// DeleteEndpoint removes an endpoint with its deliveries and their attempts. The history goes
// first, store.ChunkDeliveries deliveries a transaction, so that an endpoint with a long history
// does not hold the writer; the endpoint goes last, with what arrived meanwhile. An interrupted
// deletion leaves the endpoint in place with part of its history: deleting it again finishes.
func (s *Store) DeleteEndpoint(ctx context.Context, tenantID, id string) error {
	quiet := store.WithAudit(ctx, nil) // the entry goes with the last transaction only
	for {
		var n int
		err := s.write(quiet, func(tx *sql.Tx) error {
			var err error
			n, err = deleteDeliveriesOf(ctx, tx, tenantID, id, store.ChunkDeliveries)
			return err
		})
		if err != nil {
			return err
		}
		if n < store.ChunkDeliveries {
			break
		}
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		s.subs.invalidate()
		res, err := tx.ExecContext(ctx, `DELETE FROM endpoints WHERE tenant_id = ? AND id = ?`, tenantID, id)
		if err != nil {
			return fmt.Errorf("delete endpoint: %w", err)
		}
		if err := affected(res, "endpoint "+id); err != nil {
			return err
		}
		_, err = deleteDeliveriesOf(ctx, tx, tenantID, id, -1)
		return err
	})
}

// deleteDeliveriesOf removes up to limit (negative: all) of an endpoint's deliveries with their
// attempts, found through the deliveries' index rather than a scan of every attempt, and says
// how many deliveries it removed.
func deleteDeliveriesOf(ctx context.Context, tx *sql.Tx, tenantID, endpointID string, limit int) (int, error) {
	const some = `SELECT id FROM deliveries WHERE endpoint_id = ? AND tenant_id = ? ORDER BY id LIMIT ?`
	if _, err := tx.ExecContext(ctx, `DELETE FROM attempts WHERE delivery_id IN (`+some+`)`, endpointID, tenantID, limit); err != nil {
		return 0, fmt.Errorf("delete endpoint attempts: %w", err)
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM deliveries WHERE id IN (`+some+`)`, endpointID, tenantID, limit)
	if err != nil {
		return 0, fmt.Errorf("delete endpoint deliveries: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// DisableEndpoint disables an endpoint and, with deadLetter, dead-letters its pending deliveries.
func (s *Store) DisableEndpoint(ctx context.Context, id, reason string, deadLetter bool) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		s.subs.invalidate()
		now := micros(time.Now())
		res, err := tx.ExecContext(ctx, `UPDATE endpoints SET enabled = 0, disabled_reason = ?, updated_at = ? WHERE id = ?`, reason, now, id)
		if err != nil {
			return fmt.Errorf("disable endpoint: %w", err)
		}
		if err := affected(res, "endpoint "+id); err != nil {
			return err
		}
		if !deadLetter {
			return nil
		}
		res, err = tx.ExecContext(ctx, `UPDATE deliveries SET state = 2, last_error = ?, updated_at = ?
			WHERE endpoint_id = ? AND state = 0`, reason, now, id)
		if err != nil {
			return fmt.Errorf("dead-letter endpoint deliveries: %w", err)
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// CreateAPIKey stores a key's hash.
func (s *Store) CreateAPIKey(ctx context.Context, k *store.APIKey) error {
	uid := k.TenantUID
	err := s.write(ctx, func(tx *sql.Tx) error {
		if k.Role == store.RoleTenant {
			var current string
			if err := tx.QueryRowContext(ctx, `SELECT uid FROM tenants WHERE id = ?`, k.TenantID).Scan(&current); err != nil {
				return notFound(err, "tenant "+k.TenantID)
			}
			if uid != "" && uid != current {
				return fmt.Errorf("tenant %s: the instance the key was made for: %w", k.TenantID, store.ErrNotFound)
			}
			uid = current
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO api_keys (id, name, role, tenant_id, hash, prefix, created_at, tenant_uid) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			k.ID, k.Name, string(k.Role), k.TenantID, k.Hash, k.Prefix, micros(k.CreatedAt), uid)
		if isUnique(err) {
			return fmt.Errorf("api key: %w", store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("insert api key: %w", err)
		}
		return nil
	})
	if err == nil {
		k.TenantUID = uid
	}
	return err
}

const keyColumns = `id, name, role, tenant_id, hash, prefix, created_at, revoked_at, tenant_uid`

func scanKey(r rowScanner) (*store.APIKey, error) {
	var k store.APIKey
	var role string
	var c int64
	var revoked sql.NullInt64
	if err := r.Scan(&k.ID, &k.Name, &role, &k.TenantID, &k.Hash, &k.Prefix, &c, &revoked, &k.TenantUID); err != nil {
		return nil, err
	}
	k.Role, k.CreatedAt, k.RevokedAt = store.Role(role), fromMicros(c), fromNullMicros(revoked)
	return &k, nil
}

// APIKeyByHash finds a key that is not revoked by the SHA-256 of its secret; a tenant key only
// while the tenant instance it was made for exists.
func (s *Store) APIKeyByHash(ctx context.Context, hash []byte) (*store.APIKey, error) {
	k, err := scanKey(s.r.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE hash = ? AND revoked_at IS NULL
		AND (role <> 'tenant' OR EXISTS (SELECT 1 FROM tenants WHERE tenants.id = api_keys.tenant_id AND tenants.uid = api_keys.tenant_uid))`, hash))
	if err != nil {
		return nil, notFound(err, "api key")
	}
	return k, nil
}

// ListAPIKeys lists every key, revoked ones included.
func (s *Store) ListAPIKeys(ctx context.Context) ([]store.APIKey, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+keyColumns+` FROM api_keys ORDER BY created_at`)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	defer rows.Close()
	var out []store.APIKey
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list api keys: %w", err)
		}
		out = append(out, *k)
	}
	return out, rows.Err()
}

// RevokeAPIKey marks a key revoked.
func (s *Store) RevokeAPIKey(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, micros(time.Now()), id)
		if err != nil {
			return fmt.Errorf("revoke api key: %w", err)
		}
		return affected(res, "api key "+id)
	})
}

// CountAPIKeys counts keys that are not revoked.
func (s *Store) CountAPIKeys(ctx context.Context) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM api_keys WHERE revoked_at IS NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count api keys: %w", err)
	}
	return n, nil
}
