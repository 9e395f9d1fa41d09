// Refused changes: listed with what they were and why, retried or discarded; the banners above
// every screen while revocations are queued or changes were refused.
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/preact";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

vi.mock("../api/commands", async () => (await import("../test/fixtures")).commandsMock());

import * as api from "../api/commands";
import type { RejectedChange } from "../bindings";
import { App } from "../app";
import { item, KEY_ID, list, online, session } from "../test/fixtures";

const mocked = vi.mocked(api);

const refused: RejectedChange = {
  op_id: "0193a000-0000-7000-8000-000000000001",
  kind: "update_key",
  key_id: KEY_ID,
  key_name: "Deploy bot",
  summary: "Edit",
  fields: [{ field: "Name", value: "Deploy bot v2" }, { field: "Scopes", value: "badges:read, users:read" }],
  error: { code: "conflict", detail: "the key was changed on the server after this edit was made; review and edit again" },
  queued_at: "2026-12-08T02:00:00Z",
  rejected_at: "2026-12-08T02:05:00Z",
  retryable: true,
};

beforeEach(() => {
  window.location.hash = "#/settings";
  mocked.currentSession.mockResolvedValue(session);
  mocked.syncStatus.mockResolvedValue({ ...online, rejected: 1, queued_revocations: 2 });
  mocked.onSyncStatus.mockResolvedValue(() => {});
  mocked.listKeys.mockResolvedValue(list(1));
  mocked.alertSettings.mockResolvedValue({
    z_score: 4, spike_ratio: 2, drop_fraction: 0.1, min_volume: 30, ewma_alpha: 0.2, warmup_windows: 864,
    rejected_burst: 20, rejected_half_life_hours: 24, idle_days: 30, network_warmup_hours: 24,
  });
  mocked.rejectedChanges.mockResolvedValue([refused]);
});
afterEach(() => {
  cleanup();
  vi.clearAllMocks();
});

describe("refused changes", () => {
  it("lists what the change was and why, in words", async () => {
    render(<App />);
    const row = await screen.findByTestId("rejected-change");
    expect(row.textContent).toContain("Edit");
    expect(row.textContent).toContain("Deploy bot v2");
    expect(row.textContent).toContain("badges:read, users:read");
    expect(screen.getByTestId("rejected-reason").textContent).toBe(
      "Why: The key was changed on the server after this edit was made; review and edit again.",
    );
    expect(row.textContent).not.toContain("conflict");
  });

  it("retries a refused edit and discards another", async () => {
    mocked.retryRejected.mockResolvedValue(item());
    mocked.discardRejected.mockResolvedValue(undefined);
    render(<App />);
    fireEvent.click(await screen.findByTestId("rejected-retry"));
    await waitFor(() => expect(mocked.retryRejected).toHaveBeenCalledWith(refused.op_id));
    await waitFor(() => expect((screen.getByTestId("rejected-discard") as HTMLButtonElement).disabled).toBe(false));
    fireEvent.click(screen.getByTestId("rejected-discard"));
    await waitFor(() => expect(mocked.discardRejected).toHaveBeenCalledWith(refused.op_id));
  });

  it("offers no retry for a refused new key", async () => {
    mocked.rejectedChanges.mockResolvedValue([{ ...refused, kind: "create_key", summary: "Create key", retryable: false }]);
    render(<App />);
    const row = await screen.findByTestId("rejected-change");
    expect(screen.queryByTestId("rejected-retry")).toBeNull();
    expect(row.textContent).toContain("cannot be sent again");
  });

  it("raises banners for queued revocations and refused changes on every screen", async () => {
    window.location.hash = "#/keys";
    render(<App />);
    const revocations = await screen.findByTestId("revocations-banner");
    expect(revocations.textContent).toContain("2 revocations are queued — those keys still work until this device syncs.");
    expect(screen.getByTestId("rejected-banner").textContent).toContain("The server refused 1 change made on this device.");
  });
});
