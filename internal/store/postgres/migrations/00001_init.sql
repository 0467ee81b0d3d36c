-- Herald's PostgreSQL schema, version 1: the SQLite schema's shape with PostgreSQL's types.
-- Times are timestamptz (microseconds, as the SQLite driver's integers). Deliveries' state:
-- 0 pending, 1 succeeded, 2 dead. Migrations are forward-only: a later change is a new file.

-- Tenants, event types and endpoints list in creation order: seq is that order (SQLite's rowid).
CREATE TABLE tenants (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE event_types (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    deprecated  BOOLEAN NOT NULL DEFAULT false,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE endpoints (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    event_types     TEXT[] NOT NULL,
    secrets         JSONB NOT NULL,
    timeout_ms      BIGINT NOT NULL,
    max_concurrency INTEGER NOT NULL,
    rate_limit      DOUBLE PRECISION NOT NULL DEFAULT 0,
    retry_schedule  BIGINT[], -- milliseconds; NULL for the default schedule
    headers         JSONB NOT NULL DEFAULT '{}',
    enabled         BOOLEAN NOT NULL DEFAULT true,
    disabled_reason TEXT NOT NULL DEFAULT '',
    failing_since   TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX endpoints_tenant ON endpoints (tenant_id, seq);

-- The payload is BYTEA, not JSONB: it is the exact signed envelope, byte for byte.
CREATE TABLE events (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    id         TEXT NOT NULL,
    type       TEXT NOT NULL,
    ts         TIMESTAMPTZ NOT NULL,
    source     TEXT NOT NULL DEFAULT '',
    payload    BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, id)
);
CREATE INDEX events_tenant_seq ON events (tenant_id, seq);
CREATE INDEX events_created ON events (created_at);

-- Several processes share the work, so leases live in rows: lease_until is when the claim of the
-- attempt in flight expires, -infinity when there is none. No index covers lease_until, so that
-- a claim (which changes nothing else) is a HOT update; fillfactor leaves the room HOT needs.
CREATE TABLE deliveries (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    event_seq       BIGINT NOT NULL,
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    endpoint_id     TEXT NOT NULL,
    state           SMALLINT NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    tries           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    lease_until     TIMESTAMPTZ NOT NULL DEFAULT '-infinity',
    last_status     INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (event_seq, endpoint_id)
) WITH (fillfactor = 80);
-- The dispatcher's claim query: due deliveries of one endpoint, oldest first (id breaks ties).
CREATE INDEX deliveries_due ON deliveries (endpoint_id, next_attempt_at, id) WHERE state = 0;
CREATE INDEX deliveries_tenant ON deliveries (tenant_id, id);
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, id);
CREATE INDEX deliveries_created ON deliveries (created_at);

CREATE TABLE attempts (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id BIGINT NOT NULL,
    tenant_id   TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    status      INTEGER NOT NULL DEFAULT 0,
    latency_us  BIGINT NOT NULL DEFAULT 0,
    response    TEXT NOT NULL DEFAULT '',
    error_kind  TEXT NOT NULL DEFAULT '',
    error       TEXT NOT NULL DEFAULT '',
    success     BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX attempts_delivery ON attempts (delivery_id);
CREATE INDEX attempts_tenant_at ON attempts (tenant_id, at);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL DEFAULT '',
    role       TEXT NOT NULL,
    tenant_id  TEXT NOT NULL DEFAULT '',
    hash       BYTEA NOT NULL UNIQUE,
    prefix     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
