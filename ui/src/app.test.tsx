// The app shell: sign-in, the session ending, navigation, roles, the status bar.
import { act, cleanup, fireEvent, render, screen, waitFor } from "@testing-library/preact";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { KeyList, SyncStatus } from "./bindings";

vi.mock("./api/commands", async () => (await import("./test/fixtures")).commandsMock());
vi.mock("./chart", async () => (await import("./test/fixtures")).chartMock());

import * as api from "./api/commands";
import { App, parseRoute } from "./app";
import { resetKeysView } from "./screens/Keys";
import { audit, list, online, session, unauthenticated, viewer } from "./test/fixtures";

const mocked = vi.mocked(api);
let emit: (s: SyncStatus) => void = () => {};

beforeEach(() => {
  window.location.hash = "";
  resetKeysView();
  mocked.syncStatus.mockResolvedValue(online);
  mocked.onSyncStatus.mockImplementation(async (f) => {
    emit = f;
    return () => {};
  });
  mocked.listKeys.mockResolvedValue(list(1));
  mocked.auditLog.mockResolvedValue([]);
  mocked.logout.mockResolvedValue(undefined);
});
afterEach(() => {
  cleanup();
  vi.clearAllMocks();
  vi.useRealTimers();
});

describe("routes", () => {
  it("parses hash routes", () => {
    expect(parseRoute("")).toEqual({ name: "keys" });
    expect(parseRoute("#/keys/new")).toEqual({ name: "new-key" });
    expect(parseRoute("#/keys/01a2-x")).toEqual({ name: "key", id: "01a2-x" });
    expect(parseRoute("#/audit")).toEqual({ name: "audit" });
    expect(parseRoute("#/settings/")).toEqual({ name: "settings" });
    expect(parseRoute("#/nowhere")).toEqual({ name: "keys" });
  });
});

describe("sign-in", () => {
  beforeEach(() => mocked.currentSession.mockResolvedValue(null));

  it("prefills the server, signs in and shows the keys", async () => {
    mocked.login.mockResolvedValue(session);
    render(<App />);
    expect((await screen.findByTestId("login-server") as HTMLInputElement).value).toBe("http://127.0.0.1:8080");
    fireEvent.input(screen.getByTestId("login-email"), { target: { value: "ada@acme.test" } });
    fireEvent.input(screen.getByTestId("login-password"), { target: { value: "secret password" } });
    fireEvent.click(screen.getByTestId("login-submit"));
    await screen.findByTestId("new-key");
    expect(mocked.login).toHaveBeenCalledWith("http://127.0.0.1:8080", "ada@acme.test", "secret password");
    expect(await screen.findAllByTestId("key-row")).toHaveLength(1);
    expect(window.location.hash).toBe("#/keys");
  });

  it("shows a refused sign-in and clears the password", async () => {
    mocked.login.mockRejectedValue({ code: "invalid_credentials", message: "the email or the password is wrong", fields: [] });
    render(<App />);
    fireEvent.input(await screen.findByTestId("login-password"), { target: { value: "nope" } });
    fireEvent.click(screen.getByTestId("login-submit"));
    expect((await screen.findByTestId("error-banner")).textContent).toContain("The email or the password is wrong.");
    expect((screen.getByTestId("login-password") as HTMLInputElement).value).toBe("");
    expect(screen.queryByTestId("new-key")).toBeNull();
  });

  it("shows a bad server address next to its field", async () => {
    mocked.login.mockRejectedValue({
      code: "validation_failed", message: "server_url: must be http or https",
      fields: [{ field: "server_url", code: "scheme", message: "must be http or https" }],
    });
    render(<App />);
    fireEvent.click(await screen.findByTestId("login-submit"));
    expect((await screen.findByTestId("field-error-server_url")).textContent).toContain("Must be http or https");
    expect(screen.queryByTestId("error-banner")).toBeNull();
    expect(screen.getByTestId("login-server").getAttribute("aria-invalid")).toBe("true");
  });
});

describe("the session ending", () => {
  it("returns to sign-in from any command, keeping unsynced changes", async () => {
    mocked.currentSession.mockResolvedValue(session);
    mocked.listKeys.mockRejectedValue(unauthenticated);
    render(<App />);
    expect((await screen.findByTestId("login-note")).textContent).toContain("your unsynced changes are kept");
    expect((screen.getByTestId("login-email") as HTMLInputElement).value).toBe("ada@acme.test");
    expect(screen.queryByTestId("nav-keys")).toBeNull();
  });

  it("returns to sign-in when a background refresh finds the session gone", async () => {
    mocked.currentSession.mockResolvedValue(session);
    render(<App />);
    await screen.findAllByTestId("key-row");
    mocked.listKeys.mockRejectedValue(unauthenticated);
    // A sync happened: the list refreshes quietly and learns the session ended.
    act(() => emit({ ...online, last_pull_at: "2026-11-25T12:00:00Z" }));
    await screen.findByTestId("login-note");
  });

  it("signs back in to where the admin was", async () => {
    mocked.currentSession.mockResolvedValue(session);
    mocked.listKeys.mockRejectedValueOnce(unauthenticated);
    mocked.login.mockResolvedValue(session);
    render(<App />);
    await screen.findByTestId("login-note");
    fireEvent.input(screen.getByTestId("login-password"), { target: { value: "pw" } });
    fireEvent.click(screen.getByTestId("login-submit"));
    expect(await screen.findAllByTestId("key-row")).toHaveLength(1);
    expect(screen.queryByTestId("login-note")).toBeNull();
  });
});

