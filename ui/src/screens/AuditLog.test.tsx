// The audit log: newest first, "Load more" pages by the oldest seq shown.
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/preact";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

vi.mock("../api/commands", async () => (await import("../test/fixtures")).commandsMock());
vi.mock("../chart", async () => (await import("../test/fixtures")).chartMock());

import * as api from "../api/commands";
import { App } from "../app";
import { AUDIT_PAGE } from "./AuditLog";
import { audit, KEY_ID, online, session } from "../test/fixtures";

const mocked = vi.mocked(api);
const page = (from: number, n: number) => Array.from({ length: n }, (_, i) => audit(from - i));

beforeEach(() => {
  window.location.hash = "#/audit";
  mocked.currentSession.mockResolvedValue(session);
  mocked.syncStatus.mockResolvedValue(online);
  mocked.onSyncStatus.mockResolvedValue(() => {});
});
afterEach(() => {
  cleanup();
  vi.clearAllMocks();
});

describe("audit log", () => {
  it("lists entries and loads older ones by seq", async () => {
    mocked.auditLog.mockResolvedValueOnce(page(250, AUDIT_PAGE)).mockResolvedValueOnce(page(150, 30));
    render(<App />);
    const rows = await screen.findAllByTestId("audit-row");
    expect(rows).toHaveLength(AUDIT_PAGE);
    expect(rows[0]!.dataset.seq).toBe("250");
    expect(rows[0]!.textContent).toContain("Created key");
    expect(rows[0]!.textContent).toContain("ada@acme.test");
    expect(rows[0]!.textContent).toContain("10.0.0.7");
    expect(mocked.auditLog).toHaveBeenCalledWith(AUDIT_PAGE, null);
    fireEvent.click(screen.getByTestId("audit-more"));
    await waitFor(() => expect(screen.getAllByTestId("audit-row")).toHaveLength(AUDIT_PAGE + 30));
    expect(mocked.auditLog).toHaveBeenLastCalledWith(AUDIT_PAGE, 151);
    // A short page is the end of the log.
    expect(screen.queryByTestId("audit-more")).toBeNull();
  });

  it("names the key, lists the fields an edit changed and the reason, and filters", async () => {
    const before = { name: "Deploy bot", scopes: ["a:read"], revoke_reason: null, expires_at: null };
    mocked.auditLog.mockResolvedValueOnce([
      audit(3, { action: "key.revoke", actor_email: "bob@acme.test", before: { ...before, name: "Deploy bot 2" }, after: { ...before, name: "Deploy bot 2", revoke_reason: "leaked", revoked_at: "2026-11-25T11:00:00Z" } }),
      audit(2, { action: "key.update", before, after: { ...before, name: "Deploy bot 2", scopes: ["a:read", "b:write"] } }),
      audit(1, { action: "key.create", after: before }),
    ]);
    render(<App />);
    const rows = await screen.findAllByTestId("audit-row");
    expect(rows[0]!.textContent).toContain("Revoked key Deploy bot 2");
    expect(rows[0]!.textContent).toContain("Reason: “leaked”");
    expect(rows[1]!.textContent).toContain("Name: Deploy bot → Deploy bot 2");
    expect(rows[1]!.textContent).toContain("Scopes: a:read → a:read, b:write");
    expect(rows[2]!.textContent).not.toContain(KEY_ID.slice(0, 8));
    fireEvent.change(screen.getByTestId("audit-filter-actor"), { target: { value: "bob@acme.test" } });
    await waitFor(() => expect(screen.getAllByTestId("audit-row")).toHaveLength(1));
    fireEvent.change(screen.getByTestId("audit-filter-actor"), { target: { value: "" } });
    fireEvent.change(screen.getByTestId("audit-filter-action"), { target: { value: "key.update" } });
    await waitFor(() => expect(screen.getAllByTestId("audit-row")).toHaveLength(1));
    fireEvent.change(screen.getByTestId("audit-filter-action"), { target: { value: "" } });
    fireEvent.input(screen.getByTestId("audit-filter-key"), { target: { value: "nothing like it" } });
    await screen.findByTestId("audit-none");
  });

  it("shows system actions and an empty log", async () => {
    mocked.auditLog.mockResolvedValueOnce([audit(1, { actor_email: null, client_ip: null, action: "key.expire" })]);
    render(<App />);
    const [row] = await screen.findAllByTestId("audit-row");
    expect(row!.textContent).toContain("system");
    cleanup();
    mocked.auditLog.mockResolvedValueOnce([]);
    render(<App />);
    await screen.findByText("Nothing synced yet.");
  });
});
