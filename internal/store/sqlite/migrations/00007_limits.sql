-- +goose Up
-- A tenant's own bound on its endpoints, set by an admin; 0: the node's default (store.Limits).
ALTER TABLE tenants ADD COLUMN max_endpoints INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE tenants DROP COLUMN max_endpoints;
