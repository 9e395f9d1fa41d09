//! What deserves a desktop notification after a sync: alerts the server opened, keys about to
//! expire, keys past their soft threshold. Each notice has a stable id, so the replica can
//! remember which ones were shown (`notified_at`) and a later sync never repeats one.
//!
//! Pure functions over synced data; [`crate::Replica::notices_to_show`] feeds them from the
//! replica.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use keyward_core::KeyId;
use keyward_core::api::{Alert, AlertStatus, ApiKey, KeyLimits};
use serde::Serialize;

/// Keys expiring within this long get a notice (and again on their last day).
pub const EXPIRY_NOTICE: Duration = Duration::days(7);
const LAST_DAY: Duration = Duration::days(1);
/// Soft threshold assumed when the server reports none.
const DEFAULT_SOFT_THRESHOLD: f64 = 0.8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// The server opened an alert.
    Alert,
    /// A key expires soon.
    Expiry,
    /// A key stands at or past its soft threshold on a rule or quota.
    Limit,
    /// The server's audit chain is shorter, forked or badly signed ([`crate::witness`]).
    Audit,
    /// The server refused a change made on this device ([`crate::RejectedChange`]).
    Rejected,
}

impl NoticeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Alert => "alert",
            NoticeKind::Expiry => "expiry",
            NoticeKind::Limit => "limit",
            NoticeKind::Audit => "audit",
            NoticeKind::Rejected => "rejected",
        }
    }
}

/// One thing to tell the admin about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    /// Stable across syncs: `alert:<id>`, `expiry:<key>:<expires_at>:<7d|1d>`,
    /// `limit:<key>:<rule>:<window>`, `audit:<org>:<kind>:<witnessed head>`.
    pub id: String,
    pub kind: NoticeKind,
    /// The key it is about (none for an audit alarm).
    pub key_id: Option<KeyId>,
    pub key_name: String,
    pub title: String,
    pub body: String,
}

fn humanize(d: Duration) -> String {
    if d >= Duration::days(2) {
        format!("{} days", d.num_days())
    } else if d >= Duration::hours(2) {
        format!("{} hours", d.num_hours())
    } else {
        format!("{} minutes", d.num_minutes().max(1))
    }
}

/// The notice for an alert (whatever its status; callers pick the open ones).
pub fn alert_notice(a: &Alert) -> Notice {
    Notice {
        id: format!("alert:{}", a.id),
        kind: NoticeKind::Alert,
        key_id: Some(a.key_id),
        key_name: a.key_name.clone(),
        title: format!("Alert: {} on {}", a.kind.replace('_', " "), a.key_name),
        body: if a.detail.is_empty() {
            format!("observed {:.0}, expected {:.1}", a.observed, a.expected)
        } else {
            a.detail.clone()
        },
    }
}

/// The notice for an audit alarm of the witness.
pub fn audit_notice(a: &crate::witness::AuditAlarm) -> Notice {
    Notice {
        id: a.id.clone(),
        kind: NoticeKind::Audit,
        key_id: None,
        key_name: String::new(),
        title: a.kind.title().to_owned(),
        body: a.detail.clone(),
    }
}

/// Notices for keys that expire within [`EXPIRY_NOTICE`] of `now` (revoked and disabled keys
/// excepted): one while more than a day is left, another on the last day.
pub fn expiry_notices(keys: &[ApiKey], now: DateTime<Utc>) -> Vec<Notice> {
    keys.iter()
        .filter(|k| k.revoked_at.is_none() && !k.disabled)
        .filter_map(|k| {
            let at = k.expires_at?;
            let left = at - now;
            if left <= Duration::zero() || left > EXPIRY_NOTICE {
                return None;
            }
            let stage = if left <= LAST_DAY { "1d" } else { "7d" };
            Some(Notice {
                id: format!("expiry:{}:{}:{stage}", k.id, at.timestamp()),
                kind: NoticeKind::Expiry,
                key_id: Some(k.id),
                key_name: k.name.clone(),
                title: format!("Key {} expires soon", k.name),
                body: format!(
                    "expires in {} ({} UTC)",
                    humanize(left),
                    at.format("%Y-%m-%d %H:%M")
                ),
            })
        })
        .collect()
}

