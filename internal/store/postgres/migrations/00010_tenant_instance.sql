-- A tenant's instance id: random, given at every creation, never reused. API keys and portal
-- links are bound to it, so that they die with the tenant even when a tenant of the same id is
-- created later. Tenants and keys that exist already get their instance here.
ALTER TABLE tenants ADD COLUMN uid TEXT NOT NULL DEFAULT '';
UPDATE tenants SET uid = replace(gen_random_uuid()::text, '-', '') WHERE uid = '';
ALTER TABLE api_keys ADD COLUMN tenant_uid TEXT NOT NULL DEFAULT '';
UPDATE api_keys k SET tenant_uid = t.uid FROM tenants t WHERE k.role = 'tenant' AND t.id = k.tenant_id;
