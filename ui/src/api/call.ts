// Tauri's `invoke` with every rejection turned into a CommandError: what the generated command
// wrappers (commands.gen.ts) call.
import { invoke } from "@tauri-apps/api/core";
import type { CommandError, FieldError } from "../bindings";

function isFieldError(f: unknown): f is FieldError {
  return !!f && typeof f === "object" && typeof (f as FieldError).field === "string";
}

/**
 * Turns whatever a command rejected with into a CommandError: the Rust side rejects with one
 * already; Tauri itself rejects with a plain string (unknown command, arguments that do not
 * deserialize) and a broken bridge with an Error.
 */
export function toCommandError(e: unknown): CommandError {
  if (e && typeof e === "object" && "code" in e && typeof (e as CommandError).code === "string") {
    const c = e as Partial<CommandError>;
    return {
      code: String(c.code),
      message: typeof c.message === "string" && c.message ? c.message : String(c.code),
      fields: Array.isArray(c.fields)
        ? c.fields.filter(isFieldError).map((f) => ({ field: f.field, code: String(f.code ?? "invalid"), message: String(f.message ?? "") }))
        : [],
    };
  }
  const message =
    typeof e === "string" ? e
    : e instanceof Error ? e.message
    : "something went wrong";
  return { code: "internal", message: message || "something went wrong", fields: [] };
}

export function isCommandError(e: unknown): e is CommandError {
  return !!e && typeof e === "object" && typeof (e as CommandError).code === "string" && Array.isArray((e as CommandError).fields);
}

/** The session ended (or never began): the app goes back to sign-in. */
export function isUnauthenticated(e: unknown): boolean {
  return isCommandError(e) && e.code === "unauthenticated";
}

export async function call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(cmd, args);
  } catch (e) {
    throw toCommandError(e);
  }
}

