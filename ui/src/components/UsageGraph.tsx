import { useEffect, useRef, useState } from "preact/hooks";
import type { CommandError, Granularity, UsageSeries } from "../bindings";
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

  useEffect(() => {
    let alive = true;
    import("../chart")
      .then((m) => m.mountUsageChart("usage-chart"))
      .then((c) => {
        if (!alive) return c.destroy();
        chart.current = c;
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
        latest.current = s;
        setSeries(s);
        setError(null);
        chart.current?.setSeries(s);
      })
      .catch((e: CommandError) => alive && setError(e))
      .finally(() => alive && setLoading(false));
    return () => {
      alive = false;
    };
  }, [props.keyId, granularity]);

  const t = totals(series);
  const span = GRANULARITIES.find((g) => g.value === granularity)?.span ?? "";
  return (
    <section class="usage panel-box" aria-labelledby="usage-title">
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
      </p>
      <canvas
        id="usage-chart"
        data-testid="usage-chart"
        data-chart={chartError ? "error" : ready ? "ready" : "loading"}
        role="img"
        aria-label={`Usage per ${granularity}: ${t.allowed} allowed, ${t.rate_limited} rate-limited, ${t.rejected} rejected`}
      />
      {chartError && <p class="muted small">The chart could not start: {chartError}</p>}
      {error && <p class="muted small" role="alert">Usage unavailable: {error.message}</p>}
    </section>
  );
}
