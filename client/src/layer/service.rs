//! [`KeywardService`]: the service [`KeywardLayer`](super::KeywardLayer) wraps around another.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body_util::Either;
use keyward_core::ApiKeyToken;
use keyward_core::api::VerifyCode;
use tower::Service;

use super::refusal::Refusal;
use super::verdict::{Verdict, presented_key};
use super::{LayerBody, Shared};

/// The service [`KeywardLayer`](super::KeywardLayer) wraps around `S`.
#[derive(Clone)]
pub struct KeywardService<S> {
    pub(super) inner: S,
    pub(super) shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for KeywardService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeywardService")
            .field("inner", &self.inner)
            .field("layer", &self.shared)
            .finish()
    }
}

impl<S, B, ResBody> Service<Request<B>> for KeywardService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<LayerBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The clone may not be ready; the instance `poll_ready` was called on is.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let verdict = match presented_key(&parts.headers) {
                None => Verdict::Refuse(Refusal::missing_key()),
                Some(token) if ApiKeyToken::parse(token).is_err() => {
                    Verdict::Refuse(Refusal::for_code(VerifyCode::NotFound))
                }
                Some(token) => {
                    let ip = shared.client_ip.as_ref().and_then(|f| f(&parts));
                    shared.check(token, ip).await
                }
            };
            match verdict {
                Verdict::Allow { key, headers } => {
                    parts.extensions.insert(key);
                    let res = inner.call(Request::from_parts(parts, body)).await?;
                    let (mut res_parts, res_body) = res.into_parts();
                    for (name, value) in headers {
                        if let Some(name) = name {
                            res_parts.headers.insert(name, value);
                        }
                    }
                    Ok(Response::from_parts(res_parts, Either::Left(res_body)))
                }
                Verdict::Refuse(refusal) => Ok(refusal.into_response()),
            }
        })
    }
}
