// The one seam between the UI and the Rust side: typed wrappers around Tauri's `invoke`.
// Component tests replace this module (vi.mock) instead of faking IPC.
import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type {
  AuditEntry, CommandError, Granularity, IssuedKey, KeyDetail, KeyEdit, KeyFilter, KeyList,
  KeyListItem, NewKeyForm, Revocation, Session, SyncStatus, UsageSeries,
} from "../bindings";

/** Turns whatever a command rejected with into a CommandError. */
export function toCommandError(e: unknown): CommandError {
  if (e && typeof e === "object" && "code" in e && "message" in e) {
    const c = e as Partial<CommandError>;
    return { code: String(c.code), message: String(c.message), fields: Array.isArray(c.fields) ? c.fields : [] };
  }
  return { code: "internal", message: typeof e === "string" ? e : "something went wrong", fields: [] };
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
export const currentSession = () => call<Session | null>("current_session");
export const listKeys = (filter: KeyFilter) => call<KeyList>("list_keys", { filter });
export const getKey = (id: string) => call<KeyDetail>("get_key", { id });
export const createKey = (form: NewKeyForm) => call<IssuedKey>("create_key", { form });
export const updateKey = (id: string, edit: KeyEdit) => call<KeyListItem>("update_key", { id, edit });
export const revokeKey = (id: string, revocation: Revocation) => call<KeyListItem>("revoke_key", { id, revocation });
export const rotateKey = (id: string, graceSeconds: number) => call<IssuedKey>("rotate_key", { id, graceSeconds });
export const auditLog = (limit: number, beforeSeq: number | null) =>
  call<AuditEntry[]>("audit_log", { limit, beforeSeq });
export const syncStatus = () => call<SyncStatus>("sync_status");
export const syncNow = () => call<SyncStatus>("sync_now");
export const keyUsage = (id: string, granularity: Granularity) => call<UsageSeries>("key_usage", { id, granularity });
export const onSyncStatus = (f: (s: SyncStatus) => void): Promise<UnlistenFn> =>
  listen<SyncStatus>("sync-status", (e) => f(e.payload));
