-- +goose Up
-- The audit log: one row per change made through the API. before and after are JSON snapshots
-- of the resource without its secrets (NULL: nothing before, or nothing left).
CREATE TABLE audit_log (
    id              INTEGER PRIMARY KEY,
    at              INTEGER NOT NULL,
    actor_key_id    TEXT NOT NULL DEFAULT '',
    actor_role      TEXT NOT NULL DEFAULT '',
    actor_tenant_id TEXT NOT NULL DEFAULT '',
    action          TEXT NOT NULL,
    resource_type   TEXT NOT NULL,
    resource_id     TEXT NOT NULL DEFAULT '',
    tenant_id       TEXT NOT NULL DEFAULT '',
    before          TEXT,
    after           TEXT
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id);
CREATE INDEX audit_log_at ON audit_log (at);

-- A tenant's redaction setting: a JSON array of field paths. Existing tenants redact nothing.
ALTER TABLE tenants ADD COLUMN redact_fields TEXT NOT NULL DEFAULT '[]';

-- +goose Down
ALTER TABLE tenants DROP COLUMN redact_fields;
DROP TABLE audit_log;
