-- The organisation's event log (issue 15): every event the server emits (key.created,
-- key.revoked, key.expired, limit.quota_exceeded, alert.opened...) is recorded here in the
-- transaction of the change, whether or not a webhook subscribes to it, and read back by
-- GET /v1/events (newest first) and the desktop's Alerts screen. `webhook.test` is not recorded.
-- Pruned with webhook deliveries (KEYWARD_WEBHOOK_RETENTION_DAYS, default 30).
CREATE TABLE events (
    id         UUID PRIMARY KEY,
    org_id     UUID NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    type       TEXT NOT NULL,
    key_id     UUID,
    data       JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX events_org_created_idx ON events (org_id, created_at DESC, id DESC);
CREATE INDEX events_org_key_created_idx ON events (org_id, key_id, created_at DESC, id DESC)
    WHERE key_id IS NOT NULL;
CREATE INDEX events_created_idx ON events (created_at);
