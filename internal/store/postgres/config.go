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

// CreateTenant inserts a tenant; ErrConflict if the id is taken.
func (s *Store) CreateTenant(ctx context.Context, t *store.Tenant) error {
	uid := store.NewTenantUID()
	maxEndpoints, limits, err := tenantLimitsArgs(t.Limits)
	if err != nil {
		return err
	}
	err = s.execOne(ctx, "insert tenant", `INSERT INTO tenants (id, name, redact_fields, max_endpoints, plan, limits, created_at, updated_at, uid) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		t.ID, t.Name, redactArg(t.RedactFields), maxEndpoints, t.Plan, limits, t.CreatedAt, t.UpdatedAt, uid)
	if isUnique(err) {
		return fmt.Errorf("tenant %q: %w", t.ID, store.ErrConflict)
	}
	if err == nil {
		t.UID = uid
	}
	return err
}

const tenantColumns = `id, name, redact_fields, max_endpoints, plan, limits, created_at, updated_at, uid, seq`

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

func scanTenant(r pgx.Row) (*store.Tenant, int64, error) {
	var t store.Tenant
	var seq int64
	var maxEndpoints int
	var limits string
	if err := r.Scan(&t.ID, &t.Name, &t.RedactFields, &maxEndpoints, &t.Plan, &limits, &t.CreatedAt, &t.UpdatedAt, &t.UID, &seq); err != nil {
		return nil, 0, err
	}
	var err error
	if t.Limits, err = store.DecodeTenantLimits(limits); err != nil {
		return nil, 0, fmt.Errorf("tenant %s: %w", t.ID, err)
	}
	if maxEndpoints > 0 {
		t.Limits.MaxEndpoints = &maxEndpoints
	}
	if len(t.RedactFields) == 0 {
		t.RedactFields = nil
	}
	return &t, seq, nil
}

// redactArg is the column value of a tenant's redaction paths (the column is NOT NULL).
func redactArg(paths []string) []string {
	if paths == nil {
		return []string{}
	}
	return paths
}

// GetTenant reads one tenant.
func (s *Store) GetTenant(ctx context.Context, id string) (*store.Tenant, error) {
	t, _, err := scanTenant(s.pool.QueryRow(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = $1`, id))
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
	rows, err := s.pool.Query(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list tenants: %w", err)
	}
	var pos []int64
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Tenant, error) {
		t, seq, err := scanTenant(r)
		if err != nil {
			return store.Tenant{}, err
		}
		pos = append(pos, seq)
		return *t, nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("list tenants: %w", err)
	}
	return page(out, limit, func(i int) int64 { return pos[i] })
}

// UpdateTenant changes a tenant's name, redaction paths, plan and limits.
func (s *Store) UpdateTenant(ctx context.Context, t *store.Tenant) error {
	maxEndpoints, limits, err := tenantLimitsArgs(t.Limits)
	if err != nil {
		return err
	}
	return s.execOne(ctx, "tenant "+t.ID, `UPDATE tenants SET name = $1, redact_fields = $2, max_endpoints = $3, plan = $4, limits = $5, updated_at = $6 WHERE id = $7`,
		t.Name, redactArg(t.RedactFields), maxEndpoints, t.Plan, limits, t.UpdatedAt, t.ID)
}

