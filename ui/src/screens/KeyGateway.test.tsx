// A key's gateway traffic and networks on its detail screen: the total first, then each route;
// the period toggle; the empty state; the offline copy with its fetch time; errors.
import { cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/preact";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

vi.mock("../api/commands", async () => (await import("../test/fixtures")).commandsMock());
vi.mock("../chart", async () => (await import("../test/fixtures")).chartMock());

import * as api from "../api/commands";
import { App } from "../app";
import type { GatewayGroup, GatewayPeriod, GatewaySnapshot, NetworksSnapshot } from "../bindings";
import { latencyMs, percent } from "./KeyGateway";
import { resetKeysView } from "./Keys";
import { item, KEY_ID, limits, list, online, session } from "../test/fixtures";

const mocked = vi.mocked(api);
const FETCHED = new Date(Date.now() - 3 * 60_000).toISOString();

function group(route: string | null, calls: number, over: Partial<GatewayGroup> = {}): GatewayGroup {
  return {
    key_id: KEY_ID, key_name: "Deploy bot", route, calls,
    status: { informational: 0, success: calls - 3, redirect: 0, client_error: 2, server_error: 1 },
    error_share: 1 / calls, latency_mean_ms: 23.4, latency_p50_ms: 8.25, latency_p95_ms: 140.6, ...over,
  };
}

function snapshot(period: GatewayPeriod, groups: GatewayGroup[], fetched_at = FETCHED): GatewaySnapshot {
  return {
    key_id: KEY_ID, period, fetched_at,
    usage: { from: "2026-11-24T10:00:00Z", to: "2026-11-25T10:00:00Z", groups },
  };
}

const busy = [group(null, 1200), group("orders", 1000), group("users", 200, { latency_p95_ms: null })];
const nets: NetworksSnapshot = {
  key_id: KEY_ID, fetched_at: FETCHED,
  items: [
    { network: "203.0.113.0/24", first_seen: "2026-11-20T08:00:00Z", last_seen: "2026-11-25T09:58:00Z", calls: 1180 },
    { network: "2001:db8:1::/48", first_seen: "2026-11-01T08:00:00Z", last_seen: "2026-11-22T12:00:00Z", calls: 20 },
  ],
};

beforeEach(() => {
  window.location.hash = `#/keys/${KEY_ID}`;
  resetKeysView();
  mocked.currentSession.mockResolvedValue(session);
  mocked.syncStatus.mockResolvedValue(online);
  mocked.onSyncStatus.mockResolvedValue(() => {});
  mocked.listKeys.mockResolvedValue(list(1));
  mocked.getKey.mockResolvedValue({ item: item(), audit: [] });
  mocked.keyUsage.mockResolvedValue({ key_id: KEY_ID, granularity: "hour", fetched_at: FETCHED, points: [] });
  mocked.keyLimits.mockResolvedValue(limits());
  mocked.keyGateway.mockImplementation(async (_id: string, period: GatewayPeriod) =>
    snapshot(period, period === "24h" ? busy : [group(null, 9000), group("orders", 9000)]));
  mocked.keyNetworks.mockResolvedValue(nets);
});
afterEach(() => {
  cleanup();
  vi.clearAllMocks();
});

const rows = () => screen.getAllByTestId("gateway-row");

describe("key gateway", () => {
  it("lists the key's total first, then each route group, with status classes, error share and latency", async () => {
    render(<App />);
    await screen.findByTestId("gateway-table");
    expect(mocked.keyGateway).toHaveBeenCalledWith(KEY_ID, "24h");
    expect(screen.getByRole("heading", { name: "Gateway" })).toBeTruthy();
    const heads = Array.from(screen.getByTestId("gateway-table").querySelectorAll("thead th")).map((th) => th.textContent);
    expect(heads).toEqual(["Route", "Calls", "2xx", "4xx", "5xx", "Server errors", "Mean ms", "p50 ms", "p95 ms"]);

    const [total, orders, users] = rows();
    expect(total!.dataset.route).toBe("");
    const cells = (r: HTMLElement) => Array.from(r.querySelectorAll("th, td")).map((c) => c.textContent);
    expect(cells(total!)).toEqual(["All routes", "1,200", "1,197", "2", "1", "0.1 %", "23", "8.3", "141"]);
    expect(orders!.dataset.route).toBe("orders");
    expect(cells(orders!)).toEqual(["orders", "1,000", "997", "2", "1", "0.1 %", "23", "8.3", "141"]);
    expect(cells(users!)[8]).toBe("—");
    await waitFor(() => expect(screen.getByTestId("gateway-state").textContent).toBe("fetched 3 min ago"));
    expect(screen.getByTestId("gateway-period-24h").getAttribute("aria-pressed")).toBe("true");
  });

  it("switches between the last 24 hours and 7 days", async () => {
    render(<App />);
    await screen.findByTestId("gateway-table");
    fireEvent.click(screen.getByTestId("gateway-period-7d"));
    await waitFor(() => expect(mocked.keyGateway).toHaveBeenLastCalledWith(KEY_ID, "7d"));
    await waitFor(() => expect(rows()[0]!.textContent).toContain("9,000"));
    expect(rows().length).toBe(2);
    expect(screen.getByTestId("gateway-period-7d").getAttribute("aria-pressed")).toBe("true");
    expect(screen.getByTestId("gateway-period-24h").getAttribute("aria-pressed")).toBe("false");
  });

  it("says when the key has no gateway traffic in the period", async () => {
    mocked.keyGateway.mockImplementation(async (_id: string, period: GatewayPeriod) =>
      snapshot(period, [group(null, 0, { status: { informational: 0, success: 0, redirect: 0, client_error: 0, server_error: 0 }, error_share: 0, latency_mean_ms: null, latency_p50_ms: null, latency_p95_ms: null })]));
    render(<App />);
    expect((await screen.findByTestId("gateway-empty")).textContent).toBe("No gateway calls in the last 24 hours");
    expect(screen.queryByTestId("gateway-table")).toBeNull();
    fireEvent.click(screen.getByTestId("gateway-period-7d"));
    await waitFor(() => expect(screen.getByTestId("gateway-empty").textContent).toBe("No gateway calls in the last 7 days"));
  });

  it("shows the copy kept on this device when offline, with its fetch time", async () => {
    const old = new Date(Date.now() - 2 * 3600_000).toISOString();
    mocked.syncStatus.mockResolvedValue({ ...online, online: false });
    mocked.keyGateway.mockResolvedValue(snapshot("24h", busy, old));
    mocked.keyNetworks.mockResolvedValue({ ...nets, fetched_at: old });
    render(<App />);
    await screen.findByTestId("gateway-table");
    await waitFor(() =>
      expect(screen.getByTestId("gateway-state").textContent).toBe("fetched 2 h ago · offline: the last copy kept on this device"));
    expect(screen.getByTestId("networks-state").textContent).toContain("fetched 2 h ago · offline");
  });

  it("shows the error when there is no copy to show", async () => {
    mocked.keyGateway.mockRejectedValue({
      code: "offline", message: "the server cannot be reached and this device has no saved copy of this key's gateway traffic yet", fields: [],
    });
    mocked.keyNetworks.mockRejectedValue({
      code: "offline", message: "the server cannot be reached and this device has no saved copy of the networks this key was used from yet", fields: [],
    });
    render(<App />);
    const err = await screen.findByTestId("gateway-error");
    expect(err.getAttribute("role")).toBe("alert");
    expect(err.textContent).toContain("Gateway traffic unavailable: the server cannot be reached");
    expect((await screen.findByTestId("networks-error")).textContent).toContain("Networks unavailable");
    expect(screen.queryByTestId("gateway-table")).toBeNull();
    expect(screen.queryByTestId("gateway-empty")).toBeNull();
  });
});

describe("key networks", () => {
  it("lists the networks the key was used from, most recent first", async () => {
    render(<App />);
    await screen.findByTestId("networks-table");
    expect(mocked.keyNetworks).toHaveBeenCalledWith(KEY_ID);
    const [first, second] = screen.getAllByTestId("network-row");
    expect(first!.textContent).toContain("203.0.113.0/24");
    expect(first!.textContent).toContain("2026-11-25 09:58 UTC");
    expect(first!.textContent).toContain("1,180");
    expect(second!.textContent).toContain("2001:db8:1::/48");
    expect(within(screen.getByTestId("key-gateway")).getByRole("heading", { name: "Networks" })).toBeTruthy();
  });

  it("says when no network is known", async () => {
    mocked.keyNetworks.mockResolvedValue({ ...nets, items: [] });
    render(<App />);
    expect((await screen.findByTestId("networks-empty")).textContent).toBe("No successful calls from any network yet");
  });
});

describe("gateway helpers", () => {
  it("formats latencies", () => {
    expect([null, undefined, 0.42, 8.25, 10, 140.6, 12_345.6].map(latencyMs)).toEqual(["—", "—", "0.4", "8.3", "10", "141", "12,346"]);
  });
  it("formats shares", () => {
    expect([0, 0.001, 0.004, 0.125, 1, Number.NaN].map(percent)).toEqual(["0 %", "0.1 %", "0.4 %", "12.5 %", "100 %", "0 %"]);
  });
});