/// Notices for rules and quotas at or past the key's soft threshold, one per rule and window.
/// `fetched_at` is when the standing was read (its reset times count from then).
pub fn limit_notices(
    limits: &[(KeyLimits, String, DateTime<Utc>)],
    _now: DateTime<Utc>,
) -> Vec<Notice> {
    let mut out = Vec::new();
    for (l, name, fetched_at) in limits {
        let threshold = if l.soft_threshold > 0.0 && l.soft_threshold <= 1.0 {
            l.soft_threshold
        } else {
            DEFAULT_SOFT_THRESHOLD
        };
        for r in &l.rules {
            if r.limit == 0 || (r.used as f64) < threshold * r.limit as f64 {
                continue;
            }
            // The window this standing belongs to, identified by when it resets (rounded to
            // the window's length, so two reads of the same window agree).
            let unit = r.window_seconds.max(60) as i64;
            let reset = fetched_at.timestamp() + r.reset_seconds as i64;
            let window = (reset + unit / 2).div_euclid(unit);
            let share = r.used as f64 / r.limit as f64;
            out.push(Notice {
                id: format!("limit:{}:{}:{window}", l.key_id, r.policy),
                kind: NoticeKind::Limit,
                key_id: Some(l.key_id),
                key_name: name.clone(),
                title: format!("Key {name} is close to a limit"),
                body: format!(
                    "{} of {} used on {} ({:.0}%)",
                    r.used,
                    r.limit,
                    r.policy,
                    share * 100.0
                ),
            });
        }
    }
    out
}

/// What to notify now: open alerts not notified yet, and expiry and limit notices whose id is
/// not in `shown`. Alerts come first, newest first.
pub fn to_notify(
    alerts: &[(Alert, bool)],
    keys: &[ApiKey],
    limits: &[(KeyLimits, String, DateTime<Utc>)],
    shown: &HashSet<String>,
    now: DateTime<Utc>,
) -> Vec<Notice> {
    let mut open: Vec<&Alert> = alerts
        .iter()
        .filter(|(a, notified)| a.status == AlertStatus::Open && !notified)
        .map(|(a, _)| a)
        .collect();
    open.sort_by_key(|a| std::cmp::Reverse(a.opened_at));
    let mut out: Vec<Notice> = open.into_iter().map(alert_notice).collect();
    let mut seen: HashSet<String> = out.iter().map(|n| n.id.clone()).collect();
    for n in expiry_notices(keys, now)
        .into_iter()
        .chain(limit_notices(limits, now))
    {
        if !shown.contains(&n.id) && seen.insert(n.id.clone()) {
            out.push(n);
        }
    }
    out
}

