-- +goose Up
-- Sources: the inbound URLs of tenants. token and settings are sealed with the store's keyring
-- (store.EncodeSource); a source is found by the SHA-256 of its token, never by the token.
-- seq is an INTEGER PRIMARY KEY (a rowid alias that VACUUM keeps): the creation order lists use.
CREATE TABLE sources (
    seq        INTEGER PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    tenant_id  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name       TEXT NOT NULL DEFAULT '',
    token_hash BLOB NOT NULL UNIQUE,
    token      TEXT NOT NULL,
    settings   TEXT NOT NULL,
    enabled    INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX sources_tenant ON sources (tenant_id, seq);

-- Every request to a source, raw, with what became of it. headers is a JSON object of lists;
-- dedup_until is 0 when the request opened no dedup window.
CREATE TABLE received_requests (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    tenant_id    TEXT NOT NULL,
    source_id    TEXT NOT NULL,
    received_at  INTEGER NOT NULL,
    method       TEXT NOT NULL,
    path         TEXT NOT NULL,
    query        TEXT NOT NULL DEFAULT '',
    headers      TEXT NOT NULL DEFAULT '{}',
    body         BLOB NOT NULL,
    remote_addr  TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL,
    reason       TEXT NOT NULL DEFAULT '',
    dedup_key    TEXT NOT NULL DEFAULT '',
    dedup_until  INTEGER NOT NULL DEFAULT 0,
    duplicate_of TEXT NOT NULL DEFAULT '',
    event_id     TEXT NOT NULL DEFAULT '',
    event_type   TEXT NOT NULL DEFAULT '',
    deliveries   INTEGER NOT NULL DEFAULT 0
);
-- A tenant's requests newest first, optionally of one source or status; retention by age.
CREATE INDEX received_requests_tenant ON received_requests (tenant_id, seq);
CREATE INDEX received_requests_source ON received_requests (tenant_id, source_id, seq);
CREATE INDEX received_requests_status ON received_requests (tenant_id, status, seq);
CREATE INDEX received_requests_received ON received_requests (received_at);

-- The dedup keys in force: a key of a source is held by the request that took it until
-- expires_at; a later request with the key takes it over only once that time has passed.
CREATE TABLE inbound_dedup (
    source_id  TEXT NOT NULL,
    key        TEXT NOT NULL,
    request_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (source_id, key)
);
CREATE INDEX inbound_dedup_expires ON inbound_dedup (expires_at);

-- Endpoints the operator marks internal may reach the ranges --internal-cidr opens; no other
-- endpoint may. Set only through admin keys.
ALTER TABLE endpoints ADD COLUMN internal INTEGER NOT NULL DEFAULT 0;

-- The W3C trace context of the request that published an event, so that its delivery attempts
-- continue that trace (docs/observability.md); empty when there was none.
ALTER TABLE events ADD COLUMN traceparent TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN tracestate TEXT NOT NULL DEFAULT '';

-- The JSON Schema of an event type's data, NULL for none. Text in the author's key order (compacted,
-- not re-encoded), so that its properties keep their order in what the API answers.
ALTER TABLE event_types ADD COLUMN schema TEXT;

-- +goose Down
ALTER TABLE event_types DROP COLUMN schema;
ALTER TABLE events DROP COLUMN tracestate;
ALTER TABLE events DROP COLUMN traceparent;
ALTER TABLE endpoints DROP COLUMN internal;
DROP TABLE inbound_dedup;
DROP TABLE received_requests;
DROP TABLE sources;
