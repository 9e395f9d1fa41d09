// The IPC seam itself: command names, argument names and error normalisation, with Tauri's
// `invoke` and `listen` replaced.
import { afterEach, describe, expect, it, vi } from "vitest";

vi.mock("@tauri-apps/api/core", () => ({ invoke: vi.fn() }));
vi.mock("@tauri-apps/api/event", () => ({ listen: vi.fn() }));

import { invoke } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";
import * as api from "./commands";

const invokeMock = vi.mocked(invoke);
afterEach(() => vi.clearAllMocks());

describe("commands", () => {
  it("calls the commands with camelCase argument names", async () => {
    invokeMock.mockResolvedValue(null);
    await api.login("http://127.0.0.1:8080", "a@b.c", "pw");
    await api.rotateKey("k1", 0);
    await api.auditLog(100, null);
    await api.revokeKey("k1", { grace_seconds: 60, reason: "leaked" });
    await api.keyUsage("k1", "day");
    await api.keyLimits("k1");
    await api.keyGateway("k1", "7d");
    await api.keyNetworks("k1");
    await api.alertSettings();
    const t = {
      z_score: 4, spike_ratio: 2, drop_fraction: 0.1, min_volume: 30, ewma_alpha: 0.2, warmup_windows: 864, rejected_burst: 20,
      rejected_half_life_hours: 24, idle_days: 30, network_warmup_hours: 24,
    };
    await api.setAlertSettings(t);
    await api.currentSession();
    await api.changePassword("old password", "a new password");
    await api.logoutEverywhere();
    expect(invokeMock.mock.calls).toEqual([
      ["login", { serverUrl: "http://127.0.0.1:8080", email: "a@b.c", password: "pw" }],
      ["rotate_key", { id: "k1", graceSeconds: 0 }],
      ["audit_log", { limit: 100, beforeSeq: null }],
      ["revoke_key", { id: "k1", revocation: { grace_seconds: 60, reason: "leaked" } }],
      ["key_usage", { id: "k1", granularity: "day" }],
      ["key_limits", { id: "k1" }],
      ["key_gateway", { id: "k1", period: "7d" }],
      ["key_networks", { id: "k1" }],
      ["alert_settings", undefined],
      ["set_alert_settings", { thresholds: t }],
      ["current_session", undefined],
      ["change_password", { currentPassword: "old password", newPassword: "a new password" }],
      ["logout_everywhere", undefined],
    ]);
  });

  it("passes a CommandError through", async () => {
    const err = { code: "validation_failed", message: "2 fields", fields: [{ field: "name", code: "empty", message: "required" }] };
    invokeMock.mockRejectedValue(err);
    await expect(api.createKey({ name: "", description: null, environment: "live", scopes: [], allowed_ips: [], expires_at: null, limits: null }))
      .rejects.toEqual(err);
  });

  it("normalises other rejections", async () => {
    invokeMock.mockRejectedValueOnce("invalid args `graceSeconds` for command `rotate_key`");
    await expect(api.rotateKey("k", 1)).rejects.toEqual({
      code: "internal", message: "invalid args `graceSeconds` for command `rotate_key`", fields: [],
    });
    invokeMock.mockRejectedValueOnce(new Error("bridge gone"));
    await expect(api.syncNow()).rejects.toMatchObject({ code: "internal", message: "bridge gone", fields: [] });
    invokeMock.mockRejectedValueOnce(undefined);
    await expect(api.syncNow()).rejects.toMatchObject({ code: "internal", fields: [] });
    invokeMock.mockRejectedValueOnce({ code: "offline" });
    await expect(api.syncNow()).rejects.toEqual({ code: "offline", message: "offline", fields: [] });
  });

  it("recognises an ended session", () => {
    expect(api.isUnauthenticated({ code: "unauthenticated", message: "", fields: [] })).toBe(true);
    expect(api.isUnauthenticated({ code: "offline", message: "", fields: [] })).toBe(false);
    expect(api.isUnauthenticated("unauthenticated")).toBe(false);
  });

  it("subscribes to sync-status events", async () => {
    const unlisten = vi.fn();
    vi.mocked(listen).mockImplementation(async (_name, handler) => {
      handler({ event: "sync-status", id: 1, payload: { online: true, syncing: false, cursor: 0, queued: 2, queued_revocations: 0, rejected: 0, last_pull_at: null, last_push_at: null, last_error: null } });
      return unlisten;
    });
    const seen: number[] = [];
    const off = await api.onSyncStatus((s) => seen.push(s.queued));
    expect(vi.mocked(listen).mock.calls[0]?.[0]).toBe("sync-status");
    expect(seen).toEqual([2]);
    off();
    expect(unlisten).toHaveBeenCalled();
  });
});
