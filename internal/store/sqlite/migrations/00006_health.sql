-- +goose Up
-- One row that the readiness check (Store.Ping) rewrites: a write that cannot be made (a full disk,
-- a file system gone read-only) makes the node not ready, while empty transactions would succeed.
CREATE TABLE health (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at INTEGER NOT NULL
);

-- +goose Down
DROP TABLE health;
