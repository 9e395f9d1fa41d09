//! Synced analytics: the organisation's hourly usage, each key's hourly usage, the top keys per
//! dashboard period, alerts and limit standings, stored after a sync so that the dashboard, a
//! key's usage and the alerts read from the replica and work offline on the last synced data.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use keyward_core::KeyId;
use keyward_core::api::{
    Alert, AlertStatus, ApiKey, KeyLimits, KeyUsageTotal, OrgEvent, UsagePoint,
};
use sqlx::{Row, SqliteConnection};

use crate::error::ReplicaError;
use crate::notify::{self, Notice};
use crate::replica::Replica;
use crate::store::{from_micros, micros};

/// How far back usage is kept.
pub const USAGE_RETENTION: Duration = Duration::days(30);

/// How many of the organisation's events the replica keeps (the newest).
pub const EVENTS_KEPT: u32 = 500;

/// The top keys of one dashboard period as the server ranked them.
#[derive(Debug, Clone, PartialEq)]
pub struct TopKeys {
    /// `24h`, `7d` or `30d`.
    pub period: String,
    pub by_volume: Vec<KeyUsageTotal>,
    pub by_rejections: Vec<KeyUsageTotal>,
}

/// One key's hourly series.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyHourly {
    pub key_id: KeyId,
    pub points: Vec<UsagePoint>,
}

/// Everything one analytics pull brought, stored in one transaction by
/// [`Replica::store_analytics`].
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyticsSnapshot {
    /// When it was fetched: the end of every window it covers.
    pub at: DateTime<Utc>,
    /// The organisation's calls per hour over [`USAGE_RETENTION`] before `at`.
    pub org_hourly: Vec<UsagePoint>,
    /// The busiest keys' hourly series over the same period (these replace what the replica
    /// had for those keys).
    pub key_hourly: Vec<KeyHourly>,
    pub top: Vec<TopKeys>,
    /// The server's alert list (open, acknowledged, recently resolved). Alerts missing from it
    /// are dropped, except open ones the server may have cut off.
    pub alerts: Vec<Alert>,
    /// Limit standings fetched with it.
    pub limits: Vec<KeyLimits>,
    /// Events of the organisation the replica did not have yet (any order). They are added to
    /// the stored ones (by id), of which the newest [`EVENTS_KEPT`] are kept.
    pub events: Vec<OrgEvent>,
}

/// A stored alert and whether the desktop notified it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAlert {
    pub alert: Alert,
    pub notified_at: Option<DateTime<Utc>>,
}

