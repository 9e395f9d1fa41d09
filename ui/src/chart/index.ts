// The usage chart: egui_plot compiled to wasm (chart/), mounted in a <canvas>.
import type { UsageSeries } from "../bindings";

export interface UsageChart {
  setSeries(series: UsageSeries): void;
  destroy(): void;
}

interface Handle {
  set_series(json: string): void;
  destroy(): void;
}

interface ChartModule {
  default: () => Promise<unknown>;
  mount: (canvasId: string) => Promise<Handle>;
}

let loaded: Promise<ChartModule> | null = null;

function load(): Promise<ChartModule> {
  if (!loaded) {
    loaded = import("./pkg/keyward_chart.js").then(async (m: ChartModule) => {
      await m.default();
      return m;
    });
  }
  return loaded;
}

export async function mountUsageChart(canvasId: string): Promise<UsageChart> {
  const m = await load();
  const handle = await m.mount(canvasId);
  return {
    setSeries: (series) => handle.set_series(JSON.stringify(series)),
    destroy: () => handle.destroy(),
  };
}
