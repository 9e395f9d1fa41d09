-- The organisation's recent events (GET /v1/events: key created, revoked, rotated, expiring,
-- expired and unused, limit thresholds and quotas, alerts), pulled with the analytics after sync
-- rounds so the Alerts screen lists them offline. Events never change: upserted by id, the
-- newest 500 kept. `data` is the event as the server answered it (JSON).
CREATE TABLE events (
    id         TEXT PRIMARY KEY NOT NULL,
    type       TEXT NOT NULL,
    key_id     TEXT,
    created_at INTEGER NOT NULL,
    data       TEXT NOT NULL
) STRICT;

CREATE INDEX events_created ON events (created_at, id);
