//! Organisation usage and reports (`/v1/usage`, `/v1/reports/usage`).

use std::time::Duration;

use keyward_core::api::{OrgUsage, OrgUsageQuery, ReportQuery};
use reqwest::{Method, Response};

use super::{KeywardClient, Result, json, refusal};

/// How long a report download may take in all (the client's usual 30 s is for small answers).
const REPORT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// A usage report on its way from the server, read chunk by chunk so it is never held whole.
#[derive(Debug)]
pub struct ReportDownload {
    res: Response,
}

impl ReportDownload {
    /// The answer's content type (`text/csv; charset=utf-8` or `application/json`).
    pub fn content_type(&self) -> Option<&str> {
        self.res
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
    }

    /// The next piece of the body; `None` at its end. An error means the report was cut off.
    pub async fn chunk(&mut self) -> Result<Option<bytes::Bytes>> {
        Ok(self.res.chunk().await?)
    }
}

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

    /// Starts downloading the report; a refusal (bad period, no session) is an error here,
    /// before any byte of the body is read.
    pub async fn usage_report_download(&self, q: &ReportQuery) -> Result<ReportDownload> {
        let res = self
            .admin(Method::GET, "/v1/reports/usage")?
            .query(q)
            .timeout(REPORT_TIMEOUT)
            .send()
            .await?;
        if !res.status().is_success() {
            return Err(refusal(res).await);
        }
        Ok(ReportDownload { res })
    }

    /// The report as the server sends it (CSV or JSON text), whole in memory.
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
