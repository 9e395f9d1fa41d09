//! The flusher's batch write: counts into every rollup, last use, quota units, violations,
//! limit events (and their webhook events), gateway cells, networks and unrecognised calls, in
//! one transaction.

use chrono::NaiveDate;
use keyward_core::KeyId;
use keyward_core::api::webhooks::{LimitEventData, WebhookEvent};
use keyward_core::latency::BUCKETS;
use sqlx::PgPool;

use super::batch::{LimitEvent, UsageBatch};

/// A soft-threshold event as stored (first crossing only).
struct StoredEvent {
    org_id: uuid::Uuid,
    key_id: uuid::Uuid,
    rule: String,
    kind: String,
    window_index: i64,
    used: i64,
    lim: i64,
    created_at: chrono::DateTime<chrono::Utc>,
}

/// A quota counter: (lineage, period, period start).
pub type QuotaKey = (KeyId, &'static str, NaiveDate);

/// One statement each for the counts, last-used, quota units, violations and limit events, in
/// one transaction. Returns the stored quota totals after the write (every node's units).
/// Keeps every network (see [`write_batch_capped`]).
pub async fn write_batch(
    pool: &PgPool,
    batch: &UsageBatch,
) -> Result<Vec<(QuotaKey, i64)>, sqlx::Error> {
    write_batch_capped(pool, batch, None)
        .await
        .map(|w| w.totals)
}

/// What a batch write reports.
#[derive(Debug, Default)]
pub struct Written {
    /// The stored quota totals after the write (every node's units).
    pub totals: Vec<(QuotaKey, i64)>,
    /// Networks deleted because their key went past the cap.
    pub networks_evicted: u64,
}

/// [`write_batch`], keeping at most `max_networks_per_key` networks per key when given: a key
/// that gained a network past it loses its least recently seen ones, in the same transaction.
pub async fn write_batch_capped(
    pool: &PgPool,
    batch: &UsageBatch,
    max_networks_per_key: Option<usize>,
) -> Result<Written, sqlx::Error> {
    let n = batch.counts.len();
    let (mut keys, mut orgs, mut minutes, mut outcomes, mut counts) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for ((key, minute, outcome), (org, count)) in &batch.counts {
        keys.push(key.into_uuid());
        orgs.push(org.into_uuid());
        minutes.push(*minute);
        outcomes.push(*outcome);
        counts.push(*count);
    }
    let mut tx = pool.begin().await?;
    if n > 0 {
        // Every count into the per-key and the organisation rollups of each granularity.
        // One checked statement per rollup table (sqlx checks each table's query).
        macro_rules! add_org_counts {
            ($table:literal, $unit:literal) => {
                sqlx::query!(
                    "INSERT INTO " + $table + " (org_id, " + $unit + ", outcome, count)
                     SELECT o, date_trunc('" + $unit + "', m, 'UTC'), oc, sum(c)::int8
                       FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::int8[]) AS u(o, m, oc, c)
                      GROUP BY 1, 2, 3
                     ON CONFLICT (org_id, " + $unit + ", outcome) DO UPDATE SET count = " + $table + ".count + EXCLUDED.count",
                    &orgs,
                    &minutes,
                    &outcomes as &[&str],
                    &counts,
                )
                .execute(&mut *tx)
                .await?
            };
        }
        macro_rules! add_key_counts {
            ($table:literal, $unit:literal) => {
                sqlx::query!(
                    "INSERT INTO " + $table + " (key_id, org_id, " + $unit + ", outcome, count)
                     SELECT k, o, date_trunc('" + $unit + "', m, 'UTC'), oc, sum(c)::int8
                       FROM UNNEST($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[], $5::int8[]) AS u(k, o, m, oc, c)
                      GROUP BY 1, 2, 3, 4
                     ON CONFLICT (key_id, " + $unit + ", outcome) DO UPDATE SET count = " + $table + ".count + EXCLUDED.count",
                    &keys,
                    &orgs,
                    &minutes,
                    &outcomes as &[&str],
                    &counts,
                )
                .execute(&mut *tx)
                .await?
            };
        }
        add_org_counts!("usage_org_minute", "minute");
        add_org_counts!("usage_org_hour", "hour");
        add_org_counts!("usage_org_day", "day");
        add_key_counts!("usage_minute", "minute");
        add_key_counts!("usage_hour", "hour");
        add_key_counts!("usage_day", "day");
    }
    if !batch.last_used.is_empty() {
        // Last use reaches the desktops' replicas through the change feed, at most once a
        // minute per key (`usage_seq`, see migration 20261211000001): the first use in a new
        // minute takes a sequence value. A flush that commits after a pull that already moved
        // past its value is carried by the key's next minute of use.
        let (mut ids, mut times, mut ips) = (Vec::new(), Vec::new(), Vec::new());
        for (key, (at, ip)) in &batch.last_used {
            ids.push(key.into_uuid());
            times.push(*at);
            ips.push(ip.map(|ip| ip.to_string()));
        }
        sqlx::query!(
            "UPDATE api_keys k SET last_used_at = u.at, last_used_ip = u.ip,
                    usage_seq = CASE
                        WHEN k.last_used_at IS NULL
                          OR date_trunc('minute', k.last_used_at) < date_trunc('minute', u.at)
                        THEN nextval('change_seq') ELSE k.usage_seq END
               FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[]) AS u(id, at, ip)
              WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.at)",
            &ids,
            &times,
            &ips as &[Option<String>],
        )
        .execute(&mut *tx)
        .await?;
    }
    let mut totals = Vec::new();
    if !batch.quota.is_empty() {
        let (mut ids, mut periods, mut starts, mut units) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((lineage, period, start), (_, _, n)) in &batch.quota {
            ids.push(lineage.into_uuid());
            periods.push(*period);
            starts.push(*start);
            units.push(*n);
        }
        let rows = sqlx::query!(
            "INSERT INTO quota_usage (lineage_id, period, period_start, used)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::date[], $4::int8[])
             ON CONFLICT (lineage_id, period, period_start) DO UPDATE SET used = quota_usage.used + EXCLUDED.used
             RETURNING lineage_id, period, period_start, used",
            &ids,
            &periods as &[&str],
            &starts,
            &units,
        )
        .fetch_all(&mut *tx)
        .await?;
        for r in rows {
            let period = if r.period == "day" { "day" } else { "month" };
            totals.push((
                (KeyId::from_uuid(r.lineage_id), period, r.period_start),
                r.used,
            ));
        }
    }
    if !batch.violations.is_empty() {
        let (mut keys, mut orgs, mut rules, mut minutes, mut counts, mut lasts) = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        for ((key, rule, minute), (org, n, last)) in &batch.violations {
            keys.push(key.into_uuid());
            orgs.push(org.into_uuid());
            rules.push(rule.as_str());
            minutes.push(*minute);
            counts.push(*n);
            lasts.push(*last);
        }
        sqlx::query!(
            "INSERT INTO ratelimit_violations (key_id, org_id, rule, minute, count, last_at)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::int8[], $6::timestamptz[])
             ON CONFLICT (key_id, rule, minute) DO UPDATE SET count = ratelimit_violations.count + EXCLUDED.count,
                last_at = greatest(ratelimit_violations.last_at, EXCLUDED.last_at)",
            &keys,
            &orgs,
            &rules as &[&str],
            &minutes,
            &counts,
            &lasts,
        )
        .execute(&mut *tx)
        .await?;
    }
    if !batch.events.is_empty() || !batch.exceeded.is_empty() {
        let e: Vec<&LimitEvent> = batch.events.iter().chain(batch.exceeded.values()).collect();
        // Only the first per key, rule, kind and window (quota period) is stored; each stored
        // one becomes a `limit.soft_threshold` or `limit.quota_exceeded` event in the same
        // transaction.
        let stored = sqlx::query_as!(
            StoredEvent,
            "INSERT INTO limit_events (id, org_id, key_id, rule, kind, window_index, used, lim, created_at)
             SELECT gen_random_uuid(), o, k, r, kd, w, u, l, t
               FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::int8[], $5::int8[], $6::int8[], $7::timestamptz[], $8::text[])
                    AS x(o, k, r, w, u, l, t, kd)
             ON CONFLICT ON CONSTRAINT limit_events_once_key DO NOTHING
             RETURNING org_id, key_id, rule, kind, window_index, used, lim, created_at",
            &e.iter().map(|e| e.org_id.into_uuid()).collect::<Vec<_>>(),
            &e.iter().map(|e| e.key_id.into_uuid()).collect::<Vec<_>>(),
            &e.iter().map(|e| e.rule.as_str()).collect::<Vec<_>>() as &[&str],
            &e.iter().map(|e| e.window_index).collect::<Vec<_>>(),
            &e.iter().map(|e| e.used).collect::<Vec<_>>(),
            &e.iter().map(|e| e.limit).collect::<Vec<_>>(),
            &e.iter().map(|e| e.at).collect::<Vec<_>>(),
            &e.iter().map(|e| e.kind).collect::<Vec<_>>() as &[&str],
        )
        .fetch_all(&mut *tx)
        .await?;
        for ev in stored {
            let data = LimitEventData {
                key_id: KeyId::from_uuid(ev.key_id),
                rule: ev.rule,
                window_index: ev.window_index,
                used: ev.used,
                limit: ev.lim,
                at: ev.created_at,
            };
            let event = match ev.kind.as_str() {
                "quota_exceeded" => WebhookEvent::LimitQuotaExceeded(data),
                _ => WebhookEvent::LimitSoftThreshold(data),
            };
            let org = keyward_core::OrgId::from_uuid(ev.org_id);
            crate::store::outbox::enqueue(&mut tx, org, &event).await?;
        }
    }
    write_gateway(&mut tx, batch).await?;
    let networks_evicted = write_networks(&mut tx, batch, max_networks_per_key).await?;
    if !batch.unrecognized.is_empty() {
        let (mut hours, mut reasons, mut counts) = (Vec::new(), Vec::new(), Vec::new());
        for ((hour, reason), n) in &batch.unrecognized {
            hours.push(*hour);
            reasons.push(*reason);
            counts.push(*n);
        }
        sqlx::query!(
            "INSERT INTO unrecognized_usage_hour (hour, reason, count)
             SELECT * FROM UNNEST($1::timestamptz[], $2::text[], $3::int8[])
             ON CONFLICT (hour, reason) DO UPDATE SET count = unrecognized_usage_hour.count + EXCLUDED.count",
            &hours,
            &reasons as &[&str],
            &counts,
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Written {
        totals,
        networks_evicted,
    })
}