describe("shell", () => {
  it("navigates between screens", async () => {
    mocked.currentSession.mockResolvedValue(session);
    mocked.auditLog.mockResolvedValue([audit(2), audit(1)]);
    render(<App />);
    await screen.findAllByTestId("key-row");
    fireEvent.click(screen.getByTestId("nav-audit"));
    expect(await screen.findAllByTestId("audit-row")).toHaveLength(2);
    expect(screen.getByTestId("nav-audit").getAttribute("aria-current")).toBe("page");
    fireEvent.click(screen.getByTestId("nav-settings"));
    expect((await screen.findByTestId("settings-server")).textContent).toBe("http://127.0.0.1:8080");
    expect(screen.getByTestId("settings-role").textContent).toContain("owner");
    fireEvent.click(screen.getByTestId("nav-keys"));
    await screen.findAllByTestId("key-row");
  });

  it("hides write actions from viewers", async () => {
    mocked.currentSession.mockResolvedValue(viewer);
    render(<App />);
    await screen.findAllByTestId("key-row");
    expect(screen.queryByTestId("new-key")).toBeNull();
    act(() => { window.location.hash = "#/keys/new"; window.dispatchEvent(new Event("hashchange")); });
    await screen.findByText(/your role is viewer/i);
    expect(screen.queryByTestId("create-submit")).toBeNull();
  });

  it("signs out", async () => {
    mocked.currentSession.mockResolvedValue(session);
    window.location.hash = "#/settings";
    render(<App />);
    fireEvent.click(await screen.findByTestId("sign-out"));
    await screen.findByTestId("login-submit");
    expect(mocked.logout).toHaveBeenCalled();
    expect(screen.queryByTestId("login-note")).toBeNull();
  });

  it("asks before signing out with changes still queued", async () => {
    mocked.currentSession.mockResolvedValue(session);
    mocked.syncStatus.mockResolvedValue({ ...online, queued: 2 });
    window.location.hash = "#/settings";
    render(<App />);
    await waitFor(() => expect(screen.getByTestId("settings-queued").textContent).toBe("2"));
    fireEvent.click(screen.getByTestId("sign-out"));
    expect(mocked.logout).not.toHaveBeenCalled();
    fireEvent.click(await screen.findByTestId("sign-out-confirm"));
    await screen.findByTestId("login-submit");
    expect(mocked.logout).toHaveBeenCalled();
  });

  it("syncs on demand from settings", async () => {
    mocked.currentSession.mockResolvedValue(session);
    mocked.syncNow.mockResolvedValue({ ...online, last_pull_at: new Date().toISOString(), queued: 0 });
    window.location.hash = "#/settings";
    render(<App />);
    fireEvent.click(await screen.findByTestId("sync-now"));
    await waitFor(() => expect(screen.getByTestId("settings-last-sync").textContent).toContain("just now"));
    expect(screen.getByTestId("status-last-sync").textContent).toBe("just now");
  });
});

describe("status bar", () => {
  beforeEach(() => mocked.currentSession.mockResolvedValue(session));

  it("shows offline and the queued changes", async () => {
    mocked.syncStatus.mockResolvedValue({ ...online, online: false, queued: 3, last_error: "the server cannot be reached" });
    render(<App />);
    await waitFor(() => expect(screen.getByTestId("status-online").textContent).toBe("Offline"));
    expect(screen.getByTestId("status-queued").textContent).toBe("3");
    expect(screen.getByTestId("status-last-sync").textContent).toBe("never");
    expect(screen.getByTestId("status-error").textContent).toContain("cannot be reached");
  });

  it("follows sync-status events", async () => {
    render(<App />);
    await waitFor(() => expect(screen.getByTestId("status-online").textContent).toBe("Online"));
    act(() => emit({ ...online, online: false, last_pull_at: new Date(Date.now() - 5 * 60_000).toISOString(), queued: 1, last_error: null }));
    expect(screen.getByTestId("status-online").textContent).toBe("Offline");
    expect(screen.getByTestId("status-queued").textContent).toBe("1");
    expect(screen.getByTestId("status-last-sync").textContent).toBe("5 min ago");
  });

  it("polls sync_status every 5 s", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    render(<App />);
    await waitFor(() => expect(mocked.syncStatus).toHaveBeenCalledTimes(1));
    mocked.syncStatus.mockResolvedValue({ ...online, queued: 7 });
    await act(async () => { await vi.advanceTimersByTimeAsync(5000); });
    await waitFor(() => expect(screen.getByTestId("status-queued").textContent).toBe("7"));
    expect(mocked.syncStatus).toHaveBeenCalledTimes(2);
  });

  it("shows progress while a command runs", async () => {
    let finish: (v: KeyList) => void = () => {};
    mocked.listKeys.mockImplementation(() => new Promise((r) => { finish = r; }));
    render(<App />);
    await screen.findByTestId("progress");
    await act(async () => finish(list(1)));
    await waitFor(() => expect(screen.queryByTestId("progress")).toBeNull());
  });
});
