-- +goose Up
-- Times are Unix microseconds (INTEGER). Deliveries' state: 0 pending, 1 succeeded, 2 dead.
CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE event_types (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    deprecated  INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE endpoints (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    event_types     TEXT NOT NULL,
    secrets         TEXT NOT NULL,
    timeout_ms      INTEGER NOT NULL,
    max_concurrency INTEGER NOT NULL,
    rate_limit      REAL NOT NULL DEFAULT 0,
    retry_schedule  TEXT,
    headers         TEXT NOT NULL DEFAULT '{}',
    enabled         INTEGER NOT NULL DEFAULT 1,
    disabled_reason TEXT NOT NULL DEFAULT '',
    failing_since   INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX endpoints_tenant ON endpoints (tenant_id);

CREATE TABLE events (
    seq        INTEGER PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    id         TEXT NOT NULL,
    type       TEXT NOT NULL,
    ts         INTEGER NOT NULL,
    source     TEXT NOT NULL DEFAULT '',
    payload    BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (tenant_id, id)
);
CREATE INDEX events_tenant_seq ON events (tenant_id, seq);
CREATE INDEX events_created ON events (created_at);

CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    event_seq       INTEGER NOT NULL,
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    endpoint_id     TEXT NOT NULL,
    state           INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    tries           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_status     INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (event_seq, endpoint_id)
);
-- The dispatcher's claim query: due deliveries of one endpoint, oldest first.
CREATE INDEX deliveries_due ON deliveries (endpoint_id, next_attempt_at) WHERE state = 0;
CREATE INDEX deliveries_tenant ON deliveries (tenant_id, id);
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, id);
CREATE INDEX deliveries_created ON deliveries (created_at);

CREATE TABLE attempts (
    id          INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL,
    tenant_id   TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    at          INTEGER NOT NULL,
    status      INTEGER NOT NULL DEFAULT 0,
    latency_us  INTEGER NOT NULL DEFAULT 0,
    response    TEXT NOT NULL DEFAULT '',
    error_kind  TEXT NOT NULL DEFAULT '',
    error       TEXT NOT NULL DEFAULT '',
    success     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX attempts_delivery ON attempts (delivery_id);
CREATE INDEX attempts_tenant_at ON attempts (tenant_id, at);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL DEFAULT '',
    role       TEXT NOT NULL,
    tenant_id  TEXT NOT NULL DEFAULT '',
    hash       BLOB NOT NULL UNIQUE,
    prefix     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

-- +goose Down
DROP TABLE api_keys;
DROP TABLE attempts;
DROP TABLE deliveries;
DROP TABLE events;
DROP TABLE endpoints;
DROP TABLE event_types;
DROP TABLE tenants;
