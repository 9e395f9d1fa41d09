// The dashboard: totals and shares, the series, top keys, open alerts, the period, errors.
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/preact";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

vi.mock("../api/commands", async () => (await import("../test/fixtures")).commandsMock());

import * as api from "../api/commands";
import { App } from "../app";
import type { Alert, Dashboard, DashboardPeriod, KeyUsageTotal } from "../bindings";
import { percent } from "./Dashboard";
import { list, online, session } from "../test/fixtures";

const mocked = vi.mocked(api);

const top = (key_id: string, name: string, allowed: number, rejected: number): KeyUsageTotal =>
  ({ key_id, name, totals: { allowed, rate_limited: 0, rejected } });

const alert: Alert = {
  id: "al-1", key_id: "k-1", key_name: "Deploy bot", kind: "volume_spike", status: "open", observed: 420, expected: 35.5,
  window_start: "2026-11-25T09:00:00Z", window_secs: 3600, detail: "12x the usual hourly volume",
  opened_at: "2026-11-25T09:10:00Z", last_seen_at: "2026-11-25T09:50:00Z", acked_at: null, acked_by: null, resolved_at: null,
};

function board(period: DashboardPeriod = "24h", over: Partial<Dashboard> = {}): Dashboard {
  return {
    period,
    usage: {
      granularity: period === "30d" ? "day" : "hour", from: "2026-11-24T10:00:00Z", to: "2026-11-25T10:00:00Z",
      series: [
        { ts: "2026-11-25T08:00:00Z", allowed: 600, rate_limited: 20, rejected: 5 },
        { ts: "2026-11-25T09:00:00Z", allowed: 400, rate_limited: 30, rejected: 45 },
      ],
      totals: { allowed: 1000, rate_limited: 50, rejected: 50 },
      error_share: 50 / 1100, rate_limited_share: 50 / 1100,
      top_by_volume: [top("k-1", "Deploy bot", 700, 0), top("k-2", "Mobile app", 300, 10)],
      top_by_rejections: [top("k-3", "Old integration", 0, 40)],
      by_key: null, by_outcome: null,
    },
    alerts: [alert],
    attention: [
      { kind: "expiry", key_id: "k-4", key_name: "Expiring bot", detail: "expires in 3 days (2026-11-28 10:00 UTC)" },
      { kind: "limit", key_id: "k-1", key_name: "Deploy bot", detail: "90 of 100 used on hour (90%)" },
    ],
    fetched_at: new Date(Date.now() - 5 * 60_000).toISOString(),
    ...over,
  };
}

beforeEach(() => {
  window.location.hash = "#/dashboard";
  mocked.currentSession.mockResolvedValue(session);
  mocked.syncStatus.mockResolvedValue(online);
  mocked.onSyncStatus.mockResolvedValue(() => {});
  mocked.listKeys.mockResolvedValue(list(1));
  mocked.dashboard.mockImplementation(async (p: DashboardPeriod) => board(p));
});
afterEach(() => {
  cleanup();
  vi.clearAllMocks();
});

