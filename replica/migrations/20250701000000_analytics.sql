-- Analytics pulled from the server after sync rounds, so the dashboard, each key's usage and the
-- alerts read from the replica and work offline on the last synced data. Nothing here is secret.
-- Times are microseconds since the Unix epoch (UTC), like the rest of the replica.

-- The organisation's calls per UTC hour, by outcome class (the last 30 days).
CREATE TABLE usage_org (
    bucket       INTEGER PRIMARY KEY NOT NULL,
    allowed      INTEGER NOT NULL,
    rate_limited INTEGER NOT NULL,
    rejected     INTEGER NOT NULL
) STRICT;

-- Each key's calls per UTC hour (the last 30 days; the busiest keys, plus keys whose detail was
-- opened while online).
CREATE TABLE usage_key (
    key_id       TEXT NOT NULL,
    bucket       INTEGER NOT NULL,
    allowed      INTEGER NOT NULL,
    rate_limited INTEGER NOT NULL,
    rejected     INTEGER NOT NULL,
    PRIMARY KEY (key_id, bucket)
) STRICT;

-- When each key's hourly usage was last fetched (a key with no calls has no usage_key rows).
CREATE TABLE usage_key_fetched (
    key_id     TEXT PRIMARY KEY NOT NULL,
    fetched_at INTEGER NOT NULL
) STRICT;

-- The server's top keys per dashboard period (`24h`, `7d`, `30d`), by volume and by refusals.
CREATE TABLE usage_top (
    period       TEXT NOT NULL,
    ranking      TEXT NOT NULL CHECK (ranking IN ('volume', 'rejections')),
    rank         INTEGER NOT NULL,
    key_id       TEXT NOT NULL,
    name         TEXT NOT NULL,
    allowed      INTEGER NOT NULL,
    rate_limited INTEGER NOT NULL,
    rejected     INTEGER NOT NULL,
    PRIMARY KEY (period, ranking, rank)
) STRICT;

-- Alerts as the server last listed them (open, acknowledged and recently resolved).
-- `notified_at`: when the desktop showed a notification for it (NULL: not yet).
CREATE TABLE alerts (
    id          TEXT PRIMARY KEY NOT NULL,
    key_id      TEXT NOT NULL,
    status      TEXT NOT NULL,
    opened_at   INTEGER NOT NULL,
    data        TEXT NOT NULL,
    notified_at INTEGER
) STRICT;

CREATE INDEX alerts_status ON alerts (status, opened_at);

-- Each key's standing against its limits, as last fetched.
CREATE TABLE key_limits (
    key_id     TEXT PRIMARY KEY NOT NULL,
    data       TEXT NOT NULL,
    fetched_at INTEGER NOT NULL
) STRICT;

-- Expiry and limit notices derived from synced data, kept so each is notified once.
CREATE TABLE notices (
    id          TEXT PRIMARY KEY NOT NULL,
    kind        TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    title       TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    notified_at INTEGER
) STRICT;

-- When analytics were last pulled (NULL: never).
ALTER TABLE sync_state ADD COLUMN analytics_at INTEGER;
