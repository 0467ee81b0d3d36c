-- +goose Up
-- Issue 8: event design. An endpoint's delivery options (filter, transformation, signature
-- scheme, batching, ordering) are one JSON document (store.EndpointOptions); an event type's
-- documentation beyond its description (trigger, examples, sunset) another (store.EventTypeDocs).
ALTER TABLE endpoints ADD COLUMN options TEXT NOT NULL DEFAULT '{}';
ALTER TABLE event_types ADD COLUMN docs TEXT NOT NULL DEFAULT '{}';

-- A delivery's priority (0 high, 1 normal, 2 low), from the publish; and, once an attempt of a
-- batch failed, the batch it belongs to (the smallest delivery id in it), so that retries send the
-- same batch again.
ALTER TABLE deliveries ADD COLUMN priority INTEGER NOT NULL DEFAULT 1;
ALTER TABLE deliveries ADD COLUMN batch_id INTEGER;

-- The claim reads due deliveries of one endpoint per priority, oldest first; ordered endpoints
-- read the first pending delivery in publish order; batched ones find a failed batch's members.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (endpoint_id, priority, next_attempt_at) WHERE state = 0;
CREATE INDEX deliveries_pending ON deliveries (endpoint_id, id) WHERE state = 0;
CREATE INDEX deliveries_batch ON deliveries (batch_id) WHERE state = 0 AND batch_id IS NOT NULL;

-- +goose Down
DROP INDEX deliveries_batch;
DROP INDEX deliveries_pending;
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (endpoint_id, next_attempt_at) WHERE state = 0;
ALTER TABLE deliveries DROP COLUMN batch_id;
ALTER TABLE deliveries DROP COLUMN priority;
ALTER TABLE event_types DROP COLUMN docs;
ALTER TABLE endpoints DROP COLUMN options;
