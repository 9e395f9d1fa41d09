//! Tauri commands: one line each, into [`Desktop`]. Everything testable lives there.

use keyward_core::anomaly::Thresholds;
use keyward_core::api::{Alert, AlertStatus, AuditEntry, Granularity};
use keyward_core::{KeyFilter, SyncStatus};
use tauri::State;

use crate::dto::{
    AlertsView, Dashboard, DashboardPeriod, GatewayPeriod, GatewaySnapshot, IssuedKey, KeyDetail,
    KeyEdit, KeyEventsView, KeyList, KeyListItem, LimitsSnapshot, NetworksSnapshot, NewKeyForm,
    RejectedChange, ReportRequest, ReportSaved, Revocation, Session, UsageSeries,
};
use crate::error::CommandError;
use crate::services::Desktop;

type Result<T> = std::result::Result<T, CommandError>;

#[tauri::command]
pub async fn login(
    desktop: State<'_, Desktop>,
    server_url: String,
    email: String,
    password: String,
) -> Result<Session> {
    desktop.login(&server_url, &email, password).await
}

#[tauri::command]
pub async fn logout(desktop: State<'_, Desktop>) -> Result<()> {
    desktop.logout().await
}

/// Changes the account's password on the server (refused offline); other devices are signed out.
#[tauri::command]
pub async fn change_password(
    desktop: State<'_, Desktop>,
    current_password: String,
    new_password: String,
) -> Result<()> {
    desktop
        .change_password(current_password, new_password)
        .await
}

/// Ends every session of the account on the server, this one included (refused offline).
#[tauri::command]
pub async fn logout_everywhere(desktop: State<'_, Desktop>) -> Result<()> {
    desktop.logout_everywhere().await
}

#[tauri::command]
pub async fn current_session(desktop: State<'_, Desktop>) -> Result<Option<Session>> {
    Ok(desktop.current_session().await)
}

#[tauri::command]
pub async fn list_keys(desktop: State<'_, Desktop>, filter: KeyFilter) -> Result<KeyList> {
    desktop.list_keys(filter).await
}

#[tauri::command]
pub async fn get_key(desktop: State<'_, Desktop>, id: String) -> Result<KeyDetail> {
    desktop.get_key(&id).await
}

#[tauri::command]
pub async fn create_key(desktop: State<'_, Desktop>, form: NewKeyForm) -> Result<IssuedKey> {
    desktop.create_key(form).await
}

#[tauri::command]
pub async fn update_key(
    desktop: State<'_, Desktop>,
    id: String,
    edit: KeyEdit,
) -> Result<KeyListItem> {
    desktop.update_key(&id, edit).await
}

#[tauri::command]
pub async fn revoke_key(
    desktop: State<'_, Desktop>,
    id: String,
    revocation: Revocation,
) -> Result<KeyListItem> {
    desktop.revoke_key(&id, revocation).await
}

#[tauri::command]
pub async fn rotate_key(
    desktop: State<'_, Desktop>,
    id: String,
    grace_seconds: u32,
) -> Result<IssuedKey> {
    desktop.rotate_key(&id, grace_seconds).await
}

/// Changes the server refused, newest first, until retried or discarded.
#[tauri::command]
pub async fn rejected_changes(desktop: State<'_, Desktop>) -> Result<Vec<RejectedChange>> {
    desktop.rejected_changes().await
}

/// Sends a refused edit or revocation again, on the key as the server has it now.
#[tauri::command]
pub async fn retry_rejected(desktop: State<'_, Desktop>, op_id: String) -> Result<KeyListItem> {
    desktop.retry_rejected(&op_id).await
}

/// Forgets a refused change and clears the refusal shown on its key.
#[tauri::command]
pub async fn discard_rejected(desktop: State<'_, Desktop>, op_id: String) -> Result<()> {
    desktop.discard_rejected(&op_id).await
}

/// Clears the refusal marker shown on a key (the refused change stays listed).
#[tauri::command]
pub async fn dismiss_key_error(desktop: State<'_, Desktop>, id: String) -> Result<()> {
    desktop.dismiss_key_error(&id).await
}

#[tauri::command]
pub async fn audit_log(
    desktop: State<'_, Desktop>,
    limit: u32,
    before_seq: Option<i64>,
) -> Result<Vec<AuditEntry>> {
    desktop.audit_log(limit, before_seq).await
}

#[tauri::command]
pub async fn sync_status(desktop: State<'_, Desktop>) -> Result<SyncStatus> {
    Ok(desktop.sync_status().await)
}

#[tauri::command]
pub async fn sync_now(desktop: State<'_, Desktop>) -> Result<SyncStatus> {
    desktop.sync_now().await
}

#[tauri::command]
pub async fn key_usage(
    desktop: State<'_, Desktop>,
    id: String,
    granularity: Granularity,
) -> Result<UsageSeries> {
    desktop.key_usage(&id, granularity).await
}

#[tauri::command]
pub async fn key_limits(desktop: State<'_, Desktop>, id: String) -> Result<LimitsSnapshot> {
    desktop.key_limits(&id).await
}

/// A key's gateway traffic over the period (the server's when online, else the last copy kept).
#[tauri::command]
pub async fn key_gateway(
    desktop: State<'_, Desktop>,
    id: String,
    period: GatewayPeriod,
) -> Result<GatewaySnapshot> {
    desktop.key_gateway(&id, period).await
}

/// The networks a key was used from, most recent first (the server's when online, else the last copy kept).
#[tauri::command]
pub async fn key_networks(desktop: State<'_, Desktop>, id: String) -> Result<NetworksSnapshot> {
    desktop.key_networks(&id).await
}

/// The organisation's anomaly thresholds (read from the server).
#[tauri::command]
pub async fn alert_settings(desktop: State<'_, Desktop>) -> Result<Thresholds> {
    desktop.alert_settings().await
}

/// Saves the organisation's anomaly thresholds on the server (refused offline).
#[tauri::command]
pub async fn set_alert_settings(
    desktop: State<'_, Desktop>,
    thresholds: Thresholds,
) -> Result<Thresholds> {
    desktop.set_alert_settings(thresholds).await
}

#[tauri::command]
pub async fn dashboard(desktop: State<'_, Desktop>, period: DashboardPeriod) -> Result<Dashboard> {
    desktop.dashboard(period).await
}

/// Alerts as last synced; `null`: every status.
#[tauri::command]
pub async fn alerts(
    desktop: State<'_, Desktop>,
    status: Option<AlertStatus>,
) -> Result<AlertsView> {
    desktop.alerts(status).await
}

/// The organisation's events as last synced (the Alerts screen's "Key events").
#[tauri::command]
pub async fn events(desktop: State<'_, Desktop>) -> Result<KeyEventsView> {
    desktop.events().await
}

#[tauri::command]
pub async fn ack_alert(desktop: State<'_, Desktop>, id: String) -> Result<Alert> {
    desktop.ack_alert(&id).await
}

#[tauri::command]
pub async fn save_report(
    desktop: State<'_, Desktop>,
    request: ReportRequest,
) -> Result<ReportSaved> {
    desktop.save_report(request).await
}

#[cfg(test)]
mod tests;
