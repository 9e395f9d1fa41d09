//! A key's gateway traffic and networks as last fetched from the server (the key's detail
//! fetches them while online), so the detail shows the last copy offline with its fetch time.

use chrono::{DateTime, Utc};
use keyward_core::KeyId;
use keyward_core::api::{GatewayUsage, KeyNetwork};

use crate::error::ReplicaError;
use crate::replica::Replica;
use crate::store::{from_micros, micros};

impl Replica {
    /// Replaces key `id`'s gateway traffic over `period` (`24h` or `7d`) with the server's
    /// answer fetched at `at`.
    pub async fn store_key_gateway(
        &self,
        id: KeyId,
        period: &str,
        usage: &GatewayUsage,
        at: DateTime<Utc>,
    ) -> Result<(), ReplicaError> {
        let mut conn = self.conn().await?;
        sqlx::query(
            "INSERT OR REPLACE INTO key_gateway (key_id, period, data, fetched_at)
             VALUES (?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(period)
        .bind(serde_json::to_string(usage)?)
        .bind(micros(at))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Key `id`'s gateway traffic over `period` as last fetched, and when (`None`: never).
    pub async fn key_gateway(
        &self,
        id: KeyId,
        period: &str,
    ) -> Result<Option<(GatewayUsage, DateTime<Utc>)>, ReplicaError> {
        let mut conn = self.conn().await?;
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT data, fetched_at FROM key_gateway WHERE key_id = ? AND period = ?",
        )
        .bind(id.to_string())
        .bind(period)
        .fetch_optional(&mut *conn)
        .await?;
        row.map(|(data, at)| Ok::<_, ReplicaError>((serde_json::from_str(&data)?, from_micros(at))))
            .transpose()
    }

    /// Replaces the networks key `id` was used from with the server's list fetched at `at`.
    pub async fn store_key_networks(
        &self,
        id: KeyId,
        networks: &[KeyNetwork],
        at: DateTime<Utc>,
    ) -> Result<(), ReplicaError> {
        let id = id.to_string();
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM key_networks WHERE key_id = ?")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        for n in networks {
            sqlx::query(
                "INSERT OR REPLACE INTO key_networks (key_id, network, first_seen, last_seen, calls)
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&id)
            .bind(&n.network)
            .bind(micros(n.first_seen))
            .bind(micros(n.last_seen))
            .bind(n.calls)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT OR REPLACE INTO key_networks_fetched (key_id, fetched_at) VALUES (?, ?)",
        )
        .bind(&id)
        .bind(micros(at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The networks key `id` was used from as last fetched, most recently seen first, and when
    /// they were fetched (`None`: never, so no networks means "not known" rather than "none").
    pub async fn key_networks(
        &self,
        id: KeyId,
    ) -> Result<Option<(Vec<KeyNetwork>, DateTime<Utc>)>, ReplicaError> {
        let id = id.to_string();
        let mut conn = self.conn().await?;
        let fetched: Option<i64> =
            sqlx::query_scalar("SELECT fetched_at FROM key_networks_fetched WHERE key_id = ?")
                .bind(&id)
                .fetch_optional(&mut *conn)
                .await?;
        let Some(fetched) = fetched else {
            return Ok(None);
        };
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT network, first_seen, last_seen, calls FROM key_networks
              WHERE key_id = ? ORDER BY last_seen DESC, network",
        )
        .bind(&id)
        .fetch_all(&mut *conn)
        .await?;
        let networks = rows
            .into_iter()
            .map(|(network, first, last, calls)| KeyNetwork {
                network,
                first_seen: from_micros(first),
                last_seen: from_micros(last),
                calls,
            })
            .collect();
        Ok(Some((networks, from_micros(fetched))))
    }
}
