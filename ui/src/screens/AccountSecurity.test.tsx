// Settings → Password and Sign out everywhere: the policy checked here before anything is sent,
// the server's field errors at their fields, a change that keeps this device signed in, and
// signing out everywhere back to the sign-in form; a plain http:// server refused at sign-in.
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/preact";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

vi.mock("../api/commands", async () => (await import("../test/fixtures")).commandsMock());

import * as api from "../api/commands";
import { App } from "../app";
import { checkPasswordChange } from "./AccountSecurity";
import { list, online, session, unauthenticated } from "../test/fixtures";

const mocked = vi.mocked(api);
const type = (testid: string, value: string) => fireEvent.input(screen.getByTestId(testid), { target: { value } });
const fieldsOf = (errors: { field: string; code: string }[]) => errors.map((e) => `${e.field}:${e.code}`);

beforeEach(() => {
  window.location.hash = "#/settings";
  mocked.currentSession.mockResolvedValue(session);
  mocked.syncStatus.mockResolvedValue(online);
  mocked.onSyncStatus.mockResolvedValue(() => {});
  mocked.listKeys.mockResolvedValue(list(1));
  mocked.alertSettings.mockResolvedValue({
    z_score: 4, spike_ratio: 2, drop_fraction: 0.1, min_volume: 30, ewma_alpha: 0.2, warmup_windows: 864,
    rejected_burst: 20, rejected_half_life_hours: 24, idle_days: 30, network_warmup_hours: 24,
  });
  mocked.changePassword.mockResolvedValue(undefined);
  mocked.logoutEverywhere.mockResolvedValue(undefined);
  mocked.logout.mockResolvedValue(undefined);
});
afterEach(() => {
  cleanup();
  vi.clearAllMocks();
});

describe("the password rules", () => {
  it("are the server's, plus a matching repeat", () => {
    expect(checkPasswordChange("old password", "a new password", "a new password")).toEqual([]);
    expect(fieldsOf(checkPasswordChange("", "short", "shorter"))).toEqual([
      "current_password:required", "new_password:weak_password", "confirm_password:mismatch",
    ]);
    expect(fieldsOf(checkPasswordChange("x", " ".repeat(12), " ".repeat(12)))).toEqual(["new_password:weak_password"]);
    expect(fieldsOf(checkPasswordChange("x", "a".repeat(1025), "a".repeat(1025)))).toEqual(["new_password:weak_password"]);
    expect(fieldsOf(checkPasswordChange("same password", "same password", "same password"))).toEqual(["new_password:unchanged"]);
    // Characters, not UTF-16 units: 12 emoji are 12 characters.
    expect(checkPasswordChange("x", "😀".repeat(12), "😀".repeat(12))).toEqual([]);
    expect(fieldsOf(checkPasswordChange("x", "😀".repeat(11), "😀".repeat(11)))).toEqual(["new_password:weak_password"]);
  });
});

