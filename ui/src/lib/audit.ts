import type { AuditEntry } from "../bindings";

/** Each audit action in words (the code stays in the row's title). */
export const ACTION_WORDS: Record<string, string> = {
  "admin.create": "Added an admin",
  "alert.ack": "Acknowledged an alert",
  "alerts.settings": "Changed alert sensitivity",
  "auth.login": "Signed in",
  "auth.login_failed": "Failed sign-in",
  "auth.logout": "Signed out",
  "auth.logout_all": "Signed out everywhere",
  "auth.password_change_failed": "Failed password change",
  "auth.password_changed": "Changed the password",
  "key.create": "Created key",
  "key.read": "Read key",
  "key.revoke": "Revoked key",
  "key.rotate": "Rotated key",
  "key.update": "Changed key",
  "key.expire": "Key expired",
  "tier.create": "Created tier",
  "tier.delete": "Deleted tier",
  "tier.update": "Changed tier",
  "webhook.create": "Added a webhook",
  "webhook.delete": "Removed a webhook",
  "webhook.test": "Tested a webhook",
};

export function actionWords(action: string): string {
  return ACTION_WORDS[action] ?? action.replace(/[._]/g, " ").replace(/^./, (c) => c.toUpperCase());
}

type Rec = Record<string, unknown>;
const rec = (v: unknown): Rec | null => (v && typeof v === "object" && !Array.isArray(v) ? (v as Rec) : null);

/** The name of what an entry is about, from the record it carries (a key's name), or null. */
export function targetName(e: AuditEntry): string | null {
  for (const side of [rec(e.after), rec(e.before)]) {
    const name = side?.["name"] ?? side?.["email"];
    if (typeof name === "string" && name) return name;
  }
  return null;
}

const LABELS: Record<string, string> = {
  name: "Name",
  description: "Description",
  scopes: "Scopes",
  allowed_ips: "Allowed addresses",
  expires_at: "Expires",
  disabled: "Disabled",
  revoked_at: "Revoked",
  revoke_reason: "Reason",
  tier: "Tier",
  rate_limits: "Rate limits",
  quota: "Quota",
  metadata: "Metadata",
  replaced_by: "Replaced by",
};

function show(v: unknown): string {
  if (v === null || v === undefined) return "none";
  if (Array.isArray(v)) return v.length ? v.map((x) => (typeof x === "string" ? x : JSON.stringify(x))).join(", ") : "none";
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "number") return v.toLocaleString("en-US");
  if (typeof v === "string") return /^\d{4}-\d\d-\d\dT/.test(v) ? v.slice(0, 16).replace("T", " ") + " UTC" : v;
  return JSON.stringify(v);
}

/** The fields an entry changed, in words: `Name: old → new` (a creation lists nothing). */
export function changes(e: AuditEntry): { field: string; from: string; to: string }[] {
  const before = rec(e.before);
  const after = rec(e.after);
  if (!before || !after) return [];
  const out: { field: string; from: string; to: string }[] = [];
  for (const [k, label] of Object.entries(LABELS)) {
    const a = JSON.stringify(before[k] ?? null);
    const b = JSON.stringify(after[k] ?? null);
    if (a !== b) out.push({ field: label, from: show(before[k]), to: show(after[k]) });
  }
  return out;
}

/** The revocation reason an entry records, if any. */
export function reason(e: AuditEntry): string | null {
  const r = rec(e.after)?.["revoke_reason"];
  return typeof r === "string" && r ? r : null;
}

export type Period = "24h" | "7d" | "30d" | "all";
export const PERIOD_MS: Record<Period, number> = { "24h": 86_400_000, "7d": 7 * 86_400_000, "30d": 30 * 86_400_000, all: Infinity };

export interface AuditFilter {
  action: string;
  actor: string;
  key: string;
  period: Period;
}

export const NO_FILTER: AuditFilter = { action: "", actor: "", key: "", period: "all" };

export function matches(e: AuditEntry, f: AuditFilter, now: number = Date.now()): boolean {
  if (f.action && e.action !== f.action) return false;
  if (f.actor && (e.actor_email ?? "system") !== f.actor) return false;
  if (f.key) {
    const q = f.key.toLowerCase();
    const name = targetName(e)?.toLowerCase() ?? "";
    if (!name.includes(q) && !(e.target_id ?? "").toLowerCase().startsWith(q)) return false;
  }
  if (f.period !== "all" && now - new Date(e.created_at).getTime() > PERIOD_MS[f.period]) return false;
  return true;
}
