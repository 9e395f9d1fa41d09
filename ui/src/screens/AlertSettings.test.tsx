// Settings → Alert sensitivity: read from the backend, checked here with the server's ranges,
// saved through the backend, the server's field errors shown next to each field, read-only for
// viewers, refused offline with a message.
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/preact";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

vi.mock("../api/commands", async () => (await import("../test/fixtures")).commandsMock());

import * as api from "../api/commands";
import { App } from "../app";
import type { Thresholds } from "../bindings";
import { parseThresholds, THRESHOLD_FIELDS, toForm } from "./AlertSettings";
import { list, online, session, validation, viewer } from "../test/fixtures";

const mocked = vi.mocked(api);
const type = (name: string, value: string) => fireEvent.input(screen.getByTestId(`threshold-${name}`), { target: { value } });
const value = (name: string) => (screen.getByTestId(`threshold-${name}`) as HTMLInputElement).value;

const DEFAULTS: Thresholds = {
  z_score: 4, spike_ratio: 2, drop_fraction: 0.1, min_volume: 30, ewma_alpha: 0.2, warmup_windows: 864, rejected_burst: 20,
  rejected_half_life_hours: 24, idle_days: 30, network_warmup_hours: 24,
};

beforeEach(() => {
  window.location.hash = "#/settings";
  mocked.currentSession.mockResolvedValue(session);
  mocked.syncStatus.mockResolvedValue(online);
  mocked.onSyncStatus.mockResolvedValue(() => {});
  mocked.listKeys.mockResolvedValue(list(1));
  mocked.alertSettings.mockResolvedValue(DEFAULTS);
  mocked.setAlertSettings.mockImplementation(async (t: Thresholds) => t);
});
afterEach(() => {
  cleanup();
  vi.clearAllMocks();
});

