//! The event log (`/v1/events`).

use keyward_core::api::{EventsQuery, OrgEvent, Page};
use reqwest::Method;

use super::{KeywardClient, Result, json};

impl KeywardClient {
    /// One page of the organisation's events, newest first (`q`: paging, `type`, `key_id`).
    pub async fn events(&self, q: &EventsQuery) -> Result<Page<OrgEvent>> {
        json(
            self.admin(Method::GET, "/v1/events")?
                .query(q)
                .send()
                .await?,
        )
        .await
    }
}
