// The report screen: presets and dates, local validation, the save dialog, the saved summary and
// the backend's errors.
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/preact";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

vi.mock("../api/commands", async () => (await import("../test/fixtures")).commandsMock());

import * as api from "../api/commands";
import { App } from "../app";
import { presetRange, reportPeriod, size } from "./Reports";
import { list, online, session } from "../test/fixtures";

const mocked = vi.mocked(api);
const type = (testid: string, value: string) => fireEvent.input(screen.getByTestId(testid), { target: { value } });

beforeEach(() => {
  window.location.hash = "#/reports";
  mocked.currentSession.mockResolvedValue(session);
  mocked.syncStatus.mockResolvedValue(online);
  mocked.onSyncStatus.mockResolvedValue(() => {});
  mocked.listKeys.mockResolvedValue(list(1));
  mocked.chooseReportPath.mockResolvedValue("/home/ada/usage.csv");
  mocked.saveReport.mockResolvedValue({ path: "/home/ada/usage.csv", bytes: 2048, rows: 42 });
});
afterEach(() => {
  cleanup();
  vi.clearAllMocks();
});

describe("reports", () => {
  it("is reachable from the main navigation", async () => {
    window.location.hash = "#/keys";
    render(<App />);
    fireEvent.click(await screen.findByTestId("nav-reports"));
    await screen.findByTestId("reports-screen");
  });

  it("asks where to save, then saves the period in the chosen format", async () => {
    render(<App />);
    await screen.findByTestId("reports-screen");
    type("report-from", "2026-11-01");
    type("report-to", "2026-11-30");
    fireEvent.click(screen.getByTestId("report-format-json"));
    fireEvent.click(screen.getByTestId("report-save"));
    const saved = await screen.findByTestId("report-saved");
    expect(mocked.chooseReportPath).toHaveBeenCalledWith("keyward-usage-2026-11-01-2026-11-30.json", "json");
    expect(mocked.saveReport).toHaveBeenCalledWith({
      path: "/home/ada/usage.csv", from: "2026-11-01T00:00:00.000Z", to: "2026-12-01T00:00:00.000Z", format: "json",
    });
    expect(saved.textContent).toContain("Saved 42 rows (2.0 KB) to /home/ada/usage.csv");
  });

  it("does nothing when the dialog is cancelled", async () => {
    mocked.chooseReportPath.mockResolvedValue(null);
    render(<App />);
    await screen.findByTestId("reports-screen");
    fireEvent.click(screen.getByTestId("report-save"));
    await waitFor(() => expect(mocked.chooseReportPath).toHaveBeenCalled());
    expect(mocked.saveReport).not.toHaveBeenCalled();
    expect(screen.queryByTestId("report-saved")).toBeNull();
  });

  it("refuses a bad period before asking for a path", async () => {
    render(<App />);
    await screen.findByTestId("reports-screen");
    type("report-from", "2026-11-30");
    type("report-to", "2026-11-01");
    fireEvent.click(screen.getByTestId("report-save"));
    const invalid = await screen.findByTestId("report-invalid");
    expect(invalid.textContent).toContain("must not be after the last day");
    expect(mocked.chooseReportPath).not.toHaveBeenCalled();
  });

  it("shows the backend's refusal (offline, unwritable path)", async () => {
    mocked.saveReport.mockRejectedValue({
      code: "offline", message: "the server cannot be reached: reports are made by the server, so saving one needs a connection", fields: [],
    });
    render(<App />);
    await screen.findByTestId("reports-screen");
    fireEvent.click(screen.getByTestId("report-save"));
    const err = await screen.findByTestId("report-error");
    expect(err.textContent).toContain("saving one needs a connection");
    mocked.saveReport.mockRejectedValue({
      code: "validation_failed", message: "path: the folder does not exist",
      fields: [{ field: "path", code: "not_found", message: "the folder does not exist" }],
    });
    fireEvent.click(screen.getByTestId("report-save"));
    await waitFor(() => expect(screen.getByTestId("report-error").textContent).toContain("The folder does not exist."));
  });

  it("presets fill the dates", async () => {
    render(<App />);
    await screen.findByTestId("reports-screen");
    fireEvent.click(screen.getByTestId("report-preset-7d"));
    const r = presetRange("7d");
    expect((screen.getByTestId("report-from") as HTMLInputElement).value).toBe(r.from);
    expect((screen.getByTestId("report-to") as HTMLInputElement).value).toBe(r.to);
  });
});

describe("report helpers", () => {
  const today = new Date("2026-11-25T15:00:00Z");
  it("presets", () => {
    expect(presetRange("7d", today)).toEqual({ from: "2026-11-19", to: "2026-11-25" });
    expect(presetRange("30d", today)).toEqual({ from: "2026-10-27", to: "2026-11-25" });
    expect(presetRange("last-month", today)).toEqual({ from: "2026-10-01", to: "2026-10-31" });
    expect(presetRange("last-month", new Date("2026-01-10T00:00:00Z"))).toEqual({ from: "2025-12-01", to: "2025-12-31" });
  });
  it("periods", () => {
    expect(reportPeriod("2026-11-25", "2026-11-25")).toEqual({ from: "2026-11-25T00:00:00.000Z", to: "2026-11-26T00:00:00.000Z" });
    expect(reportPeriod("2026-11-26", "2026-11-25")).toContain("must not be after");
    expect(reportPeriod("", "2026-11-25")).toContain("Choose both");
    expect(reportPeriod("2010-01-01", "2026-11-25")).toContain("at most 3660 days");
  });
  it("sizes", () => {
    expect(size(512)).toBe("512 B");
    expect(size(2048)).toBe("2.0 KB");
    expect(size(3 * 1024 * 1024)).toBe("3.0 MB");
  });
});
