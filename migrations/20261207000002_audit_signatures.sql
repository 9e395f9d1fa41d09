-- Audit tamper evidence that survives a database writer: each organisation's chain head carries
-- the server's ed25519 signature over `keyward-audit-head-v1\n{org_id}\n{seq}\n{hash}`, made on
-- every append with a key held outside the database (KEYWARD_AUDIT_SIGNING_KEY). Whoever can
-- write this table can truncate the log and reset the head, but cannot sign the result, so
-- `/v1/audit/verify` and `verify-audit` find it. NULL: written without a signing key.
ALTER TABLE audit_heads ADD COLUMN signature text;
