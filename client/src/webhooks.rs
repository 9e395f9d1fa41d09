//! Webhook endpoints, test events and delivery logs (`/v1/webhooks`).

use keyward_core::api::{
    CreateWebhookRequest, CreatedWebhook, Page, PageQuery, Webhook, WebhookDelivery,
    WebhookTestResponse,
};
use reqwest::Method;
use uuid::Uuid;

use super::{KeywardClient, Result, empty, json};

impl KeywardClient {
    pub async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        let page: Page<Webhook> =
            json(self.admin(Method::GET, "/v1/webhooks")?.send().await?).await?;
        Ok(page.items)
    }

    /// Creates an endpoint; the answer's `secret` is shown this once.
    pub async fn create_webhook(&self, req: &CreateWebhookRequest) -> Result<CreatedWebhook> {
        json(
            self.admin(Method::POST, "/v1/webhooks")?
                .json(req)
                .send()
                .await?,
        )
        .await
    }

    pub async fn get_webhook(&self, id: Uuid) -> Result<Webhook> {
        json(
            self.admin(Method::GET, &format!("/v1/webhooks/{id}"))?
                .send()
                .await?,
        )
        .await
    }

    pub async fn delete_webhook(&self, id: Uuid) -> Result<()> {
        empty(
            self.admin(Method::DELETE, &format!("/v1/webhooks/{id}"))?
                .send()
                .await?,
        )
        .await
    }

    /// Queues a `webhook.test` event for the endpoint; returns its message id.
    pub async fn test_webhook(&self, id: Uuid) -> Result<WebhookTestResponse> {
        json(
            self.admin(Method::POST, &format!("/v1/webhooks/{id}/test"))?
                .send()
                .await?,
        )
        .await
    }

    /// One page of the endpoint's deliveries, newest first.
    pub async fn webhook_deliveries(
        &self,
        id: Uuid,
        q: &PageQuery,
    ) -> Result<Page<WebhookDelivery>> {
        json(
            self.admin(Method::GET, &format!("/v1/webhooks/{id}/deliveries"))?
                .query(q)
                .send()
                .await?,
        )
        .await
    }
}
