//! Usage counting off the request path: each verification adds one to an in-memory counter per
//! (key, minute, outcome); a background task swaps the map out about once a second and writes
//! it to Postgres in one statement. A failed write is merged back and retried, and shutdown
//! flushes what is left, so counts are neither lost nor written twice.
//!
//! What a flush writes is a [`UsageBatch`] (defined beside its write, in
//! [`crate::store::usage`]); the [`UsageRecorder`] fills it on the request path and the flusher
//! task writes it (`recorder`). Rows past each granularity's retention are deleted by a
//! background job, [`crate::jobs::retention`].

mod recorder;

pub use crate::store::usage::{
    GatewayCell, GatewayKey, LimitEvent, MAX_PENDING_GATEWAY, MAX_PENDING_NETWORKS,
    MAX_ROUTES_PER_KEY, NetworkCell, Unrecognized, UsageBatch, ViolationKey,
};
pub use recorder::{
    CountedKey, DEFAULT_MAX_NETWORKS_PER_KEY, MAX_PENDING_ROWS, UsageRecorder, run_flusher,
};
