// The usage chart: egui_plot compiled to wasm (chart/, built into ./pkg by
// scripts/build-chart.sh), drawn in a <canvas>. Drag pans, the wheel zooms time, ctrl + wheel
// zooms both axes, a double click resets the view; hovering shows the nearest bucket.
import type { UsageSeries } from "../bindings";

export interface UsageChart {
  /** Replaces the data (the view resets to fit it); an empty series shows "No usage recorded". */
  setSeries(series: UsageSeries): void;
  /** Stops drawing and frees the chart; later calls to either method do nothing. */
  destroy(): void;
}

// The generated module's own types: a change of the Rust API fails the type check here.
type ChartModule = typeof import("./pkg/keyward_chart.js");
type ChartHandle = import("./pkg/keyward_chart.js").ChartHandle;

let loaded: Promise<ChartModule> | null = null;

/** Fetches and instantiates the wasm once per page; a failed load is retried next time. */
function load(): Promise<ChartModule> {
  loaded ??= import("./pkg/keyward_chart.js")
    .then(async (m) => {
      await m.default();
      return m;
    })
    .catch((e: unknown) => {
      loaded = null;
      throw e;
    });
  return loaded;
}

/** Starts the chart in `<canvas id={canvasId}>` (which must be in the document). */
export async function mountUsageChart(canvasId: string): Promise<UsageChart> {
  const m = await load();
  let handle: ChartHandle | null = await m.mount(canvasId);
  return {
    setSeries(series) {
      handle?.set_series(JSON.stringify(series));
    },
    destroy() {
      if (!handle) return;
      const h = handle;
      handle = null;
      h.destroy();
      h.free();
    },
  };
}
