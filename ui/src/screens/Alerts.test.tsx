// The alerts screen: listed from the replica by status, acknowledged through the backend, with
// the backend's refusal (offline) shown.
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/preact";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

vi.mock("../api/commands", async () => (await import("../test/fixtures")).commandsMock());

import * as api from "../api/commands";
import { App } from "../app";
import type { AlertStatus } from "../bindings";
import { KEY_ID, alertOf, keyEventOf, list, online, session, viewer } from "../test/fixtures";

const mocked = vi.mocked(api);
const SYNCED = new Date(Date.now() - 2 * 60_000).toISOString();

const open = alertOf({ id: "al-1" });
const acked = alertOf({ id: "al-2", key_name: "Mobile app", kind: "new_network", status: "acked", acked_at: "2026-11-25T09:20:00Z", acked_by: "bob@acme.test" });
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
  mocked.events.mockResolvedValue({ items: [], synced_at: SYNCED });
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
    expect(text).toContain("Traffic spike");
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
    expect(screen.getByTestId("alert-acked-at").textContent).toContain("by bob@acme.test");
    expect(screen.getAllByTestId("alert-ack").length).toBe(1);
    fireEvent.click(screen.getByTestId("alerts-filter-resolved"));
    await waitFor(() => expect(screen.getAllByTestId("alert-row").length).toBe(1));
    expect(screen.getByTestId("alert-row").textContent).toContain("Traffic drop");
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
    expect(err.textContent).toContain("try again when online");
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

const SUCCESSOR = "01a2115c-e4c9-7290-8ca9-000000000002";
const expiredEvent = keyEventOf({ id: "ev-1", created_at: new Date(Date.now() - 60_000).toISOString() });
const revokedEvent = keyEventOf({
  id: "ev-2", type: "key.revoked", key_name: "Mobile app", created_at: new Date(Date.now() - 3_600_000).toISOString(),
  data: { key_id: KEY_ID, name: "Mobile app", revoked_at: "2026-11-25T08:00:00Z", reason: "leaked in a log", replaced_by: SUCCESSOR },
});
const quotaEvent = keyEventOf({
  id: "ev-3", type: "limit.quota_exceeded", key_name: "Deploy bot", created_at: new Date(Date.now() - 7_200_000).toISOString(),
  // 20417: 2025-11-25 as days since the epoch.
  data: { key_id: KEY_ID, rule: "daily", window_index: 20417, used: 1000, limit: 1000, at: "2025-11-25T07:00:00Z" },
});

describe("key events", () => {
  beforeEach(() => {
    mocked.events.mockResolvedValue({ items: [expiredEvent, revokedEvent, quotaEvent], synced_at: SYNCED });
  });

  it("lists the synced events with a readable type, the key, when and the salient payload", async () => {
    render(<App />);
    await screen.findByTestId("events-table");
    expect(mocked.events).toHaveBeenCalled();
    const rows = screen.getAllByTestId("event-row");
    expect(rows.map((r) => r.getAttribute("data-event-type"))).toEqual(["key.expired", "key.revoked", "limit.quota_exceeded"]);
    expect(screen.getAllByTestId("event-label").map((l) => l.textContent)).toEqual(["Expired", "Revoked", "Quota exceeded"]);
    const details = screen.getAllByTestId("event-detail").map((d) => d.textContent);
    expect(details[0]).toContain("expired 2026-11-25 09:59 UTC");
    expect(details[1]).toContain("reason: leaked in a log");
    expect(details[1]).toContain("replaced by its successor");
    expect(details[2]).toContain("daily: 1,000 of 1,000, day 2025-11-25");
    expect(rows[0]!.textContent).toContain("1 min ago");
    expect(rows[1]!.textContent).toContain("Mobile app");
    expect(screen.getByTestId("events-state").textContent).toBe("pulled 2 min ago");
  });

  it("links each event's key, and a revocation's successor", async () => {
    render(<App />);
    await screen.findByTestId("events-table");
    expect(screen.getByTestId("event-replaced-by").getAttribute("href")).toBe(`#/keys/${SUCCESSOR}`);
    fireEvent.click(screen.getAllByTestId("event-key")[0]!);
    await waitFor(() => expect(window.location.hash).toBe(`#/keys/${KEY_ID}`));
  });

  it("filters by category", async () => {
    render(<App />);
    await screen.findByTestId("events-table");
    fireEvent.click(screen.getByTestId("events-filter-limit"));
    await waitFor(() => expect(screen.getAllByTestId("event-row").length).toBe(1));
    expect(screen.getByTestId("event-label").textContent).toBe("Quota exceeded");
    fireEvent.click(screen.getByTestId("events-filter-alert"));
    await screen.findByTestId("events-empty");
    fireEvent.click(screen.getByTestId("events-filter-all"));
    await waitFor(() => expect(screen.getAllByTestId("event-row").length).toBe(3));
  });

  it("shows what was last pulled when offline, and says when nothing was", async () => {
    mocked.syncStatus.mockResolvedValue({ ...online, online: false, last_error: "offline" });
    render(<App />);
    await screen.findByTestId("events-table");
    expect(screen.getAllByTestId("event-row").length).toBe(3);
    cleanup();
    mocked.events.mockResolvedValue({ items: [], synced_at: null });
    render(<App />);
    const empty = await screen.findByTestId("events-empty");
    expect(empty.textContent).toContain("No key events pulled yet");
    expect(screen.getByTestId("events-state").textContent).toBe("not pulled yet");
  });
});
