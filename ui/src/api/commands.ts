// The one seam between the UI and the Rust side: typed wrappers around Tauri's `invoke`.
// Component tests replace this module (vi.mock("../api/commands")) instead of faking IPC.
//
// Tauri 2 maps the camelCase argument names used here to the commands' snake_case parameters
// (`serverUrl` → `server_url`, `graceSeconds` → `grace_seconds`, `beforeSeq` → `before_seq`).
// Struct arguments (`filter`, `form`, `edit`, `revocation`) keep their snake_case fields: serde
// reads them as they are.
import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import { save } from "@tauri-apps/plugin-dialog";
import type {
  Alert, AlertStatus, AlertsView, AuditEntry, CommandError, Dashboard, DashboardPeriod, FieldError, GatewayPeriod, GatewaySnapshot,
  Granularity, IssuedKey, KeyDetail, KeyEdit, KeyEventsView, KeyFilter, KeyList, KeyListItem, LimitsSnapshot, NetworksSnapshot, NewKeyForm,
  ReportFormat, ReportRequest, ReportSaved, Revocation, Session, SyncStatus, Thresholds, UsageSeries,
} from "../bindings";

function isFieldError(f: unknown): f is FieldError {
  return !!f && typeof f === "object" && typeof (f as FieldError).field === "string";
}

/**
 * Turns whatever a command rejected with into a CommandError: the Rust side rejects with one
 * already; Tauri itself rejects with a plain string (unknown command, arguments that do not
 * deserialize) and a broken bridge with an Error.
 */
export function toCommandError(e: unknown): CommandError {
  if (e && typeof e === "object" && "code" in e && typeof (e as CommandError).code === "string") {
    const c = e as Partial<CommandError>;
    return {
      code: String(c.code),
      message: typeof c.message === "string" && c.message ? c.message : String(c.code),
      fields: Array.isArray(c.fields)
        ? c.fields.filter(isFieldError).map((f) => ({ field: f.field, code: String(f.code ?? "invalid"), message: String(f.message ?? "") }))
        : [],
    };
  }
  const message =
    typeof e === "string" ? e
    : e instanceof Error ? e.message
    : "something went wrong";
  return { code: "internal", message: message || "something went wrong", fields: [] };
}

export function isCommandError(e: unknown): e is CommandError {
  return !!e && typeof e === "object" && typeof (e as CommandError).code === "string" && Array.isArray((e as CommandError).fields);
}

/** The session ended (or never began): the app goes back to sign-in. */
export function isUnauthenticated(e: unknown): boolean {
  return isCommandError(e) && e.code === "unauthenticated";
}

async function call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(cmd, args);
  } catch (e) {
    throw toCommandError(e);
  }
}

export const login = (serverUrl: string, email: string, password: string) =>
  call<Session>("login", { serverUrl, email, password });
export const logout = () => call<void>("logout");
/** Changes the account's password on the server (refused offline); other devices are signed out. */
export const changePassword = (currentPassword: string, newPassword: string) =>
  call<void>("change_password", { currentPassword, newPassword });
/** Ends every session of the account on the server, this one included (refused offline). */
export const logoutEverywhere = () => call<void>("logout_everywhere");
export const currentSession = () => call<Session | null>("current_session");
export const listKeys = (filter: KeyFilter) => call<KeyList>("list_keys", { filter });
export const getKey = (id: string) => call<KeyDetail>("get_key", { id });
export const createKey = (form: NewKeyForm) => call<IssuedKey>("create_key", { form });
export const updateKey = (id: string, edit: KeyEdit) => call<KeyListItem>("update_key", { id, edit });
export const revokeKey = (id: string, revocation: Revocation) =>
  call<KeyListItem>("revoke_key", { id, revocation });
export const rotateKey = (id: string, graceSeconds: number) => call<IssuedKey>("rotate_key", { id, graceSeconds });
export const auditLog = (limit: number, beforeSeq: number | null) =>
  call<AuditEntry[]>("audit_log", { limit, beforeSeq });
export const syncStatus = () => call<SyncStatus>("sync_status");
export const syncNow = () => call<SyncStatus>("sync_now");
export const keyUsage = (id: string, granularity: Granularity) =>
  call<UsageSeries>("key_usage", { id, granularity });
export const keyLimits = (id: string) => call<LimitsSnapshot>("key_limits", { id });
/** A key's gateway traffic over the period (the server's when online, else the last copy kept). */
export const keyGateway = (id: string, period: GatewayPeriod) => call<GatewaySnapshot>("key_gateway", { id, period });
/** The networks a key was used from, most recent first (the server's when online, else the last copy kept). */
export const keyNetworks = (id: string) => call<NetworksSnapshot>("key_networks", { id });
/** The organisation's anomaly thresholds (read from the server). */
export const alertSettings = () => call<Thresholds>("alert_settings");
/** Saves the organisation's anomaly thresholds on the server (refused offline). */
export const setAlertSettings = (thresholds: Thresholds) => call<Thresholds>("set_alert_settings", { thresholds });
export const dashboard = (period: DashboardPeriod) => call<Dashboard>("dashboard", { period });
/** Alerts as last synced; `null`: every status. */
export const alerts = (status: AlertStatus | null) => call<AlertsView>("alerts", { status });
export const ackAlert = (id: string) => call<Alert>("ack_alert", { id });
/** The organisation's events (key revoked, expired, quota exceeded...) as last synced, newest first. */
export const events = () => call<KeyEventsView>("events");
export const saveReport = (request: ReportRequest) => call<ReportSaved>("save_report", { request });

/**
 * Asks where to save a report with the native save dialog (dialog plugin); `null` when the
 * user cancels.
 */
export async function chooseReportPath(defaultName: string, format: ReportFormat): Promise<string | null> {
  try {
    return await save({
      title: "Save usage report",
      defaultPath: defaultName,
      filters: format === "csv" ? [{ name: "CSV", extensions: ["csv"] }] : [{ name: "JSON", extensions: ["json"] }],
    });
  } catch (e) {
    throw toCommandError(e);
  }
}

/** The backend's `sync-status` event (sent whenever the status changes). */
export const onSyncStatus = (f: (s: SyncStatus) => void): Promise<UnlistenFn> =>
  listen<SyncStatus>("sync-status", (e) => f(e.payload));
