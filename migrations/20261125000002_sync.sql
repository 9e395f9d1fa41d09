-- Sync: every change to a synced record takes a value from one global sequence, so the desktop
-- can pull "everything after N". Writers of an organisation hold its audit head lock before
-- taking a value, so within an organisation sequence order is commit order and a pull never
-- skips a change that commits late.

CREATE SEQUENCE change_seq;

ALTER TABLE api_keys ADD COLUMN seq bigint NOT NULL DEFAULT nextval('change_seq');
CREATE INDEX api_keys_org_seq_idx ON api_keys (org_id, seq);

ALTER TABLE audit_log ADD COLUMN change_seq bigint NOT NULL DEFAULT nextval('change_seq');
CREATE INDEX audit_log_org_change_seq_idx ON audit_log (org_id, change_seq);

-- Pushed operations by their client-made id: a replay returns the first result.
CREATE TABLE sync_ops (
    op_id       uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES orgs (id),
    admin_id    uuid NOT NULL REFERENCES admins (id),
    kind        text NOT NULL,
    result      jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sync_ops_org_created_idx ON sync_ops (org_id, created_at);
