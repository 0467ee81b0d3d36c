-- +goose Up
-- A tenant's instance id: random, given at every creation, never reused. API keys and portal
-- links are bound to it, so that they die with the tenant even when a tenant of the same id is
-- created later. Tenants and keys that exist already get their instance here.
ALTER TABLE tenants ADD COLUMN uid TEXT NOT NULL DEFAULT '';
UPDATE tenants SET uid = lower(hex(randomblob(16))) WHERE uid = '';
ALTER TABLE api_keys ADD COLUMN tenant_uid TEXT NOT NULL DEFAULT '';
UPDATE api_keys SET tenant_uid = coalesce((SELECT uid FROM tenants WHERE tenants.id = api_keys.tenant_id), '')
    WHERE role = 'tenant';

-- +goose Down
ALTER TABLE api_keys DROP COLUMN tenant_uid;
ALTER TABLE tenants DROP COLUMN uid;
