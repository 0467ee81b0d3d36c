-- +goose Up
-- Broker sources: consumers of a message broker whose messages become a tenant's events
-- (internal/source). settings is sealed with the store's keyring (store.EncodeBrokerSettings);
-- mapping and schema are JSON text, schema NULL for none. health_* is what the runners last
-- reported (health_since in microseconds).
CREATE TABLE broker_sources (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name         TEXT NOT NULL DEFAULT '',
    type         TEXT NOT NULL,
    settings     TEXT NOT NULL,
    mapping      TEXT NOT NULL DEFAULT '{}',
    schema       TEXT,
    enabled      INTEGER NOT NULL DEFAULT 1,
    health_state TEXT NOT NULL DEFAULT 'starting',
    health_error TEXT NOT NULL DEFAULT '',
    health_since INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX broker_sources_tenant ON broker_sources (tenant_id, seq);

-- +goose Down
DROP TABLE broker_sources;
