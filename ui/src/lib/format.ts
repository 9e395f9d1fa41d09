// Small pure helpers for display and form input. No DOM, no IPC: unit-tested on their own.

/** "just now", "5 min ago", "3 h ago", "2 d ago"; future times as "in 5 min". */
export function relativeTime(iso: string | null, now: Date = new Date()): string {
  if (!iso) return "never";
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return "—";
  const secs = Math.round((now.getTime() - t) / 1000);
  const abs = Math.abs(secs);
  const unit =
    abs < 60 ? null
    : abs < 3600 ? `${Math.round(abs / 60)} min`
    : abs < 86400 ? `${Math.round(abs / 3600)} h`
    : `${Math.round(abs / 86400)} d`;
  if (!unit) return secs >= 0 ? "just now" : "in a moment";
  return secs >= 0 ? `${unit} ago` : `in ${unit}`;
}

/** Splits "a:read, b:*  c:write" into items: commas, spaces and new lines separate. */
export function splitList(text: string): string[] {
  return text.split(/[\s,]+/).map((s) => s.trim()).filter((s) => s.length > 0);
}

/** Whether two lists hold the same items, ignoring order (the backend sorts scopes and networks). */
export function sameItems(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const x = [...a].sort();
  const y = [...b].sort();
  return x.every((v, i) => v === y[i]);
}

/** How a time is typed: ISO, in UTC, as the app shows times everywhere. */
export const UTC_INPUT_HINT = "UTC, as YYYY-MM-DD HH:MM (e.g. 2027-01-31 12:00)";

/**
 * A typed time ("2027-01-31 12:00", "2027-01-31T12:00" or "2027-01-31", read as UTC) as an
 * RFC 3339 string; "" is null, anything else undefined (not a time: the form says so).
 */
export function utcInputToIso(value: string): string | null | undefined {
  const v = value.trim();
  if (!v) return null;
  const m = v.match(/^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2}))?(?: ?UTC| ?Z)?$/i);
  if (!m) return undefined;
  const [y, mo, d, h, mi] = [m[1], m[2], m[3], m[4] ?? "00", m[5] ?? "00"].map(Number) as [number, number, number, number, number];
  const t = Date.UTC(y, mo - 1, d, h, mi);
  const back = new Date(t);
  // Refuse dates that do not exist (2027-02-30) rather than rolling them over.
  if (back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || h > 23 || mi > 59) return undefined;
  return back.toISOString();
}

/** An RFC 3339 instant as the inputs show it: "2027-01-31 12:00" in UTC ("" for none). */
export function isoToUtcInput(iso: string | null): string {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString().slice(0, 16).replace("T", " ");
}

/** "2026-11-25 10:30 UTC", or "—". */
export function shortDate(iso: string | null): string {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "—" : d.toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

/**
 * A grace period typed by hand, in seconds. Only the shape is checked (a whole number, 0 or
 * more): the command's parameter is an unsigned integer, so anything else could not even be
 * sent. Limits (the longest grace period) are the backend's to judge.
 */
export function parseSeconds(text: string): number | null {
  const t = text.trim();
  if (!/^\d+$/.test(t)) return null;
  const n = Number(t);
  return Number.isSafeInteger(n) && n <= 0xffff_ffff ? n : null;
}

/** 0 → "immediately", 90 → "90 s", 3600 → "1 h", 86400 → "1 d", 5400 → "1 h 30 min". */
export function formatDuration(seconds: number): string {
  if (seconds <= 0) return "immediately";
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const parts = [d && `${d} d`, h && `${h} h`, m && `${m} min`, s && `${s} s`].filter(Boolean);
  return parts.join(" ");
}

/** "1 h", "15 min", "2 d" for an alert's window. */
export function windowLabel(secs: number): string {
  if (secs % 86_400 === 0) return `${secs / 86_400} d`;
  if (secs % 3600 === 0) return `${secs / 3600} h`;
  if (secs % 60 === 0) return `${secs / 60} min`;
  return `${secs} s`;
}

/** A measured value: whole numbers grouped ("1,200"), others with two decimals. */
export function measure(v: number): string {
  return Number.isInteger(v) ? v.toLocaleString("en-US") : v.toFixed(2);
}

/** A message for people: capitalised first letter and a closing full stop. */
export function sentence(text: string): string {
  const t = text.trim();
  if (!t) return t;
  const first = t.charAt(0).toUpperCase() + t.slice(1);
  return /[.!?…]$/.test(first) ? first : `${first}.`;
}
