// A key's detail: the rejection banner, edit / revoke / rotate / disable, usage, limits, audit trail.
import { cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/preact";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

vi.mock("../api/commands", async () => (await import("../test/fixtures")).commandsMock());
vi.mock("../chart", async () => (await import("../test/fixtures")).chartMock());

import * as api from "../api/commands";
import { App } from "../app";
import { editFrom, kindLabel, level, resetsIn } from "./KeyDetail";
import { resetKeysView } from "./Keys";
import { audit, chart, item, key, KEY_ID, limits, list, online, rule, session, validation, viewer } from "../test/fixtures";

const mocked = vi.mocked(api);
const type = (testid: string, value: string) => fireEvent.input(screen.getByTestId(testid), { target: { value } });
const KEEP = { name: null, description: null, scopes: null, allowed_ips: null, expires_at: null, clear_expiry: false, disabled: null, limits: null };

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
  mocked.keyLimits.mockResolvedValue(limits());
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
    expect(screen.getByTestId("key-audit").textContent).toContain("Changed key");
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
    expect(banner.textContent).toContain("Changed on the server.");
    expect(banner.textContent).not.toContain("conflict");
    mocked.dismissKeyError.mockResolvedValueOnce(undefined);
    fireEvent.click(screen.getByTestId("key-error-dismiss"));
    await waitFor(() => expect(screen.queryByTestId("key-error")).toBeNull());
    expect(mocked.dismissKeyError).toHaveBeenCalledWith(KEY_ID);
  });

  it("shows a revocation queued on this device as pending, not as revoked", async () => {
    const revokedHere = item(
      { status: "revoked", revoked_at: "2026-12-08T03:00:00Z", revoke_reason: "leaked" },
      { pending: true, server_status: "active", server_revoked_at: null },
    );
    mocked.getKey.mockResolvedValue({ item: revokedHere, audit: [] });
    render(<App />);
    const state = await screen.findByTestId("key-pending-state");
    expect(state.textContent).toContain("Revocation queued — the key still works until this device syncs.");
    expect(screen.getByTestId("status-badge").textContent).toBe("revocation queued");
    expect(screen.getByTestId("detail-revocation").textContent).toContain("the server sets the time when it syncs");
    expect(screen.getByTestId("detail-revocation").textContent).not.toContain("2026-12-08");
  });

  it("shows a key made on this device as not active until synced", async () => {
    mocked.getKey.mockResolvedValue({ item: item({}, { pending: true, server_status: null, server_revoked_at: null }), audit: [] });
    render(<App />);
    const state = await screen.findByTestId("key-pending-state");
    expect(state.textContent).toContain("Not active until synced");
    expect(screen.getByTestId("status-badge").textContent).toBe("not active until synced");
  });

  it("edits the key's rate limits and quota, every bad entry at once", async () => {
    mocked.getKey.mockResolvedValue({ item: item(), audit: [] });
    mocked.updateKey.mockResolvedValue(item());
    render(<App />);
    fireEvent.click(await screen.findByTestId("edit-open"));
    fireEvent.click(screen.getByTestId("edit-rule-add"));
    fireEvent.input(screen.getByTestId("edit-rule-limit"), { target: { value: "ten" } });
    fireEvent.input(screen.getByTestId("edit-rule-window"), { target: { value: "" } });
    fireEvent.input(screen.getByTestId("edit-quota-daily"), { target: { value: "1.5" } });
    fireEvent.click(screen.getByTestId("edit-submit"));
    await screen.findByTestId("field-error-rate_limits[0].limit");
    expect(screen.getByTestId("field-error-rate_limits[0].window_seconds")).toBeTruthy();
    expect(screen.getByTestId("field-error-quota.daily")).toBeTruthy();
    expect(mocked.updateKey).not.toHaveBeenCalled();

    fireEvent.input(screen.getByTestId("edit-rule-limit"), { target: { value: "5" } });
    fireEvent.input(screen.getByTestId("edit-rule-window"), { target: { value: "60" } });
    fireEvent.input(screen.getByTestId("edit-quota-daily"), { target: { value: "1,000" } });
    fireEvent.change(screen.getByTestId("edit-rule-consistency"), { target: { value: "exact" } });
    fireEvent.click(screen.getByTestId("edit-submit"));
    await waitFor(() => expect(mocked.updateKey).toHaveBeenCalledWith(KEY_ID, {
      ...KEEP,
      limits: {
        tier: null,
        rate_limits: [{ algorithm: "fixed_window", limit: 5, window_seconds: 60, consistency: "exact" }],
        quota: { daily: 1000, consistency: "leased" },
      },
    }));
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
    expect((await screen.findByTestId("field-error-grace_seconds")).textContent).toContain("At most 30 days");
    expect(screen.getByTestId("field-error-reason").textContent).toContain("Too long");
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
    expect((await screen.findByTestId("field-error-grace_seconds")).textContent).toContain("At most 30 days");
  });

  it("edits only what changed and shows field errors inline", async () => {
    mocked.getKey.mockResolvedValue({ item: item({ scopes: ["badges:read"], expires_at: "2027-01-01T00:00:00Z" }), audit: [] });
    mocked.updateKey.mockRejectedValueOnce(validation([["scopes[1]", "unknown resource"]]));
    render(<App />);
    fireEvent.click(await screen.findByTestId("edit-open"));
    type("edit-scopes", "badges:read widgets:read");
    fireEvent.click(screen.getByTestId("edit-submit"));
    expect((await screen.findByTestId("field-error-scopes[1]")).textContent).toBe("widgets:read: Unknown resource.");
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
    expect(screen.getByTestId("error-banner").textContent).toContain("No such key.");
  });
});

