// Creating a key: inline field errors from the backend, and the token shown once.
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/preact";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

vi.mock("../api/commands", async () => (await import("../test/fixtures")).commandsMock());
vi.mock("../chart", async () => (await import("../test/fixtures")).chartMock());

import * as api from "../api/commands";
import { App } from "../app";
import { resetKeysView } from "./Keys";
import { key, list, online, session, validation } from "../test/fixtures";

const mocked = vi.mocked(api);
const TOKEN = "kw_live_abc_0123456789abcdefghijklmnopqrstuvCHECK1";

beforeEach(() => {
  window.location.hash = "#/keys/new";
  resetKeysView();
  mocked.currentSession.mockResolvedValue(session);
  mocked.syncStatus.mockResolvedValue(online);
  mocked.onSyncStatus.mockResolvedValue(() => {});
  mocked.listKeys.mockResolvedValue(list(1));
});
afterEach(() => {
  cleanup();
  vi.clearAllMocks();
  vi.unstubAllGlobals();
});

const type = (testid: string, value: string) => fireEvent.input(screen.getByTestId(testid), { target: { value } });

describe("create key", () => {
  it("requires a name without asking the backend", async () => {
    render(<App />);
    fireEvent.click(await screen.findByTestId("create-submit"));
    expect((await screen.findByTestId("field-error-name")).textContent).toContain("required");
    expect(mocked.createKey).not.toHaveBeenCalled();
  });

  it("shows the backend's field errors next to each field", async () => {
    mocked.createKey.mockRejectedValueOnce(validation([
      ["scopes[1]", "must look like resource:action"],
      ["allowed_ips[0]", "not an IP address or CIDR network"],
      ["expires_at", "must be in the future"],
      ["metadata", "too large"],
    ]));
    render(<App />);
    await screen.findByTestId("create-name");
    type("create-name", "Deploy bot");
    type("create-scopes", "badges:read, nope");
    type("create-ips", "10.0.0.300");
    fireEvent.click(screen.getByTestId("create-submit"));
    const scope = await screen.findByTestId("field-error-scopes[1]");
    expect(scope.textContent).toBe("nope: Must look like resource:action.");
    expect(screen.getByTestId("field-error-allowed_ips[0]").textContent).toContain("10.0.0.300");
    expect(screen.getByTestId("field-error-expires_at").textContent).toContain("future");
    // A field this form does not show is not lost: it goes to the banner.
    expect(screen.getByTestId("error-banner").textContent).toContain("metadata: Too large.");
    expect(screen.getByTestId("create-scopes").getAttribute("aria-invalid")).toBe("true");
    expect(screen.queryByTestId("issued-token")).toBeNull();
  });

  it("refuses an expiry that is not a time instead of dropping it", async () => {
    render(<App />);
    await screen.findByTestId("create-name");
    type("create-name", "Deploy bot");
    type("create-expires", "31/01/2027");
    fireEvent.click(screen.getByTestId("create-submit"));
    expect((await screen.findByTestId("field-error-expires_at")).textContent).toContain("use UTC, as YYYY-MM-DD HH:MM");
    expect(mocked.createKey).not.toHaveBeenCalled();
    // Fixing the field clears its error.
    type("create-expires", "2027-01-31");
    expect(screen.queryByTestId("field-error-expires_at")).toBeNull();
  });

  it("sends the form as typed", async () => {
    mocked.createKey.mockResolvedValueOnce({ key: key(), token: TOKEN });
    render(<App />);
    await screen.findByTestId("create-name");
    type("create-name", "  Deploy bot ");
    type("create-description", "CI deploys");
    fireEvent.change(screen.getByTestId("create-environment"), { target: { value: "test" } });
    type("create-scopes", "badges:read, achievements:*  users:read");
    type("create-ips", "10.0.0.0/8 192.168.1.7");
    type("create-expires", "2027-01-31 12:00");
    fireEvent.click(screen.getByTestId("create-submit"));
    await screen.findByTestId("issued-token");
    expect(mocked.createKey).toHaveBeenCalledWith({
      name: "Deploy bot",
      description: "CI deploys",
      environment: "test",
      scopes: ["badges:read", "achievements:*", "users:read"],
      allowed_ips: ["10.0.0.0/8", "192.168.1.7"],
      expires_at: "2027-01-31T12:00:00.000Z",
      limits: null,
    });
  });

  it("shows the token once and forgets it when closed", async () => {
    const writeText = vi.fn(async () => {});
    vi.stubGlobal("navigator", { ...navigator, clipboard: { writeText } });
    mocked.createKey.mockResolvedValueOnce({ key: key(), token: TOKEN });
    render(<App />);
    await screen.findByTestId("create-name");
    type("create-name", "Deploy bot");
    fireEvent.click(screen.getByTestId("create-submit"));
    expect((await screen.findByTestId("issued-token")).textContent).toBe(TOKEN);
    expect(screen.getByRole("dialog").textContent).toContain("you won't see it again");
    await waitFor(() => expect(document.activeElement).toBe(screen.getByTestId("copy-token")));
    fireEvent.click(screen.getByTestId("copy-token"));
    await waitFor(() => expect(writeText).toHaveBeenCalledWith(TOKEN));
    await screen.findByText(/Copied/);

    fireEvent.click(screen.getByTestId("token-done"));
    await waitFor(() => expect(screen.queryByTestId("issued-token")).toBeNull());
    expect(document.body.innerHTML).not.toContain(TOKEN);
    expect(window.location.hash).toBe("#/keys");
    await screen.findAllByTestId("key-row");
    expect(JSON.stringify({ ...localStorage })).not.toContain(TOKEN);
    expect(JSON.stringify({ ...sessionStorage })).not.toContain(TOKEN);
  });

  it("selects the token when the clipboard is unavailable", async () => {
    vi.stubGlobal("navigator", { ...navigator, clipboard: { writeText: vi.fn(async () => { throw new Error("denied"); }) } });
    mocked.createKey.mockResolvedValueOnce({ key: key(), token: TOKEN });
    render(<App />);
    await screen.findByTestId("create-name");
    type("create-name", "Deploy bot");
    fireEvent.click(screen.getByTestId("create-submit"));
    await screen.findByTestId("issued-token");
    fireEvent.click(screen.getByTestId("copy-token"));
    await screen.findByText(/press Ctrl\+C/);
    expect(window.getSelection()?.toString()).toBe(TOKEN);
  });
});
