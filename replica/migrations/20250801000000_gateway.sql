-- Each key's gateway traffic and the networks it was used from, as last fetched while the key's
-- detail was open online, so the detail shows them offline with their fetch time. Nothing here
-- is secret. Times are microseconds since the Unix epoch (UTC), like the rest of the replica.

-- A key's gateway calls over a period (`24h` or `7d`, ending at `fetched_at`): the server's
-- answer as JSON (the key's total first, then each route group).
CREATE TABLE key_gateway (
    key_id     TEXT NOT NULL,
    period     TEXT NOT NULL CHECK (period IN ('24h', '7d')),
    data       TEXT NOT NULL,
    fetched_at INTEGER NOT NULL,
    PRIMARY KEY (key_id, period)
) STRICT;

-- The networks (IPv4 /24, IPv6 /48) a key's successful calls came from.
CREATE TABLE key_networks (
    key_id     TEXT NOT NULL,
    network    TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    calls      INTEGER NOT NULL,
    PRIMARY KEY (key_id, network)
) STRICT;

CREATE INDEX key_networks_recent ON key_networks (key_id, last_seen);

-- When each key's networks were last fetched (a key with none has no key_networks rows).
CREATE TABLE key_networks_fetched (
    key_id     TEXT PRIMARY KEY NOT NULL,
    fetched_at INTEGER NOT NULL
) STRICT;
