-- Plans: named sets of limits (store.TenantLimits as JSON text). A tenant names its plan ('' for
-- none) and may override the plan's limits with its own (limits; max_endpoints keeps its column).
CREATE TABLE plans (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    limits      TEXT NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
ALTER TABLE tenants ADD COLUMN plan TEXT NOT NULL DEFAULT '';
ALTER TABLE tenants ADD COLUMN limits TEXT NOT NULL DEFAULT '{}';

-- Usage counters (store/usage.go): one row per tenant, hour, endpoint ('' for the tenant's own
-- figures) and shard, incremented by the transactions that do the work. The shard is the
-- writing connection's (pg_backend_pid() % 8), so that concurrent transactions of one tenant
-- seldom wait on one counter row's lock; a read sums the shards.
CREATE TABLE usage_hourly (
    tenant_id       TEXT NOT NULL,
    hour            TIMESTAMPTZ NOT NULL,
    endpoint_id     TEXT NOT NULL,
    shard           SMALLINT NOT NULL,
    events          BIGINT NOT NULL DEFAULT 0,
    event_bytes     BIGINT NOT NULL DEFAULT 0,
    requests        BIGINT NOT NULL DEFAULT 0,
    request_bytes   BIGINT NOT NULL DEFAULT 0,
    deliveries      BIGINT NOT NULL DEFAULT 0,
    attempts_ok     BIGINT NOT NULL DEFAULT 0,
    attempts_failed BIGINT NOT NULL DEFAULT 0,
    bytes_sent      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, hour, endpoint_id, shard)
);
