-- Notices sent about a key (expiring in 7 days, in 1 day, unused for 90 days): one per key and
-- kind, so a sweep on any node, any number of times, notifies once.
CREATE TABLE key_notices (
    key_id      uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('expiring_7d', 'expiring_1d', 'unused_90d')),
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (key_id, kind)
);
