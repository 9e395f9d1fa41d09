//! The HTTP/1.1 listener behind [`crate::serve`]: the limits `axum::serve` leaves to the kernel
//! and to the client, so a slow or idle client cannot hold the server's connections, nor a
//! rolling deploy, for as long as it likes.
//!
//! - **Connection cap** (`max_connections`). At the cap the server stops calling `accept`: new
//!   connections wait in the kernel's listen backlog (connected but unanswered) and are served
//!   in order as connections close; once the backlog is full the kernel drops new SYNs, which
//!   clients retry. Nothing already accepted is dropped to make room.
//! - **Header and idle clocks**, per connection: a request's headers must arrive within
//!   `header_read_timeout_ms` of its first byte, and a connection with no request under way
//!   (just accepted, or kept alive after a response) must start one within
//!   `idle_timeout_secs`. Missing either closes the connection. A request being handled has
//!   neither clock: its body has its own, and handlers bound their own waits.
//! - **Body deadline** ([`BodyDeadlineLayer`]): a request's body must arrive within
//!   `body_timeout_ms` of its headers, in total (a trickle of one byte a second does not reset
//!   it). Past that, reading it fails and the request is answered 408 `body_timeout` with
//!   `Connection: close`.
//! - **Bounded shutdown**: stop accepting (the listening socket is closed), let every connection
//!   finish the request it is serving without taking another, and after `shutdown_grace_ms`
//!   close whatever is left, half-sent requests included, so that the caller can flush usage and
//!   exit before its supervisor gives up on it.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::future::{BoxFuture, Either};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower::{Layer, Service, ServiceExt};

use crate::config::ConnectionLimits;
use crate::error::AppError;

/// At most one "connection cap reached" warning per this interval.
const CAP_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// Serves `router` on `listener` until `shutdown` is cancelled, then drains (see the module
/// documentation) and returns once every connection is closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut open = JoinSet::new();
    let mut cap_warned: Option<Instant> = None;
    loop {
        // Forget the tasks of connections that have closed.
        while open.try_join_next().is_some() {}
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if cap_warned.is_none_or(|at| at.elapsed() >= CAP_WARNING_INTERVAL) {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "connection cap reached: new connections wait in the backlog until \
                         one closes (KEYWARD_MAX_CONNECTIONS)"
                    );
                    cap_warned = Some(Instant::now());
                }
                tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break, // never closed
                    },
                    () = shutdown.cancelled() => break,
                }
            }
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    on_accept_error(e, &shutdown).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        open.spawn(connection(
            stream,
            remote,
            router.clone(),
            limits,
            shutdown.clone(),
            slot,
        ));
    }

    // Closing the listening socket refuses new connections (and resets those in the backlog).
    drop(listener);
    while open.try_join_next().is_some() {}
    if !open.is_empty() {
        tracing::info!(
            connections = open.len(),
            grace_ms = limits.shutdown_grace.as_millis() as u64,
            "draining connections"
        );
    }
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while open.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = open.len(),
            "shutdown grace over: closing the remaining connections"
        );
        open.shutdown().await;
    }
}

async fn on_accept_error(e: io::Error, shutdown: &CancellationToken) {
    // A connection reset before it was accepted is the client's affair.
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    // Out of file descriptors, most likely: wait for some to close rather than spin.
    tracing::error!(error = %e, "accept failed");
    tokio::select! {
        () = tokio::time::sleep(Duration::from_secs(1)) => {}
        () = shutdown.cancelled() => {}
    }
}

/// Where a connection is in its request cycle, for its header and idle clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No request under way since this instant (the accept, or the end of the last response).
    Idle(Instant),
    /// A request's first bytes arrived at this instant; its headers are not complete yet.
    Head(Instant),
    /// A request is being handled or answered.
    Busy,
}

/// The clock that ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    Idle,
    Header,
}

impl Expiry {
    fn as_str(self) -> &'static str {
        match self {
            Expiry::Idle => "idle_timeout",
            Expiry::Header => "header_read_timeout",
        }
    }
}

impl Phase {
    /// When the client's time in this phase runs out, and which clock that is; `None` while a
    /// request is being handled (or for a limit too large to add to an instant).
    fn deadline(self, limits: &ConnectionLimits) -> Option<(Instant, Expiry)> {
        match self {
            Phase::Idle(since) => since
                .checked_add(limits.idle_timeout)
                .map(|at| (at, Expiry::Idle)),
            Phase::Head(since) => since
                .checked_add(limits.header_read_timeout)
                .map(|at| (at, Expiry::Header)),
            Phase::Busy => None,
        }
    }

