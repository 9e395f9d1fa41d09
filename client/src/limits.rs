//! Tiers, limit standing and violations (`/v1/tiers`, `/v1/keys/{id}/limits`,
//! `/v1/ratelimits/violations`).

use keyward_core::KeyId;
use keyward_core::api::{
    CreateTierRequest, KeyLimits, Page, Tier, UpdateTierRequest, ViolationList, ViolationsQuery,
};
use reqwest::Method;

use super::{KeywardClient, Result, empty, json};

impl KeywardClient {
    pub async fn list_tiers(&self) -> Result<Vec<Tier>> {
        let page: Page<Tier> = json(self.admin(Method::GET, "/v1/tiers")?.send().await?).await?;
        Ok(page.items)
    }

    pub async fn create_tier(&self, req: &CreateTierRequest) -> Result<Tier> {
        json(
            self.admin(Method::POST, "/v1/tiers")?
                .json(req)
                .send()
                .await?,
        )
        .await
    }

    pub async fn get_tier(&self, name: &str) -> Result<Tier> {
        json(
            self.admin(Method::GET, &format!("/v1/tiers/{name}"))?
                .send()
                .await?,
        )
        .await
    }

    pub async fn update_tier(&self, name: &str, req: &UpdateTierRequest) -> Result<Tier> {
        json(
            self.admin(Method::PATCH, &format!("/v1/tiers/{name}"))?
                .json(req)
                .send()
                .await?,
        )
        .await
    }

    pub async fn delete_tier(&self, name: &str) -> Result<()> {
        empty(
            self.admin(Method::DELETE, &format!("/v1/tiers/{name}"))?
                .send()
                .await?,
        )
        .await
    }

    /// A key's effective rules, where it stands against each, and its recent violations.
    pub async fn key_limits(&self, id: KeyId) -> Result<KeyLimits> {
        json(
            self.admin(Method::GET, &format!("/v1/keys/{id}/limits"))?
                .send()
                .await?,
        )
        .await
    }

    pub async fn violations(&self, q: &ViolationsQuery) -> Result<ViolationList> {
        json(
            self.admin(Method::GET, "/v1/ratelimits/violations")?
                .query(q)
                .send()
                .await?,
        )
        .await
    }

    /// `GET /readyz` with its detail (limits mode, Redis health).
    pub async fn readyz_detail(&self) -> Result<serde_json::Value> {
        json(self.http.get(self.url("/readyz")).send().await?).await
    }
}
