-- Endpoint lanes: on PostgreSQL several nodes share the work, but an endpoint's max_concurrency and
-- rate_limit must hold across the cluster. A node delivers to an endpoint only while it holds the
-- endpoint's lane: it takes a free (or expired) lane when it claims, renews it with every claim
-- until the end of the deliveries' leases, and gives it up when it stops. A node that dies loses
-- its lanes when its leases expire, and the others take them over.
CREATE TABLE lanes (
    endpoint_id TEXT PRIMARY KEY,
    node_id     TEXT NOT NULL,
    until       TIMESTAMPTZ NOT NULL
);
