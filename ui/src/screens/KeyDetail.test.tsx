// A key's detail: the rejection banner, edit / revoke / rotate / disable, usage, audit trail.
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/preact";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

vi.mock("../api/commands", async () => (await import("../test/fixtures")).commandsMock());
vi.mock("../chart", async () => (await import("../test/fixtures")).chartMock());

import * as api from "../api/commands";
import { App } from "../app";
import { editFrom } from "./KeyDetail";
import { resetKeysView } from "./Keys";
import { audit, chart, item, key, KEY_ID, list, online, session, validation, viewer } from "../test/fixtures";

const mocked = vi.mocked(api);
const type = (testid: string, value: string) => fireEvent.input(screen.getByTestId(testid), { target: { value } });
const KEEP = { name: null, description: null, scopes: null, allowed_ips: null, expires_at: null, clear_expiry: false, disabled: null };

beforeEach(() => {
  window.location.hash = `#/keys/${KEY_ID}`;
  resetKeysView();
  mocked.currentSession.mockResolvedValue(session);
  mocked.syncStatus.mockResolvedValue(online);
  mocked.onSyncStatus.mockResolvedValue(() => {});
  mocked.listKeys.mockResolvedValue(list(1));
  mocked.getKey.mockResolvedValue({ item: item(), audit: [audit(2, { action: "key.update" }), audit(1)] });
  mocked.keyUsage.mockResolvedValue({
    key_id: KEY_ID, granularity: "hour", fetched_at: "2026-11-25T10:00:00Z",
    points: [{ ts: "2026-11-25T09:00:00Z", allowed: 10, rate_limited: 2, rejected: 1 }],
  });
});
afterEach(() => {
  cleanup();
  vi.clearAllMocks();
});

