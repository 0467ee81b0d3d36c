-- +goose Up
-- A batching endpoint's claim first looks for failed batches that are due again: their members
-- are few, but without this index the claim would read every due delivery of the endpoint (a
-- backlog) to find them.
CREATE INDEX deliveries_batch_due ON deliveries (endpoint_id, next_attempt_at) WHERE state = 0 AND batch_id IS NOT NULL;

-- +goose Down
DROP INDEX deliveries_batch_due;
