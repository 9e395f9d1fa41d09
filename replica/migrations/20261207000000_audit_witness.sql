-- The desktop as a witness of the server's audit chain. Whoever can write the server's database
-- can truncate the audit log and reset its head; the head is signed with a key the database does
-- not hold, but an older signed head can still be put back. The replica keeps, per organisation,
-- the highest chain head it has seen (with the server's signature over it), and the server's
-- audit public key as first seen (trust on first use); a later head that is shorter, forked or
-- not signed by that key raises an alarm and never replaces it.
-- Times are microseconds since the Unix epoch (UTC), like the rest of the replica.

CREATE TABLE audit_witness (
    org_id     TEXT PRIMARY KEY NOT NULL,
    seq        INTEGER NOT NULL,
    hash       TEXT NOT NULL,
    -- The server's base64 ed25519 signature over the head (NULL: the server does not sign).
    signature  TEXT,
    -- The server's audit public key (base64), pinned at the first signed head seen.
    public_key TEXT,
    seen_at    INTEGER NOT NULL
) STRICT;

-- What the witness found wrong; each raised once (its id is stable) and notified once.
CREATE TABLE audit_alarms (
    id             TEXT PRIMARY KEY NOT NULL,
    org_id         TEXT NOT NULL,
    -- `audit.chain_regressed`, `audit.chain_forked`, `audit.signature_invalid`,
    -- `audit.key_changed`.
    kind           TEXT NOT NULL,
    detail         TEXT NOT NULL,
    -- The head the witness held (and kept) and the one the server reported.
    witnessed_seq  INTEGER,
    witnessed_hash TEXT,
    reported_seq   INTEGER NOT NULL,
    reported_hash  TEXT NOT NULL,
    raised_at      INTEGER NOT NULL,
    notified_at    INTEGER
) STRICT;

CREATE INDEX audit_alarms_raised ON audit_alarms (raised_at);