describe("key detail", () => {
  it("shows the key, its usage and its audit trail", async () => {
    mocked.getKey.mockResolvedValue({
      item: item({
        scopes: ["badges:read", "users:read"], allowed_ips: ["10.0.0.0/8"], last_used_at: "2026-11-25T09:00:00Z",
        last_used_ip: "10.1.2.3", rotated_from: "older-id", lineage_id: "older-id",
      }),
      audit: [audit(2, { action: "key.update" }), audit(1)],
    });
    render(<App />);
    await screen.findByTestId("key-detail");
    expect(screen.getByTestId("detail-scopes").textContent).toContain("users:read");
    expect(screen.getByTestId("detail-ips").textContent).toContain("10.0.0.0/8");
    expect(screen.getByTestId("detail-last-used").textContent).toContain("10.1.2.3");
    expect(screen.getByTestId("detail-lineage").querySelector("a")?.getAttribute("href")).toBe("#/keys/older-id");
    expect(screen.getByTestId("key-audit").textContent).toContain("key.update");
    await waitFor(() => expect(screen.getByTestId("usage-chart").dataset.chart).toBe("ready"));
    expect(screen.getByTestId("usage-chart").id).toBe("usage-chart");
    expect(mocked.keyUsage).toHaveBeenCalledWith(KEY_ID, "hour");
    await waitFor(() => expect(chart.setSeries).toHaveBeenCalled());
    expect(screen.getByTestId("usage-totals").textContent).toContain("10 allowed");
    fireEvent.click(screen.getByTestId("granularity-day"));
    await waitFor(() => expect(mocked.keyUsage).toHaveBeenLastCalledWith(KEY_ID, "day"));
    expect(screen.getByTestId("granularity-day").getAttribute("aria-pressed")).toBe("true");
  });

  it("shows a rejected queued change as a banner", async () => {
    mocked.getKey.mockResolvedValue({ item: item({}, { pending: true, error: { code: "conflict", detail: "changed on the server" } }), audit: [] });
    render(<App />);
    const banner = await screen.findByTestId("key-error");
    expect(banner.textContent).toContain("conflict");
    expect(banner.textContent).toContain("changed on the server");
  });

  it("revokes with the grace period and reason given", async () => {
    mocked.revokeKey.mockResolvedValue(item({ status: "revoked" }, { pending: true }));
    render(<App />);
    fireEvent.click(await screen.findByTestId("revoke-open"));
    type("revoke-grace", "3600");
    expect(screen.getByText(/Stops working in 1 h/)).toBeTruthy();
    type("revoke-reason", " leaked in CI logs ");
    fireEvent.click(screen.getByTestId("revoke-submit"));
    await waitFor(() => expect(mocked.revokeKey).toHaveBeenCalledWith(KEY_ID, { grace_seconds: 3600, reason: "leaked in CI logs" }));
    await waitFor(() => expect(screen.queryByTestId("revoke-submit")).toBeNull());
    expect(mocked.getKey).toHaveBeenCalledTimes(2);
  });

  it("revokes at once with no reason", async () => {
    mocked.revokeKey.mockResolvedValue(item({ status: "revoked" }));
    render(<App />);
    fireEvent.click(await screen.findByTestId("revoke-open"));
    fireEvent.click(screen.getByTestId("revoke-submit"));
    await waitFor(() => expect(mocked.revokeKey).toHaveBeenCalledWith(KEY_ID, { grace_seconds: 0, reason: null }));
  });

  it("shows the backend's revoke errors inline", async () => {
    mocked.revokeKey.mockRejectedValue(validation([["grace_seconds", "at most 30 days"], ["reason", "too long"]]));
    render(<App />);
    fireEvent.click(await screen.findByTestId("revoke-open"));
    type("revoke-grace", "99999999");
    fireEvent.click(screen.getByTestId("revoke-submit"));
    expect((await screen.findByTestId("field-error-grace_seconds")).textContent).toContain("at most 30 days");
    expect(screen.getByTestId("field-error-reason").textContent).toContain("too long");
  });

  it("does not send a grace period that is not a whole number", async () => {
    render(<App />);
    fireEvent.click(await screen.findByTestId("revoke-open"));
    type("revoke-grace", "-5");
    fireEvent.click(screen.getByTestId("revoke-submit"));
    await screen.findByTestId("field-error-grace_seconds");
    expect(mocked.revokeKey).not.toHaveBeenCalled();
  });

  it("rotates immediately and shows the new token once", async () => {
    mocked.rotateKey.mockResolvedValue({ key: key({ id: "new-id", rotated_from: KEY_ID }), token: "kw_live_new_secret" });
    render(<App />);
    fireEvent.click(await screen.findByTestId("rotate-open"));
    fireEvent.click(screen.getByTestId("rotate-grace-preset-0"));
    fireEvent.click(screen.getByTestId("rotate-submit"));
    expect((await screen.findByTestId("issued-token")).textContent).toBe("kw_live_new_secret");
    expect(mocked.rotateKey).toHaveBeenCalledWith(KEY_ID, 0);
    fireEvent.click(screen.getByTestId("token-done"));
    await waitFor(() => expect(window.location.hash).toBe("#/keys/new-id"));
    expect(document.body.innerHTML).not.toContain("kw_live_new_secret");
    await waitFor(() => expect(mocked.getKey).toHaveBeenLastCalledWith("new-id"));
  });

  it("shows rotate errors inline", async () => {
    mocked.rotateKey.mockRejectedValue(validation([["grace_seconds", "at most 30 days"]]));
    render(<App />);
    fireEvent.click(await screen.findByTestId("rotate-open"));
    type("rotate-grace", "99999999");
    fireEvent.click(screen.getByTestId("rotate-submit"));
    expect((await screen.findByTestId("field-error-grace_seconds")).textContent).toContain("at most 30 days");
  });

  it("edits only what changed and shows field errors inline", async () => {
    mocked.getKey.mockResolvedValue({ item: item({ scopes: ["badges:read"], expires_at: "2027-01-01T00:00:00Z" }), audit: [] });
    mocked.updateKey.mockRejectedValueOnce(validation([["scopes[1]", "unknown resource"]]));
    render(<App />);
    fireEvent.click(await screen.findByTestId("edit-open"));
    type("edit-scopes", "badges:read widgets:read");
    fireEvent.click(screen.getByTestId("edit-submit"));
    expect((await screen.findByTestId("field-error-scopes[1]")).textContent).toBe("widgets:read: unknown resource");
    expect(mocked.updateKey).toHaveBeenCalledWith(KEY_ID, { ...KEEP, scopes: ["badges:read", "widgets:read"] });

    mocked.updateKey.mockResolvedValueOnce(item());
    type("edit-scopes", "badges:read");
    type("edit-name", "Renamed");
    type("edit-expires", "");
    fireEvent.click(screen.getByTestId("edit-submit"));
    await waitFor(() => expect(mocked.updateKey).toHaveBeenLastCalledWith(KEY_ID, { ...KEEP, name: "Renamed", clear_expiry: true }));
    await waitFor(() => expect(screen.queryByTestId("edit-submit")).toBeNull());
  });

  it("sends nothing when nothing changed", async () => {
    render(<App />);
    fireEvent.click(await screen.findByTestId("edit-open"));
    fireEvent.click(screen.getByTestId("edit-submit"));
    await screen.findByText("Nothing changed.");
    expect(mocked.updateKey).not.toHaveBeenCalled();
  });

  it("disables and enables through update_key", async () => {
    mocked.updateKey.mockResolvedValueOnce(item({ disabled: true, status: "disabled" }, { pending: true }));
    render(<App />);
    fireEvent.click(await screen.findByTestId("toggle-disabled"));
    await waitFor(() => expect(mocked.updateKey).toHaveBeenCalledWith(KEY_ID, { ...KEEP, disabled: true }));
    await waitFor(() => expect(screen.getByTestId("toggle-disabled").textContent).toContain("Enable"));
    expect(screen.getByTestId("key-detail").dataset.status).toBe("disabled");
  });

  it("offers no write actions to viewers or on revoked keys", async () => {
    mocked.currentSession.mockResolvedValue(viewer);
    render(<App />);
    await screen.findByTestId("read-only");
    for (const id of ["edit-open", "revoke-open", "rotate-open", "toggle-disabled"]) expect(screen.queryByTestId(id)).toBeNull();
    cleanup();

    mocked.currentSession.mockResolvedValue(session);
    mocked.getKey.mockResolvedValue({ item: item({ status: "revoked", revoked_at: "2026-11-25T10:00:00Z" }), audit: [] });
    render(<App />);
    expect((await screen.findByTestId("revoke-open")).hasAttribute("disabled")).toBe(true);
    expect(screen.queryByTestId("toggle-disabled")).toBeNull();
  });

  it("says when the key does not exist", async () => {
    mocked.getKey.mockRejectedValue({ code: "not_found", message: "no such key", fields: [] });
    render(<App />);
    await screen.findByText("No such key");
    expect(screen.getByTestId("error-banner").textContent).toContain("no such key");
  });
});

describe("editFrom", () => {
  const k = key({ name: "A", description: "d", scopes: ["b:read", "a:read"], allowed_ips: [], expires_at: null });
  const same = { name: "A", description: "d", scopes: "a:read b:read", ips: "", expires: "" };
  it("is null when nothing changed (order of scopes aside)", () => {
    expect(editFrom(k, same)).toBeNull();
  });
  it("clears the description with an empty string", () => {
    expect(editFrom(k, { ...same, description: " " })).toEqual({ ...KEEP, description: "" });
  });
  it("sets a new expiry", () => {
    expect(editFrom(k, { ...same, expires: "2027-03-01T08:00" })).toEqual({ ...KEEP, expires_at: new Date("2027-03-01T08:00").toISOString() });
  });
  it("sends emptied lists", () => {
    expect(editFrom(k, { ...same, scopes: "" })).toEqual({ ...KEEP, scopes: [] });
  });
});
