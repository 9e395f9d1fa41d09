// Usage reports: a period (UTC days, with presets), CSV or JSON, saved where the user picks in the
// native save dialog. The server makes the report, so saving needs a connection.
import { useState } from "preact/hooks";
import type { CommandError, ReportFormat, ReportSaved } from "../bindings";
import * as api from "../api/commands";
import { useApp } from "../app";
import { Banner } from "../components/Fields";

/** The server's longest report period, in days. */
export const MAX_REPORT_DAYS = 3660;
const DAY_MS = 86_400_000;

export type Preset = "7d" | "30d" | "90d" | "last-month";
const PRESETS: { value: Preset; label: string }[] = [
  { value: "7d", label: "Last 7 days" },
  { value: "30d", label: "Last 30 days" },
  { value: "90d", label: "Last 90 days" },
  { value: "last-month", label: "Last month" },
];

const ymd = (d: Date) => d.toISOString().slice(0, 10);

/** A preset as inclusive UTC dates ("YYYY-MM-DD"), relative to `today`. */
export function presetRange(preset: Preset, today: Date = new Date()): { from: string; to: string } {
  const t = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate()));
  switch (preset) {
    case "last-month": {
      const first = new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth() - 1, 1));
      const last = new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), 0));
      return { from: ymd(first), to: ymd(last) };
    }
    default: {
      const days = preset === "7d" ? 7 : preset === "30d" ? 30 : 90;
      return { from: ymd(new Date(t.getTime() - (days - 1) * DAY_MS)), to: ymd(t) };
    }
  }
}

/**
 * Inclusive UTC dates as the report's period: `from` at midnight, `to` the midnight after the
 * last day (exclusive). A string when the dates do not make a period the server accepts.
 */
export function reportPeriod(fromDate: string, toDate: string): { from: string; to: string } | string {
  const re = /^\d{4}-\d{2}-\d{2}$/;
  if (!re.test(fromDate) || !re.test(toDate)) return "Choose both the first and the last day.";
  const from = new Date(`${fromDate}T00:00:00Z`);
  const to = new Date(new Date(`${toDate}T00:00:00Z`).getTime() + DAY_MS);
  if (Number.isNaN(from.getTime()) || Number.isNaN(to.getTime())) return "Choose both the first and the last day.";
  if (from.getTime() >= to.getTime()) return "The first day must not be after the last day.";
  if (to.getTime() - from.getTime() > MAX_REPORT_DAYS * DAY_MS) return `A report spans at most ${MAX_REPORT_DAYS} days.`;
  return { from: from.toISOString(), to: to.toISOString() };
}

/** 1234 → "1.2 KB". */
export function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export function ReportsScreen() {
  const app = useApp();
  const initial = presetRange("30d");
  const [fromDate, setFromDate] = useState(initial.from);
  const [toDate, setToDate] = useState(initial.to);
  const [format, setFormat] = useState<ReportFormat>("csv");
  const [invalid, setInvalid] = useState<string | null>(null);
  const [error, setError] = useState<CommandError | null>(null);
  const [saved, setSaved] = useState<ReportSaved | null>(null);
  const [busy, setBusy] = useState(false);

  const pick = (p: Preset) => {
    const r = presetRange(p);
    setFromDate(r.from);
    setToDate(r.to);
    setInvalid(null);
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    setSaved(null);
    setError(null);
    const period = reportPeriod(fromDate, toDate);
    if (typeof period === "string") {
      setInvalid(period);
      return;
    }
    setInvalid(null);
    setBusy(true);
    try {
      const path = await api.chooseReportPath(`keyward-usage-${fromDate}-${toDate}.${format}`, format);
      if (!path) return; // cancelled
      setSaved(await app.run(api.saveReport({ path, from: period.from, to: period.to, format })));
    } catch (err) {
      setError(api.toCommandError(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section data-testid="reports-screen">
      <header class="page-head">
        <h2>Usage report</h2>
      </header>
      <p class="muted">Calls per key and UTC day, with a total line. The server makes the report, so saving one needs a connection.</p>
      <form class="report-form" onSubmit={submit} noValidate>
        <span class="segmented" role="group" aria-label="Period presets">
          {PRESETS.map((p) => (
            <button type="button" data-testid={`report-preset-${p.value}`} onClick={() => pick(p.value)}>{p.label}</button>
          ))}
        </span>
        <div class="row">
          <label>
            First day (UTC)
            <input type="date" data-testid="report-from" value={fromDate} onInput={(e) => setFromDate(e.currentTarget.value)} />
          </label>
          <label>
            Last day (UTC)
            <input type="date" data-testid="report-to" value={toDate} onInput={(e) => setToDate(e.currentTarget.value)} />
          </label>
        </div>
        <fieldset class="row">
          <legend>Format</legend>
          {(["csv", "json"] as const).map((f) => (
            <label>
              <input type="radio" name="report-format" data-testid={`report-format-${f}`} checked={format === f} onChange={() => setFormat(f)} />
              {f.toUpperCase()}
            </label>
          ))}
        </fieldset>
        {invalid && <p class="banner error" role="alert" data-testid="report-invalid">{invalid}</p>}
        <Banner error={error} testid="report-error" />
        {!app.status.online && <p class="banner info" role="status" data-testid="report-offline">You are offline: a report can be saved once the server is reachable.</p>}
        <div>
          <button type="submit" class="primary" data-testid="report-save" disabled={busy}>{busy ? "Saving…" : "Save report…"}</button>
        </div>
      </form>
      {saved && (
        <p class="banner info" role="status" data-testid="report-saved">
          Saved {saved.rows.toLocaleString("en-US")} {saved.rows === 1 ? "row" : "rows"} ({size(saved.bytes)}) to <span class="mono">{saved.path}</span>
        </p>
      )}
    </section>
  );
}
