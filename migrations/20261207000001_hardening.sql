-- Hardening: the delivery worker offers each organisation's earliest due deliveries up to its
-- share of the send slots (one index probe per organisation with due rows).
CREATE INDEX webhook_deliveries_org_due_idx ON webhook_deliveries (org_id, next_attempt_at)
    WHERE status = 'pending';

-- Failed sign-ins per window, shared by every node (sync-server/src/login_throttle.rs). The
-- subject is a SHA-256 digest of what is counted (an email and a client network, or a network):
-- no email or address is stored.
CREATE TABLE login_attempts (
    subject       bytea PRIMARY KEY CHECK (length(subject) = 32),
    window_start  timestamptz NOT NULL,
    attempts      integer NOT NULL CHECK (attempts >= 0)
);
