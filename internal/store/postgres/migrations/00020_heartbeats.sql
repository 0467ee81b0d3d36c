-- Heartbeats: a node renews alive_until every second or so (store.Heartbeater), far more often
-- than its leases. A node whose alive_until has passed is dead to the others: the first to see it
-- marks it fenced, takes its lanes away and voids the leases of their deliveries, so that its
-- endpoints are delivered again within seconds instead of when its leases would have ended. A
-- node finds out that it was fenced at its next heartbeat (it was cut off or paused) and drops
-- what it holds. alive_until is NULL for a node that never sent a heartbeat (a build before
-- this one): such a node is only ever taken over when its leases end.
ALTER TABLE nodes ADD COLUMN alive_until TIMESTAMPTZ;
ALTER TABLE nodes ADD COLUMN fenced BOOLEAN NOT NULL DEFAULT false;
