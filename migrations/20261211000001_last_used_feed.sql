-- Last use reaches the desktop's replica. The usage flusher writes `last_used_at` without an
-- admin edit; when a key's last use moves into a new minute it takes a change sequence value
-- into `usage_seq`, and a pull returns every key whose `seq` or `usage_seq` is past the cursor,
-- positioned at the greater. `seq` stays the value of the last edit, which an offline edit's
-- `base_seq` is compared with, so use never makes an edit conflict.
ALTER TABLE api_keys ADD COLUMN usage_seq bigint NOT NULL DEFAULT 0;
CREATE INDEX api_keys_org_usage_seq_idx ON api_keys (org_id, usage_seq);
