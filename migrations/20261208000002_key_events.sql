-- Events that were documented and never sent (issue 15): a key's expiry and a delayed
-- revocation are announced once per key (key_notices), a used-up quota once per key, quota and
-- period (limit_events). The due sweep finds recent expiries and revocations by index.
ALTER TABLE key_notices DROP CONSTRAINT key_notices_kind_check;
ALTER TABLE key_notices ADD CONSTRAINT key_notices_kind_check
    CHECK (kind IN ('expiring_7d', 'expiring_1d', 'unused_90d', 'expired', 'revoked'));

ALTER TABLE limit_events DROP CONSTRAINT limit_events_kind_check;
ALTER TABLE limit_events ADD CONSTRAINT limit_events_kind_check
    CHECK (kind IN ('soft_threshold', 'quota_exceeded'));

CREATE INDEX api_keys_expires_at_idx ON api_keys (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX api_keys_revoked_at_idx ON api_keys (revoked_at) WHERE revoked_at IS NOT NULL;
