-- Usage rollups: the flusher adds each batch to the minute, hour and day tables at once, so a
-- long period reads the coarse table and never scans minutes. Retention per granularity is
-- enforced by a background job (KEYWARD_USAGE_*_RETENTION_*).

CREATE TABLE usage_hour (
    key_id   uuid NOT NULL,
    org_id   uuid NOT NULL,
    hour     timestamptz NOT NULL,
    outcome  text NOT NULL,
    count    bigint NOT NULL,
    PRIMARY KEY (key_id, hour, outcome)
);
CREATE INDEX usage_hour_org_hour_idx ON usage_hour (org_id, hour);

CREATE TABLE usage_day (
    key_id   uuid NOT NULL,
    org_id   uuid NOT NULL,
    day      timestamptz NOT NULL,
    outcome  text NOT NULL,
    count    bigint NOT NULL,
    PRIMARY KEY (key_id, day, outcome)
);
CREATE INDEX usage_day_org_day_idx ON usage_day (org_id, day);

-- The same per organisation, without the key: the organisation's series read a few thousand
-- rows however many keys it has.
CREATE TABLE usage_org_minute (
    org_id   uuid NOT NULL,
    minute   timestamptz NOT NULL,
    outcome  text NOT NULL,
    count    bigint NOT NULL,
    PRIMARY KEY (org_id, minute, outcome)
);
CREATE TABLE usage_org_hour (
    org_id   uuid NOT NULL,
    hour     timestamptz NOT NULL,
    outcome  text NOT NULL,
    count    bigint NOT NULL,
    PRIMARY KEY (org_id, hour, outcome)
);
CREATE TABLE usage_org_day (
    org_id   uuid NOT NULL,
    day      timestamptz NOT NULL,
    outcome  text NOT NULL,
    count    bigint NOT NULL,
    PRIMARY KEY (org_id, day, outcome)
);

-- What was counted before this migration.
INSERT INTO usage_hour (key_id, org_id, hour, outcome, count)
SELECT key_id, org_id, date_trunc('hour', minute, 'UTC'), outcome, sum(count)
  FROM usage_minute GROUP BY 1, 2, 3, 4;
INSERT INTO usage_day (key_id, org_id, day, outcome, count)
SELECT key_id, org_id, date_trunc('day', minute, 'UTC'), outcome, sum(count)
  FROM usage_minute GROUP BY 1, 2, 3, 4;

INSERT INTO usage_org_minute (org_id, minute, outcome, count)
SELECT org_id, minute, outcome, sum(count) FROM usage_minute GROUP BY 1, 2, 3;
INSERT INTO usage_org_hour (org_id, hour, outcome, count)
SELECT org_id, hour, outcome, sum(count) FROM usage_hour GROUP BY 1, 2, 3;
INSERT INTO usage_org_day (org_id, day, outcome, count)
SELECT org_id, day, outcome, sum(count) FROM usage_day GROUP BY 1, 2, 3;

-- Minute-range scans for retention.
CREATE INDEX usage_minute_minute_idx ON usage_minute (minute);
CREATE INDEX usage_hour_hour_idx ON usage_hour (hour);
CREATE INDEX usage_day_day_idx ON usage_day (day);
CREATE INDEX usage_org_minute_minute_idx ON usage_org_minute (minute);
CREATE INDEX usage_org_hour_hour_idx ON usage_org_hour (hour);
CREATE INDEX usage_org_day_day_idx ON usage_org_day (day);
