-- Nodes announce themselves, so that each can take its fair share of the endpoints' lanes: a node
-- renews its row with its leases (every third of the lease margin) and deletes it when it stops;
-- rows whose time has passed are nodes that died.
CREATE TABLE nodes (
    node_id TEXT PRIMARY KEY,
    until   TIMESTAMPTZ NOT NULL
);
CREATE INDEX lanes_node ON lanes (node_id);