describe("alert sensitivity", () => {
  it("shows the organisation's thresholds with their meaning", async () => {
    render(<App />);
    await screen.findByTestId("threshold-z_score");
    expect(screen.getByRole("heading", { name: "Alert sensitivity" })).toBeTruthy();
    expect(mocked.alertSettings).toHaveBeenCalled();
    for (const f of THRESHOLD_FIELDS) expect(value(f.name)).toBe(String(DEFAULTS[f.name]));
    expect(screen.getByLabelText("Deviation (z-score)")).toBe(screen.getByTestId("threshold-z_score"));
    expect(screen.getByText(/default 864 \(3 days\)/)).toBeTruthy();
    // Nothing changed yet: nothing to save.
    expect(screen.getByTestId("alert-settings-save").hasAttribute("disabled")).toBe(true);
  });

  it("saves what was typed and shows the server's answer", async () => {
    mocked.setAlertSettings.mockImplementation(async (t: Thresholds) => ({ ...t, z_score: 5.5 }));
    render(<App />);
    await screen.findByTestId("threshold-z_score");
    type("z_score", " 5.5 ");
    type("idle_days", "10");
    type("network_warmup_hours", "0");
    fireEvent.click(screen.getByTestId("alert-settings-save"));
    await waitFor(() => expect(mocked.setAlertSettings).toHaveBeenCalledWith({ ...DEFAULTS, z_score: 5.5, idle_days: 10, network_warmup_hours: 0 }));
    expect((await screen.findByTestId("alert-settings-saved")).textContent).toBe("Saved.");
    expect(value("z_score")).toBe("5.5");
    expect(value("idle_days")).toBe("10");
  });

  it("checks the ranges here and sends nothing out of range", async () => {
    render(<App />);
    await screen.findByTestId("threshold-z_score");
    type("z_score", "0");
    type("drop_fraction", "1");
    type("warmup_windows", "2.5");
    type("ewma_alpha", "abc");
    type("idle_days", "");
    fireEvent.click(screen.getByTestId("alert-settings-save"));
    expect((await screen.findByTestId("field-error-z_score")).textContent).toBe("Must be greater than 0 and at most 100.");
    expect(screen.getByTestId("field-error-drop_fraction").textContent).toBe("Must be at least 0 and less than 1.");
    expect(screen.getByTestId("field-error-warmup_windows").textContent).toBe("Must be a whole number.");
    expect(screen.getByTestId("field-error-ewma_alpha").textContent).toBe("Must be a number.");
    expect(screen.getByTestId("field-error-idle_days").textContent).toBe("Is required.");
    expect(screen.getByTestId("threshold-z_score").getAttribute("aria-invalid")).toBe("true");
    expect(screen.queryByTestId("field-error-spike_ratio")).toBeNull();
    expect(mocked.setAlertSettings).not.toHaveBeenCalled();
  });

  it("shows the server's field errors next to each field", async () => {
    mocked.setAlertSettings.mockRejectedValue(validation([
      ["spike_ratio", "must be between 1 and 1000"],
      ["rejected_burst", "must be at least 1"],
    ]));
    render(<App />);
    await screen.findByTestId("threshold-z_score");
    type("spike_ratio", "3");
    fireEvent.click(screen.getByTestId("alert-settings-save"));
    expect((await screen.findByTestId("field-error-spike_ratio")).textContent).toBe("Must be between 1 and 1000.");
    expect(screen.getByTestId("field-error-rejected_burst").textContent).toBe("Must be at least 1.");
    // Shown at the fields, not as a banner.
    expect(screen.queryByTestId("alert-settings-error")).toBeNull();
    expect(screen.queryByTestId("alert-settings-saved")).toBeNull();
  });

  it("is read-only for viewers", async () => {
    mocked.currentSession.mockResolvedValue(viewer);
    render(<App />);
    await screen.findByTestId("alert-settings-read-only");
    for (const f of THRESHOLD_FIELDS) {
      const input = screen.getByTestId(`threshold-${f.name}`);
      expect(input.hasAttribute("disabled") || input.hasAttribute("readonly")).toBe(true);
    }
    expect(screen.queryByTestId("alert-settings-save")).toBeNull();
  });

  it("says offline that saving needs the server, and shows the backend's refusal", async () => {
    mocked.syncStatus.mockResolvedValue({ ...online, online: false });
    mocked.setAlertSettings.mockRejectedValue({
      code: "offline", message: "the server cannot be reached: saving alert sensitivity needs a connection; try again when online", fields: [],
    });
    render(<App />);
    await screen.findByTestId("threshold-z_score");
    expect((await screen.findByTestId("alert-settings-offline")).textContent).toContain("saving needs the server");
    type("z_score", "6");
    fireEvent.click(screen.getByTestId("alert-settings-save"));
    const banner = await screen.findByTestId("alert-settings-error");
    expect(banner.textContent).toContain("saving alert sensitivity needs a connection");
    expect(banner.getAttribute("role")).toBe("alert");
  });

  it("says when the thresholds cannot be read, and retries", async () => {
    mocked.alertSettings.mockRejectedValueOnce({ code: "offline", message: "the server cannot be reached", fields: [] });
    render(<App />);
    const err = await screen.findByTestId("alert-settings-load-error");
    expect(err.textContent).toContain("Alert sensitivity unavailable: the server cannot be reached");
    expect(screen.queryByTestId("threshold-z_score")).toBeNull();
    fireEvent.click(screen.getByTestId("alert-settings-retry"));
    await screen.findByTestId("threshold-z_score");
    expect(mocked.alertSettings).toHaveBeenCalledTimes(2);
  });
});

describe("parseThresholds", () => {
  const form = toForm(DEFAULTS);
  it("reads back what toForm wrote", () => {
    expect(parseThresholds(form)).toEqual({ value: DEFAULTS });
  });
  it("takes the ranges' edges as the server does", () => {
    const edges = { ...form, z_score: "100", spike_ratio: "1", drop_fraction: "0", min_volume: "4294967295", ewma_alpha: "1", warmup_windows: "129600", rejected_half_life_hours: "720", idle_days: "3650", network_warmup_hours: "0" };
    expect("value" in parseThresholds(edges)).toBe(true);
    const past = { ...form, z_score: "100.5", spike_ratio: "0.99", drop_fraction: "-0.1", min_volume: "4294967296", ewma_alpha: "0", warmup_windows: "129601", rejected_burst: "0", rejected_half_life_hours: "721", idle_days: "0", network_warmup_hours: "721" };
    const out = parseThresholds(past);
    expect("errors" in out && out.errors.map((e) => e.field)).toEqual(THRESHOLD_FIELDS.map((f) => f.name));
  });
  it("refuses integers too large to send exactly", () => {
    const out = parseThresholds({ ...form, rejected_burst: "90071992547409930" });
    expect(out).toEqual({ errors: [{ field: "rejected_burst", code: "out_of_range", message: "is too large" }] });
  });
});
