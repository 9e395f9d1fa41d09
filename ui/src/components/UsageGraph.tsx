import { useEffect, useRef, useState } from "preact/hooks";
import type { Granularity, UsageSeries } from "../bindings";
import * as api from "../api/commands";
import { relativeTime } from "../lib/format";
import type { UsageChart } from "../chart";

/** The key's usage drawn by the egui_plot chart (wasm) in a canvas; zoom, pan and hover work there. */
export function UsageGraph(props: { keyId: string }) {
  const [granularity, setGranularity] = useState<Granularity>("hour");
  const [series, setSeries] = useState<UsageSeries | null>(null);
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
        setReady(true);
        if (latest.current) c.setSeries(latest.current);
      })
      .catch((e) => alive && setChartError(String(e)));
    return () => {
      alive = false;
      chart.current?.destroy();
      chart.current = null;
    };
  }, []);

  useEffect(() => {
    let alive = true;
    api.keyUsage(props.keyId, granularity).then((s) => {
      if (!alive) return;
      latest.current = s;
      setSeries(s);
      chart.current?.setSeries(s);
    }).catch(() => {});
    return () => { alive = false; };
  }, [props.keyId, granularity]);

  const total = series?.points.reduce((n, p) => n + p.allowed + p.rate_limited + p.rejected, 0) ?? 0;
  return (
    <div class="usage">
      <div class="usage-head">
        <h3>Usage</h3>
        <div class="segmented" role="group" aria-label="Granularity">
          {(["minute", "hour", "day"] as const).map((g) => (
            <button class={g === granularity ? "on" : ""} aria-pressed={g === granularity} onClick={() => setGranularity(g)}>{g}</button>
          ))}
        </div>
        <span class="muted">{total} calls · {series?.fetched_at ? `fetched ${relativeTime(series.fetched_at)}` : "not fetched yet"}</span>
      </div>
      <canvas id="usage-chart" data-testid="usage-chart" data-chart={chartError ? "error" : ready ? "ready" : "loading"} />
      {chartError && <p class="muted">The chart could not start: {chartError}</p>}
    </div>
  );
}
