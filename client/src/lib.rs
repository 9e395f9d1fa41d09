//! Typed async client for the Keyward HTTP API (shared/API.md). Errors carry the server's
//! problem `code`, so callers match on `e.code() == Some("key_revoked")`, not on text.

mod alerts;
mod events;
mod gateway;
mod limits;
mod server_url;
mod usage;
mod webhooks;

pub mod layer;

pub use server_url::{ServerUrlError, check_server_url};
pub use usage::ReportDownload;

use std::time::Duration;

use keyward_core::KeyId;
use keyward_core::api::{
    ApiKey, AuditEntry, AuditVerifyReport, ChangePasswordRequest, CreateKeyRequest, CreatedKey,
    ListKeysQuery, LoginRequest, LoginResponse, Page, PageQuery, Problem, PullQuery, PullResponse,
    PushOp, PushRequest, PushResponse, RevokeKeyRequest, RotateKeyRequest, RotatedKey,
    UpdateKeyRequest, VerifyRequest, VerifyResponse, Whoami,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused the request with a problem document.
    #[error("{status} {}: {}", .problem.code, .problem.detail)]
    Api {
        status: StatusCode,
        problem: Box<Problem>,
        retry_after: Option<u64>,
    },
    /// The server answered something that is not the expected shape.
    #[error("unexpected answer ({status}): {message}")]
    Unexpected { status: StatusCode, message: String },
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("no session: call login first")]
    NotSignedIn,
}

impl ClientError {
    /// The problem's stable code, when the server sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { problem, .. } => Some(&problem.code),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } | ClientError::Unexpected { status, .. } => {
                Some(*status)
            }
            ClientError::Transport(e) => e.status(),
            ClientError::NotSignedIn => None,
        }
    }

    /// Whether the server could not be reached, so the call may pass later and the caller is
    /// offline for now: no answer at all (connection refused, DNS, TLS, timeout, a connection
    /// cut mid-answer), or a 502, 503 or 504 (a proxy with no server behind it, or the server
    /// saying it cannot serve right now). Any other answer, a 500 or a 429 included, came from
    /// a reachable server; and [`ClientError::NotSignedIn`] is not about the network. The one
    /// rule for "offline" in the sync engine and the desktop.
    pub fn is_unreachable(&self) -> bool {
        match self {
            ClientError::Transport(e) if e.status().is_none() => true,
            ClientError::NotSignedIn => false,
            _ => self.status().is_some_and(|s| {
                matches!(
                    s,
                    StatusCode::BAD_GATEWAY
                        | StatusCode::SERVICE_UNAVAILABLE
                        | StatusCode::GATEWAY_TIMEOUT
                )
            }),
        }
    }

    pub fn problem(&self) -> Option<&Problem> {
        match self {
            ClientError::Api { problem, .. } => Some(problem),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// A client for one server. Cheap to clone; `with_session` gives a signed-in copy.
#[derive(Clone)]
pub struct KeywardClient {
    base: String,
    http: reqwest::Client,
    session: Option<SecretString>,
}

impl std::fmt::Debug for KeywardClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeywardClient")
            .field("base", &self.base)
            .field("signed_in", &self.session.is_some())
            .finish()
    }
}

