-- Sources: the inbound URLs of tenants. token and settings are sealed with the store's keyring
-- (store.EncodeSource), so they are text, not jsonb; a source is found by the SHA-256 of its
-- token, never by the token.
CREATE TABLE sources (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name       TEXT NOT NULL DEFAULT '',
    token_hash BYTEA NOT NULL UNIQUE,
    token      TEXT NOT NULL,
    settings   TEXT NOT NULL,
    enabled    BOOLEAN NOT NULL DEFAULT true,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX sources_tenant ON sources (tenant_id, seq);

-- Every request to a source, raw, with what became of it. headers is json, not jsonb: kept as
-- written. dedup_until is NULL when the request opened no dedup window.
CREATE TABLE received_requests (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    tenant_id    TEXT NOT NULL,
    source_id    TEXT NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL,
    method       TEXT NOT NULL,
    path         TEXT NOT NULL,
    query        TEXT NOT NULL DEFAULT '',
    headers      JSON NOT NULL,
    body         BYTEA NOT NULL,
    remote_addr  TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL,
    reason       TEXT NOT NULL DEFAULT '',
    dedup_key    TEXT NOT NULL DEFAULT '',
    dedup_until  TIMESTAMPTZ,
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
-- expires_at; a later request with the key takes it over only once that time has passed. The
-- primary key is what makes concurrent receives of one key take it once (INSERT … ON CONFLICT).
CREATE TABLE inbound_dedup (
    source_id  TEXT NOT NULL,
    key        TEXT NOT NULL,
    request_id TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source_id, key)
);
CREATE INDEX inbound_dedup_expires ON inbound_dedup (expires_at);

-- Endpoints the operator marks internal may reach the ranges --internal-cidr opens; no other
-- endpoint may. Set only through admin keys.
ALTER TABLE endpoints ADD COLUMN internal BOOLEAN NOT NULL DEFAULT false;

-- The W3C trace context of the request that published an event, so that its delivery attempts
-- continue that trace (docs/observability.md); empty when there was none.
ALTER TABLE events ADD COLUMN traceparent TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN tracestate TEXT NOT NULL DEFAULT '';

-- The JSON Schema of an event type's data, NULL for none. TEXT rather than JSONB: JSONB reorders
-- an object's keys, and the order of a schema's properties is part of what its author wrote.
ALTER TABLE event_types ADD COLUMN schema TEXT;