describe("key limits", () => {
  const rows = () => screen.getAllByTestId("limit-row");

  it("forecasts each quota in words", async () => {
    mocked.getKey.mockResolvedValue({ item: item({ quota: { daily: 1000, monthly: 100000, consistency: "leased" } }), audit: [] });
    const soon = new Date(Date.now() + 3 * 3_600_000).toISOString();
    mocked.keyLimits.mockResolvedValue(limits({
      rules: [rule({ policy: "daily", kind: "daily", limit: 1000, window_seconds: 86400, used: 600, remaining: 400, reset_seconds: 7200 })],
      forecast: [
        { quota: "daily", exhausts_at: soon, confidence: "medium" },
        { quota: "monthly", exhausts_at: null, confidence: "low" },
      ],
    }));
    render(<App />);
    const f = await screen.findByTestId("limits-forecast");
    expect(f.textContent).toContain("Daily quota: runs out around");
    expect(f.textContent).toContain("medium confidence");
    expect(f.textContent).toContain("Monthly quota: lasts the month at the rate so far");
  });

  it("shows each rule's usage against its limit, the tier and where the rules come from", async () => {
    mocked.getKey.mockResolvedValue({ item: item({ tier: "pro", rate_limits: null, quota: { daily: 1000, consistency: "leased" } }), audit: [] });
    mocked.keyLimits.mockResolvedValue(limits({
      tier: "pro",
      soft_threshold: 0.8,
      rules: [
        rule({ policy: "minute", kind: "gcra", limit: 60, window_seconds: 60, used: 12, remaining: 48, reset_seconds: 45 }),
        rule({ policy: "hour", kind: "sliding_window", limit: 5, window_seconds: 3600, used: 4, remaining: 1, reset_seconds: 1800, consistency: "exact" }),
        rule({ policy: "day", kind: "daily", limit: 1000, window_seconds: 86400, used: 1000, remaining: 0, reset_seconds: 7200 }),
      ],
    }));
    render(<App />);
    await screen.findByTestId("limits-rules");
    expect(mocked.keyLimits).toHaveBeenCalledWith(KEY_ID);
    expect(screen.getByRole("heading", { name: "Limits" })).toBeTruthy();
    expect(screen.getByTestId("limits-tier").textContent).toBe("pro");
    expect(screen.getByTestId("limits-source-rate").textContent).toBe("inherited from tier pro");
    expect(screen.getByTestId("limits-source-quota").textContent).toBe("set on this key");

    const [minute, hour, day] = rows();
    expect(minute!.textContent).toContain("token bucket");
    expect(minute!.textContent).toContain("12 / 60");
    expect(minute!.textContent).toContain("resets in 45 s");
    expect(minute!.textContent).toContain("(tier)");
    const bar = within(minute!).getByRole("progressbar");
    expect(bar.getAttribute("aria-valuenow")).toBe("12");
    expect(bar.getAttribute("aria-valuemax")).toBe("60");
    expect(bar.getAttribute("aria-valuetext")).toBe("12 / 60 used (20%)");
    expect(bar.getAttribute("aria-label")).toBe("minute used");
    expect(within(minute!).queryByTestId("limit-warning")).toBeNull();
    // Leased (the default) says nothing; an exact rule says so.
    expect(within(minute!).queryByTestId("exact")).toBeNull();
    expect(within(hour!).getByTestId("exact").textContent).toContain("exact");

    // 4 of 5 is past 80 %: a warning in words, not colour alone.
    expect(hour!.textContent).toContain("sliding window");
    expect(hour!.textContent).toContain("4 / 5");
    expect(hour!.textContent).toContain("resets in 30 min");
    expect(hour!.dataset.level).toBe("warn");
    expect(within(hour!).getByTestId("limit-warning").textContent).toContain("near limit");
    expect(within(hour!).getByRole("progressbar").getAttribute("aria-valuenow")).toBe("4");

    expect(day!.textContent).toContain("daily quota");
    expect(day!.textContent).toContain("resets in 2 h");
    expect(day!.textContent).not.toContain("(tier)");
    expect(within(day!).getByTestId("limit-warning").textContent).toContain("limit reached");
    expect(screen.getByTestId("violations-empty").textContent).toBe("No violations in the last 24 hours");
  });

  it("lists the recent violations", async () => {
    mocked.getKey.mockResolvedValue({ item: item({ rate_limits: [{ algorithm: "fixed_window", limit: 5, window_seconds: 3600, consistency: "leased" }] }), audit: [] });
    mocked.keyLimits.mockResolvedValue(limits({
      rules: [rule({ used: 5, remaining: 0 })],
      violations: [
        { key_id: KEY_ID, rule: "hour", count: 17, last_at: "2026-11-25T09:00:00Z" },
        { key_id: KEY_ID, rule: "day", count: 1, last_at: "2026-11-25T08:00:00Z" },
      ],
    }));
    render(<App />);
    await screen.findByTestId("violations");
    expect(screen.getByTestId("limits-tier").textContent).toBe("no tier");
    expect(screen.getByTestId("limits-source-rate").textContent).toBe("set on this key");
    expect(screen.getByRole("heading", { name: "Recent violations" })).toBeTruthy();
    const [hour, day] = screen.getAllByTestId("violation-row");
    expect(hour!.textContent).toContain("hour");
    expect(hour!.textContent).toContain("17");
    expect(hour!.textContent).toContain("2026-11-25 09:00 UTC");
    expect(day!.textContent).toContain("day");
    expect(screen.queryByTestId("violations-empty")).toBeNull();
  });

  it("says when the key has no rules", async () => {
    render(<App />);
    expect((await screen.findByTestId("limits-empty")).textContent).toBe("No rate limits or quotas");
    expect(screen.getByTestId("limits-tier").textContent).toBe("no tier");
    expect(screen.queryByTestId("limits-rules")).toBeNull();
    expect(screen.queryByTestId("limit-row")).toBeNull();
  });

  it("shows loading, then the error when the limits cannot be read", async () => {
    let reject: (e: unknown) => void = () => {};
    mocked.keyLimits.mockReturnValue(new Promise((_, r) => { reject = r; }));
    render(<App />);
    await waitFor(() => expect(mocked.keyLimits).toHaveBeenCalledWith(KEY_ID));
    expect(screen.getByTestId("limits-state").textContent).toBe("loading…");
    expect(screen.getByTestId("key-limits").getAttribute("aria-busy")).toBe("true");
    reject({ code: "offline", message: "the server cannot be reached and this device has no saved copy of this key's limits yet", fields: [] });
    const err = await screen.findByTestId("limits-error");
    expect(err.getAttribute("role")).toBe("alert");
    expect(err.textContent).toContain("Limits unavailable: the server cannot be reached");
    expect(screen.queryByTestId("limits-rules")).toBeNull();
    expect(screen.getByTestId("limits-state").textContent).toBe("");
  });
});

