-- The transactional outbox (docs/outbox.md): applications insert events here with the outbox
-- package, inside their own transactions, and Herald's nodes relay them (RelayOutbox) into events
-- and deliveries, deleting each row in the transaction that publishes it. A row that could not be
-- published stays, with its error, until a later try succeeds. data and resource are JSON text,
-- kept as written, as the rest of Herald keeps documents.
CREATE TABLE outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    type            TEXT NOT NULL,
    data            TEXT NOT NULL,
    source          TEXT NOT NULL DEFAULT '',
    resource        TEXT,
    priority        TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts        INT NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT '',
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX outbox_due ON outbox (next_attempt_at);
