-- Webhooks: endpoints per organisation, a transactional outbox of deliveries (one row per event
-- and endpoint, written in the transaction of the change that caused the event) and a log of
-- every delivery attempt. Deliveries follow the Standard Webhooks specification.

-- The key that encrypts signing secrets when KEYWARD_WEBHOOK_KEY is not set: 32 random bytes
-- made by the first node that needs one. It protects a database dump only as far as the dump
-- leaves this table out; production sets KEYWARD_WEBHOOK_KEY, which never touches the database.
CREATE TABLE webhook_keys (
    id          smallint PRIMARY KEY CHECK (id = 1),
    key         bytea NOT NULL CHECK (length(key) = 32),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_endpoints (
    id                 uuid PRIMARY KEY,
    org_id             uuid NOT NULL REFERENCES orgs (id),
    url                text NOT NULL CHECK (length(url) <= 2048),
    -- Patterns: '*', an event type ('key.expiring') or a category ('alert.*').
    events             text[] NOT NULL,
    enabled            boolean NOT NULL DEFAULT true,
    -- The signing secret (its 32 raw bytes), ChaCha20-Poly1305 under the key `secret_key`
    -- names ('config': KEYWARD_WEBHOOK_KEY, 'database': webhook_keys), with the endpoint id as
    -- associated data. Never stored in plaintext, never returned after creation.
    secret_key         text NOT NULL CHECK (secret_key IN ('config', 'database')),
    secret_nonce       bytea NOT NULL CHECK (length(secret_nonce) = 12),
    secret_ciphertext  bytea NOT NULL,
    created_at         timestamptz NOT NULL
);
CREATE INDEX webhook_endpoints_org_idx ON webhook_endpoints (org_id, created_at);
CREATE INDEX webhook_endpoints_events_idx ON webhook_endpoints USING gin (events);

CREATE TABLE webhook_deliveries (
    -- uuidv7: newest first is id order.
    id               uuid PRIMARY KEY,
    endpoint_id      uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    org_id           uuid NOT NULL REFERENCES orgs (id),
    -- The `webhook-id` header: one per event, the same on every attempt.
    message_id       text NOT NULL,
    event_type       text NOT NULL,
    -- The exact bytes sent, {"type", "timestamp", "data"}: the same on every attempt.
    body             text NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- Due time while pending (a worker's claim pushes it out by a lease); NULL once settled.
    next_attempt_at  timestamptz,
    last_attempt_at  timestamptz,
    last_status      integer,
    last_error       text,
    created_at       timestamptz NOT NULL,
    CONSTRAINT webhook_deliveries_message_endpoint_key UNIQUE (message_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id DESC);
CREATE INDEX webhook_deliveries_settled_idx ON webhook_deliveries (created_at)
    WHERE status <> 'pending';

CREATE TABLE webhook_attempts (
    delivery_id  uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt      integer NOT NULL CHECK (attempt >= 1),
    at           timestamptz NOT NULL,
    http_status  integer,
    -- Written by the server (never the endpoint's answer body, never a secret).
    error        text,
    duration_ms  bigint NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
