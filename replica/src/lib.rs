//! Keyward's desktop replica and sync engine, free of any UI framework.
//!
//! - [`Replica`] is a SQLite copy of the organisation's keys and audit log. The UI reads only
//!   from it. Local edits ([`Replica::create_key_offline`], [`Replica::update_key`],
//!   [`Replica::revoke_key`], [`Replica::rotate_key_offline`]) are validated with the server's
//!   own rules, written to the replica optimistically and queued in an outbox, in one
//!   transaction.
//! - [`SyncEngine`] pushes the outbox in order (each operation idempotent by its UUIDv7
//!   `op_id`), records each result on the affected key, then pulls what changed since the
//!   replica's cursor. Operations are typed ([`keyward_core::api::PushOp`]) from the moment
//!   they are queued. [`SyncEngine::run_with`] is the desktop's one sync loop (jittered
//!   backoff; the app's status, analytics and notifications hang off its [`SyncHooks`]).
//!
//! - Analytics ([`Replica::store_analytics`]): the organisation's and the busiest keys' hourly
//!   usage over 30 days, top keys, alerts and limit standings, pulled by the app after sync
//!   rounds; [`Replica::notices_to_show`] picks what to notify once (`notified_at`).
//! - A key's gateway traffic (24 hours, 7 days) and networks ([`Replica::store_key_gateway`],
//!   [`Replica::store_key_networks`]), kept as last fetched by the key's detail.
//! - The desktop app's account and its side of the sync loop ([`desktop`]): [`Account`] (client,
//!   replica and sync loop of the signed-in admin, a key's details online-first), the status bar,
//!   analytics pulls and the notifications they raise ([`Analytics`]).
//! - What the desktop's screens read, assembled ([`screens`]): [`Replica::dashboard`],
//!   [`Replica::named_events`], and the sign-in and password forms' checks.
//! - A witness of the server's audit chain ([`witness`]): each pull's signed chain head is
//!   checked against the highest one seen and the key pinned at first sight; a shorter, forked
//!   or badly signed chain raises an [`AuditAlarm`], notified like the alerts.
//!
//! # Secrets
//!
//! The engine never writes a token anywhere: a key made offline returns its [`ApiKeyToken`] to
//! the caller once, and only the token's argon2id hash is stored, inside the `create_key` or
//! `rotate_key` outbox operation that carries it to the server. That row is deleted as soon as
//! the server has applied or refused the operation (with SQLite's `secure_delete`, so its bytes
//! are overwritten). No other table holds a hash; pulled key records never carry one.
//!
//! [`ApiKeyToken`]: keyward_core::ApiKeyToken

mod analytics;
mod backoff;
pub mod desktop;
mod engine;
mod error;
mod filter;
mod gateway;
mod local;
pub mod notify;
mod project;
mod pull;
mod push;
mod rejected;
mod replica;
mod rules;
pub mod screens;
mod store;
mod view;
pub mod witness;

pub use analytics::{
    AnalyticsSnapshot, EVENTS_KEPT, KeyHourly, StoredAlert, TopKeys, USAGE_RETENTION,
};
pub use backoff::{backoff_delay, jittered_backoff};
pub use desktop::{Account, Analytics, FetchError, Notifier};
pub use engine::{LoopPolicy, MAX_PUSH_BATCH, SyncEngine, SyncHooks, SyncReport};
pub use error::{LocalOpError, ReplicaError, SyncError};
pub use filter::{KeyFilter, KeySort};
pub use keyward_core::SyncState;
pub use local::DEFAULT_ROTATION_GRACE_SECS;
pub use notify::{Notice, NoticeKind};
pub use replica::Replica;
pub use screens::DashboardData;
pub use view::{ChangedField, LocalKey, RejectedChange, Rejection};
pub use witness::{AuditAlarm, AuditAlarmKind, Witness};
