-- Analytics detail: gateway traffic by route group and status with latency histograms,
-- the networks each key is used from (feeds the new-network detector), calls with keys that
-- are malformed or unknown (no organisation known: counted globally), and per-organisation
-- detector thresholds.

-- Gateway calls per key, hour, route group (first path segment, normalised) and status class
-- (2 = 2xx ... 5 = 5xx). `latency` holds the keyward_core::latency histogram buckets
-- (time to the upstream's response headers), summed when rows merge.
CREATE TABLE gateway_usage_hour (
    key_id      uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    org_id      uuid NOT NULL REFERENCES orgs (id),
    hour        timestamptz NOT NULL,
    route       text NOT NULL CHECK (length(route) <= 64),
    status      smallint NOT NULL CHECK (status BETWEEN 1 AND 5),
    calls       bigint NOT NULL CHECK (calls >= 0),
    latency_sum_us bigint NOT NULL CHECK (latency_sum_us >= 0),
    latency     bigint[] NOT NULL,
    PRIMARY KEY (key_id, hour, route, status)
);
CREATE INDEX gateway_usage_hour_org_idx ON gateway_usage_hour (org_id, hour);

-- Networks (IPv4 /24, IPv6 /48) a key's successful calls came from.
CREATE TABLE key_networks (
    key_id      uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    network     text NOT NULL CHECK (length(network) <= 64),
    org_id      uuid NOT NULL REFERENCES orgs (id),
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    calls       bigint NOT NULL CHECK (calls >= 0),
    PRIMARY KEY (key_id, network)
);
CREATE INDEX key_networks_first_seen_idx ON key_networks (key_id, first_seen);

-- Calls whose key could not be attributed to an organisation: missing, malformed (format or
-- checksum) or unknown key id.
CREATE TABLE unrecognized_usage_hour (
    hour    timestamptz NOT NULL,
    reason  text NOT NULL CHECK (reason IN ('missing', 'malformed', 'unknown')),
    count   bigint NOT NULL CHECK (count >= 0),
    PRIMARY KEY (hour, reason)
);

-- An organisation's anomaly detector thresholds (keyward_core::anomaly::Thresholds as JSON);
-- no row means the defaults.
CREATE TABLE alert_settings (
    org_id      uuid PRIMARY KEY REFERENCES orgs (id),
    thresholds  jsonb NOT NULL,
    updated_at  timestamptz NOT NULL,
    updated_by  uuid REFERENCES admins (id)
);
