// Settings → Alert sensitivity: the organisation's anomaly thresholds, read from and saved to
// the server. The form checks the same ranges as the server (keyward_core::anomaly::Thresholds
// ::validate) before sending, and shows the server's own field errors next to each field.
// Viewers see the values read-only; saving needs the server (refused offline with a message).
import { useEffect, useState } from "preact/hooks";
import type { CommandError, FieldError, Thresholds } from "../bindings";
import * as api from "../api/commands";
import { useApp } from "../app";
import { Banner, Field, Spinner } from "../components/Fields";

export type ThresholdName = keyof Thresholds;

interface ThresholdField {
  name: ThresholdName;
  label: string;
  hint: string;
  /** Whole numbers only (the server's integer fields). */
  integer: boolean;
  ok: (n: number) => boolean;
  /** The server's message for an out-of-range value. */
  message: string;
}

const U32_MAX = 4_294_967_295;

/** Every threshold with its range, as `Thresholds::validate` checks it. */
export const THRESHOLD_FIELDS: readonly ThresholdField[] = [
  {
    name: "z_score", label: "Deviation (z-score)", integer: false,
    hint: "standard deviations from the usual rate for a spike or drop; default 4",
    ok: (n) => n > 0 && n <= 100, message: "must be greater than 0 and at most 100",
  },
  {
    name: "spike_ratio", label: "Spike ratio", integer: false,
    hint: "a spike is also at least this multiple of the usual; 1 turns the check off; default 2",
    ok: (n) => n >= 1 && n <= 1000, message: "must be between 1 and 1000",
  },
  {
    name: "drop_fraction", label: "Drop fraction", integer: false,
    hint: "a drop falls to at most this fraction of the usual; default 0.1",
    ok: (n) => n >= 0 && n < 1, message: "must be at least 0 and less than 1",
  },
  {
    name: "min_volume", label: "Minimum volume", integer: true,
    hint: "requests per 5-minute window below which a key is too quiet for rate alerts; default 30",
    ok: (n) => n >= 0 && n <= U32_MAX, message: `must be at most ${U32_MAX}`,
  },
  {
    name: "ewma_alpha", label: "Baseline weight (EWMA α)", integer: false,
    hint: "weight of the newest day in the hour-of-day baselines; default 0.2",
    ok: (n) => n > 0 && n <= 1, message: "must be greater than 0 and at most 1",
  },
  {
    name: "warmup_windows", label: "Warm-up (windows)", integer: true,
    hint: "5-minute windows learned before rate alerts; default 864 (3 days)",
    ok: (n) => n >= 1 && n <= 129_600, message: "must be between 1 and 129600",
  },
  {
    name: "rejected_burst", label: "Rejected burst", integer: true,
    hint: "rejected attempts of one kind in a window that make a burst; default 20",
    ok: (n) => n >= 1, message: "must be at least 1",
  },
  {
    name: "rejected_half_life_hours", label: "Rejected half-life (hours)", integer: true,
    hint: "how fast the usual rejected rate forgets; default 24",
    ok: (n) => n >= 1 && n <= 720, message: "must be between 1 and 720",
  },
  {
    name: "idle_days", label: "Idle key (days)", integer: true,
    hint: "a key used again after this many idle days raises an alert; default 30",
    ok: (n) => n >= 1 && n <= 3650, message: "must be between 1 and 3650",
  },
  {
    name: "network_warmup_hours", label: "Network warm-up (hours)", integer: true,
    hint: "no new-network alerts during this long after a key's first call; default 24",
    ok: (n) => n >= 0 && n <= 720, message: "must be at most 720",
  },
];

export type ThresholdForm = Record<ThresholdName, string>;

export function toForm(t: Thresholds): ThresholdForm {
  const form = {} as ThresholdForm;
  for (const f of THRESHOLD_FIELDS) form[f.name] = String(t[f.name]);
  return form;
}

/**
 * The thresholds the form holds, or the field errors (named as the server names them) that
 * keep it from being sent: not a number, not a whole number, or out of range.
 */
export function parseThresholds(form: ThresholdForm): { value: Thresholds } | { errors: FieldError[] } {
  const errors: FieldError[] = [];
  const value = {} as Record<ThresholdName, number>;
  for (const f of THRESHOLD_FIELDS) {
    const text = (form[f.name] ?? "").trim();
    let n = Number.NaN;
    if (f.integer) {
      if (/^\d+$/.test(text)) n = Number(text);
    } else if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) {
      n = Number(text);
    }
    if (text === "") {
      errors.push({ field: f.name, code: "required", message: "is required" });
    } else if (Number.isNaN(n)) {
      errors.push({ field: f.name, code: "invalid", message: f.integer ? "must be a whole number" : "must be a number" });
    } else if (!Number.isFinite(n) || !f.ok(n)) {
      errors.push({ field: f.name, code: "out_of_range", message: f.message });
    } else if (f.integer && !Number.isSafeInteger(n)) {
      errors.push({ field: f.name, code: "out_of_range", message: "is too large" });
    } else {
      value[f.name] = n;
    }
  }
  return errors.length ? { errors } : { value: value as Thresholds };
}