describe("limit helpers", () => {
  it("names the kinds", () => {
    expect(["gcra", "fixed_window", "sliding_window", "daily", "monthly", "new_thing"].map(kindLabel)).toEqual([
      "token bucket", "fixed window", "sliding window", "daily quota", "monthly quota", "new thing",
    ]);
  });
  it("says when a rule resets", () => {
    expect([0, 45, 60, 1800, 3600, 5400, 86_400, 5 * 86_400].map(resetsIn)).toEqual([
      "resets now", "resets in 45 s", "resets in 1 min", "resets in 30 min", "resets in 1 h", "resets in 2 h",
      "resets in 24 h", "resets in 5 d",
    ]);
  });
  it("warns from the soft threshold on", () => {
    expect(level(rule({ limit: 10, used: 7, remaining: 3 }), 0.8)).toBe("ok");
    expect(level(rule({ limit: 10, used: 8, remaining: 2 }), 0.8)).toBe("warn");
    expect(level(rule({ limit: 10, used: 10, remaining: 0 }), 0.8)).toBe("full");
    expect(level(rule({ limit: 10, used: 0, remaining: 10 }), 0)).toBe("ok");
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
    expect(editFrom(k, { ...same, expires: "2027-03-01T08:00" })).toEqual({ ...KEEP, expires_at: "2027-03-01T08:00:00.000Z" });
  });
  it("sends emptied lists", () => {
    expect(editFrom(k, { ...same, scopes: "" })).toEqual({ ...KEEP, scopes: [] });
  });
});