// CreateEventType adds an event type to the catalog.
func (s *Store) CreateEventType(ctx context.Context, et *store.EventType) error {
	docs, err := store.EncodeEventTypeDocs(et.Docs)
	if err != nil {
		return err
	}
	err = s.execOne(ctx, "insert event type", `INSERT INTO event_types (name, description, deprecated, schema, docs, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		et.Name, et.Description, et.Deprecated, jsonArg(et.Schema), docs, et.CreatedAt, et.UpdatedAt)
	if isUnique(err) {
		return fmt.Errorf("event type %q: %w", et.Name, store.ErrConflict)
	}
	return err
}

// GetEventType reads one event type.
func (s *Store) GetEventType(ctx context.Context, name string) (*store.EventType, error) {
	var et store.EventType
	var sch *string
	var docs string
	err := s.pool.QueryRow(ctx, `SELECT name, description, deprecated, schema, docs, created_at, updated_at FROM event_types WHERE name = $1`, name).
		Scan(&et.Name, &et.Description, &et.Deprecated, &sch, &docs, &et.CreatedAt, &et.UpdatedAt)
	if err != nil {
		return nil, notFound(err, "event type "+name)
	}
	et.Schema = fromJSONText(sch)
	if et.Docs, err = store.DecodeEventTypeDocs(docs); err != nil {
		return nil, fmt.Errorf("event type %s: %w", name, err)
	}
	return &et, nil
}

// ListEventTypes lists the catalog in creation order.
func (s *Store) ListEventTypes(ctx context.Context, p store.Page) ([]store.EventType, string, error) {
	after, err := store.DecodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := p.Clamp()
	rows, err := s.pool.Query(ctx, `SELECT seq, name, description, deprecated, schema, docs, created_at, updated_at FROM event_types
		WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list event types: %w", err)
	}
	var pos []int64
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.EventType, error) {
		var et store.EventType
		var seq int64
		var sch *string
		var docs string
		if err := r.Scan(&seq, &et.Name, &et.Description, &et.Deprecated, &sch, &docs, &et.CreatedAt, &et.UpdatedAt); err != nil {
			return et, err
		}
		pos = append(pos, seq)
		et.Schema = fromJSONText(sch)
		var err error
		et.Docs, err = store.DecodeEventTypeDocs(docs)
		return et, err
	})
	if err != nil {
		return nil, "", fmt.Errorf("list event types: %w", err)
	}
	return page(out, limit, func(i int) int64 { return pos[i] })
}

// UpdateEventType changes description, deprecation and schema.
func (s *Store) UpdateEventType(ctx context.Context, et *store.EventType) error {
	docs, err := store.EncodeEventTypeDocs(et.Docs)
	if err != nil {
		return err
	}
	return s.execOne(ctx, "event type "+et.Name, `UPDATE event_types SET description = $1, deprecated = $2, schema = $3, docs = $4, updated_at = $5
		WHERE name = $6`, et.Description, et.Deprecated, jsonArg(et.Schema), docs, et.UpdatedAt, et.Name)
}

// fromJSONText reads a nullable JSON text column: NULL is nil.
func fromJSONText(v *string) json.RawMessage {
	if v == nil {
		return nil
	}
	return json.RawMessage(*v)
}

// DeleteEventType removes an event type from the catalog; events already published keep their type.
func (s *Store) DeleteEventType(ctx context.Context, name string) error {
	return s.execOne(ctx, "event type "+name, `DELETE FROM event_types WHERE name = $1`, name)
}

const endpointColumns = `seq, id, tenant_id, url, description, event_types, secrets, timeout_ms, max_concurrency, rate_limit,
	retry_schedule, headers, enabled, disabled_reason, failing_since, internal, options, created_at, updated_at,
	type, settings, settings_secrets`

func scanEndpoint(keys *seal.Keyring, r pgx.Row) (*store.Endpoint, int64, error) {
	var e store.Endpoint
	var seq, timeoutMS int64
	var secrets, headers []byte
	var options, settings, settingsSecrets string
	var schedule []int64
	if err := r.Scan(&seq, &e.ID, &e.TenantID, &e.URL, &e.Description, &e.EventTypes, &secrets, &timeoutMS, &e.MaxConcurrency,
		&e.RateLimit, &schedule, &headers, &e.Enabled, &e.DisabledReason, &e.FailingSince, &e.Internal, &options, &e.CreatedAt, &e.UpdatedAt,
		&e.Type, &settings, &settingsSecrets); err != nil {
		return nil, 0, err
	}
	var err error
	if e.Options, err = store.DecodeEndpointOptions(options); err != nil {
		return nil, 0, fmt.Errorf("endpoint %s: %w", e.ID, err)
	}
	if e.Secrets, err = store.DecodeSecrets(keys, e.ID, secrets); err != nil {
		return nil, 0, err
	}
	if err := json.Unmarshal(headers, &e.Headers); err != nil {
		return nil, 0, fmt.Errorf("endpoint %s headers: %w", e.ID, err)
	}
	if schedule != nil {
		e.RetrySchedule = make([]time.Duration, len(schedule))
		for i, ms := range schedule {
			e.RetrySchedule[i] = time.Duration(ms) * time.Millisecond
		}
	}
	if err := store.DecodeEndpointSettings(keys, &e, settings, settingsSecrets); err != nil {
		return nil, 0, err
	}
	e.Timeout = time.Duration(timeoutMS) * time.Millisecond
	return &e, seq, nil
}

