-- Rate limits and quotas: tiers (named rule sets keys inherit), per-key overrides, durable
-- quota counters, violation counts and soft-threshold events.

CREATE TABLE tiers (
    id              uuid PRIMARY KEY,
    org_id          uuid NOT NULL REFERENCES orgs (id),
    name            text NOT NULL,
    -- [{"name", "algorithm", "limit", "window_seconds", "burst"?}], validated by the server.
    rate_limits     jsonb NOT NULL DEFAULT '[]'::jsonb,
    -- {"daily"?, "monthly"?}
    quota           jsonb,
    soft_threshold  double precision NOT NULL DEFAULT 0.8
                    CHECK (soft_threshold > 0 AND soft_threshold <= 1),
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    seq             bigint NOT NULL DEFAULT nextval('change_seq'),
    CONSTRAINT tiers_org_name_key UNIQUE (org_id, name)
);
CREATE INDEX tiers_org_seq_idx ON tiers (org_id, seq);

-- A key's own rules and quota replace its tier's; NULL means "the tier's".
ALTER TABLE api_keys
    ADD COLUMN tier         text,
    ADD COLUMN rate_limits  jsonb,
    ADD COLUMN quota        jsonb,
    ADD CONSTRAINT api_keys_tier_fkey FOREIGN KEY (org_id, tier)
        REFERENCES tiers (org_id, name) ON DELETE RESTRICT;
CREATE INDEX api_keys_tier_idx ON api_keys (org_id, tier) WHERE tier IS NOT NULL;

-- Units consumed per key lineage (rotation does not reset a quota) and UTC day or month. Each
-- node adds what it counted (used = used + delta), so the sum is right however many nodes serve
-- a key.
CREATE TABLE quota_usage (
    lineage_id    uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    period        text NOT NULL CHECK (period IN ('day', 'month')),
    period_start  date NOT NULL,
    used          bigint NOT NULL CHECK (used >= 0),
    PRIMARY KEY (lineage_id, period, period_start)
);

-- Refusals per key, rule and minute.
CREATE TABLE ratelimit_violations (
    key_id   uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    org_id   uuid NOT NULL REFERENCES orgs (id),
    rule     text NOT NULL,
    minute   timestamptz NOT NULL,
    count    bigint NOT NULL,
    last_at  timestamptz NOT NULL,
    PRIMARY KEY (key_id, rule, minute)
);
CREATE INDEX ratelimit_violations_org_minute_idx ON ratelimit_violations (org_id, minute);

-- The first crossing of a soft threshold per key, rule and window (deduplicated across nodes);
-- the analytics issue turns these into notifications.
CREATE TABLE limit_events (
    id            uuid PRIMARY KEY,
    org_id        uuid NOT NULL REFERENCES orgs (id),
    key_id        uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    rule          text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('soft_threshold')),
    window_index  bigint NOT NULL,
    used          bigint NOT NULL,
    lim           bigint NOT NULL,
    created_at    timestamptz NOT NULL,
    CONSTRAINT limit_events_once_key UNIQUE (key_id, rule, kind, window_index)
);
CREATE INDEX limit_events_org_created_idx ON limit_events (org_id, created_at);