impl KeywardClient {
    pub fn new(base_url: impl Into<String>) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self::with_http(base_url, http))
    }

    pub fn with_http(base_url: impl Into<String>, http: reqwest::Client) -> Self {
        KeywardClient {
            base: base_url.into().trim_end_matches('/').to_owned(),
            http,
            session: None,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// A copy that sends `token` as its admin session.
    pub fn with_session(&self, token: SecretString) -> Self {
        KeywardClient {
            session: Some(token),
            ..self.clone()
        }
    }

    pub fn session(&self) -> Option<&SecretString> {
        self.session.as_ref()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn admin(&self, method: Method, path: &str) -> Result<RequestBuilder> {
        let token = self.session.as_ref().ok_or(ClientError::NotSignedIn)?;
        Ok(self
            .http
            .request(method, self.url(path))
            .bearer_auth(token.expose_secret()))
    }

    // --- auth ---

    /// Signs in and returns a signed-in client along with the server's answer.
    pub async fn login(
        &self,
        email: &str,
        password: &SecretString,
    ) -> Result<(KeywardClient, LoginResponse)> {
        let body = LoginRequest {
            email: email.to_owned(),
            password: password.expose_secret().to_owned(),
        };
        let res: LoginResponse = json(
            self.http
                .post(self.url("/v1/auth/login"))
                .json(&body)
                .send()
                .await?,
        )
        .await?;
        Ok((
            self.with_session(SecretString::from(res.token.clone())),
            res,
        ))
    }

    pub async fn logout(&self) -> Result<()> {
        empty(self.admin(Method::POST, "/v1/auth/logout")?.send().await?).await
    }

    /// Changes the signed-in admin's password (`POST /v1/auth/password`). The server ends every
    /// other session of the admin; this client's stays signed in. A wrong `current` is refused
    /// with 403 `wrong_password`.
    pub async fn change_password(&self, current: &SecretString, new: &SecretString) -> Result<()> {
        let body = ChangePasswordRequest {
            current_password: current.expose_secret().to_owned(),
            new_password: new.expose_secret().to_owned(),
        };
        empty(
            self.admin(Method::POST, "/v1/auth/password")?
                .json(&body)
                .send()
                .await?,
        )
        .await
    }

    /// Ends every session of the signed-in admin, this client's included
    /// (`POST /v1/auth/logout-all`).
    pub async fn logout_all(&self) -> Result<()> {
        empty(
            self.admin(Method::POST, "/v1/auth/logout-all")?
                .send()
                .await?,
        )
        .await
    }

    // --- keys ---

    pub async fn create_key(&self, req: &CreateKeyRequest) -> Result<CreatedKey> {
        json(
            self.admin(Method::POST, "/v1/keys")?
                .json(req)
                .send()
                .await?,
        )
        .await
    }

    pub async fn list_keys(&self, q: &ListKeysQuery) -> Result<Page<ApiKey>> {
        json(self.admin(Method::GET, "/v1/keys")?.query(q).send().await?).await
    }

    /// Every key matching `q`, following cursors.
    pub async fn list_all_keys(&self, q: &ListKeysQuery) -> Result<Vec<ApiKey>> {
        let mut q = q.clone();
        let mut all = Vec::new();
        loop {
            let page = self.list_keys(&q).await?;
            all.extend(page.items);
            match page.next_cursor {
                Some(c) => q.cursor = Some(c),
                None => return Ok(all),
            }
        }
    }

    pub async fn get_key(&self, id: KeyId) -> Result<ApiKey> {
        json(
            self.admin(Method::GET, &format!("/v1/keys/{id}"))?
                .send()
                .await?,
        )
        .await
    }

    pub async fn update_key(&self, id: KeyId, req: &UpdateKeyRequest) -> Result<ApiKey> {
        json(
            self.admin(Method::PATCH, &format!("/v1/keys/{id}"))?
                .json(req)
                .send()
                .await?,
        )
        .await
    }

    pub async fn revoke_key(&self, id: KeyId, req: &RevokeKeyRequest) -> Result<ApiKey> {
        json(
            self.admin(Method::POST, &format!("/v1/keys/{id}/revoke"))?
                .json(req)
                .send()
                .await?,
        )
        .await
    }

    pub async fn rotate_key(&self, id: KeyId, req: &RotateKeyRequest) -> Result<RotatedKey> {
        json(
            self.admin(Method::POST, &format!("/v1/keys/{id}/rotate"))?
                .json(req)
                .send()
                .await?,
        )
        .await
    }

    pub async fn key_usage(
        &self,
        id: KeyId,
        q: &keyward_core::api::UsageQuery,
    ) -> Result<keyward_core::api::UsageResponse> {
        json(
            self.admin(Method::GET, &format!("/v1/keys/{id}/usage"))?
                .query(q)
                .send()
                .await?,
        )
        .await
    }

    // --- audit ---

    pub async fn audit(&self, q: &PageQuery) -> Result<Page<AuditEntry>> {
        json(
            self.admin(Method::GET, "/v1/audit")?
                .query(q)
                .send()
                .await?,
        )
        .await
    }

    pub async fn verify_audit(&self) -> Result<AuditVerifyReport> {
        json(self.admin(Method::GET, "/v1/audit/verify")?.send().await?).await
    }

    // --- sync ---

    /// Changes after `since` (0 for a full snapshot).
    pub async fn pull(&self, since: i64, limit: Option<u32>) -> Result<PullResponse> {
        let q = PullQuery {
            since: Some(since),
            limit,
        };
        json(
            self.admin(Method::GET, "/v1/sync/pull")?
                .query(&q)
                .send()
                .await?,
        )
        .await
    }

    /// Applies queued operations in order; each answer says applied or rejected.
    pub async fn push(&self, ops: &[PushOp]) -> Result<PushResponse> {
        let body = PushRequest { ops: ops.to_vec() };
        json(
            self.admin(Method::POST, "/v1/sync/push")?
                .json(&body)
                .send()
                .await?,
        )
        .await
    }

    // --- key-authenticated ---

    /// `GET /v1/whoami` with `key` as the bearer credential.
    pub async fn whoami(&self, key: &str) -> Result<Whoami> {
        json(
            self.http
                .get(self.url("/v1/whoami"))
                .bearer_auth(key)
                .send()
                .await?,
        )
        .await
    }

    pub async fn verify(&self, req: &VerifyRequest) -> Result<VerifyResponse> {
        json(
            self.http
                .post(self.url("/v1/verify"))
                .json(req)
                .send()
                .await?,
        )
        .await
    }

    // --- operations ---

    pub async fn healthz(&self) -> Result<()> {
        empty(self.http.get(self.url("/healthz")).send().await?).await
    }

    pub async fn readyz(&self) -> Result<()> {
        empty(self.http.get(self.url("/readyz")).send().await?).await
    }

    pub async fn openapi(&self) -> Result<serde_json::Value> {
        json(self.http.get(self.url("/openapi.json")).send().await?).await
    }
}

/// A non-success answer as a typed error.
async fn refusal(res: Response) -> ClientError {
    let status = res.status();
    let retry_after = res
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    match res.bytes().await {
        Ok(body) => match serde_json::from_slice::<Problem>(&body) {
            Ok(problem) => ClientError::Api {
                status,
                problem: Box::new(problem),
                retry_after,
            },
            Err(_) => ClientError::Unexpected {
                status,
                message: String::from_utf8_lossy(&body).chars().take(200).collect(),
            },
        },
        Err(e) => ClientError::Transport(e),
    }
}

async fn json<T: DeserializeOwned>(res: Response) -> Result<T> {
    if !res.status().is_success() {
        return Err(refusal(res).await);
    }
    let status = res.status();
    let body = res.bytes().await?;
    serde_json::from_slice(&body).map_err(|e| ClientError::Unexpected {
        status,
        message: e.to_string(),
    })
}

async fn empty(res: Response) -> Result<()> {
    if !res.status().is_success() {
        return Err(refusal(res).await);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> ClientError {
        let problem: Problem = serde_json::from_value(serde_json::json!({
            "type": "about:blank", "title": "t", "status": status, "detail": "d", "code": "c",
        }))
        .unwrap();
        ClientError::Api {
            status: StatusCode::from_u16(status).unwrap(),
            problem: Box::new(problem),
            retry_after: None,
        }
    }

    #[tokio::test]
    async fn unreachable_is_no_answer_or_a_gateway_or_unavailable_answer() {
        // Port 1 on the loopback: nothing listens, the connection is refused.
        let refused = reqwest::Client::new()
            .get("http://127.0.0.1:1/")
            .send()
            .await
            .unwrap_err();
        assert!(ClientError::Transport(refused).is_unreachable());
        for status in [502, 503, 504] {
            assert!(api(status).is_unreachable(), "{status}");
            let unexpected = ClientError::Unexpected {
                status: StatusCode::from_u16(status).unwrap(),
                message: "<html>".into(),
            };
            assert!(unexpected.is_unreachable(), "{status}");
        }
        for status in [400, 401, 403, 404, 422, 429, 500] {
            assert!(!api(status).is_unreachable(), "{status}");
        }
        assert!(!ClientError::NotSignedIn.is_unreachable());
    }
}
