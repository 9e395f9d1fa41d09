// The one seam between the UI and the Rust side. The typed command wrappers are generated from
// the Rust commands (commands.gen.ts, by src-tauri/src/bindings.rs): their names, argument
// names and types come from the signatures, never typed here. This module adds what is not a
// command: the save dialog and the sync-status event.
// Component tests replace this module (vi.mock("../api/commands")) instead of faking IPC.
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import { save } from "@tauri-apps/plugin-dialog";
import type { ReportFormat, SyncStatus } from "../bindings";
import { toCommandError } from "./call";

export { isCommandError, isUnauthenticated, toCommandError } from "./call";
export * from "./commands.gen";

/**
 * Asks where to save a report with the native save dialog (dialog plugin); `null` when the
 * user cancels.
 */
export async function chooseReportPath(defaultName: string, format: ReportFormat): Promise<string | null> {
  try {
    return await save({
      title: "Save usage report",
      defaultPath: defaultName,
      filters: format === "csv" ? [{ name: "CSV", extensions: ["csv"] }] : [{ name: "JSON", extensions: ["json"] }],
    });
  } catch (e) {
    throw toCommandError(e);
  }
}

/** The backend's `sync-status` event (sent whenever the status changes). */
export const onSyncStatus = (f: (s: SyncStatus) => void): Promise<UnlistenFn> =>
  listen<SyncStatus>("sync-status", (e) => f(e.payload));