/// The notice of refused change `c` (id `rejected:<op_id>`: once per change).
pub fn rejected_notice(c: &crate::RejectedChange) -> Notice {
    Notice {
        id: format!("rejected:{}", c.op_id),
        kind: NoticeKind::Rejected,
        key_id: Some(c.key_id),
        key_name: c.key_name.clone(),
        title: format!("The server refused a change to {}", c.key_name),
        body: format!(
            "{}: {}. Open Settings → Refused changes to retry or discard it.",
            c.summary, c.rejection.detail
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::api::LimitUsage;
    use keyward_core::{Environment, IpAllowList, KeyStatus, OrgId, ScopeSet};
    use uuid::Uuid;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000, 0).unwrap()
    }

    fn key(name: &str, expires_in: Option<Duration>) -> ApiKey {
        let id = KeyId::new();
        ApiKey {
            id,
            org_id: OrgId::from_uuid(Uuid::from_u128(7)),
            name: name.into(),
            description: None,
            environment: Environment::Live,
            prefix: String::new(),
            status: KeyStatus::Active,
            scopes: ScopeSet::default(),
            allowed_ips: IpAllowList::default(),
            metadata: serde_json::json!({}),
            disabled: false,
            expires_at: expires_in.map(|d| now() + d),
            revoked_at: None,
            revoke_reason: None,
            rotated_from: None,
            replaced_by: None,
            lineage_id: id,
            created_at: now() - Duration::days(30),
            created_by: None,
            updated_at: now(),
            last_used_at: None,
            last_used_ip: None,
            tier: None,
            rate_limits: None,
            quota: None,
        }
    }

    fn alert(status: AlertStatus, opened_ago: Duration) -> Alert {
        Alert {
            id: Uuid::now_v7(),
            key_id: KeyId::new(),
            key_name: "billing".into(),
            kind: "rate_spike".into(),
            status,
            observed: 420.0,
            expected: 35.5,
            window_start: now() - Duration::minutes(10),
            window_secs: 300,
            detail: "12x the usual rate".into(),
            opened_at: now() - opened_ago,
            last_seen_at: now(),
            acked_at: None,
            acked_by: None,
            resolved_at: None,
        }
    }

    fn standing(used: u64, limit: u64) -> KeyLimits {
        KeyLimits {
            key_id: KeyId::new(),
            tier: None,
            soft_threshold: 0.8,
            rules: vec![LimitUsage {
                policy: "hour".into(),
                kind: "fixed_window".into(),
                limit,
                window_seconds: 3600,
                used,
                remaining: limit.saturating_sub(used),
                reset_seconds: 1200,
                consistency: Default::default(),
            }],
            violations: vec![],
            mode: "local".into(),
            forecast: vec![],
        }
    }

    #[test]
    fn only_open_alerts_not_yet_notified_newest_first() {
        let old = alert(AlertStatus::Open, Duration::hours(2));
        let new = alert(AlertStatus::Open, Duration::minutes(5));
        let done = alert(AlertStatus::Open, Duration::minutes(1));
        let acked = alert(AlertStatus::Acked, Duration::minutes(1));
        let resolved = alert(AlertStatus::Resolved, Duration::minutes(1));
        let picked = to_notify(
            &[
                (old.clone(), false),
                (new.clone(), false),
                (done, true),
                (acked, false),
                (resolved, false),
            ],
            &[],
            &[],
            &HashSet::new(),
            now(),
        );
        let ids: Vec<&str> = picked.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(
            ids,
            vec![format!("alert:{}", new.id), format!("alert:{}", old.id)]
        );
        assert_eq!(picked[0].title, "Alert: rate spike on billing");
        assert_eq!(picked[0].body, "12x the usual rate");
    }

    #[test]
    fn expiry_within_a_week_then_again_on_the_last_day() {
        let soon = key("soon", Some(Duration::days(3)));
        let last_day = key("last", Some(Duration::hours(5)));
        let later = key("later", Some(Duration::days(8)));
        let past = key("past", Some(-Duration::hours(1)));
        let never = key("never", None);
        let mut revoked = key("revoked", Some(Duration::days(2)));
        revoked.revoked_at = Some(now());
        let mut disabled = key("disabled", Some(Duration::days(2)));
        disabled.disabled = true;
        let keys = [
            soon.clone(),
            last_day.clone(),
            later,
            past,
            never,
            revoked,
            disabled,
        ];
        let picked = to_notify(&[], &keys, &[], &HashSet::new(), now());
        let names: Vec<&str> = picked.iter().map(|n| n.key_name.as_str()).collect();
        assert_eq!(names, vec!["soon", "last"]);
        assert!(picked[0].id.ends_with(":7d"), "{}", picked[0].id);
        assert!(picked[1].id.ends_with(":1d"), "{}", picked[1].id);
        assert_eq!(picked[0].body.split(" (").next(), Some("expires in 3 days"));
        assert_eq!(
            picked[1].body.split(" (").next(),
            Some("expires in 5 hours")
        );

        // Shown once: the same stage is not repeated; the last-day stage is new.
        let shown: HashSet<String> = picked.iter().map(|n| n.id.clone()).collect();
        assert!(to_notify(&[], &keys, &[], &shown, now()).is_empty());
        let four_days_on = now() + Duration::days(2) + Duration::hours(12);
        let again = to_notify(&[], &[soon], &[], &shown, four_days_on);
        assert_eq!(again.len(), 1);
        assert!(again[0].id.ends_with(":1d"));
    }

    #[test]
    fn limits_at_the_soft_threshold_once_per_window() {
        let near = standing(80, 100);
        let below = standing(79, 100);
        let over = standing(150, 100);
        let limits = vec![
            (near.clone(), "near".to_owned(), now()),
            (below, "below".to_owned(), now()),
            (over, "over".to_owned(), now()),
        ];
        let picked = to_notify(&[], &[], &limits, &HashSet::new(), now());
        let names: Vec<&str> = picked.iter().map(|n| n.key_name.as_str()).collect();
        assert_eq!(names, vec!["near", "over"]);
        assert_eq!(picked[0].body, "80 of 100 used on hour (80%)");

        // Read again a few seconds later in the same window: nothing new.
        let shown: HashSet<String> = picked.iter().map(|n| n.id.clone()).collect();
        let mut later = near.clone();
        later.rules[0].reset_seconds -= 7;
        let again = vec![(later, "near".to_owned(), now() + Duration::seconds(7))];
        assert!(to_notify(&[], &[], &again, &shown, now()).is_empty());
        // The next window is news again.
        let next = vec![(near, "near".to_owned(), now() + Duration::hours(1))];
        assert_eq!(to_notify(&[], &[], &next, &shown, now()).len(), 1);
    }
}
