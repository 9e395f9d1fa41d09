import { useState } from "preact/hooks";
import type { CommandError, Session } from "../bindings";
import * as api from "../api/commands";
import { Banner, Field } from "../components/Fields";

export function Login(props: { note: string | null; onSignedIn: (s: Session) => void }) {
  const [server, setServer] = useState("http://127.0.0.1:8080");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<CommandError | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const s = await api.login(server, email, password);
      setPassword("");
      props.onSignedIn(s);
    } catch (err) {
      setError(err as CommandError);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="login">
      <form class="card" onSubmit={submit}>
        <h1>Keyward</h1>
        <p class="muted">Sign in to manage your organization's API keys.</p>
        {props.note && <div class="banner info" data-testid="login-note">{props.note}</div>}
        <Banner error={error} />
        <Field label="Server" field="server_url" error={error}>
          <input data-testid="login-server" value={server} onInput={(e) => setServer(e.currentTarget.value)} />
        </Field>
        <Field label="Email" field="email" error={error}>
          <input data-testid="login-email" type="email" autocomplete="username" value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
        </Field>
        <Field label="Password" field="password" error={error}>
          <input data-testid="login-password" type="password" autocomplete="current-password" value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
        </Field>
        <button data-testid="login-submit" type="submit" class="primary" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </div>
  );
}
