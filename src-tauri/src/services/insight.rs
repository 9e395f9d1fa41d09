//! Everything the screens show besides keys: the sync status and "Sync now", a key's usage,
//! limits, gateway traffic and networks (online first, the replica as fallback), alert
//! settings, the dashboard, alerts, events and the usage report.

use keyward_core::SyncStatus;
use keyward_core::anomaly::Thresholds;
use keyward_core::api::{Alert, AlertStatus, FieldError, Granularity};
use keyward_replica::SyncError;

use super::{Desktop, Result, parse_id};
use crate::dto::{
    AlertsView, Attention, Dashboard, DashboardPeriod, GatewayPeriod, GatewaySnapshot, KeyEvent,
    KeyEventsView, LimitsSnapshot, NetworksSnapshot, ReportRequest, ReportSaved, UsageSeries,
};
use crate::error::{CommandError, fetch_error, needs_server, no_copy, replica_error};

impl Desktop {
    pub async fn sync_status(&self) -> SyncStatus {
        self.status.borrow().clone()
    }

    /// One sync round now, then an analytics pull; answers with the resulting status (offline
    /// is a status, not an error).
    pub async fn sync_now(&self) -> Result<SyncStatus> {
        let account = self.account().await?;
        if let Err(SyncError::Unauthorized) = account.sync_now().await {
            return Err(CommandError::unauthenticated());
        }
        Ok(self.sync_status().await)
    }

    /// A key's usage over the last 30 days, by hour or by UTC day, from the replica. A key
    /// outside the busiest ones an analytics pull covers gets its series fetched here when
    /// online (and kept in the replica); offline, the replica answers alone.
    pub async fn key_usage(&self, id: &str, granularity: Granularity) -> Result<UsageSeries> {
        let id = parse_id(id)?;
        if granularity == Granularity::Minute {
            return Err(CommandError::validation(vec![FieldError::new(
                "granularity",
                "unsupported",
                "this device keeps hourly usage; choose hour or day",
            )]));
        }
        let (points, fetched_at) = self
            .account()
            .await?
            .key_usage(id, granularity == Granularity::Day)
            .await
            .map_err(fetch_error)?;
        Ok(UsageSeries {
            key_id: id,
            granularity,
            points,
            fetched_at,
        })
    }

    /// A key's standing against its rate limits and quotas from the server when online (kept
    /// in the replica), else the replica's copy; offline with no copy is an `offline` error
    /// (counters cannot be made up).
    pub async fn key_limits(&self, id: &str) -> Result<LimitsSnapshot> {
        let id = parse_id(id)?;
        let (limits, fetched_at) = self
            .account()
            .await?
            .key_limits(id)
            .await
            .map_err(fetch_error)?
            .ok_or_else(|| no_copy("this key's limits"))?;
        Ok(LimitsSnapshot { limits, fetched_at })
    }

    /// A key's gateway calls over `period` (its total first, then each route group) from the
    /// server when online (kept in the replica), else the replica's last copy; offline with no
    /// copy is an `offline` error.
    pub async fn key_gateway(&self, id: &str, period: GatewayPeriod) -> Result<GatewaySnapshot> {
        let id = parse_id(id)?;
        let (usage, fetched_at) = self
            .account()
            .await?
            .key_gateway(id, period.as_str(), period.span())
            .await
            .map_err(fetch_error)?
            .ok_or_else(|| no_copy("this key's gateway traffic"))?;
        Ok(GatewaySnapshot {
            key_id: id,
            period,
            usage,
            fetched_at,
        })
    }

    /// The networks a key was used from, most recent first: from the server when online (kept
    /// in the replica), else the replica's last copy; offline with no copy is `offline`.
    pub async fn key_networks(&self, id: &str) -> Result<NetworksSnapshot> {
        let id = parse_id(id)?;
        let (items, fetched_at) = self
            .account()
            .await?
            .key_networks(id)
            .await
            .map_err(fetch_error)?
            .ok_or_else(|| no_copy("the networks this key was used from"))?;
        Ok(NetworksSnapshot {
            key_id: id,
            items,
            fetched_at,
        })
    }

