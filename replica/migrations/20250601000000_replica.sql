-- The desktop replica: the server's records as last pulled, plus local edits not yet pushed.
-- Times are microseconds since the Unix epoch (UTC), so they compare and sort as integers.
-- No table ever holds a token; the argon2 hash of an offline-made key sits in its outbox
-- operation only until the server has it (see `outbox`).

CREATE TABLE keys (
    id                TEXT PRIMARY KEY NOT NULL,
    name              TEXT NOT NULL,
    -- Lower-cased name, for case-insensitive search and sort.
    name_fold         TEXT NOT NULL,
    environment       TEXT NOT NULL,
    disabled          INTEGER NOT NULL,
    -- JSON array of scope strings.
    scopes            TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER,
    revoked_at        INTEGER,
    updated_at        INTEGER NOT NULL,
    last_used_at      INTEGER,
    -- The server's change sequence value of `server_data`; 0 while the server has never sent it.
    seq               INTEGER NOT NULL DEFAULT 0,
    -- The key as the UI shows it: the server record with queued local operations replayed on it.
    data              TEXT NOT NULL,
    -- The key as the server last reported it; NULL for a key made offline and not yet pushed.
    server_data       TEXT,
    -- 1 while outbox operations on this key wait to be pushed.
    pending           INTEGER NOT NULL DEFAULT 0,
    -- Why the server refused the last local operation on this key (until dismissed).
    last_error_code   TEXT,
    last_error_detail TEXT
) STRICT;

CREATE INDEX keys_name ON keys (name_fold, id);
CREATE INDEX keys_created ON keys (created_at, id);
CREATE INDEX keys_last_used ON keys (last_used_at, id);
CREATE INDEX keys_expires ON keys (expires_at, id);
CREATE INDEX keys_environment ON keys (environment, name_fold);
CREATE INDEX keys_revoked ON keys (revoked_at);

CREATE TABLE audit (
    id         TEXT PRIMARY KEY NOT NULL,
    -- Position in the organisation's audit chain.
    seq        INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    action     TEXT NOT NULL,
    target_id  TEXT,
    data       TEXT NOT NULL
) STRICT;

CREATE INDEX audit_seq ON audit (seq);
CREATE INDEX audit_target ON audit (target_id, seq);

-- Local operations in the order they were made. A `create_key` or `rotate_key` row carries the
-- new key's argon2id hash (never the token) until the server has applied or refused it; the row
-- is then deleted (and `secure_delete` overwrites its bytes).
CREATE TABLE outbox (
    position   INTEGER PRIMARY KEY AUTOINCREMENT,
    op_id      TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL,
    -- The key the operation acts on (for create_key: the new key).
    key_id     TEXT NOT NULL,
    -- rotate_key: the successor's id.
    new_key_id TEXT,
    -- update_key: the key's seq the edit was based on; NULL when `chained`.
    base_seq   INTEGER,
    -- update_key made while earlier operations on the same key were queued: its base is the
    -- result of those, so `base_seq` is resolved when they have been applied and pulled.
    chained    INTEGER NOT NULL DEFAULT 0,
    data       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);

CREATE INDEX outbox_key ON outbox (key_id, position);
CREATE INDEX outbox_new_key ON outbox (new_key_id, position) WHERE new_key_id IS NOT NULL;

CREATE TABLE sync_state (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    cursor       INTEGER NOT NULL DEFAULT 0,
    -- The organisation of the pulled records (for keys made offline before any pull: NULL).
    org_id       TEXT,
    last_pull_at INTEGER,
    last_push_at INTEGER,
    last_error   TEXT
) STRICT;

INSERT INTO sync_state (id) VALUES (1);
