// A value loaded when a panel opens (or its inputs change) and refreshed in the background.
import { useEffect, useState } from "preact/hooks";
import type { CommandError } from "../bindings";
import * as api from "../api/commands";
import { useApp } from "../app";

export interface Polled<T> {
  /** The last value loaded; `null` until the first load for the current inputs answers. */
  value: T | null;
  /** True until the first load for the current inputs has answered. */
  loading: boolean;
  /** Why the first load failed; a failed background refresh keeps what is shown instead (the status bar tells offline). */
  error: CommandError | null;
}

/**
 * Calls `load` now and every `everyMs` while the component is shown; `deps` are the inputs
 * that start over (clearing the value). Session expiry goes through the app like any call.
 */
export function usePolled<T>(load: () => Promise<T>, deps: unknown[], everyMs: number): Polled<T> {
  const app = useApp();
  const [value, setValue] = useState<T | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<CommandError | null>(null);

  useEffect(() => {
    let alive = true;
    let shown = false;
    setValue(null);
    setLoading(true);
    setError(null);
    const once = () =>
      app
        .quiet(load())
        .then((v) => {
          // Nothing to show (a substituted command in tests answers undefined): keep what is shown.
          if (!alive || v === undefined || v === null) return;
          shown = true;
          setValue(v);
          setError(null);
        })
        .catch((e: unknown) => alive && !shown && setError(api.toCommandError(e)))
        .finally(() => alive && setLoading(false));
    once();
    const t = setInterval(once, everyMs);
    return () => {
      alive = false;
      clearInterval(t);
    };
  }, deps);

  return { value, loading, error };
}
