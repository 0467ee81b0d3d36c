-- +goose Up
-- Plans: named sets of limits (store.TenantLimits as JSON text). A tenant names its plan ('' for
-- none) and may override the plan's limits with its own (limits; max_endpoints keeps its column).
CREATE TABLE plans (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    limits      TEXT NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
ALTER TABLE tenants ADD COLUMN plan TEXT NOT NULL DEFAULT '';
ALTER TABLE tenants ADD COLUMN limits TEXT NOT NULL DEFAULT '{}';

-- Usage counters (store/usage.go): one row per tenant, hour (unix seconds of its start, UTC) and
-- endpoint ('' for the tenant's own figures), incremented by the transactions that do the work.
CREATE TABLE usage_hourly (
    tenant_id       TEXT NOT NULL,
    hour            INTEGER NOT NULL,
    endpoint_id     TEXT NOT NULL,
    events          INTEGER NOT NULL DEFAULT 0,
    event_bytes     INTEGER NOT NULL DEFAULT 0,
    requests        INTEGER NOT NULL DEFAULT 0,
    request_bytes   INTEGER NOT NULL DEFAULT 0,
    deliveries      INTEGER NOT NULL DEFAULT 0,
    attempts_ok     INTEGER NOT NULL DEFAULT 0,
    attempts_failed INTEGER NOT NULL DEFAULT 0,
    bytes_sent      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, hour, endpoint_id)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE usage_hourly;
ALTER TABLE tenants DROP COLUMN limits;
ALTER TABLE tenants DROP COLUMN plan;
DROP TABLE plans;
