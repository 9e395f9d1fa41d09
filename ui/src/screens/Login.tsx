import { useEffect, useRef, useState } from "preact/hooks";
import type { CommandError, Session } from "../bindings";
import * as api from "../api/commands";
import { Banner, Field, Spinner } from "../components/Fields";

export const DEFAULT_SERVER = "http://127.0.0.1:8080";

/** Sign-in. Shown at first run, after sign-out and when the session ends (`note`). */
export function Login(props: {
  note: string | null;
  serverUrl: string | null;
  email: string | null;
  onSignedIn: (s: Session) => void;
}) {
  const [server, setServer] = useState(props.serverUrl ?? DEFAULT_SERVER);
  const [email, setEmail] = useState(props.email ?? "");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<CommandError | null>(null);
  const [busy, setBusy] = useState(false);
  const first = useRef<HTMLInputElement>(null);
  const pass = useRef<HTMLInputElement>(null);

  useEffect(() => {
    (props.email ? pass : first).current?.focus();
  }, []);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const s = await api.login(server.trim(), email.trim(), password);
      setPassword("");
      props.onSignedIn(s);
    } catch (err) {
      setError(api.toCommandError(err));
      setPassword("");
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="login">
      <form class="card" onSubmit={submit} aria-labelledby="login-title" noValidate>
        <div class="login-brand">
          <span class="logo" aria-hidden="true">K</span>
          <h1 id="login-title">Keyward</h1>
        </div>
        <p class="muted">Sign in to manage your organization's API keys.</p>
        {props.note && (
          <div class="banner info" role="status" data-testid="login-note">
            {props.note}
          </div>
        )}
        <Banner error={error} shown={["server_url", "email", "password"]} />
        <Field label="Server" field="server_url" error={error}>
          {(a) => (
            <input {...a} data-testid="login-server" type="url" autocomplete="url" value={server} onInput={(e) => setServer(e.currentTarget.value)} />
          )}
        </Field>
        <Field label="Email" field="email" error={error}>
          {(a) => (
            <input {...a} ref={first} data-testid="login-email" type="email" autocomplete="username" value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
          )}
        </Field>
        <Field label="Password" field="password" error={error}>
          {(a) => (
            <input {...a} ref={pass} data-testid="login-password" type="password" autocomplete="current-password" value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
          )}
        </Field>
        <button data-testid="login-submit" type="submit" class="primary wide" disabled={busy} aria-busy={busy}>
          {busy ? <><Spinner /> Signing in…</> : "Sign in"}
        </button>
      </form>
    </div>
  );
}
