-- Alerts from the per-key anomaly detectors, and the detectors' state.

CREATE TABLE alerts (
    id             uuid PRIMARY KEY,
    org_id         uuid NOT NULL REFERENCES orgs (id),
    key_id         uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    kind           text NOT NULL,
    status         text NOT NULL CHECK (status IN ('open', 'acked', 'resolved')),
    observed       double precision NOT NULL,
    expected       double precision NOT NULL,
    window_start   timestamptz NOT NULL,
    window_secs    integer NOT NULL,
    detail         text NOT NULL,
    opened_at      timestamptz NOT NULL,
    last_seen_at   timestamptz NOT NULL,
    acked_at       timestamptz,
    acked_by       uuid REFERENCES admins (id),
    resolved_at    timestamptz
);
-- One live alert per key and kind: a condition that persists updates it instead of piling up.
CREATE UNIQUE INDEX alerts_live_key ON alerts (key_id, kind) WHERE status <> 'resolved';
CREATE INDEX alerts_org_status_idx ON alerts (org_id, status, opened_at DESC);

-- The detectors of a key (keyward_core::anomaly::KeyMonitor as JSON) and the end of the last
-- window fed to them.
CREATE TABLE key_monitors (
    key_id     uuid PRIMARY KEY REFERENCES api_keys (id) ON DELETE CASCADE,
    state      jsonb NOT NULL,
    fed_until  timestamptz NOT NULL
);
