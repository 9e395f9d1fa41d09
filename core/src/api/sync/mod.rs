//! Desktop ↔ server sync: pull changes after a cursor (`pull`), push queued operations
//! (`push`), each operation typed and read on its own (`op`).

mod op;
mod pull;
mod push;

#[cfg(test)]
mod tests;

pub use op::{OpKind, OpParseError, PushOp, RefusalCode, RotateOfflineRequest};
pub use pull::{
    Change, ChangeOp, DEFAULT_PULL_LIMIT, Entity, MAX_PULL_LIMIT, PullQuery, PullResponse,
};
#[cfg(feature = "openapi")]
pub use push::ReceivedOp;
pub use push::{MAX_PUSH_OPS, OpResult, OpStatus, PushRequest, PushResponse, ReceivedPush};