// endpointArgs are an endpoint's fields as the columns take them.
type endpointArgs struct {
	types                     []string
	secrets, headers, options string
	schedule                  []int64 // nil (NULL) for the default schedule
	typ, settings, sealed     string
}

func encodeEndpoint(keys *seal.Keyring, e *store.Endpoint) (endpointArgs, error) {
	var a endpointArgs
	a.types = e.EventTypes
	if a.types == nil {
		a.types = []string{} // the column is NOT NULL
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
	a.secrets, a.headers = string(secrets), string(headers)
	if a.options, err = store.EncodeEndpointOptions(e.Options); err != nil {
		return a, err
	}
	a.typ = e.DestinationType()
	if a.settings, a.sealed, err = store.EncodeEndpointSettings(keys, e); err != nil {
		return a, err
	}
	if e.RetrySchedule != nil {
		a.schedule = make([]int64, len(e.RetrySchedule))
		for i, d := range e.RetrySchedule {
			a.schedule[i] = d.Milliseconds()
		}
	}
	return a, nil
}

// CreateEndpoint inserts an endpoint of an existing tenant that has fewer endpoints than its
// limit (a *store.LimitError otherwise). The tenant's row is locked (FOR NO KEY UPDATE, which
// publishes' KEY SHARE does not wait for) while its endpoints are counted, so that concurrent
// creates are counted one after the other and cannot exceed the limit together.
func (s *Store) CreateEndpoint(ctx context.Context, e *store.Endpoint) error {
	a, err := encodeEndpoint(s.keys, e)
	if err != nil {
		return err
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		var max, n int
		var planLimits string
		if err := tx.QueryRow(ctx, `SELECT max_endpoints, coalesce((SELECT limits FROM plans WHERE name = tenants.plan), '')
			FROM tenants WHERE id = $1 FOR NO KEY UPDATE OF tenants`, e.TenantID).Scan(&max, &planLimits); err != nil {
			return notFound(err, "tenant "+e.TenantID)
		}
		plan, err := store.DecodeTenantLimits(planLimits)
		if err != nil {
			return err
		}
		// A statement of its own: its snapshot sees what creates that held the lock committed.
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM endpoints WHERE tenant_id = $1`, e.TenantID).Scan(&n); err != nil {
			return fmt.Errorf("count endpoints: %w", err)
		}
		if err := s.fanout.Limits().CheckEndpoints(store.TenantMaxEndpoints(max, plan), n); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO endpoints (id, tenant_id, url, description, event_types, secrets, timeout_ms,
			max_concurrency, rate_limit, retry_schedule, headers, enabled, disabled_reason, failing_since, internal, options, created_at, updated_at,
			type, settings, settings_secrets)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)`,
			e.ID, e.TenantID, e.URL, e.Description, a.types, a.secrets, e.Timeout.Milliseconds(), e.MaxConcurrency, e.RateLimit,
			a.schedule, a.headers, e.Enabled, e.DisabledReason, e.FailingSince, e.Internal, a.options, e.CreatedAt, e.UpdatedAt,
			a.typ, a.settings, a.sealed)
		if err != nil {
			return fmt.Errorf("insert endpoint: %w", err)
		}
		return nil
	})
	if isUnique(err) {
		return fmt.Errorf("endpoint %q: %w", e.ID, store.ErrConflict)
	}
	return err
}

