// The alerts screen: listed from the replica by status, acknowledged through the backend, with
// the backend's refusal (offline) shown.
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/preact";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

vi.mock("../api/commands", async () => (await import("../test/fixtures")).commandsMock());

import * as api from "../api/commands";
import { App } from "../app";
import type { AlertStatus } from "../bindings";
import { alertOf, list, online, session, viewer } from "../test/fixtures";

const mocked = vi.mocked(api);
const SYNCED = new Date(Date.now() - 2 * 60_000).toISOString();

const open = alertOf({ id: "al-1" });
const acked = alertOf({ id: "al-2", key_name: "Mobile app", kind: "new_network", status: "acked", acked_at: "2026-11-25T09:20:00Z" });
const resolved = alertOf({ id: "al-3", kind: "rate_drop", status: "resolved", resolved_at: "2026-11-25T09:30:00Z" });
const all = [open, acked, resolved];

beforeEach(() => {
  window.location.hash = "#/alerts";
  mocked.currentSession.mockResolvedValue(session);
  mocked.syncStatus.mockResolvedValue(online);
  mocked.onSyncStatus.mockResolvedValue(() => {});
  mocked.listKeys.mockResolvedValue(list(1));
  mocked.alerts.mockImplementation(async (status: AlertStatus | null) => ({
    items: all.filter((a) => status === null || a.status === status),
    synced_at: SYNCED,
  }));
});
afterEach(() => {
  cleanup();
  vi.clearAllMocks();
});

describe("alerts", () => {
  it("is reachable from the main navigation", async () => {
    window.location.hash = "#/keys";
    render(<App />);
    fireEvent.click(await screen.findByTestId("nav-alerts"));
    await screen.findByTestId("alerts-table");
    expect(screen.getByTestId("nav-alerts").getAttribute("aria-current")).toBe("page");
  });

  it("lists open alerts with key, kind, observed vs expected, window and when they opened", async () => {
    render(<App />);
    await screen.findByTestId("alerts-table");
    expect(mocked.alerts).toHaveBeenCalledWith("open");
    const rows = screen.getAllByTestId("alert-row");
    expect(rows.length).toBe(1);
    const text = rows[0]!.textContent ?? "";
    expect(text).toContain("Deploy bot");
    expect(text).toContain("rate spike");
    expect(text).toContain("420");
    expect(text).toContain("35.50");
    expect(text).toContain("5 min from 2026-11-25 09:00 UTC");
    expect(text).toContain("open");
    expect(screen.getByTestId("alerts-state").textContent).toBe("synced 2 min ago");
  });

  it("filters by status and shows all", async () => {
    render(<App />);
    await screen.findByTestId("alerts-table");
    fireEvent.click(screen.getByTestId("alerts-filter-all"));
    await waitFor(() => expect(screen.getAllByTestId("alert-row").length).toBe(3));
    expect(mocked.alerts).toHaveBeenLastCalledWith(null);
    const statuses = screen.getAllByTestId("alert-status").map((s) => s.textContent);
    expect(statuses).toEqual(["open", "acknowledged", "resolved"]);
    expect(screen.getAllByTestId("alert-ack").length).toBe(1);
    fireEvent.click(screen.getByTestId("alerts-filter-resolved"));
    await waitFor(() => expect(screen.getAllByTestId("alert-row").length).toBe(1));
    expect(screen.getByTestId("alert-row").textContent).toContain("rate drop");
    expect(screen.queryByTestId("alert-ack")).toBeNull();
  });

  it("acknowledges an open alert and drops it from the open list", async () => {
    mocked.ackAlert.mockResolvedValue({ ...open, status: "acked", acked_at: "2026-11-25T10:00:00Z" });
    render(<App />);
    fireEvent.click(await screen.findByTestId("alert-ack"));
    await waitFor(() => expect(mocked.ackAlert).toHaveBeenCalledWith("al-1"));
    await screen.findByTestId("alerts-empty");
    expect(screen.queryByTestId("ack-error")).toBeNull();
  });

  it("shows the new status in the full list", async () => {
    mocked.ackAlert.mockResolvedValue({ ...open, status: "acked" });
    render(<App />);
    await screen.findByTestId("alerts-table");
    fireEvent.click(screen.getByTestId("alerts-filter-all"));
    await waitFor(() => expect(screen.getAllByTestId("alert-row").length).toBe(3));
    fireEvent.click(screen.getByTestId("alert-ack"));
    await waitFor(() =>
      expect(screen.getAllByTestId("alert-status").map((s) => s.textContent)).toEqual(["acknowledged", "acknowledged", "resolved"]),
    );
  });

  it("says why an acknowledgement was refused (offline) and keeps the alert", async () => {
    mocked.ackAlert.mockRejectedValue({
      code: "offline", message: "the server cannot be reached: acknowledging an alert needs a connection; try again when online", fields: [],
    });
    render(<App />);
    fireEvent.click(await screen.findByTestId("alert-ack"));
    const err = await screen.findByTestId("ack-error");
    expect(err.textContent).toContain("acknowledging an alert needs a connection");
    expect(err.textContent).toContain("offline");
    expect(screen.getAllByTestId("alert-row").length).toBe(1);
  });

  it("offers no Acknowledge to viewers", async () => {
    mocked.currentSession.mockResolvedValue(viewer);
    render(<App />);
    await screen.findByTestId("alerts-table");
    expect(screen.queryByTestId("alert-ack")).toBeNull();
  });

  it("explains an empty replica", async () => {
    mocked.alerts.mockResolvedValue({ items: [], synced_at: null });
    render(<App />);
    const empty = await screen.findByTestId("alerts-empty");
    expect(empty.textContent).toContain("No alerts synced yet");
    expect(screen.getByTestId("alerts-state").textContent).toBe("not synced yet");
  });
});