/// Gateway cells, merged into their hour: counts and latency sums add, histograms add bucket
/// by bucket. The histograms travel as one flat array sliced per row.
async fn write_gateway(tx: &mut sqlx::PgConnection, batch: &UsageBatch) -> Result<(), sqlx::Error> {
    if batch.gateway.is_empty() {
        return Ok(());
    }
    let n = batch.gateway.len();
    let (mut keys, mut orgs, mut hours, mut routes, mut statuses, mut calls, mut sums) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut hist = Vec::with_capacity(n * BUCKETS);
    for ((key, hour, route, status), cell) in &batch.gateway {
        keys.push(key.into_uuid());
        orgs.push(cell.org_id.into_uuid());
        hours.push(*hour);
        routes.push(route.as_str());
        statuses.push(*status);
        calls.push(cell.calls);
        sums.push(cell.latency_sum_us);
        hist.extend(cell.latency.to_counts());
    }
    sqlx::query!(
        "INSERT INTO gateway_usage_hour (key_id, org_id, hour, route, status, calls, latency_sum_us, latency)
         SELECT k, o, h, r, s, c, l, ($8::int8[])[(i - 1) * $9 + 1 : i * $9]
           FROM UNNEST($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[], $5::int2[], $6::int8[], $7::int8[])
                WITH ORDINALITY AS u(k, o, h, r, s, c, l, i)
         ON CONFLICT (key_id, hour, route, status) DO UPDATE SET
            calls = gateway_usage_hour.calls + EXCLUDED.calls,
            latency_sum_us = gateway_usage_hour.latency_sum_us + EXCLUDED.latency_sum_us,
            latency = ARRAY(SELECT coalesce(a, 0) + coalesce(b, 0)
                              FROM unnest(gateway_usage_hour.latency, EXCLUDED.latency) WITH ORDINALITY AS t(a, b, i)
                             ORDER BY i)",
        &keys,
        &orgs,
        &hours,
        &routes as &[&str],
        &statuses,
        &calls,
        &sums,
        &hist,
        BUCKETS as i64,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Networks keys were used from: first and last sighting and calls. With a cap, the keys that
/// gained a network lose their least recently seen ones past it; returns how many.
async fn write_networks(
    tx: &mut sqlx::PgConnection,
    batch: &UsageBatch,
    max_per_key: Option<usize>,
) -> Result<u64, sqlx::Error> {
    if batch.networks.is_empty() {
        return Ok(0);
    }
    let (mut keys, mut nets, mut orgs, mut firsts, mut lasts, mut calls) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for ((key, net), cell) in &batch.networks {
        keys.push(key.into_uuid());
        nets.push(net.to_string());
        orgs.push(cell.org_id.into_uuid());
        firsts.push(cell.first);
        lasts.push(cell.last);
        calls.push(cell.calls);
    }
    // The keys that gained a network: `xmax = 0` marks a row inserted, not updated.
    let grown = sqlx::query_scalar!(
        r#"WITH written AS (
            INSERT INTO key_networks (key_id, network, org_id, first_seen, last_seen, calls)
            SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::timestamptz[], $5::timestamptz[], $6::int8[])
            ON CONFLICT (key_id, network) DO UPDATE SET
               first_seen = least(key_networks.first_seen, EXCLUDED.first_seen),
               last_seen = greatest(key_networks.last_seen, EXCLUDED.last_seen),
               calls = key_networks.calls + EXCLUDED.calls
            RETURNING key_id, (xmax = 0) AS inserted)
         SELECT DISTINCT key_id AS "key_id!" FROM written WHERE inserted"#,
        &keys,
        &nets,
        &orgs,
        &firsts,
        &lasts,
        &calls,
    )
    .fetch_all(&mut *tx)
    .await?;
    // Only a key that gained a network can have gone past the cap.
    let Some(max) = max_per_key.filter(|_| !grown.is_empty()) else {
        return Ok(0);
    };
    let evicted = sqlx::query!(
        "DELETE FROM key_networks n
          USING (SELECT key_id, network,
                        row_number() OVER (PARTITION BY key_id
                                           ORDER BY last_seen DESC, first_seen DESC, network DESC) AS rank
                   FROM key_networks WHERE key_id = ANY($1::uuid[])) r
          WHERE n.key_id = r.key_id AND n.network = r.network AND r.rank > $2",
        &grown,
        i64::try_from(max.max(1)).unwrap_or(i64::MAX),
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok(evicted)
}