// GetEndpoint reads one endpoint of a tenant.
func (s *Store) GetEndpoint(ctx context.Context, tenantID, id string) (*store.Endpoint, error) {
	e, _, err := scanEndpoint(s.keys, s.pool.QueryRow(ctx, `SELECT `+endpointColumns+` FROM endpoints WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	if err != nil {
		return nil, notFound(err, "endpoint "+id)
	}
	return e, nil
}

// EndpointByID reads one endpoint whatever its tenant.
func (s *Store) EndpointByID(ctx context.Context, id string) (*store.Endpoint, error) {
	e, _, err := scanEndpoint(s.keys, s.pool.QueryRow(ctx, `SELECT `+endpointColumns+` FROM endpoints WHERE id = $1`, id))
	if err != nil {
		return nil, notFound(err, "endpoint "+id)
	}
	return e, nil
}

// ListEndpoints lists a tenant's endpoints in creation order.
func (s *Store) ListEndpoints(ctx context.Context, tenantID string, p store.Page) ([]store.Endpoint, string, error) {
	return listBySeq(ctx, s, p, "endpoints", `SELECT `+endpointColumns+` FROM endpoints WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
		func(r pgx.CollectableRow) (*store.Endpoint, int64, error) { return scanEndpoint(s.keys, r) }, tenantID)
}

// listBySeq reads one page of a tenant's rows in creation (seq) order: query takes the tenant
// as $1, the cursor's seq as $2 and the limit as $3; scan reads a row and its seq.
func listBySeq[T any](ctx context.Context, s *Store, p store.Page, what, query string, scan func(pgx.CollectableRow) (*T, int64, error), tenantID string) ([]T, string, error) {
	after, err := store.DecodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := p.Clamp()
	rows, err := s.pool.Query(ctx, query, tenantID, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list %s: %w", what, err)
	}
	var pos []int64
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) {
		v, seq, err := scan(r)
		if err != nil {
			var zero T
			return zero, err
		}
		pos = append(pos, seq)
		return *v, nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("list %s: %w", what, err)
	}
	return page(out, limit, func(i int) int64 { return pos[i] })
}

// UpdateEndpoint replaces an endpoint's settings.
func (s *Store) UpdateEndpoint(ctx context.Context, e *store.Endpoint) error {
	a, err := encodeEndpoint(s.keys, e)
	if err != nil {
		return err
	}
	return s.execOne(ctx, "endpoint "+e.ID, `UPDATE endpoints SET url = $1, description = $2, event_types = $3, secrets = $4, timeout_ms = $5,
		max_concurrency = $6, rate_limit = $7, retry_schedule = $8, headers = $9, enabled = $10, disabled_reason = $11,
		failing_since = $12, internal = $13, options = $14, updated_at = $15, type = $18, settings = $19, settings_secrets = $20
		WHERE tenant_id = $16 AND id = $17`,
		e.URL, e.Description, a.types, a.secrets, e.Timeout.Milliseconds(), e.MaxConcurrency, e.RateLimit, a.schedule, a.headers,
		e.Enabled, e.DisabledReason, e.FailingSince, e.Internal, a.options, e.UpdatedAt, e.TenantID, e.ID,
		a.typ, a.settings, a.sealed)
}

// DeleteEndpoint removes an endpoint with its deliveries and their attempts.
func (s *Store) DeleteEndpoint(ctx context.Context, tenantID, id string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		// Publishes of the tenant hold its row KEY SHARE: this waits for them (see enabledTargets).
		if _, err := tx.Exec(ctx, `SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE`, tenantID); err != nil {
			return fmt.Errorf("lock tenant: %w", err)
		}
		tag, err := tx.Exec(ctx, `DELETE FROM endpoints WHERE tenant_id = $1 AND id = $2`, tenantID, id)
		if err != nil {
			return fmt.Errorf("delete endpoint: %w", err)
		}
		if err := affected(tag, "endpoint "+id); err != nil {
			return err
		}
		// Through the deliveries, whose index finds them, rather than a scan of every attempt.
		if _, err := tx.Exec(ctx, `DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE endpoint_id = $1)`, id); err != nil {
			return fmt.Errorf("delete endpoint attempts: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM deliveries WHERE endpoint_id = $1`, id); err != nil {
			return fmt.Errorf("delete endpoint deliveries: %w", err)
		}
		return nil
	})
}