function invalid(fields: FieldError[]): CommandError {
  return {
    code: "validation_failed",
    message: fields.length === 1 ? `${fields[0]!.field}: ${fields[0]!.message}` : `${fields.length} fields need attention`,
    fields,
  };
}

const NAMES = THRESHOLD_FIELDS.map((f) => f.name);

/** The "Alert sensitivity" panel of the Settings screen. */
export function AlertSettings() {
  const app = useApp();
  const [saved, setSaved] = useState<Thresholds | null>(null);
  const [form, setForm] = useState<ThresholdForm | null>(null);
  const [loadError, setLoadError] = useState<CommandError | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<CommandError | null>(null);
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState(false);
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    let alive = true;
    setLoading(true);
    app
      .quiet(api.alertSettings())
      .then((t) => {
        if (!alive || !t) return;
        setSaved(t);
        setForm(toForm(t));
        setLoadError(null);
      })
      .catch((e: unknown) => alive && setLoadError(api.toCommandError(e)))
      .finally(() => alive && setLoading(false));
    return () => {
      alive = false;
    };
  }, [attempt]);

  const set = (name: ThresholdName, v: string) => {
    setDone(false);
    setForm((f) => f && { ...f, [name]: v });
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!form || !app.canWrite) return;
    setDone(false);
    const parsed = parseThresholds(form);
    if ("errors" in parsed) return setError(invalid(parsed.errors));
    setBusy(true);
    try {
      const t = await app.run(api.setAlertSettings(parsed.value));
      setSaved(t);
      setForm(toForm(t));
      setError(null);
      setDone(true);
    } catch (err) {
      setError(api.toCommandError(err));
    } finally {
      setBusy(false);
    }
  };

  const changed = !!(form && saved) && NAMES.some((n) => form[n].trim() !== String(saved[n]));
  const readOnly = !app.canWrite;
  return (
    <form class="panel-box form" data-testid="alert-settings" aria-labelledby="alert-settings-title" aria-busy={loading} noValidate onSubmit={submit}>
      <h3 id="alert-settings-title">Alert sensitivity</h3>
      <p class="muted small">
        The organisation's anomaly thresholds: when a key's traffic is unusual enough to open an alert. Changes apply from
        the server's next detection pass.
      </p>
      {loading && !form && <p class="muted small" data-testid="alert-settings-loading">loading…</p>}
      {loadError && !form && (
        <div class="banner error" role="alert" data-testid="alert-settings-load-error">
          Alert sensitivity unavailable: {loadError.message}{" "}
          <button type="button" class="ghost small" data-testid="alert-settings-retry" onClick={() => setAttempt((a) => a + 1)}>Retry</button>
        </div>
      )}
      {form && (
        <>
          {readOnly && <p class="muted small" data-testid="alert-settings-read-only">Read-only: your role is viewer.</p>}
          <Banner error={error} shown={NAMES} testid="alert-settings-error" />
          <div class="threshold-grid">
            {THRESHOLD_FIELDS.map((f) => (
              <Field label={f.label} field={f.name} error={error} hint={f.hint}>
                {(a) => (
                  <input
                    {...a}
                    data-testid={`threshold-${f.name}`}
                    inputMode={f.integer ? "numeric" : "decimal"}
                    value={form[f.name]}
                    readOnly={readOnly}
                    disabled={readOnly}
                    onInput={(e) => set(f.name, e.currentTarget.value)}
                  />
                )}
              </Field>
            ))}
          </div>
          {!readOnly && (
            <div class="actions">
              {!app.status.online && (
                <span class="warning" role="status" data-testid="alert-settings-offline">
                  You are offline: saving needs the server.
                </span>
              )}
              {done && !changed && <span class="muted" role="status" data-testid="alert-settings-saved">Saved.</span>}
              <button
                type="button"
                class="ghost"
                disabled={!changed || busy}
                onClick={() => {
                  if (saved) setForm(toForm(saved));
                  setError(null);
                }}
              >
                Discard changes
              </button>
              <button type="submit" class="primary" data-testid="alert-settings-save" disabled={busy || !changed} aria-busy={busy}>
                {busy ? <><Spinner /> Saving…</> : "Save"}
              </button>
            </div>
          )}
        </>
      )}
    </form>
  );
}
