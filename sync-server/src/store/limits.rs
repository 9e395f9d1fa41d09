use chrono::{DateTime, Utc};
use keyward_core::api::Violation;
use keyward_core::{KeyId, OrgId};
use sqlx::PgConnection;

/// Refusals per key and rule in `[from, to)`, most first.
pub async fn violations(
    conn: &mut PgConnection,
    org: OrgId,
    key: Option<KeyId>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Violation>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT key_id, rule, sum(count)::int8 AS "count!", max(last_at) AS "last_at!"
             FROM ratelimit_violations
            WHERE org_id = $1 AND minute >= date_trunc('minute', $2::timestamptz) AND minute < $3
              AND ($4::uuid IS NULL OR key_id = $4)
            GROUP BY key_id, rule ORDER BY 3 DESC, 1, 2 LIMIT 500"#,
        org.as_uuid(),
        from,
        to,
        key.map(KeyId::into_uuid),
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Violation {
            key_id: KeyId::from_uuid(r.key_id),
            rule: r.rule,
            count: r.count,
            last_at: r.last_at,
        })
        .collect())
}