    /// The organisation's anomaly thresholds, read from the server (offline: `offline`).
    pub async fn alert_settings(&self) -> Result<Thresholds> {
        let client = self.with(|c| c.account.client().clone()).await?;
        client
            .alert_settings()
            .await
            .map_err(needs_server("reading alert sensitivity"))
    }

    /// Replaces the organisation's anomaly thresholds on the server (audited there). The
    /// server checks every field ([`Thresholds::validate`]) and refuses out-of-range ones
    /// field by field (`validation_failed` with `fields`), viewers with `forbidden`. Needs the
    /// server: offline it is refused, not queued.
    pub async fn set_alert_settings(&self, thresholds: Thresholds) -> Result<Thresholds> {
        let client = self.with(|c| c.account.client().clone()).await?;
        client
            .set_alert_settings(&thresholds)
            .await
            .map_err(needs_server("saving alert sensitivity"))
    }

    /// The organisation's usage over a period (ending at the last analytics sync), its open
    /// alerts and the keys close to expiry or a limit, from the replica only.
    pub async fn dashboard(&self, period: DashboardPeriod) -> Result<Dashboard> {
        let (span, granularity) = match period {
            DashboardPeriod::Day => (chrono::Duration::hours(24), Granularity::Hour),
            DashboardPeriod::Week => (chrono::Duration::days(7), Granularity::Hour),
            DashboardPeriod::Month => (chrono::Duration::days(30), Granularity::Day),
        };
        let Some(data) = self
            .replica()
            .await?
            .dashboard(period.as_str(), span, granularity)
            .await
            .map_err(replica_error)?
        else {
            return Err(CommandError::new(
                "not_synced",
                "this device has not synced usage yet; it arrives with the next sync while online",
            ));
        };
        let attention = data
            .attention
            .into_iter()
            .filter_map(|n| {
                Some(Attention {
                    kind: n.kind.as_str().to_owned(),
                    key_id: n.key_id?,
                    key_name: n.key_name,
                    detail: n.body,
                })
            })
            .collect();
        Ok(Dashboard {
            period,
            usage: data.usage,
            alerts: data.alerts,
            attention,
            fetched_at: data.at,
        })
    }

    /// Alerts as last synced (`status`: only those; `None`: all), newest first.
    pub async fn alerts(&self, status: Option<AlertStatus>) -> Result<AlertsView> {
        let replica = self.replica().await?;
        let items = replica
            .alerts(status)
            .await
            .map_err(replica_error)?
            .into_iter()
            .map(|s| s.alert)
            .collect();
        let synced_at = replica.analytics_at().await.map_err(replica_error)?;
        Ok(AlertsView { items, synced_at })
    }

    /// The organisation's events (key created, revoked, expired..., quotas, alerts) as last
    /// synced, newest first, each with its key's name: from the replica only, so offline they
    /// show the last pull and when it was made.
    pub async fn events(&self) -> Result<KeyEventsView> {
        let replica = self.replica().await?;
        let items = replica
            .named_events(keyward_replica::EVENTS_KEPT)
            .await
            .map_err(replica_error)?
            .into_iter()
            .map(|(event, key_name)| KeyEvent { event, key_name })
            .collect();
        let synced_at = replica.analytics_at().await.map_err(replica_error)?;
        Ok(KeyEventsView { items, synced_at })
    }

    /// Acknowledges an open alert on the server (audited there) and stores its new state.
    /// Needs the server: offline it is refused, not queued (the outbox carries key operations
    /// only, and an acknowledgement made blind could hit an alert resolved meanwhile).
    pub async fn ack_alert(&self, id: &str) -> Result<Alert> {
        let id: uuid::Uuid = id
            .parse()
            .map_err(|_| CommandError::new("not_found", "no such alert"))?;
        let (client, replica) = self
            .with(|c| (c.account.client().clone(), c.account.replica().clone()))
            .await?;
        let alert = client
            .ack_alert(id)
            .await
            .map_err(needs_server("acknowledging an alert"))?;
        replica.put_alert(&alert).await.map_err(replica_error)?;
        Ok(alert)
    }

    /// Streams the usage report for `req`'s period to `req.path` (see [`crate::report`]).
    pub async fn save_report(&self, req: ReportRequest) -> Result<ReportSaved> {
        let client = self.with(|c| c.account.client().clone()).await?;
        crate::report::save(&client, &req).await
    }
}
