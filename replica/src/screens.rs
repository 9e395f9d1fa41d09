//! What the desktop's screens read from the replica, assembled (the dashboard, the events with
//! their keys' names), and the sign-in and password forms' checks made before the server is
//! asked. The app's shell only reshapes these for its UI.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use keyward_core::api::webhooks::WebhookEvent;
use keyward_core::api::{
    Alert, AlertStatus, FieldError, Granularity, OrgEvent, OrgUsage, UsageTotals,
};
use keyward_core::{KeyFilter, KeyId};

use crate::{Notice, Replica, ReplicaError};

/// The most keys or audit entries one page of a list shows.
pub const MAX_PAGE: u32 = 500;

/// The key list's query from its filter form: blank text boxes mean "any"; a page is 1 to
/// [`MAX_PAGE`] keys ([`MAX_PAGE`] when unsaid).
pub fn key_page(filter: KeyFilter) -> KeyFilter {
    KeyFilter {
        search: filter.search.filter(|s| !s.trim().is_empty()),
        scope: filter.scope.filter(|s| !s.trim().is_empty()),
        limit: Some(filter.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE)),
        ..filter
    }
}

/// The dashboard's data over a period ending at the last analytics pull.
#[derive(Debug, Clone)]
pub struct DashboardData {
    pub usage: OrgUsage,
    /// Open alerts, newest first.
    pub alerts: Vec<Alert>,
    /// Keys close to expiry or a limit ([`Replica::attention`]).
    pub attention: Vec<Notice>,
    /// When analytics were last pulled (the period's end).
    pub at: DateTime<Utc>,
}

/// The key name an event's payload carries (key events do; limit and alert events do not).
pub fn event_key_name(event: &WebhookEvent) -> Option<String> {
    use WebhookEvent as E;
    match event {
        E::KeyCreated(d) => Some(d.name.clone()),
        E::KeyRevoked(d) => Some(d.name.clone()),
        E::KeyRotated(d) => Some(d.name.clone()),
        E::KeyExpired(d) => Some(d.name.clone()),
        E::KeyExpiring(d) | E::KeyUnused(d) => Some(d.name.clone()),
        _ => None,
    }
}

/// The sign-in form's missing fields (`email`, `password`), before the server is asked.
pub fn sign_in_problems(email: &str, password: &str) -> Vec<FieldError> {
    let mut fields = Vec::new();
    if email.trim().is_empty() {
        fields.push(FieldError::new("email", "required", "is required"));
    }
    if password.is_empty() {
        fields.push(FieldError::new("password", "required", "is required"));
    }
    fields
}

/// The new password's problems, checked as the server checks them, before it is asked.
pub fn new_password_problems(current: &str, new: &str) -> Vec<FieldError> {
    let mut fields = Vec::new();
    if current.is_empty() {
        fields.push(FieldError::new(
            "current_password",
            "required",
            "is required",
        ));
    }
    match keyward_core::hash::check_password_policy(new) {
        Err(e) => fields.push(FieldError::new(
            "new_password",
            "weak_password",
            e.to_string(),
        )),
        Ok(()) if new == current => fields.push(FieldError::new(
            "new_password",
            "unchanged",
            "must differ from the current password",
        )),
        Ok(()) => {}
    }
    fields
}

impl Replica {
    /// The organisation's usage over the `span` before the last analytics pull (`granularity`
    /// hour or day; `period` names the top keys' period), its open alerts and the keys close to
    /// expiry or a limit; `None` before the first analytics pull.
    pub async fn dashboard(
        &self,
        period: &str,
        span: chrono::Duration,
        granularity: Granularity,
    ) -> Result<Option<DashboardData>, ReplicaError> {
        let Some(at) = self.analytics_at().await? else {
            return Ok(None);
        };
        let from = at - span;
        let series = self
            .org_usage(from, at, granularity == Granularity::Day)
            .await?;
        let totals = UsageTotals::of(&series);
        let share = |part: i64| match totals.total() {
            0 => 0.0,
            all => part as f64 / all as f64,
        };
        let (top_by_volume, top_by_rejections) = self.top_keys(period).await?;
        let alerts = self
            .alerts(Some(AlertStatus::Open))
            .await?
            .into_iter()
            .map(|s| s.alert)
            .collect();
        let attention = self.attention(Utc::now()).await?;
        Ok(Some(DashboardData {
            usage: OrgUsage {
                granularity,
                from,
                to: at,
                error_share: share(totals.rejected),
                rate_limited_share: share(totals.rate_limited),
                series,
                totals,
                top_by_volume,
                top_by_rejections,
                by_key: None,
                by_outcome: None,
            },
            alerts,
            attention,
            at,
        }))
    }

    /// The last `limit` events, newest first, each with its key's name: the replica's, else
    /// the one the event carries (`None`: unknown).
    pub async fn named_events(
        &self,
        limit: u32,
    ) -> Result<Vec<(OrgEvent, Option<String>)>, ReplicaError> {
        let events = self.events(limit).await?;
        let mut names: HashMap<KeyId, Option<String>> = HashMap::new();
        let mut items = Vec::with_capacity(events.len());
        for event in events {
            let local = match event.key_id {
                Some(id) => match names.get(&id) {
                    Some(name) => name.clone(),
                    None => {
                        let name = self.key(id).await?.map(|k| k.key.name);
                        names.insert(id, name.clone());
                        name
                    }
                },
                None => None,
            };
            let key_name = local.or_else(|| event_key_name(&event.event));
            items.push((event, key_name));
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_needs_an_email_and_a_password() {
        let fields = sign_in_problems("  ", "");
        assert_eq!(
            fields.iter().map(|f| f.field.as_str()).collect::<Vec<_>>(),
            ["email", "password"]
        );
        assert!(sign_in_problems("ann@example.com", "x").is_empty());
    }

    #[test]
    fn a_new_password_must_pass_the_policy_and_differ() {
        let strong = "correct horse battery staple 42";
        let codes = |c: &str, n: &str| {
            new_password_problems(c, n)
                .into_iter()
                .map(|f| (f.field, f.code))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            codes("", strong),
            [("current_password".to_owned(), "required".to_owned())]
        );
        assert_eq!(
            codes(strong, strong),
            [("new_password".to_owned(), "unchanged".to_owned())]
        );
        assert_eq!(
            codes("old", "x"),
            [("new_password".to_owned(), "weak_password".to_owned())]
        );
        assert!(codes("old password", strong).is_empty());
    }

    #[test]
    fn blank_boxes_mean_any_and_pages_are_bounded() {
        let page = key_page(KeyFilter {
            search: Some("  ".into()),
            scope: Some("".into()),
            ..KeyFilter::default()
        });
        assert_eq!(page.search, None);
        assert_eq!(page.scope, None);
        assert_eq!(page.limit, Some(MAX_PAGE));
        let kept = key_page(KeyFilter {
            search: Some("prod".into()),
            limit: Some(0),
            ..KeyFilter::default()
        });
        assert_eq!(kept.search.as_deref(), Some("prod"));
        assert_eq!(kept.limit, Some(1));
        let capped = key_page(KeyFilter {
            limit: Some(10_000),
            ..KeyFilter::default()
        });
        assert_eq!(capped.limit, Some(MAX_PAGE));
    }

    #[tokio::test]
    async fn no_dashboard_before_the_first_analytics_pull() {
        let replica = Replica::in_memory().await.unwrap();
        let none = replica
            .dashboard("day", chrono::Duration::hours(24), Granularity::Hour)
            .await
            .unwrap();
        assert!(none.is_none());
        assert!(replica.named_events(10).await.unwrap().is_empty());
    }
}
