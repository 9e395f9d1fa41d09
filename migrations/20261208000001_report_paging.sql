-- Usage reports are read page by page, keyset-ordered by (day, key_id), so that no pooled
-- connection is held while a client reads the response. This index serves each page straight
-- from its cursor (an ordered index scan stopped at the page's end, no sort of a whole day), and
-- everything the (org_id, day) index served before.
CREATE INDEX usage_day_org_day_key_idx ON usage_day (org_id, day, key_id);
DROP INDEX usage_day_org_day_idx;
