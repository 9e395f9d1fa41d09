import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/preact";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ApiKey, CommandError, KeyList, Session, SyncStatus } from "./bindings";

vi.mock("./api/commands", () => ({
  login: vi.fn(), logout: vi.fn(), currentSession: vi.fn(), listKeys: vi.fn(), getKey: vi.fn(),
  createKey: vi.fn(), updateKey: vi.fn(), revokeKey: vi.fn(), rotateKey: vi.fn(), auditLog: vi.fn(),
  syncStatus: vi.fn(), syncNow: vi.fn(), keyUsage: vi.fn(), onSyncStatus: vi.fn(),
  toCommandError: (e: unknown) => e,
}));
vi.mock("./chart", () => ({ mountUsageChart: vi.fn(async () => ({ setSeries: vi.fn(), destroy: vi.fn() })) }));

import * as api from "./api/commands";
import { App } from "./app";

const mocked = vi.mocked(api);
const session: Session = { server_url: "http://127.0.0.1:8080", email: "ada@acme.test", role: "owner", org_id: "o" };
const status: SyncStatus = { online: true, syncing: false, last_sync_at: null, queued: 0, last_error: null };

function key(over: Partial<ApiKey> = {}): ApiKey {
  return {
    id: "01a2115c-e4c9-7290-8ca9-f6f59064faaa", org_id: "o", name: "Deploy bot", description: null, environment: "live",
    prefix: "kw_live_abc_", status: "active", scopes: ["badges:read"], allowed_ips: [], metadata: {}, disabled: false,
    expires_at: null, revoked_at: null, revoke_reason: null, rotated_from: null, replaced_by: null,
    lineage_id: "01a2115c-e4c9-7290-8ca9-f6f59064faaa", created_at: "2026-11-25T10:00:00Z", created_by: null,
    updated_at: "2026-11-25T10:00:00Z", last_used_at: null, last_used_ip: null, ...over,
  };
}
const list = (n = 1): KeyList => ({ items: Array.from({ length: n }, () => ({ key: key(), pending: false, error: null })), total: n });
const validation = (fields: [string, string][]): CommandError => ({
  code: "validation_failed", message: "invalid", fields: fields.map(([field, message]) => ({ field, code: "invalid", message })),
});

beforeEach(() => {
  window.location.hash = "";
  mocked.syncStatus.mockResolvedValue(status);
  mocked.onSyncStatus.mockResolvedValue(() => {});
  mocked.listKeys.mockResolvedValue(list());
  mocked.keyUsage.mockResolvedValue({ key_id: "k", granularity: "hour", points: [], fetched_at: null });
});
afterEach(() => { cleanup(); vi.clearAllMocks(); });

describe("sign-in", () => {
  it("signs in and shows the keys", async () => {
    mocked.currentSession.mockResolvedValue(null);
    mocked.login.mockResolvedValue(session);
    render(<App />);
    fireEvent.input(await screen.findByTestId("login-email"), { target: { value: "ada@acme.test" } });
    fireEvent.input(screen.getByTestId("login-password"), { target: { value: "secret password" } });
    fireEvent.click(screen.getByTestId("login-submit"));
    await screen.findByTestId("new-key");
    expect(mocked.login).toHaveBeenCalledWith("http://127.0.0.1:8080", "ada@acme.test", "secret password");
    expect(await screen.findAllByTestId("key-row")).toHaveLength(1);
  });

  it("shows a refused sign-in", async () => {
    mocked.currentSession.mockResolvedValue(null);
    mocked.login.mockRejectedValue({ code: "invalid_credentials", message: "the email or the password is wrong", fields: [] });
    render(<App />);
    fireEvent.click(await screen.findByTestId("login-submit"));
    expect((await screen.findByTestId("error-banner")).textContent).toContain("wrong");
  });

  it("returns to sign-in when the session ends, keeping changes", async () => {
    mocked.currentSession.mockResolvedValue(session);
    mocked.listKeys.mockRejectedValue({ code: "unauthenticated", message: "ended", fields: [] });
    render(<App />);
    expect((await screen.findByTestId("login-note")).textContent).toContain("unsynced changes are kept");
  });
});

