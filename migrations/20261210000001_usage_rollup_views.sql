-- The rollups of each family as one relation, so a query names its granularity instead of its
-- table (`WHERE granularity = $1`: PostgreSQL reads only that branch) and stays static SQL that
-- sqlx checks at build time. The outcome's classification (allowed, rate limited, rejected) is
-- written here once.
CREATE VIEW usage_key_rollups AS
SELECT r.granularity, r.key_id, r.org_id, r.ts, r.outcome, r.count,
       CASE WHEN r.outcome = 'valid' THEN r.count ELSE 0 END AS allowed,
       CASE WHEN r.outcome IN ('rate_limited', 'quota_exceeded') THEN r.count ELSE 0 END AS rate_limited,
       CASE WHEN r.outcome NOT IN ('valid', 'rate_limited', 'quota_exceeded') THEN r.count ELSE 0 END AS rejected
  FROM (SELECT 'minute'::text AS granularity, key_id, org_id, minute AS ts, outcome, count FROM usage_minute
        UNION ALL
        SELECT 'hour'::text, key_id, org_id, hour, outcome, count FROM usage_hour
        UNION ALL
        SELECT 'day'::text, key_id, org_id, day, outcome, count FROM usage_day) r;

CREATE VIEW usage_org_rollups AS
SELECT r.granularity, r.org_id, r.ts, r.outcome, r.count,
       CASE WHEN r.outcome = 'valid' THEN r.count ELSE 0 END AS allowed,
       CASE WHEN r.outcome IN ('rate_limited', 'quota_exceeded') THEN r.count ELSE 0 END AS rate_limited,
       CASE WHEN r.outcome NOT IN ('valid', 'rate_limited', 'quota_exceeded') THEN r.count ELSE 0 END AS rejected
  FROM (SELECT 'minute'::text AS granularity, org_id, minute AS ts, outcome, count FROM usage_org_minute
        UNION ALL
        SELECT 'hour'::text, org_id, hour, outcome, count FROM usage_org_hour
        UNION ALL
        SELECT 'day'::text, org_id, day, outcome, count FROM usage_org_day) r;
