// Generated from the #[tauri::command] functions in src-tauri/src/commands.rs by
// src-tauri/src/bindings.rs. Do not edit: change the command and regenerate.
import type { Alert, AlertStatus, AlertsView, AuditEntry, Dashboard, DashboardPeriod, GatewayPeriod, GatewaySnapshot, Granularity, IssuedKey, KeyDetail, KeyEdit, KeyEventsView, KeyFilter, KeyList, KeyListItem, LimitsSnapshot, NetworksSnapshot, NewKeyForm, RejectedChange, ReportRequest, ReportSaved, Revocation, Session, SyncStatus, Thresholds, UsageSeries } from "../bindings";
import { call } from "./call";

export const login = (serverUrl: string, email: string, password: string) =>
  call<Session>("login", { serverUrl, email, password });

export const logout = () =>
  call<void>("logout");

/** Changes the account's password on the server (refused offline); other devices are signed out. */
export const changePassword = (currentPassword: string, newPassword: string) =>
  call<void>("change_password", { currentPassword, newPassword });

/** Ends every session of the account on the server, this one included (refused offline). */
export const logoutEverywhere = () =>
  call<void>("logout_everywhere");

export const currentSession = () =>
  call<Session | null>("current_session");

export const listKeys = (filter: KeyFilter) =>
  call<KeyList>("list_keys", { filter });

export const getKey = (id: string) =>
  call<KeyDetail>("get_key", { id });

export const createKey = (form: NewKeyForm) =>
  call<IssuedKey>("create_key", { form });

export const updateKey = (id: string, edit: KeyEdit) =>
  call<KeyListItem>("update_key", { id, edit });

export const revokeKey = (id: string, revocation: Revocation) =>
  call<KeyListItem>("revoke_key", { id, revocation });

export const rotateKey = (id: string, graceSeconds: number) =>
  call<IssuedKey>("rotate_key", { id, graceSeconds });

/** Changes the server refused, newest first, until retried or discarded. */
export const rejectedChanges = () =>
  call<RejectedChange[]>("rejected_changes");

/** Sends a refused edit or revocation again, on the key as the server has it now. */
export const retryRejected = (opId: string) =>
  call<KeyListItem>("retry_rejected", { opId });

/** Forgets a refused change and clears the refusal shown on its key. */
export const discardRejected = (opId: string) =>
  call<void>("discard_rejected", { opId });

/** Clears the refusal marker shown on a key (the refused change stays listed). */
export const dismissKeyError = (id: string) =>
  call<void>("dismiss_key_error", { id });

export const auditLog = (limit: number, beforeSeq: number | null) =>
  call<AuditEntry[]>("audit_log", { limit, beforeSeq });

export const syncStatus = () =>
  call<SyncStatus>("sync_status");

export const syncNow = () =>
  call<SyncStatus>("sync_now");

export const keyUsage = (id: string, granularity: Granularity) =>
  call<UsageSeries>("key_usage", { id, granularity });

export const keyLimits = (id: string) =>
  call<LimitsSnapshot>("key_limits", { id });

/** A key's gateway traffic over the period (the server's when online, else the last copy kept). */
export const keyGateway = (id: string, period: GatewayPeriod) =>
  call<GatewaySnapshot>("key_gateway", { id, period });

/** The networks a key was used from, most recent first (the server's when online, else the last copy kept). */
export const keyNetworks = (id: string) =>
  call<NetworksSnapshot>("key_networks", { id });

/** The organisation's anomaly thresholds (read from the server). */
export const alertSettings = () =>
  call<Thresholds>("alert_settings");

/** Saves the organisation's anomaly thresholds on the server (refused offline). */
export const setAlertSettings = (thresholds: Thresholds) =>
  call<Thresholds>("set_alert_settings", { thresholds });

export const dashboard = (period: DashboardPeriod) =>
  call<Dashboard>("dashboard", { period });

/** Alerts as last synced; `null`: every status. */
export const alerts = (status: AlertStatus | null) =>
  call<AlertsView>("alerts", { status });

/** The organisation's events as last synced (the Alerts screen's "Key events"). */
export const events = () =>
  call<KeyEventsView>("events");

export const ackAlert = (id: string) =>
  call<Alert>("ack_alert", { id });

export const saveReport = (request: ReportRequest) =>
  call<ReportSaved>("save_report", { request });
