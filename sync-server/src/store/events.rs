//! `events`: the organisation's event log. [`record`] is called by
//! [`crate::webhooks::enqueue`] — the one place every emitted event passes — inside the
//! transaction of the change, so an event is recorded if and only if its change committed, with
//! or without a webhook subscribed to it. Read by `GET /v1/events`; pruned with webhook
//! deliveries.

use chrono::{DateTime, Utc};
use keyward_core::api::OrgEvent;
use keyward_core::api::webhooks::WebhookEvent;
use keyward_core::{KeyId, OrgId};
use sqlx::PgConnection;
use uuid::Uuid;

/// Records `event` for `org` at `at`; returns its id (UUIDv7).
pub async fn record(
    conn: &mut PgConnection,
    org: OrgId,
    event: &WebhookEvent,
    at: DateTime<Utc>,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO events (id, org_id, type, key_id, data, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        id,
        org.into_uuid(),
        event.event_type(),
        event.key_id().map(KeyId::into_uuid),
        event.data(),
        at,
    )
    .execute(conn)
    .await?;
    Ok(id)
}

/// Which types a listing selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeFilter {
    /// Every type (`*` or no filter).
    All,
    /// One type.
    Exact(String),
    /// Types starting with this (`key.` for `key.*`).
    Prefix(String),
}

impl TypeFilter {
    /// The filter of a subscription-style pattern; `None` when it is not one
    /// ([`keyward_core::api::webhooks::is_valid_pattern`]).
    pub fn parse(pattern: &str) -> Option<TypeFilter> {
        if !keyward_core::api::webhooks::is_valid_pattern(pattern) {
            return None;
        }
        Some(if pattern == "*" {
            TypeFilter::All
        } else if let Some(prefix) = pattern.strip_suffix('*') {
            TypeFilter::Prefix(prefix.to_owned())
        } else {
            TypeFilter::Exact(pattern.to_owned())
        })
    }
}

/// The organisation's events, newest first (`created_at`, then id), after the event `before`
/// (a previous page's last), at most `limit`. An event whose stored payload no longer reads as
/// its type is skipped (and logged).
pub async fn list(
    conn: &mut PgConnection,
    org: OrgId,
    types: &TypeFilter,
    key: Option<KeyId>,
    before: Option<Uuid>,
    limit: u32,
) -> Result<Vec<OrgEvent>, sqlx::Error> {
    let (exact, prefix) = match types {
        TypeFilter::All => (None, None),
        TypeFilter::Exact(t) => (Some(t.as_str()), None),
        TypeFilter::Prefix(p) => (None, Some(p.as_str())),
    };
    let rows = sqlx::query!(
        r#"SELECT e.id, e.type AS "ty", e.key_id, e.data, e.created_at FROM events e
         WHERE e.org_id = $1
           AND ($2::text IS NULL OR e.type = $2)
           AND ($3::text IS NULL OR starts_with(e.type, $3))
           AND ($4::uuid IS NULL OR e.key_id = $4)
           AND ($5::uuid IS NULL OR (e.created_at, e.id) <
                (SELECT c.created_at, c.id FROM events c WHERE c.id = $5 AND c.org_id = $1))
         ORDER BY e.created_at DESC, e.id DESC
         LIMIT $6"#,
        org.as_uuid(),
        exact,
        prefix,
        key.map(KeyId::into_uuid),
        before,
        i64::from(limit),
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let (id, ty, key_id, data, created_at) = (r.id, r.ty, r.key_id, r.data, r.created_at);
            let event = serde_json::json!({ "type": ty, "data": data });
            match serde_json::from_value::<WebhookEvent>(event) {
                Ok(event) => Some(OrgEvent {
                    id,
                    key_id: key_id.map(KeyId::from_uuid),
                    created_at,
                    event,
                }),
                Err(e) => {
                    tracing::warn!(%id, r#type = %ty, error = %e, "stored event does not read as its type");
                    None
                }
            }
        })
        .collect())
}

/// Deletes events older than `days` days; returns how many.
pub async fn prune(conn: &mut PgConnection, days: u64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM events WHERE created_at < now() - make_interval(days => $1::int)",
        i32::try_from(days).unwrap_or(i32::MAX),
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::TypeFilter;

    #[test]
    fn type_filters_are_subscription_patterns() {
        assert_eq!(TypeFilter::parse("*"), Some(TypeFilter::All));
        assert_eq!(
            TypeFilter::parse("key.expired"),
            Some(TypeFilter::Exact("key.expired".into()))
        );
        assert_eq!(
            TypeFilter::parse("key.*"),
            Some(TypeFilter::Prefix("key.".into()))
        );
        for bad in ["", "key", "key.nope", "nope.*", "*.*", "key.%", ".*"] {
            assert_eq!(TypeFilter::parse(bad), None, "{bad}");
        }
    }
}
