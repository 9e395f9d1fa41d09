// Settings → Password and Sign out everywhere: the signed-in admin's own password and sessions,
// on the server (both need a connection; refused offline with a message). The password form
// checks the server's policy (keyward_core::hash::check_password_policy) before sending and
// shows the server's own field errors (a wrong current password at its field).
import { useState } from "preact/hooks";
import type { CommandError, FieldError } from "../bindings";
import * as api from "../api/commands";
import { useApp } from "../app";
import { Banner, Field, Spinner, type ControlProps } from "../components/Fields";

/** The server's password bounds, in characters (Unicode scalar values). */
export const PASSWORD_MIN_CHARS = 12;
export const PASSWORD_MAX_CHARS = 1024;

const FIELDS = ["current_password", "new_password", "confirm_password"] as const;

/** The problems that keep a password change from being sent, named as the server names them. */
export function checkPasswordChange(current: string, next: string, confirm: string): FieldError[] {
  const errors: FieldError[] = [];
  if (current === "") errors.push({ field: "current_password", code: "required", message: "is required" });
  const chars = [...next].length;
  if (chars < PASSWORD_MIN_CHARS) {
    errors.push({ field: "new_password", code: "weak_password", message: `password must be at least ${PASSWORD_MIN_CHARS} characters` });
  } else if (chars > PASSWORD_MAX_CHARS) {
    errors.push({ field: "new_password", code: "weak_password", message: `password must be at most ${PASSWORD_MAX_CHARS} characters` });
  } else if (next.trim() === "") {
    errors.push({ field: "new_password", code: "weak_password", message: "password must not be only whitespace" });
  } else if (next === current) {
    errors.push({ field: "new_password", code: "unchanged", message: "must differ from the current password" });
  }
  if (confirm !== next) errors.push({ field: "confirm_password", code: "mismatch", message: "does not match the new password" });
  return errors;
}

function invalid(fields: FieldError[]): CommandError {
  return { code: "validation_failed", message: `${fields.length} fields need attention`, fields };
}

/** The "Password" panel: current password, new password twice. */
export function ChangePassword() {
  const app = useApp();
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [confirm, setConfirm] = useState("");
  const [error, setError] = useState<CommandError | null>(null);
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    setDone(false);
    const problems = checkPasswordChange(current, next, confirm);
    if (problems.length) return setError(invalid(problems));
    setBusy(true);
    try {
      await app.run(api.changePassword(current, next));
      setCurrent("");
      setNext("");
      setConfirm("");
      setError(null);
      setDone(true);
    } catch (err) {
      setError(api.toCommandError(err));
      setCurrent("");
    } finally {
      setBusy(false);
    }
  };

  const input = (testid: string, value: string, set: (v: string) => void, autocomplete: string) =>
    (a: ControlProps) => (
      <input
        {...a}
        data-testid={testid}
        type="password"
        autocomplete={autocomplete}
        value={value}
        onInput={(e) => {
          setDone(false);
          set(e.currentTarget.value);
        }}
      />
    );

  return (
    <form class="panel-box form" data-testid="change-password" aria-labelledby="change-password-title" noValidate onSubmit={submit}>
      <h3 id="change-password-title">Password</h3>
      <p class="muted small">Changing your password signs out your other devices; this one stays signed in.</p>
      <Banner error={error} shown={FIELDS} testid="change-password-error" />
      <Field label="Current password" field="current_password" error={error}>
        {input("password-current", current, setCurrent, "current-password")}
      </Field>
      <Field label="New password" field="new_password" error={error} hint={`at least ${PASSWORD_MIN_CHARS} characters`}>
        {input("password-new", next, setNext, "new-password")}
      </Field>
      <Field label="Repeat the new password" field="confirm_password" error={error}>
        {input("password-confirm", confirm, setConfirm, "new-password")}
      </Field>
      <div class="actions">
        {!app.status.online && (
          <span class="warning" role="status" data-testid="change-password-offline">You are offline: changing the password needs the server.</span>
        )}
        {done && <span class="muted" role="status" data-testid="password-changed">Password changed. Your other devices were signed out.</span>}
        <button type="submit" class="primary" data-testid="password-save" disabled={busy} aria-busy={busy}>
          {busy ? <><Spinner /> Changing…</> : "Change password"}
        </button>
      </div>
    </form>
  );
}

/** The "Sign out everywhere" panel: ends every session of the account, this one included. */
export function SignOutEverywhere() {
  const app = useApp();
  const [confirm, setConfirm] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<CommandError | null>(null);

  const go = async () => {
    setBusy(true);
    try {
      await app.run(api.logoutEverywhere());
      await app.signOut();
    } catch (err) {
      setError(api.toCommandError(err));
      setConfirm(false);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="panel-box">
      <h3>Sign out everywhere</h3>
      <p class="muted">
        Ends every session of your account on every device, this one included (a lost laptop's too). Changes not yet
        synced stay on this device.
      </p>
      <Banner error={error} testid="sign-out-everywhere-error" />
      {confirm ? (
        <div class="actions">
          <span class="warning" role="alert">Every device will have to sign in again.</span>
          <button type="button" class="ghost" onClick={() => setConfirm(false)}>Cancel</button>
          <button type="button" class="danger" data-testid="sign-out-everywhere-confirm" disabled={busy} aria-busy={busy} onClick={go}>
            {busy ? <><Spinner /> Signing out…</> : "Sign out everywhere"}
          </button>
        </div>
      ) : (
        <div class="actions">
          <button type="button" class="danger" data-testid="sign-out-everywhere" onClick={() => { setError(null); setConfirm(true); }}>
            Sign out everywhere…
          </button>
        </div>
      )}
    </div>
  );
}
