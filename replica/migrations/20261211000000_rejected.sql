-- Changes the server refused, kept with what they were until the admin retries or discards
-- them (a refusal never loses an edit silently). `op` is the queued operation as JSON with any
-- secret hash removed (a refused create or rotation cannot be retried: its token is gone).
CREATE TABLE rejected (
    op_id       TEXT PRIMARY KEY NOT NULL,
    kind        TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    key_name    TEXT NOT NULL,
    op          TEXT NOT NULL,
    code        TEXT NOT NULL,
    detail      TEXT NOT NULL,
    queued_at   INTEGER NOT NULL,
    rejected_at INTEGER NOT NULL
) STRICT;

CREATE INDEX rejected_at ON rejected (rejected_at, op_id);
