// What the chart is given: the whole 30 days, and by day without the day still filling.
import { describe, expect, it } from "vitest";
import type { UsageSeries } from "../bindings";
import { forChart } from "./UsageGraph";

const NOW = Date.parse("2026-12-08T15:30:00Z");
const series = (granularity: "hour" | "day", points: [string, number][]): UsageSeries => ({
  key_id: "k", granularity, fetched_at: "2026-12-08T15:00:00Z",
  points: points.map(([ts, allowed]) => ({ ts, allowed, rate_limited: 0, rejected: 0 })),
});

describe("forChart", () => {
  it("by day: 30 whole days, today kept out and reported", () => {
    const { series: s, today } = forChart(series("day", [["2026-12-05T00:00:00Z", 40], ["2026-12-08T00:00:00Z", 3]]), NOW);
    expect(today?.allowed).toBe(3);
    expect(s.points.map((p) => [p.ts.slice(0, 10), p.allowed])).toEqual([
      ["2026-11-08", 0], ["2026-12-05", 40], ["2026-12-07", 0],
    ]);
  });

  it("by hour: the last 30 days up to this hour", () => {
    const { series: s, today } = forChart(series("hour", [["2026-12-08T15:00:00Z", 5]]), NOW);
    expect(today).toBeNull();
    expect(s.points[0]!.ts).toBe("2026-11-08T16:00:00.000Z");
    expect(s.points[s.points.length - 1]!.allowed).toBe(5);
  });

  it("leaves an empty series empty (the chart says there is no usage)", () => {
    expect(forChart(series("day", []), NOW).series.points).toEqual([]);
  });
});
