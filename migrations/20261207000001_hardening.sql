-- Hardening: the delivery worker offers each organisation's earliest due deliveries up to its
-- share of the send slots (one index probe per organisation with due rows).
CREATE INDEX webhook_deliveries_org_due_idx ON webhook_deliveries (org_id, next_attempt_at)
    WHERE status = 'pending';
