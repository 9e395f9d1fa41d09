//! Cursor pagination: `{"items": [...], "next_cursor": "..." | null}`.

use serde::{Deserialize, Serialize};

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Opaque; pass it back as `cursor` for the next page. `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `?limit=&cursor=` for lists that have no other filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// 1..=500, default 50.
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 500))]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page (an id, base64url without padding).
    #[cfg_attr(feature = "openapi", param(pattern = r"^[A-Za-z0-9_-]{21}[AQgw]$"))]
    pub cursor: Option<String>,
}
