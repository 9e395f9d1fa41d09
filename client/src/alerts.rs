//! Alerts (`/v1/alerts`).

use keyward_core::api::{Alert, AlertList, AlertsQuery};
use reqwest::Method;

use super::{KeywardClient, Result, json};

impl KeywardClient {
    pub async fn alerts(&self, q: &AlertsQuery) -> Result<Vec<Alert>> {
        let list: AlertList = json(
            self.admin(Method::GET, "/v1/alerts")?
                .query(q)
                .send()
                .await?,
        )
        .await?;
        Ok(list.items)
    }

    pub async fn ack_alert(&self, id: uuid::Uuid) -> Result<Alert> {
        json(
            self.admin(Method::POST, &format!("/v1/alerts/{id}/ack"))?
                .send()
                .await?,
        )
        .await
    }
}
