// The keys list: rows, markers, and the filter each control sends to list_keys.
import { cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/preact";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

vi.mock("../api/commands", async () => (await import("../test/fixtures")).commandsMock());
vi.mock("../chart", async () => (await import("../test/fixtures")).chartMock());

import * as api from "../api/commands";
import { App } from "../app";
import { DEFAULT_VIEW, resetKeysView, toFilter } from "./Keys";
import { item, limits, list, online, session } from "../test/fixtures";

const mocked = vi.mocked(api);
const lastFilter = () => mocked.listKeys.mock.calls.at(-1)?.[0];

beforeEach(() => {
  window.location.hash = "#/keys";
  resetKeysView();
  mocked.currentSession.mockResolvedValue(session);
  mocked.syncStatus.mockResolvedValue(online);
  mocked.onSyncStatus.mockResolvedValue(() => {});
  mocked.listKeys.mockResolvedValue(list(3));
  mocked.getKey.mockResolvedValue({ item: item(), audit: [] });
  mocked.keyUsage.mockResolvedValue({ key_id: "k", granularity: "hour", points: [], fetched_at: null });
  mocked.keyLimits.mockResolvedValue(limits());
});
afterEach(() => {
  cleanup();
  vi.clearAllMocks();
});

describe("keys list", () => {
  it("starts with the default query", async () => {
    render(<App />);
    await screen.findAllByTestId("key-row");
    expect(mocked.listKeys).toHaveBeenCalledWith({
      search: null, status: null, environment: null, scope: null, sort: "created", descending: true, limit: 50, offset: 0,
    });
    expect(toFilter({ ...DEFAULT_VIEW, search: "  " }).search).toBeNull();
  });

  it("renders one row per key with its facts and markers", async () => {
    mocked.listKeys.mockResolvedValue({
      items: [
        item({ id: "a", name: "Payments", status: "active", scopes: ["a:read", "b:read", "c:read", "d:read"], environment: "test", prefix: "kw_test_a_" }),
        item({ id: "b", name: "Old CI", status: "revoked" }, { pending: true }),
        item({ id: "c", name: "Broken", status: "disabled" }, { error: { code: "conflict", detail: "changed on the server" } }),
      ],
      total: 3,
    });
    render(<App />);
    const rows = await screen.findAllByTestId("key-row");
    expect(rows.map((r) => [r.dataset.keyId, r.dataset.status])).toEqual([["a", "active"], ["b", "revoked"], ["c", "disabled"]]);
    const first = within(rows[0]!);
    first.getByText("Payments");
    first.getByText("kw_test_a_…");
    first.getByText("test");
    first.getByText("+1");
    expect(rows[0]!.textContent).toContain("never");
    within(rows[1]!).getByTestId("key-pending");
    expect(within(rows[2]!).getByTestId("key-rejected").getAttribute("title")).toContain("conflict");
    expect(screen.getByTestId("page-info").textContent).toContain("1–3 of 3");
  });

  it("sends every filter to list_keys, back on the first page", async () => {
    render(<App />);
    await screen.findAllByTestId("key-row");
    fireEvent.change(screen.getByTestId("filter-status"), { target: { value: "revoked" } });
    await waitFor(() => expect(lastFilter()).toMatchObject({ status: "revoked", offset: 0 }));
    fireEvent.change(screen.getByTestId("filter-environment"), { target: { value: "test" } });
    await waitFor(() => expect(lastFilter()).toMatchObject({ status: "revoked", environment: "test" }));
    fireEvent.input(screen.getByTestId("search"), { target: { value: "deploy" } });
    fireEvent.input(screen.getByTestId("filter-scope"), { target: { value: "badges:read" } });
    await waitFor(() => expect(lastFilter()).toMatchObject({ search: "deploy", scope: "badges:read" }));
    fireEvent.change(screen.getByTestId("sort"), { target: { value: "expires" } });
    await waitFor(() => expect(lastFilter()).toMatchObject({ sort: "expires", descending: true }));
    fireEvent.click(screen.getByTestId("sort-direction"));
    await waitFor(() => expect(lastFilter()).toEqual({
      search: "deploy", status: "revoked", environment: "test", scope: "badges:read", sort: "expires", descending: false, limit: 50, offset: 0,
    }));
  });

  it("waits for a pause in typing before searching", async () => {
    render(<App />);
    await screen.findAllByTestId("key-row");
    const calls = mocked.listKeys.mock.calls.length;
    for (const v of ["d", "de", "dep"]) fireEvent.input(screen.getByTestId("search"), { target: { value: v } });
    await waitFor(() => expect(lastFilter()?.search).toBe("dep"));
    expect(mocked.listKeys.mock.calls.length).toBe(calls + 1);
  });

  it("sorts by a column header", async () => {
    render(<App />);
    await screen.findAllByTestId("key-row");
    fireEvent.click(screen.getByRole("button", { name: "Name" }));
    await waitFor(() => expect(lastFilter()).toMatchObject({ sort: "name", descending: false }));
    fireEvent.click(screen.getByRole("button", { name: /Name/ }));
    await waitFor(() => expect(lastFilter()).toMatchObject({ sort: "name", descending: true }));
  });

  it("pages through 10,000 keys rendering only one page", async () => {
    mocked.listKeys.mockImplementation(async (f) => ({
      items: Array.from({ length: f.limit ?? 0 }, (_, i) => item({ id: `k${f.offset + i}`, name: `Key ${f.offset + i}` })),
      total: 10_000,
    }));
    render(<App />);
    expect(await screen.findAllByTestId("key-row")).toHaveLength(50);
    expect(screen.getByTestId("page-info").textContent).toContain("1–50 of 10,000");
    fireEvent.click(screen.getByTestId("page-next"));
    await waitFor(() => expect(lastFilter()).toMatchObject({ offset: 50, limit: 50 }));
    await screen.findByText("Key 50");
    fireEvent.change(screen.getByTestId("page-size"), { target: { value: "200" } });
    await waitFor(() => expect(lastFilter()).toMatchObject({ offset: 0, limit: 200 }));
    expect(await screen.findAllByTestId("key-row")).toHaveLength(200);
    fireEvent.click(screen.getByLabelText("Last page"));
    await waitFor(() => expect(lastFilter()).toMatchObject({ offset: 9800 }));
    expect(screen.getByTestId("page-next").hasAttribute("disabled")).toBe(true);
  });

  it("opens a key from its row, by click or keyboard", async () => {
    mocked.listKeys.mockResolvedValue({ items: [item({ id: "abc" })], total: 1 });
    render(<App />);
    const row = (await screen.findAllByTestId("key-row"))[0]!;
    fireEvent.keyDown(row, { key: "Enter" });
    await screen.findByTestId("key-detail");
    expect(window.location.hash).toBe("#/keys/abc");
    expect(mocked.getKey).toHaveBeenCalledWith("abc");
  });

  it("keeps the filters when coming back from a key", async () => {
    render(<App />);
    await screen.findAllByTestId("key-row");
    fireEvent.change(screen.getByTestId("filter-status"), { target: { value: "expired" } });
    await waitFor(() => expect(lastFilter()).toMatchObject({ status: "expired" }));
    fireEvent.click((await screen.findAllByTestId("key-row"))[0]!);
    await screen.findByTestId("key-detail");
    fireEvent.click(screen.getByTestId("nav-keys"));
    await screen.findAllByTestId("key-row");
    expect((screen.getByTestId("filter-status") as HTMLSelectElement).value).toBe("expired");
    expect(lastFilter()).toMatchObject({ status: "expired" });
  });

  it("says when nothing matches", async () => {
    mocked.listKeys.mockResolvedValue({ items: [], total: 0 });
    render(<App />);
    fireEvent.change(await screen.findByTestId("filter-status"), { target: { value: "disabled" } });
    expect((await screen.findByTestId("keys-empty")).textContent).toContain("No keys match");
  });
});
