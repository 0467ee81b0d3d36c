-- Broker sources: consumers of a message broker whose messages become a tenant's events
-- (internal/source). settings is sealed with the store's keyring (store.EncodeBrokerSettings), so
-- it is text; mapping is JSON text, schema NULL for none. health_* is what the runners last
-- reported.
CREATE TABLE broker_sources (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         TEXT NOT NULL DEFAULT '',
    type         TEXT NOT NULL,
    settings     TEXT NOT NULL,
    mapping      TEXT NOT NULL DEFAULT '{}',
    schema       TEXT,
    enabled      BOOLEAN NOT NULL DEFAULT true,
    health_state TEXT NOT NULL DEFAULT 'starting',
    health_error TEXT NOT NULL DEFAULT '',
    health_since TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX broker_sources_tenant ON broker_sources (tenant_id, seq);
