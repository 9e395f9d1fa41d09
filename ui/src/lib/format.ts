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

/** A `<input type="datetime-local">` value (local time) as an RFC 3339 UTC string, or null. */
export function localInputToIso(value: string): string | null {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** An RFC 3339 instant as a `<input type="datetime-local">` value in local time ("" for none). */
export function isoToLocalInput(iso: string | null): string {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
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