describe("keys", () => {
  beforeEach(() => mocked.currentSession.mockResolvedValue(session));

  it("filters through the replica query", async () => {
    render(<App />);
    await screen.findAllByTestId("key-row");
    fireEvent.input(screen.getByTestId("search"), { target: { value: "dep" } });
    fireEvent.change(screen.getByTestId("filter-status"), { target: { value: "revoked" } });
    await waitFor(() => {
      const last = mocked.listKeys.mock.calls.at(-1)?.[0];
      expect(last).toMatchObject({ search: "dep", status: "revoked", offset: 0, limit: 50 });
    });
  });

  it("shows field errors inline and the token once", async () => {
    window.location.hash = "#/keys/new";
    mocked.createKey.mockRejectedValueOnce(validation([["name", "must not be empty"], ["scopes[0]", "missing colon"]]));
    render(<App />);
    fireEvent.click(await screen.findByTestId("create-submit"));
    expect((await screen.findByTestId("field-error-name")).textContent).toContain("must not be empty");
    expect(screen.getByTestId("field-error-scopes[0]").textContent).toContain("missing colon");

    mocked.createKey.mockResolvedValueOnce({ key: key(), token: "kw_live_abc_secret" });
    fireEvent.input(screen.getByTestId("create-name"), { target: { value: "Deploy bot" } });
    fireEvent.input(screen.getByTestId("create-scopes"), { target: { value: "badges:read, achievements:*" } });
    fireEvent.click(screen.getByTestId("create-submit"));
    expect((await screen.findByTestId("issued-token")).textContent).toBe("kw_live_abc_secret");
    expect(mocked.createKey.mock.calls.at(-1)?.[0]).toMatchObject({ name: "Deploy bot", scopes: ["badges:read", "achievements:*"] });
    fireEvent.click(screen.getByTestId("token-done"));
    await waitFor(() => expect(screen.queryByTestId("issued-token")).toBeNull());
    expect(document.body.textContent).not.toContain("kw_live_abc_secret");
  });

  it("revokes with the grace period and reason given", async () => {
    const id = key().id;
    window.location.hash = `#/keys/${id}`;
    mocked.getKey.mockResolvedValue({ item: { key: key(), pending: false, error: { code: "conflict", detail: "changed on the server" } }, audit: [] });
    mocked.revokeKey.mockResolvedValue({ key: key({ status: "revoked" }), pending: true, error: null });
    render(<App />);
    expect((await screen.findByTestId("key-error")).textContent).toContain("conflict");
    fireEvent.click(screen.getByTestId("revoke-open"));
    fireEvent.input(screen.getByTestId("revoke-grace"), { target: { value: "3600" } });
    fireEvent.input(screen.getByTestId("revoke-reason"), { target: { value: "leaked" } });
    fireEvent.click(screen.getByTestId("revoke-submit"));
    await waitFor(() => expect(mocked.revokeKey).toHaveBeenCalledWith(id, { grace_seconds: 3600, reason: "leaked" }));
  });

  it("refuses a bad grace period without sending", async () => {
    window.location.hash = `#/keys/${key().id}`;
    mocked.getKey.mockResolvedValue({ item: { key: key(), pending: false, error: null }, audit: [] });
    render(<App />);
    fireEvent.click(await screen.findByTestId("revoke-open"));
    fireEvent.input(screen.getByTestId("revoke-grace"), { target: { value: "-5" } });
    fireEvent.click(screen.getByTestId("revoke-submit"));
    await screen.findByTestId("field-error-grace_seconds");
    expect(mocked.revokeKey).not.toHaveBeenCalled();
  });

  it("shows offline and queued changes in the status bar", async () => {
    mocked.syncStatus.mockResolvedValue({ ...status, online: false, queued: 3 });
    render(<App />);
    await waitFor(() => expect(screen.getByTestId("status-online").textContent).toBe("Offline"));
    expect(screen.getByTestId("status-queued").textContent).toBe("3");
  });

  it("hides writes from viewers", async () => {
    mocked.currentSession.mockResolvedValue({ ...session, role: "viewer" });
    render(<App />);
    await screen.findAllByTestId("key-row");
    expect(screen.queryByTestId("new-key")).toBeNull();
  });
});
