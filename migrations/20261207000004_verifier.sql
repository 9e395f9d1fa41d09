-- The fast verifier (keyward_core::verifier): an 8-byte key id and HMAC-SHA-256 of the token
-- under KEYWARD_VERIFIER_KEY, held outside the database. Written after the first successful
-- argon2 check (or when the server mints the token); never synced, never returned.
ALTER TABLE api_keys ADD COLUMN verifier bytea CHECK (verifier IS NULL OR length(verifier) = 40);
