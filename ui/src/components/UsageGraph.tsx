import { useEffect, useRef, useState } from "preact/hooks";
import type { CommandError, Granularity, UsagePoint, UsageSeries } from "../bindings";
import * as api from "../api/commands";
import { useApp } from "../app";
import { relativeTime } from "../lib/format";
// Type only: the chart module (egui_plot in wasm) is loaded lazily below, so the app starts
// without it and the wasm is fetched only when a key's detail is opened.
import type { UsageChart } from "../chart";
import { Segmented } from "./Segmented";

// The replica keeps each key's hourly usage for the last 30 days (synced), shown by hour or day.
const GRANULARITIES: { value: Granularity; label: string; span: string }[] = [
  { value: "hour", label: "Hour", span: "last 30 days" },
  { value: "day", label: "Day", span: "last 30 days" },
];

/** Totals of a series, for the text summary beside the chart. */
export function totals(series: UsageSeries | null) {
  const t = { allowed: 0, rate_limited: 0, rejected: 0 };
  for (const p of series?.points ?? []) {
    t.allowed += p.allowed;
    t.rate_limited += p.rate_limited;
    t.rejected += p.rejected;
  }
  return t;
}

/** egui's hidden text field, the input it inserts right after its canvas. */
function isTextAgent(el: unknown): el is HTMLInputElement {
  return el instanceof HTMLInputElement && el.previousElementSibling?.id === "usage-chart";
}

const DAY_MS = 86_400_000;
const SPAN_DAYS = 30;

/**
 * The series as the chart draws it: the whole 30 days (zeros at the ends when there was no
 * use), and by day without the current UTC day, which is still filling and would look like a
 * cliff. `today` is that day's point (shown in words instead), if any.
 */
export function forChart(s: UsageSeries, now: number = Date.now()): { series: UsageSeries; today: UsagePoint | null } {
  if (s.points.length === 0) return { series: s, today: null };
  const step = s.granularity === "day" ? DAY_MS : s.granularity === "hour" ? 3_600_000 : 60_000;
  const current = Math.floor(now / step) * step;
  const last = s.granularity === "day" ? current - step : current;
  const first = s.granularity === "day" ? current - SPAN_DAYS * DAY_MS : current - SPAN_DAYS * DAY_MS + step;
  const at = (p: UsagePoint) => new Date(p.ts).getTime();
  const today = s.granularity === "day" ? s.points.find((p) => at(p) >= current) ?? null : null;
  const points = s.points.filter((p) => at(p) >= first && at(p) <= last);
  const zero = (t: number): UsagePoint => ({ ts: new Date(t).toISOString(), allowed: 0, rate_limited: 0, rejected: 0 });
  if (!points.some((p) => at(p) === first)) points.unshift(zero(first));
  if (!points.some((p) => at(p) === last)) points.push(zero(last));
  return { series: { ...s, points }, today };
}

/**
 * The key's usage drawn by the egui_plot chart (wasm) in `<canvas id="usage-chart">`, fed by
 * `key_usage`. `data-chart` on the canvas says loading / ready / error.
 */
export function UsageGraph(props: { keyId: string }) {
  const app = useApp();
  const [granularity, setGranularity] = useState<Granularity>("hour");
  const [series, setSeries] = useState<UsageSeries | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<CommandError | null>(null);
  const [chartError, setChartError] = useState<string | null>(null);
  const [ready, setReady] = useState(false);
  const chart = useRef<UsageChart | null>(null);
  const latest = useRef<UsageSeries | null>(null);
  const box = useRef<HTMLElement>(null);

  // egui takes Tab for its own focus ring and cancels the browser's, on the canvas and on the
  // hidden text field it puts right after it (which it also focuses when it starts): Tab and
  // Shift+Tab on either are kept from it (stopped on the way down), so the keyboard can always
  // leave the chart.
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const letTabThrough = (e: KeyboardEvent) => {
      if (e.key === "Tab" && (e.target instanceof HTMLCanvasElement || isTextAgent(e.target))) e.stopPropagation();
    };
    el.addEventListener("keydown", letTabThrough, true);
    el.addEventListener("keyup", letTabThrough, true);
    return () => {
      el.removeEventListener("keydown", letTabThrough, true);
      el.removeEventListener("keyup", letTabThrough, true);
    };
  }, []);

  useEffect(() => {
    let alive = true;
    import("../chart")
      .then((m) => m.mountUsageChart("usage-chart"))
      .then((c) => {
        if (!alive) return c.destroy();
        chart.current = c;
        // egui's hidden text field: out of the Tab order, and not holding the focus it took.
        const canvas = document.getElementById("usage-chart");
        const agent = canvas?.nextElementSibling;
        if (isTextAgent(agent)) {
          agent.tabIndex = -1;
          agent.setAttribute("aria-hidden", "true");
          if (document.activeElement === agent) agent.blur();
        }
        if (latest.current) c.setSeries(latest.current);
        setReady(true);
      })
      .catch((e: unknown) => alive && setChartError(e instanceof Error ? e.message : String(e)));
    return () => {
      alive = false;
      chart.current?.destroy();
      chart.current = null;
    };
  }, []);

  useEffect(() => {
    let alive = true;
    setLoading(true);
    app
      .quiet(api.keyUsage(props.keyId, granularity))
      .then((s) => {
        if (!alive) return;
        const drawn = forChart(s).series;
        latest.current = drawn;
        setSeries(s);
        setError(null);
        chart.current?.setSeries(drawn);
      })
      .catch((e: CommandError) => alive && setError(e))
      .finally(() => alive && setLoading(false));
    return () => {
      alive = false;
    };
  }, [props.keyId, granularity]);

  const t = totals(series);
  const today = series ? forChart(series).today : null;
  const span = GRANULARITIES.find((g) => g.value === granularity)?.span ?? "";
  return (
    <section class="usage panel-box" aria-labelledby="usage-title" ref={box}>
      <div class="usage-head">
        <h3 id="usage-title">Usage</h3>
        <Segmented
          label="Granularity"
          choices={GRANULARITIES}
          value={granularity}
          onChange={setGranularity}
          testid={(g) => `granularity-${g.value}`}
        />
        <span class="muted small">
          {span} · {loading ? "loading…" : series?.fetched_at ? `synced ${relativeTime(series.fetched_at)}` : "not synced yet"}
        </span>
      </div>
      <p class="usage-totals" data-testid="usage-totals">
        <span class="legend allowed">{t.allowed.toLocaleString()} allowed</span>
        <span class="legend limited">{t.rate_limited.toLocaleString()} rate-limited</span>
        <span class="legend rejected">{t.rejected.toLocaleString()} rejected</span>
        {today && (
          <span class="muted small" data-testid="usage-today">
            {" "}· today so far (UTC, not drawn until the day ends): {(today.allowed + today.rate_limited + today.rejected).toLocaleString()} calls
          </span>
        )}
      </p>
      <canvas
        id="usage-chart"
        data-testid="usage-chart"
        data-chart={chartError ? "error" : ready ? "ready" : "loading"}
        role="img"
        aria-label={`Usage per ${granularity} (UTC), last 30 days: ${t.allowed.toLocaleString()} allowed, ${t.rate_limited.toLocaleString()} rate-limited, ${t.rejected.toLocaleString()} rejected`}
      />
      {chartError && <p class="muted small">The chart could not start: {chartError}</p>}
      {error && <p class="muted small" role="alert">Usage unavailable: {error.message}</p>}
    </section>
  );
}