describe("changing the password", () => {
  it("sends nothing that breaks the rules and shows why at each field", async () => {
    render(<App />);
    await screen.findByTestId("change-password");
    type("password-new", "short");
    type("password-confirm", "other");
    fireEvent.click(screen.getByTestId("password-save"));
    expect((await screen.findByTestId("field-error-current_password")).textContent).toBe("Is required.");
    expect(screen.getByTestId("field-error-new_password").textContent).toContain("at least 12 characters");
    expect(screen.getByTestId("field-error-confirm_password").textContent).toBe("Does not match the new password.");
    expect(screen.getByTestId("password-new").getAttribute("aria-invalid")).toBe("true");
    expect(mocked.changePassword).not.toHaveBeenCalled();
  });

  it("changes it and stays signed in", async () => {
    render(<App />);
    await screen.findByTestId("change-password");
    type("password-current", "old password!");
    type("password-new", "a brand new password");
    type("password-confirm", "a brand new password");
    fireEvent.click(screen.getByTestId("password-save"));
    await waitFor(() => expect(mocked.changePassword).toHaveBeenCalledWith("old password!", "a brand new password"));
    expect((await screen.findByTestId("password-changed")).textContent).toContain("other devices were signed out");
    for (const id of ["password-current", "password-new", "password-confirm"]) {
      expect((screen.getByTestId(id) as HTMLInputElement).value).toBe("");
    }
    expect(screen.getByTestId("settings-email").textContent).toBe(session.email);
    expect(mocked.logout).not.toHaveBeenCalled();
  });

  it("shows a wrong current password at its field, and other refusals in a banner", async () => {
    mocked.changePassword.mockRejectedValueOnce({
      code: "validation_failed", message: "current_password: is not your current password",
      fields: [{ field: "current_password", code: "wrong_password", message: "is not your current password" }],
    });
    render(<App />);
    await screen.findByTestId("change-password");
    type("password-current", "not it at all");
    type("password-new", "a brand new password");
    type("password-confirm", "a brand new password");
    fireEvent.click(screen.getByTestId("password-save"));
    expect((await screen.findByTestId("field-error-current_password")).textContent).toBe("Is not your current password.");
    expect((screen.getByTestId("password-current") as HTMLInputElement).value).toBe("");
    expect((screen.getByTestId("password-new") as HTMLInputElement).value).toBe("a brand new password");

    mocked.changePassword.mockRejectedValueOnce({
      code: "offline", message: "the server cannot be reached: changing the password needs a connection; try again when online", fields: [],
    });
    type("password-current", "old password!");
    fireEvent.click(screen.getByTestId("password-save"));
    expect((await screen.findByTestId("change-password-error")).textContent).toContain("changing the password needs a connection");
  });
});

describe("signing out everywhere", () => {
  it("asks first, then ends every session and returns to sign-in", async () => {
    render(<App />);
    fireEvent.click(await screen.findByTestId("sign-out-everywhere"));
    expect(mocked.logoutEverywhere).not.toHaveBeenCalled();
    fireEvent.click(screen.getByTestId("sign-out-everywhere-confirm"));
    await screen.findByTestId("login-submit");
    expect(mocked.logoutEverywhere).toHaveBeenCalledTimes(1);
    expect((screen.getByTestId("login-email") as HTMLInputElement).value).toBe(session.email);
  });

  it("stays signed in when the server cannot be reached", async () => {
    mocked.logoutEverywhere.mockRejectedValue({
      code: "offline", message: "the server cannot be reached: signing out everywhere needs a connection; try again when online", fields: [],
    });
    render(<App />);
    fireEvent.click(await screen.findByTestId("sign-out-everywhere"));
    fireEvent.click(screen.getByTestId("sign-out-everywhere-confirm"));
    expect((await screen.findByTestId("sign-out-everywhere-error")).textContent).toContain("needs a connection");
    expect(screen.queryByTestId("login-submit")).toBeNull();
    expect(mocked.logout).not.toHaveBeenCalled();
  });

  it("an ended session leads back to sign-in", async () => {
    mocked.logoutEverywhere.mockRejectedValue(unauthenticated);
    render(<App />);
    fireEvent.click(await screen.findByTestId("sign-out-everywhere"));
    fireEvent.click(screen.getByTestId("sign-out-everywhere-confirm"));
    expect((await screen.findByTestId("login-note")).textContent).toContain("session has ended");
  });
});

describe("the sign-in form", () => {
  it("shows a refused plain http:// server at the server field", async () => {
    mocked.currentSession.mockResolvedValue(null);
    const message = "plain http:// would send the password and the session in clear text: use https:// (http:// is only allowed to this computer: localhost, 127.0.0.1, ::1)";
    mocked.login.mockRejectedValue({
      code: "validation_failed", message: `server_url: ${message}`,
      fields: [{ field: "server_url", code: "insecure_url", message }],
    });
    render(<App />);
    const server = await screen.findByTestId("login-server");
    fireEvent.input(server, { target: { value: "http://keyward.example.com" } });
    fireEvent.click(screen.getByTestId("login-submit"));
    expect((await screen.findByTestId("field-error-server_url")).textContent).toContain("use https://");
    expect(mocked.login.mock.calls[0]?.[0]).toBe("http://keyward.example.com");
  });
});
