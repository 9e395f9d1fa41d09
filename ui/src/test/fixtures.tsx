// Shared test data and the mocked commands module (tests substitute ../api/commands with it).
import { vi } from "vitest";
import type {
  Alert, ApiKey, AuditEntry, CommandError, KeyEvent, KeyList, KeyListItem, LimitsSnapshot, LimitUsage, Session, SyncStatus,
} from "../bindings";
import type * as Commands from "../api/commands";

/** The commands module with every command a vi.fn(); the pure helpers stay real. */
export async function commandsMock() {
  const actual = await vi.importActual<typeof Commands>("../api/commands");
  return {
    toCommandError: actual.toCommandError,
    isCommandError: actual.isCommandError,
    isUnauthenticated: actual.isUnauthenticated,
    login: vi.fn(), logout: vi.fn(), currentSession: vi.fn(), listKeys: vi.fn(), getKey: vi.fn(),
    createKey: vi.fn(), updateKey: vi.fn(), revokeKey: vi.fn(), rotateKey: vi.fn(), auditLog: vi.fn(),
    syncStatus: vi.fn(), syncNow: vi.fn(), keyUsage: vi.fn(), keyLimits: vi.fn(), dashboard: vi.fn(),
    alerts: vi.fn(), ackAlert: vi.fn(), events: vi.fn(), saveReport: vi.fn(), chooseReportPath: vi.fn(),
    keyGateway: vi.fn(), keyNetworks: vi.fn(), alertSettings: vi.fn(), setAlertSettings: vi.fn(),
    changePassword: vi.fn(), logoutEverywhere: vi.fn(), onSyncStatus: vi.fn(),
    rejectedChanges: vi.fn(async () => []), retryRejected: vi.fn(), discardRejected: vi.fn(), dismissKeyError: vi.fn(),
  };
}

/** The chart module: a fake UsageChart. */
export const chart = { setSeries: vi.fn(), destroy: vi.fn() };
export function chartMock() {
  return { mountUsageChart: vi.fn(async () => chart) };
}

export const session: Session = { server_url: "http://127.0.0.1:8080", email: "ada@acme.test", role: "owner", org_id: "org-1", org_name: "Acme" };
export const viewer: Session = { ...session, email: "vic@acme.test", role: "viewer" };
export const online: SyncStatus = { online: true, syncing: false, cursor: 0, queued: 0, queued_revocations: 0, rejected: 0, last_pull_at: null, last_push_at: null, last_error: null };

export const KEY_ID = "01a2115c-e4c9-7290-8ca9-f6f59064faaa";

export function key(over: Partial<ApiKey> = {}): ApiKey {
  return {
    id: KEY_ID, org_id: "org-1", name: "Deploy bot", description: null, environment: "live",
    prefix: "kw_live_abc_", status: "active", scopes: ["badges:read"], allowed_ips: [], metadata: {}, disabled: false,
    expires_at: null, revoked_at: null, revoke_reason: null, rotated_from: null, replaced_by: null,
    lineage_id: KEY_ID, created_at: "2026-11-25T10:00:00Z", created_by: null,
    updated_at: "2026-11-25T10:00:00Z", last_used_at: null, last_used_ip: null,
    tier: null, rate_limits: null, quota: null, ...over,
  };
}

export const item = (over: Partial<ApiKey> = {}, rest: Partial<Omit<KeyListItem, "key">> = {}): KeyListItem =>
  ({ key: key(over), pending: false, error: null, server_status: key(over).status, server_revoked_at: key(over).revoked_at, ...rest });

export function list(n = 1, total = n): KeyList {
  return {
    items: Array.from({ length: n }, (_, i) => item({ id: `k-${i}`, name: `Key ${i}` })),
    total,
  };
}

export function validation(fields: [string, string][]): CommandError {
  return {
    code: "validation_failed",
    message: `${fields.length} fields need attention`,
    fields: fields.map(([field, message]) => ({ field, code: "invalid", message })),
  };
}

export const unauthenticated: CommandError = {
  code: "unauthenticated", message: "your session has ended; sign in again (unsynced changes are kept)", fields: [],
};

export function audit(seq: number, over: Partial<AuditEntry> = {}): AuditEntry {
  return {
    id: `a-${seq}`, seq, org_id: "org-1", actor_id: "adm-1", actor_email: "ada@acme.test", action: "key.create",
    target_type: "key", target_id: KEY_ID, client_ip: "10.0.0.7", request_id: null, before: null, after: null,
    created_at: "2026-11-25T10:00:00Z", hash: "h", prev_hash: "p", ...over,
  };
}

/** A key's limit standing as `key_limits` answers it (by default: no rules, no violations). */
export function limits(over: Partial<LimitsSnapshot["limits"]> = {}, fetched_at = "2026-11-25T10:00:00Z"): LimitsSnapshot {
  return {
    limits: { key_id: KEY_ID, tier: null, soft_threshold: 0.8, rules: [], violations: [], mode: "local", forecast: [], ...over },
    fetched_at,
  };
}

export function rule(over: Partial<LimitUsage> = {}): LimitUsage {
  return { policy: "hour", kind: "fixed_window", limit: 5, window_seconds: 3600, used: 1, remaining: 4, reset_seconds: 1200, consistency: "leased", ...over };
}

/** An alert as `alerts` lists it (open by default). */
export function alertOf(over: Partial<Alert> = {}): Alert {
  return {
    id: "al-1", key_id: KEY_ID, key_name: "Deploy bot", kind: "rate_spike", status: "open", observed: 420, expected: 35.5,
    window_start: "2026-11-25T09:00:00Z", window_secs: 300, detail: "12x the usual rate",
    opened_at: "2026-11-25T09:10:00Z", last_seen_at: "2026-11-25T09:50:00Z", acked_at: null, acked_by: null, resolved_at: null, ...over,
  };
}

/** A key event as `events` lists it (by default: the key expired). */
export function keyEventOf(over: Partial<KeyEvent> = {}): KeyEvent {
  return {
    id: "ev-1", key_id: KEY_ID, key_name: "Deploy bot", created_at: "2026-11-25T10:00:00Z",
    type: "key.expired", data: { key_id: KEY_ID, name: "Deploy bot", expires_at: "2026-11-25T09:59:58Z" },
    ...over,
  } as KeyEvent;
}
