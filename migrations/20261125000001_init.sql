-- Keyward schema, first version. Applied migrations are never edited: add a new file instead.

CREATE TABLE orgs (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CONSTRAINT orgs_name_key UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE admins (
    id             uuid PRIMARY KEY,
    org_id         uuid NOT NULL REFERENCES orgs (id),
    email          text NOT NULL CONSTRAINT admins_email_key UNIQUE,
    -- argon2id PHC string; the password itself is never stored.
    password_hash  text NOT NULL,
    role           text NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX admins_org_id_idx ON admins (org_id);

CREATE TABLE sessions (
    -- SHA-256 of the session token: the token itself is never stored.
    token_hash  bytea PRIMARY KEY,
    admin_id    uuid NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    client_ip   text
);
CREATE INDEX sessions_admin_id_idx ON sessions (admin_id);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

CREATE TABLE api_keys (
    id             uuid PRIMARY KEY,
    org_id         uuid NOT NULL REFERENCES orgs (id),
    name           text NOT NULL,
    description    text,
    environment    text NOT NULL CHECK (environment IN ('live', 'test')),
    -- argon2id PHC string of the whole token; never the token.
    secret_hash    text NOT NULL,
    scopes         text[] NOT NULL DEFAULT '{}',
    allowed_ips    text[] NOT NULL DEFAULT '{}',
    metadata       jsonb NOT NULL DEFAULT '{}'::jsonb,
    disabled       boolean NOT NULL DEFAULT false,
    expires_at     timestamptz,
    -- When revocation takes effect: in the future during a grace period.
    revoked_at     timestamptz,
    revoke_reason  text,
    -- Deferred: a rotated pair points both ways, so either row may be written first.
    rotated_from   uuid REFERENCES api_keys (id) DEFERRABLE INITIALLY DEFERRED,
    replaced_by    uuid REFERENCES api_keys (id) DEFERRABLE INITIALLY DEFERRED,
    lineage_id     uuid NOT NULL,
    created_at     timestamptz NOT NULL,
    created_by     uuid REFERENCES admins (id),
    updated_at     timestamptz NOT NULL,
    last_used_at   timestamptz,
    last_used_ip   text
);
CREATE INDEX api_keys_org_id_idx ON api_keys (org_id, id DESC);
CREATE INDEX api_keys_lineage_id_idx ON api_keys (lineage_id);

-- Append-only, hash-chained per organisation. Rows are never updated or deleted; the trigger
-- below refuses it, and `verify-audit` detects it if someone gets past the trigger.
CREATE TABLE audit_log (
    id           uuid PRIMARY KEY,
    org_id       uuid NOT NULL REFERENCES orgs (id),
    seq          bigint NOT NULL,
    actor_id     uuid,
    actor_email  text,
    action       text NOT NULL,
    target_type  text NOT NULL,
    target_id    text,
    client_ip    text,
    request_id   text,
    before       jsonb,
    after        jsonb,
    created_at   timestamptz NOT NULL,
    prev_hash    text NOT NULL,
    hash         text NOT NULL,
    CONSTRAINT audit_log_org_seq_key UNIQUE (org_id, seq)
);

-- The tip of each organisation's chain; locked FOR UPDATE while appending.
CREATE TABLE audit_heads (
    org_id  uuid PRIMARY KEY REFERENCES orgs (id),
    seq     bigint NOT NULL,
    hash    text NOT NULL
);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- Verification outcomes per key and minute, written in batches by the usage flusher.
CREATE TABLE usage_minute (
    key_id   uuid NOT NULL,
    org_id   uuid NOT NULL,
    minute   timestamptz NOT NULL,
    outcome  text NOT NULL,
    count    bigint NOT NULL,
    PRIMARY KEY (key_id, minute, outcome)
);
CREATE INDEX usage_minute_org_minute_idx ON usage_minute (org_id, minute);
