//! Organisation usage and reports (`/v1/usage`, `/v1/reports/usage`).

use keyward_core::api::{OrgUsage, OrgUsageQuery, ReportQuery};
use reqwest::Method;

use super::{KeywardClient, Result, json, refusal};

impl KeywardClient {
    pub async fn org_usage(&self, q: &OrgUsageQuery) -> Result<OrgUsage> {
        json(
            self.admin(Method::GET, "/v1/usage")?
                .query(q)
                .send()
                .await?,
        )
        .await
    }

    /// The report as the server sends it (CSV or JSON text).
    pub async fn usage_report(&self, q: &ReportQuery) -> Result<String> {
        let res = self
            .admin(Method::GET, "/v1/reports/usage")?
            .query(q)
            .send()
            .await?;
        if !res.status().is_success() {
            return Err(refusal(res).await);
        }
        Ok(res.text().await?)
    }
}
