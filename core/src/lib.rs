//! Keyward's domain core: pure logic shared by the server, the client and the desktop app.
//! No I/O lives here: no HTTP, no database, no Tauri.

pub mod anomaly;
pub mod api;
pub mod audit_head;
pub mod csv;
pub mod gateway;
pub mod hash;
pub mod ids;
pub mod ip;
pub mod key_filter;
pub mod latency;
pub mod limit;
pub mod requests;
pub mod scope;
pub mod status;
pub mod sync_status;
pub mod time;
pub mod token;
pub mod validate;
pub mod verifier;
pub mod webhook_url;

pub use ids::{AdminId, KeyId, OrgId};
pub use ip::IpAllowList;
pub use key_filter::{KeyFilter, KeySort};
pub use scope::{Scope, ScopeSet};
pub use status::KeyStatus;
pub use sync_status::{SyncState, SyncStatus};
pub use token::{ApiKeyToken, Environment, ParsedToken, TokenError};
