//! Gateway traffic, a key's networks and the alert thresholds.

use keyward_core::KeyId;
use keyward_core::anomaly::Thresholds;
use keyward_core::api::{GatewayQuery, GatewayUsage, KeyNetwork, KeyNetworkList};
use reqwest::Method;

use super::{KeywardClient, Result, json};

impl KeywardClient {
    /// The organisation's gateway calls: the total first, then each key.
    pub async fn gateway_usage(&self, q: &GatewayQuery) -> Result<GatewayUsage> {
        json(
            self.admin(Method::GET, "/v1/gateway/usage")?
                .query(q)
                .send()
                .await?,
        )
        .await
    }

    /// One key's gateway calls: its total first, then each route group.
    pub async fn key_gateway(&self, id: KeyId, q: &GatewayQuery) -> Result<GatewayUsage> {
        json(
            self.admin(Method::GET, &format!("/v1/keys/{id}/gateway"))?
                .query(q)
                .send()
                .await?,
        )
        .await
    }

    pub async fn key_networks(&self, id: KeyId) -> Result<Vec<KeyNetwork>> {
        let list: KeyNetworkList = json(
            self.admin(Method::GET, &format!("/v1/keys/{id}/networks"))?
                .send()
                .await?,
        )
        .await?;
        Ok(list.items)
    }

    pub async fn alert_settings(&self) -> Result<Thresholds> {
        json(
            self.admin(Method::GET, "/v1/alerts/settings")?
                .send()
                .await?,
        )
        .await
    }

    pub async fn set_alert_settings(&self, t: &Thresholds) -> Result<Thresholds> {
        json(
            self.admin(Method::PUT, "/v1/alerts/settings")?
                .json(t)
                .send()
                .await?,
        )
        .await
    }
}