    /// Bytes arrived: on an idle connection, a request has begun and its header clock starts.
    /// Returns whether the phase changed.
    fn on_bytes(&mut self, now: impl FnOnce() -> Instant) -> bool {
        match self {
            Phase::Idle(_) => {
                *self = Phase::Head(now());
                true
            }
            Phase::Head(_) | Phase::Busy => false,
        }
    }
}

/// Serves one connection until it ends, runs out of a clock, or the shutdown grace ends (the
/// task is aborted then). `_slot` is its place under the connection cap, freed on return.
async fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    let (phase, mut watch) = watch::channel(Phase::Idle(Instant::now()));
    let phase = Arc::new(phase);
    let io = TokioIo::new(Watched {
        io: stream,
        phase: phase.clone(),
    });
    let service = {
        let phase = phase.clone();
        service_fn(move |request: hyper::Request<Incoming>| {
            phase.send_replace(Phase::Busy);
            let done = IdleWhenDropped(phase.clone());
            let mut request = request.map(Body::new);
            // What `into_make_service_with_connect_info` provided: the peer, for `ClientIp`.
            request.extensions_mut().insert(ConnectInfo(remote));
            let response = router.clone().oneshot(request);
            async move {
                let Ok(response) = response.await;
                Ok::<_, Infallible>(response.map(|body| Released { body, _done: done }))
            }
        })
    };
    // The header clock is ours (it starts at a request's first byte, where hyper's starts when
    // it begins waiting, so hyper's would also be the idle clock).
    let conn = http1::Builder::new()
        .header_read_timeout(None::<Duration>)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        let deadline = watch.borrow_and_update().deadline(&limits);
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(%remote, error = %e, "connection ended with an error");
                }
                return;
            }
            // The phase moved: its clock is read again above.
            _ = watch.changed() => {}
            () = sleep_until(deadline) => {
                let expired = watch
                    .borrow()
                    .deadline(&limits)
                    .filter(|(at, _)| *at <= Instant::now());
                if let Some((_, expiry)) = expired {
                    tracing::debug!(%remote, reason = expiry.as_str(), "closing a slow connection");
                    return;
                }
            }
            () = shutdown.cancelled(), if !draining => {
                // Finish the request under way (if any) and take no other.
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

async fn sleep_until(deadline: Option<(Instant, Expiry)>) {
    match deadline {
        Some((at, _)) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The connection's socket, noticing the first bytes of a request.
struct Watched {
    io: TcpStream,
    phase: Arc<watch::Sender<Phase>>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.phase.send_if_modified(|p| p.on_bytes(Instant::now));
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Marks the connection idle when dropped: held by a response body, which hyper drops once it
/// has written it (or when the connection goes).
struct IdleWhenDropped(Arc<watch::Sender<Phase>>);

impl Drop for IdleWhenDropped {
    fn drop(&mut self) {
        self.0.send_replace(Phase::Idle(Instant::now()));
    }
}

/// A response body that starts the idle clock when done.
struct Released {
    body: Body,
    _done: IdleWhenDropped,
}

impl HttpBody for Released {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Answers 408 `body_timeout` (and closes the connection) when a request's body has not
/// arrived within `timeout` of the request reaching the router. Requests without a body pass
/// untouched.
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadlineLayer {
    timeout: Duration,
}

impl BodyDeadlineLayer {
    pub fn new(timeout: Duration) -> BodyDeadlineLayer {
        BodyDeadlineLayer { timeout }
    }
}

impl<S> Layer<S> for BodyDeadlineLayer {
    type Service = BodyDeadline<S>;

    fn layer(&self, inner: S) -> BodyDeadline<S> {
        BodyDeadline {
            inner,
            timeout: self.timeout,
        }
    }
}

/// The service of [`BodyDeadlineLayer`].
#[derive(Debug, Clone)]
pub struct BodyDeadline<S> {
    inner: S,
    timeout: Duration,
}

impl<S> Service<Request> for BodyDeadline<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if request.body().is_end_stream() {
            return Either::Left(self.inner.call(request));
        }
        let expired = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now().checked_add(self.timeout);
        let request = request.map(|body| {
            Body::new(DeadlineBody {
                body,
                deadline,
                sleep: None,
                expired: expired.clone(),
            })
        });
        let response = self.inner.call(request);
        Either::Right(Box::pin(async move {
            let response = response.await?;
            if !expired.load(Ordering::Relaxed) {
                return Ok(response);
            }
            // Whatever the handler made of the failed read, the answer is the timeout; the rest
            // of the body is not worth waiting for.
            let mut response = AppError::BodyTimeout.into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            Ok(response)
        }))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within the body timeout")]
struct BodyTimedOut;

/// A request body that fails once `deadline` has passed while it waits for more bytes.
struct DeadlineBody {
    body: Body,
    deadline: Option<Instant>,
    sleep: Option<Pin<Box<Sleep>>>,
    expired: Arc<AtomicBool>,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        let Some(deadline) = this.deadline else {
            return Poll::Pending;
        };
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(sleep.as_mut().poll(cx));
        this.expired.store(true, Ordering::Relaxed);
        Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut))))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        crate::Config::for_database("postgres://unused").connections
    }

    #[test]
    fn each_phase_has_its_clock() {
        let l = limits();
        let t = Instant::now();
        assert_eq!(
            Phase::Idle(t).deadline(&l),
            Some((t + l.idle_timeout, Expiry::Idle))
        );
        assert_eq!(
            Phase::Head(t).deadline(&l),
            Some((t + l.header_read_timeout, Expiry::Header))
        );
        assert_eq!(Phase::Busy.deadline(&l), None);
        let endless = ConnectionLimits {
            idle_timeout: Duration::MAX,
            ..l
        };
        assert_eq!(Phase::Idle(t).deadline(&endless), None);
    }

    #[test]
    fn only_an_idle_connection_starts_a_request_on_bytes() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        let mut p = Phase::Idle(t0);
        assert!(p.on_bytes(|| t1));
        assert_eq!(p, Phase::Head(t1));
        // More bytes of the same head do not restart its clock.
        assert!(!p.on_bytes(|| t1 + Duration::from_secs(1)));
        assert_eq!(p, Phase::Head(t1));
        let mut p = Phase::Busy;
        assert!(!p.on_bytes(|| t1));
        assert_eq!(p, Phase::Busy);
    }

    fn echo(timeout: Duration) -> Router {
        Router::new()
            .route(
                "/",
                axum::routing::post(|body: String| async move { body }).get(|| async { "no body" }),
            )
            .layer(BodyDeadlineLayer::new(timeout))
    }

    #[tokio::test]
    async fn a_body_that_does_not_arrive_in_time_is_a_408() {
        let stalled = Body::from_stream(futures::stream::pending::<Result<Bytes, io::Error>>());
        let response = echo(Duration::from_millis(20))
            .oneshot(
                axum::http::Request::post("/")
                    .header("content-length", "10")
                    .body(stalled)
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), 408);
        assert_eq!(response.headers()[header::CONNECTION], "close");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["code"], "body_timeout");
        assert_eq!(problem["status"], 408);
    }

    #[tokio::test]
    async fn bodies_in_time_and_bodiless_requests_pass() {
        let response = echo(Duration::from_secs(30))
            .oneshot(
                axum::http::Request::post("/")
                    .body(Body::from("hello"))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        assert_eq!(&body[..], b"hello");
        // No body, so no deadline to miss, however short.
        let response = echo(Duration::from_nanos(1))
            .oneshot(axum::http::Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    #[test]
    // figment's Jail closures return its large error type by design.
    #[allow(clippy::result_large_err)]
    fn limits_are_read_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env("DATABASE_URL", "postgres://x@localhost/db");
            jail.set_env("KEYWARD_HEADER_READ_TIMEOUT_MS", "1500");
            jail.set_env("KEYWARD_BODY_TIMEOUT_MS", "2500");
            jail.set_env("KEYWARD_IDLE_TIMEOUT_SECS", "7");
            jail.set_env("KEYWARD_MAX_CONNECTIONS", "12");
            jail.set_env("KEYWARD_SHUTDOWN_GRACE_MS", "0");
            let config = crate::Config::load(None).expect("loads");
            assert_eq!(
                config.connections,
                ConnectionLimits {
                    header_read_timeout: Duration::from_millis(1500),
                    body_timeout: Duration::from_millis(2500),
                    idle_timeout: Duration::from_secs(7),
                    max_connections: 12,
                    shutdown_grace: Duration::ZERO,
                }
            );
            Ok(())
        });
    }
}