async fn put_points(
    conn: &mut SqliteConnection,
    key: Option<KeyId>,
    points: &[UsagePoint],
) -> Result<(), ReplicaError> {
    for p in points {
        let q = match key {
            None => sqlx::query(
                "INSERT OR REPLACE INTO usage_org (bucket, allowed, rate_limited, rejected)
                 VALUES (?, ?, ?, ?)",
            ),
            Some(k) => sqlx::query(
                "INSERT OR REPLACE INTO usage_key (key_id, bucket, allowed, rate_limited, rejected)
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(k.to_string()),
        };
        q.bind(micros(p.ts))
            .bind(p.allowed)
            .bind(p.rate_limited)
            .bind(p.rejected)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

async fn put_alert(
    conn: &mut SqliteConnection,
    a: &Alert,
    notified_at: Option<DateTime<Utc>>,
) -> Result<(), ReplicaError> {
    sqlx::query(
        "INSERT INTO alerts (id, key_id, status, opened_at, data, notified_at)
         VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET key_id = excluded.key_id, status = excluded.status,
            opened_at = excluded.opened_at, data = excluded.data,
            notified_at = COALESCE(alerts.notified_at, excluded.notified_at)",
    )
    .bind(a.id.to_string())
    .bind(a.key_id.to_string())
    .bind(a.status.as_str())
    .bind(micros(a.opened_at))
    .bind(serde_json::to_string(a)?)
    .bind(notified_at.map(micros))
    .execute(conn)
    .await?;
    Ok(())
}

async fn put_event(conn: &mut SqliteConnection, e: &OrgEvent) -> Result<(), ReplicaError> {
    sqlx::query(
        "INSERT INTO events (id, type, key_id, created_at, data) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET type = excluded.type, key_id = excluded.key_id,
            created_at = excluded.created_at, data = excluded.data",
    )
    .bind(e.id.to_string())
    .bind(e.event.event_type())
    .bind(e.key_id.map(|k| k.to_string()))
    .bind(micros(e.created_at))
    .bind(serde_json::to_string(e)?)
    .execute(conn)
    .await?;
    Ok(())
}

async fn put_limits(
    conn: &mut SqliteConnection,
    l: &KeyLimits,
    at: DateTime<Utc>,
) -> Result<(), ReplicaError> {
    sqlx::query("INSERT OR REPLACE INTO key_limits (key_id, data, fetched_at) VALUES (?, ?, ?)")
        .bind(l.key_id.to_string())
        .bind(serde_json::to_string(l)?)
        .bind(micros(at))
        .execute(conn)
        .await?;
    Ok(())
}

fn point(row: &sqlx::sqlite::SqliteRow) -> Result<UsagePoint, ReplicaError> {
    Ok(UsagePoint {
        ts: from_micros(row.try_get("bucket")?),
        allowed: row.try_get("allowed")?,
        rate_limited: row.try_get("rate_limited")?,
        rejected: row.try_get("rejected")?,
    })
}

const DAY_MICROS: i64 = 86_400_000_000;

impl Replica {
    /// Stores an analytics pull in one transaction: usage older than [`USAGE_RETENTION`] goes,
    /// the organisation's and the listed keys' series in the covered period are replaced, the
    /// top lists and alerts replaced (an alert keeps its `notified_at`), standings updated.
    pub async fn store_analytics(&self, s: &AnalyticsSnapshot) -> Result<(), ReplicaError> {
        let from = micros(s.at - USAGE_RETENTION);
        let mut tx = self.write().await?;
        // The pull covers the whole retained period: it replaces the organisation's series.
        sqlx::query("DELETE FROM usage_org")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM usage_key WHERE bucket < ?")
            .bind(from)
            .execute(&mut *tx)
            .await?;
        put_points(&mut tx, None, &s.org_hourly).await?;
        for k in &s.key_hourly {
            let id = k.key_id.to_string();
            sqlx::query("DELETE FROM usage_key WHERE key_id = ?")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            put_points(&mut tx, Some(k.key_id), &k.points).await?;
        }
        // Every key the pull covered (a key absent from the busiest list has no calls there
        // only if the list was not full; its older rows stay until retention drops them).
        for k in &s.key_hourly {
            sqlx::query(
                "INSERT OR REPLACE INTO usage_key_fetched (key_id, fetched_at) VALUES (?, ?)",
            )
            .bind(k.key_id.to_string())
            .bind(micros(s.at))
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM usage_top")
            .execute(&mut *tx)
            .await?;
        for t in &s.top {
            for (ranking, list) in [("volume", &t.by_volume), ("rejections", &t.by_rejections)] {
                for (rank, k) in list.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO usage_top (period, ranking, rank, key_id, name, allowed,
                            rate_limited, rejected) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    )
                    .bind(&t.period)
                    .bind(ranking)
                    .bind(rank as i64)
                    .bind(k.key_id.to_string())
                    .bind(&k.name)
                    .bind(k.totals.allowed)
                    .bind(k.totals.rate_limited)
                    .bind(k.totals.rejected)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        let listed: HashSet<String> = s.alerts.iter().map(|a| a.id.to_string()).collect();
        let stored: Vec<(String, String)> = sqlx::query_as("SELECT id, status FROM alerts")
            .fetch_all(&mut *tx)
            .await?;
        for (id, status) in stored {
            // The list holds at most 500 alerts: an open one beyond that stays.
            let cut_off_open = status == "open" && s.alerts.len() >= 500;
            if !listed.contains(&id) && !cut_off_open {
                sqlx::query("DELETE FROM alerts WHERE id = ?")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        for a in &s.alerts {
            put_alert(&mut tx, a, None).await?;
        }
        for l in &s.limits {
            put_limits(&mut tx, l, s.at).await?;
        }
        for e in &s.events {
            put_event(&mut tx, e).await?;
        }
        sqlx::query(
            "DELETE FROM events WHERE id NOT IN
                (SELECT id FROM events ORDER BY created_at DESC, id DESC LIMIT ?)",
        )
        .bind(i64::from(EVENTS_KEPT))
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE sync_state SET analytics_at = ? WHERE id = 1")
            .bind(micros(s.at))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// When analytics were last stored (`None`: never).
    pub async fn analytics_at(&self) -> Result<Option<DateTime<Utc>>, ReplicaError> {
        let mut conn = self.conn().await?;
        let at: Option<i64> =
            sqlx::query_scalar("SELECT analytics_at FROM sync_state WHERE id = 1")
                .fetch_one(&mut *conn)
                .await?;
        Ok(at.map(from_micros))
    }

    /// The organisation's calls in `[from, to)`, per hour, or per UTC day when `daily`.
    pub async fn org_usage(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        daily: bool,
    ) -> Result<Vec<UsagePoint>, ReplicaError> {
        self.series("usage_org", None, from, to, daily).await
    }

    /// Key `id`'s calls in `[from, to)`, per hour or per UTC day, and when its usage was last
    /// fetched (`None`: never, so an empty series means "not known" rather than "no calls").
    pub async fn key_usage(
        &self,
        id: KeyId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        daily: bool,
    ) -> Result<(Vec<UsagePoint>, Option<DateTime<Utc>>), ReplicaError> {
        let points = self.series("usage_key", Some(id), from, to, daily).await?;
        let mut conn = self.conn().await?;
        let fetched: Option<i64> =
            sqlx::query_scalar("SELECT fetched_at FROM usage_key_fetched WHERE key_id = ?")
                .bind(id.to_string())
                .fetch_optional(&mut *conn)
                .await?;
        Ok((points, fetched.map(from_micros)))
    }

    async fn series(
        &self,
        table: &str,
        key: Option<KeyId>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        daily: bool,
    ) -> Result<Vec<UsagePoint>, ReplicaError> {
        let bucket = if daily {
            format!("(bucket / {DAY_MICROS}) * {DAY_MICROS}")
        } else {
            "bucket".to_owned()
        };
        let sql = format!(
            "SELECT {bucket} AS bucket, SUM(allowed) AS allowed,
                    SUM(rate_limited) AS rate_limited, SUM(rejected) AS rejected
               FROM {table}
              WHERE bucket >= ? AND bucket < ? {}
              GROUP BY 1 ORDER BY 1",
            if key.is_some() { "AND key_id = ?" } else { "" }
        );
        let mut conn = self.conn().await?;
        let mut q = sqlx::query(&sql).bind(micros(from)).bind(micros(to));
        if let Some(k) = key {
            q = q.bind(k.to_string());
        }
        let rows = q.fetch_all(&mut *conn).await?;
        rows.iter().map(point).collect()
    }

    /// Replaces key `id`'s hourly usage over [`USAGE_RETENTION`] before `at` (a key viewed
    /// while online, beyond the busiest keys an analytics pull covers).
    pub async fn store_key_usage(
        &self,
        id: KeyId,
        points: &[UsagePoint],
        at: DateTime<Utc>,
    ) -> Result<(), ReplicaError> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM usage_key WHERE key_id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        put_points(&mut tx, Some(id), points).await?;
        sqlx::query("INSERT OR REPLACE INTO usage_key_fetched (key_id, fetched_at) VALUES (?, ?)")
            .bind(id.to_string())
            .bind(micros(at))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The top keys of dashboard period `period` (`24h`, `7d`, `30d`): by volume, by refusals.
    pub async fn top_keys(
        &self,
        period: &str,
    ) -> Result<(Vec<KeyUsageTotal>, Vec<KeyUsageTotal>), ReplicaError> {
        let mut conn = self.conn().await?;
        let rows = sqlx::query(
            "SELECT ranking, key_id, name, allowed, rate_limited, rejected FROM usage_top
              WHERE period = ? ORDER BY ranking, rank",
        )
        .bind(period)
        .fetch_all(&mut *conn)
        .await?;
        let (mut volume, mut rejections) = (Vec::new(), Vec::new());
        for r in rows {
            let raw: String = r.try_get("key_id")?;
            let total = KeyUsageTotal {
                key_id: raw.parse().map_err(|_| ReplicaError::BadId(raw.clone()))?,
                name: r.try_get("name")?,
                totals: keyward_core::api::UsageTotals {
                    allowed: r.try_get("allowed")?,
                    rate_limited: r.try_get("rate_limited")?,
                    rejected: r.try_get("rejected")?,
                },
            };
            let ranking: String = r.try_get("ranking")?;
            if ranking == "volume" {
                volume.push(total);
            } else {
                rejections.push(total);
            }
        }
        Ok((volume, rejections))
    }

    /// Stored alerts with `status` (all when `None`), newest first.
    pub async fn alerts(
        &self,
        status: Option<AlertStatus>,
    ) -> Result<Vec<StoredAlert>, ReplicaError> {
        let mut conn = self.conn().await?;
        let rows = sqlx::query(
            "SELECT data, notified_at FROM alerts WHERE (? IS NULL OR status = ?)
              ORDER BY opened_at DESC, id DESC",
        )
        .bind(status.map(|s| s.as_str()))
        .bind(status.map(|s| s.as_str()))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                let data: String = r.try_get("data")?;
                let notified: Option<i64> = r.try_get("notified_at")?;
                Ok(StoredAlert {
                    alert: serde_json::from_str(&data)?,
                    notified_at: notified.map(from_micros),
                })
            })
            .collect()
    }

    /// Stored events, newest first, at most `limit`.
    pub async fn events(&self, limit: u32) -> Result<Vec<OrgEvent>, ReplicaError> {
        let mut conn = self.conn().await?;
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT data FROM events ORDER BY created_at DESC, id DESC LIMIT ?")
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
                .await?;
        rows.iter().map(|d| Ok(serde_json::from_str(d)?)).collect()
    }

    /// The ids of the stored events (what a pull need not fetch again).
    pub async fn event_ids(&self) -> Result<HashSet<uuid::Uuid>, ReplicaError> {
        let mut conn = self.conn().await?;
        let rows: Vec<String> = sqlx::query_scalar("SELECT id FROM events")
            .fetch_all(&mut *conn)
            .await?;
        Ok(rows.iter().filter_map(|id| id.parse().ok()).collect())
    }

    /// Stores one alert as the server answered it (after an acknowledgement, say), keeping its
    /// `notified_at`.
    pub async fn put_alert(&self, alert: &Alert) -> Result<(), ReplicaError> {
        let mut conn = self.conn().await?;
        put_alert(&mut conn, alert, None).await
    }

    /// Key `id`'s standing as last fetched, and when.
    pub async fn key_limits(
        &self,
        id: KeyId,
    ) -> Result<Option<(KeyLimits, DateTime<Utc>)>, ReplicaError> {
        let mut conn = self.conn().await?;
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT data, fetched_at FROM key_limits WHERE key_id = ?")
                .bind(id.to_string())
                .fetch_optional(&mut *conn)
                .await?;
        row.map(|(data, at)| Ok::<_, ReplicaError>((serde_json::from_str(&data)?, from_micros(at))))
            .transpose()
    }

    pub async fn store_key_limits(
        &self,
        limits: &KeyLimits,
        at: DateTime<Utc>,
    ) -> Result<(), ReplicaError> {
        let mut conn = self.conn().await?;
        put_limits(&mut conn, limits, at).await
    }

    /// Keys whose limit standing was fetched longest ago (never first), among keys with rules
    /// of their own or a tier, not revoked: the ones an analytics pull should refresh.
    pub async fn keys_with_limits(&self, limit: u32) -> Result<Vec<KeyId>, ReplicaError> {
        let mut conn = self.conn().await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT k.id FROM keys k LEFT JOIN key_limits l ON l.key_id = k.id
              WHERE k.revoked_at IS NULL AND k.server_data IS NOT NULL
                AND (json_extract(k.data, '$.tier') IS NOT NULL
                  OR json_extract(k.data, '$.rate_limits') IS NOT NULL
                  OR json_extract(k.data, '$.quota') IS NOT NULL)
              ORDER BY COALESCE(l.fetched_at, 0), k.id LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
        ids.into_iter()
            .map(|s| s.parse().map_err(|_| ReplicaError::BadId(s)))
            .collect()
    }

    /// What needs the admin's attention now, from synced data: keys expiring within a week and
    /// keys at or past their soft threshold (each with its notice), whether notified or not.
    pub async fn attention(&self, now: DateTime<Utc>) -> Result<Vec<Notice>, ReplicaError> {
        let (keys, limits) = self.notice_inputs(now).await?;
        let mut out = notify::expiry_notices(&keys, now);
        out.extend(notify::limit_notices(&limits, now));
        Ok(out)
    }

    async fn notice_inputs(
        &self,
        now: DateTime<Utc>,
    ) -> Result<(Vec<ApiKey>, Vec<(KeyLimits, String, DateTime<Utc>)>), ReplicaError> {
        let mut conn = self.conn().await?;
        let keys: Vec<String> = sqlx::query_scalar(
            "SELECT data FROM keys WHERE expires_at IS NOT NULL AND expires_at > ?
                AND expires_at <= ? AND revoked_at IS NULL ORDER BY expires_at",
        )
        .bind(micros(now))
        .bind(micros(now + notify::EXPIRY_NOTICE))
        .fetch_all(&mut *conn)
        .await?;
        let keys = keys
            .iter()
            .map(|d| serde_json::from_str(d))
            .collect::<Result<Vec<ApiKey>, _>>()?;
        let rows: Vec<(String, i64, Option<String>)> = sqlx::query_as(
            "SELECT l.data, l.fetched_at, k.name FROM key_limits l
               LEFT JOIN keys k ON k.id = l.key_id
              WHERE k.revoked_at IS NULL ORDER BY k.name_fold",
        )
        .fetch_all(&mut *conn)
        .await?;
        let limits = rows
            .into_iter()
            .map(|(data, at, name)| {
                let l: KeyLimits = serde_json::from_str(&data)?;
                let name = name.unwrap_or_else(|| l.key_id.to_string());
                Ok((l, name, from_micros(at)))
            })
            .collect::<Result<Vec<_>, ReplicaError>>()?;
        Ok((keys, limits))
    }

    /// What to notify now: audit alarms of the witness not yet notified, first; then (see
    /// [`notify::to_notify`]) open alerts not yet notified, and expiry and limit notices not
    /// shown before. Call [`Replica::mark_notified`] once shown.
    pub async fn notices_to_show(&self, now: DateTime<Utc>) -> Result<Vec<Notice>, ReplicaError> {
        let alerts: Vec<(Alert, bool)> = self
            .alerts(Some(AlertStatus::Open))
            .await?
            .into_iter()
            .map(|s| (s.alert, s.notified_at.is_some()))
            .collect();
        let (keys, limits) = self.notice_inputs(now).await?;
        let mut conn = self.conn().await?;
        let shown: HashSet<String> =
            sqlx::query_scalar("SELECT id FROM notices WHERE notified_at IS NOT NULL")
                .fetch_all(&mut *conn)
                .await?
                .into_iter()
                .collect();
        let mut out: Vec<Notice> = crate::witness::audit_alarms(&mut conn, true)
            .await?
            .iter()
            .map(notify::audit_notice)
            .collect();
        out.extend(notify::to_notify(&alerts, &keys, &limits, &shown, now));
        drop(conn);
        out.extend(
            self.rejected_changes()
                .await?
                .iter()
                .map(notify::rejected_notice)
                .filter(|n| !shown.contains(&n.id)),
        );
        Ok(out)
    }

    /// Records that `notices` were shown (or tried: a failure to show is not retried).
    pub async fn mark_notified(
        &self,
        notices: &[Notice],
        at: DateTime<Utc>,
    ) -> Result<(), ReplicaError> {
        let mut tx = self.write().await?;
        for n in notices {
            match n.kind {
                notify::NoticeKind::Alert => {
                    let id = n.id.trim_start_matches("alert:");
                    sqlx::query("UPDATE alerts SET notified_at = ? WHERE id = ?")
                        .bind(micros(at))
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                notify::NoticeKind::Audit => {
                    sqlx::query(
                        "UPDATE audit_alarms SET notified_at = ? WHERE id = ? AND notified_at IS NULL",
                    )
                    .bind(micros(at))
                    .bind(&n.id)
                    .execute(&mut *tx)
                    .await?;
                }
                kind => {
                    sqlx::query(
                        "INSERT OR REPLACE INTO notices (id, kind, key_id, title, body, created_at,
                            notified_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    )
                    .bind(&n.id)
                    .bind(kind.as_str())
                    .bind(n.key_id.map(|k| k.to_string()).unwrap_or_default())
                    .bind(&n.title)
                    .bind(&n.body)
                    .bind(micros(at))
                    .bind(micros(at))
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        // Notices about windows long gone are of no use to dedupe against.
        sqlx::query("DELETE FROM notices WHERE created_at < ?")
            .bind(micros(at - Duration::days(60)))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