// DisableEndpoint disables an endpoint and, with deadLetter, dead-letters its pending deliveries.
func (s *Store) DisableEndpoint(ctx context.Context, id, reason string, deadLetter bool) (int, error) {
	var n int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		n = 0
		now := time.Now()
		// Publishes of the tenant hold its row KEY SHARE: this waits for them (see enabledTargets).
		if _, err := tx.Exec(ctx, `SELECT 1 FROM tenants WHERE id = (SELECT tenant_id FROM endpoints WHERE id = $1) FOR UPDATE`, id); err != nil {
			return fmt.Errorf("lock tenant: %w", err)
		}
		tag, err := tx.Exec(ctx, `UPDATE endpoints SET enabled = false, disabled_reason = $1, updated_at = $2 WHERE id = $3`, reason, now, id)
		if err != nil {
			return fmt.Errorf("disable endpoint: %w", err)
		}
		if err := affected(tag, "endpoint "+id); err != nil {
			return err
		}
		if !deadLetter {
			return nil
		}
		tag, err = tx.Exec(ctx, `UPDATE deliveries SET state = 2, last_error = $1, updated_at = $2 WHERE endpoint_id = $3 AND state = 0`,
			reason, now, id)
		if err != nil {
			return fmt.Errorf("dead-letter endpoint deliveries: %w", err)
		}
		n = tag.RowsAffected()
		return nil
	})
	return int(n), err
}

// CreateAPIKey stores a key's hash.
func (s *Store) CreateAPIKey(ctx context.Context, k *store.APIKey) error {
	uid := k.TenantUID
	insert := `INSERT INTO api_keys (id, name, role, tenant_id, hash, prefix, created_at, tenant_uid) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
	if k.Role == store.RoleTenant {
		if uid == "" {
			t, err := s.GetTenant(ctx, k.TenantID)
			if err != nil {
				return err
			}
			uid = t.UID
		}
		// Bound in the same statement: a tenant deleted (and created again) meanwhile is not found.
		insert = `INSERT INTO api_keys (id, name, role, tenant_id, hash, prefix, created_at, tenant_uid)
			SELECT $1::text, $2::text, $3::text, $4::text, $5::bytea, $6::text, $7::timestamptz, $8::text FROM tenants WHERE id = $4 AND uid = $8`
	}
	err := s.execOne(ctx, "insert api key", insert, k.ID, k.Name, string(k.Role), k.TenantID, k.Hash, k.Prefix, k.CreatedAt, uid)
	if isUnique(err) {
		return fmt.Errorf("api key: %w", store.ErrConflict)
	}
	if err == nil {
		k.TenantUID = uid
	}
	return err
}

const keyColumns = `id, name, role, tenant_id, hash, prefix, created_at, revoked_at, tenant_uid`

func scanKey(r pgx.Row) (*store.APIKey, error) {
	var k store.APIKey
	var role string
	if err := r.Scan(&k.ID, &k.Name, &role, &k.TenantID, &k.Hash, &k.Prefix, &k.CreatedAt, &k.RevokedAt, &k.TenantUID); err != nil {
		return nil, err
	}
	k.Role = store.Role(role)
	return &k, nil
}

// APIKeyByHash finds a key that is not revoked by the SHA-256 of its secret; a tenant key only
// while the tenant instance it was made for exists.
func (s *Store) APIKeyByHash(ctx context.Context, hash []byte) (*store.APIKey, error) {
	k, err := scanKey(s.pool.QueryRow(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE hash = $1 AND revoked_at IS NULL
		AND (role <> 'tenant' OR EXISTS (SELECT 1 FROM tenants WHERE tenants.id = api_keys.tenant_id AND tenants.uid = api_keys.tenant_uid))`, hash))
	if err != nil {
		return nil, notFound(err, "api key")
	}
	return k, nil
}

// ListAPIKeys lists every key, revoked ones included.
func (s *Store) ListAPIKeys(ctx context.Context) ([]store.APIKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+keyColumns+` FROM api_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.APIKey, error) {
		k, err := scanKey(r)
		if err != nil {
			return store.APIKey{}, err
		}
		return *k, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	return out, nil
}

// RevokeAPIKey marks a key revoked.
func (s *Store) RevokeAPIKey(ctx context.Context, id string) error {
	return s.execOne(ctx, "api key "+id, `UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, time.Now(), id)
}

// CountAPIKeys counts keys that are not revoked.
func (s *Store) CountAPIKeys(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM api_keys WHERE revoked_at IS NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count api keys: %w", err)
	}
	return n, nil
}