describe("dashboard", () => {
  it("is reachable from the main navigation", async () => {
    window.location.hash = "#/keys";
    render(<App />);
    fireEvent.click(await screen.findByTestId("nav-dashboard"));
    await screen.findByTestId("dashboard-totals");
    expect(screen.getByTestId("nav-dashboard").getAttribute("aria-current")).toBe("page");
  });

  it("shows totals, shares, the series and when it was fetched", async () => {
    render(<App />);
    await screen.findByTestId("dashboard-totals");
    expect(mocked.dashboard).toHaveBeenCalledWith("24h");
    expect(screen.getByTestId("total-requests").textContent).toBe("1,100");
    expect(screen.getByTestId("total-allowed").textContent).toBe("1,000");
    expect(screen.getByTestId("total-rejected").textContent).toBe("50");
    expect(screen.getByTestId("error-share").textContent).toBe("4.5%");
    expect(screen.getByTestId("rate-limited-share").textContent).toBe("4.5%");
    const rows = screen.getByTestId("dashboard-series").querySelectorAll("tbody tr");
    expect(rows.length).toBe(2);
    expect(rows[1]?.textContent).toContain("11-25 09:00");
    expect(rows[1]?.textContent).toContain("475");
    expect(screen.getByTestId("dashboard-state").textContent).toBe("synced 5 min ago");
  });

  it("lists the top keys and open alerts", async () => {
    render(<App />);
    const volume = await screen.findByTestId("top-volume");
    const names = Array.from(volume.querySelectorAll("li a")).map((a) => a.textContent);
    expect(names).toEqual(["Deploy bot", "Mobile app"]);
    expect(volume.textContent).toContain("700 requests");
    expect(screen.getByTestId("top-rejections").textContent).toContain("Old integration");
    expect(screen.getByTestId("top-rejections").textContent).toContain("40 refused");
    const alerts = screen.getByTestId("dashboard-alerts").textContent ?? "";
    expect(alerts).toContain("Deploy bot");
    expect(alerts).toContain("volume spike");
    expect(alerts).toContain("420");
    expect(alerts).toContain("35.50");
    expect(alerts).toContain("1 h from 2026-11-25 09:00");
  });

  it("lists keys close to expiry or a limit, linking to each key", async () => {
    render(<App />);
    const box = await screen.findByTestId("dashboard-attention");
    const items = screen.getAllByTestId("attention-item");
    expect(items.length).toBe(2);
    expect(items[0]?.textContent).toContain("Expiring bot");
    expect(items[0]?.textContent).toContain("expires in 3 days");
    expect(items[1]?.textContent).toContain("90 of 100 used on hour");
    expect(box.querySelector("a")!.getAttribute("href")).toBe("#/keys/k-4");
  });

  it("shows empty states", async () => {
    mocked.dashboard.mockImplementation(async (p: DashboardPeriod) => {
      const b = board(p, { alerts: [], attention: [] });
      return { ...b, usage: { ...b.usage, series: [], top_by_volume: [], top_by_rejections: [] } };
    });
    render(<App />);
    await screen.findByTestId("series-empty");
    expect(screen.getByTestId("alerts-empty")).toBeTruthy();
    expect(screen.getByTestId("attention-empty")).toBeTruthy();
  });

  it("switching the period asks for the new period", async () => {
    render(<App />);
    await screen.findByTestId("dashboard-totals");
    fireEvent.click(screen.getByTestId("period-30d"));
    await waitFor(() => expect(mocked.dashboard).toHaveBeenLastCalledWith("30d"));
    expect(screen.getByTestId("period-30d").getAttribute("aria-pressed")).toBe("true");
    expect(screen.getByTestId("period-24h").getAttribute("aria-pressed")).toBe("false");
    await waitFor(() => expect(screen.getByTestId("dashboard-series").textContent).toContain("2026-11-25"));
    fireEvent.click(screen.getByTestId("period-7d"));
    await waitFor(() => expect(mocked.dashboard).toHaveBeenLastCalledWith("7d"));
  });

  it("shows the error when there is nothing to show", async () => {
    mocked.dashboard.mockRejectedValue({
      code: "not_synced", message: "this device has not synced usage yet", fields: [],
    });
    render(<App />);
    const err = await screen.findByTestId("dashboard-error");
    expect(err.textContent).toContain("not synced usage yet");
    expect(err.textContent).not.toContain("not_synced");
    expect(screen.queryByTestId("dashboard-totals")).toBeNull();
  });
});

describe("percent", () => {
  it("formats shares", () => {
    expect(percent(0)).toBe("0%");
    expect(percent(0.0454)).toBe("4.5%");
    expect(percent(0.25)).toBe("25%");
    expect(percent(Number.NaN)).toBe("0%");
  });
});
