import { useEffect, useRef, useState } from "preact/hooks";
import type { CommandError, Environment, NewKeyForm } from "../bindings";
import * as api from "../api/commands";
import { useApp } from "../app";
import { Banner, Field, Spinner } from "../components/Fields";
import { LIMIT_FIELDS, LimitsEditor, draftFrom, formFromDraft } from "../components/LimitsEditor";
import { TokenDialog } from "../components/TokenDialog";
import { UTC_INPUT_HINT, isoToUtcInput, splitList, utcInputToIso } from "../lib/format";

const FIELDS = ["name", "description", "environment", "scopes", "allowed_ips", "expires_at"];

/** The only check made here: a name is required. Everything else is the backend's to judge. */
export function requiredName(name: string): CommandError | null {
  return name.trim()
    ? null
    : { code: "validation_failed", message: "name is required", fields: [{ field: "name", code: "required", message: "A name is required." }] };
}

/** An expiry `days` from now, as the input shows it. */
function inDays(days: number): string {
  return isoToUtcInput(new Date(Date.now() + days * 86_400_000).toISOString());
}

/** The field error of an expiry that is not a time. */
export function badTime(field: string): CommandError {
  return {
    code: "validation_failed",
    message: "the expiry is not a time",
    fields: [{ field, code: "invalid_time", message: `Not a time: use ${UTC_INPUT_HINT}.` }],
  };
}

export function CreateKey() {
  const app = useApp();
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [environment, setEnvironment] = useState<Environment>("live");
  const [scopes, setScopes] = useState("");
  const [ips, setIps] = useState("");
  const [expires, setExpires] = useState("");
  const [limits, setLimits] = useState(() => draftFrom(null));
  const [error, setError] = useState<CommandError | null>(null);
  const [busy, setBusy] = useState(false);
  const [sent, setSent] = useState<NewKeyForm | null>(null);
  // The token, held only while its dialog is open.
  const [token, setToken] = useState<string | null>(null);
  const nameRef = useRef<HTMLInputElement>(null);

  useEffect(() => nameRef.current?.focus(), []);

  const submit = async (e: Event) => {
    e.preventDefault();
    const local = requiredName(name);
    if (local) {
      setError(local);
      nameRef.current?.focus();
      return;
    }
    const expiresAt = utcInputToIso(expires);
    if (expiresAt === undefined) {
      setError(badTime("expires_at"));
      return;
    }
    const l = formFromDraft(limits);
    if ("error" in l) {
      setError(l.error);
      return;
    }
    const own = l.form.tier !== null || l.form.rate_limits !== null || l.form.quota !== null;
    const form: NewKeyForm = {
      name: name.trim(),
      description: description.trim() || null,
      environment,
      scopes: splitList(scopes),
      allowed_ips: splitList(ips),
      expires_at: expiresAt,
      limits: own ? l.form : null,
    };
    setError(null);
    setSent(form);
    setBusy(true);
    try {
      const issued = await app.run(api.createKey(form));
      setToken(issued.token);
    } catch (err) {
      setError(api.toCommandError(err));
    } finally {
      setBusy(false);
    }
  };

  const done = () => {
    setToken(null);
    app.go("/keys");
  };

  return (
    <section>
      <header class="page-head">
        <button type="button" class="ghost" onClick={() => app.go("/keys")}>← Keys</button>
        <h2>New API key</h2>
      </header>
      <form class="form" onSubmit={submit} noValidate aria-label="New API key">
        <Banner error={error} shown={[...FIELDS, ...LIMIT_FIELDS]} />
        <Field label="Name" field="name" error={error}>
          {(a) => <input {...a} ref={nameRef} data-testid="create-name" required value={name} onInput={(e) => setName(e.currentTarget.value)} />}
        </Field>
        <Field label="Description" field="description" error={error} hint="optional">
          {(a) => <textarea {...a} data-testid="create-description" rows={2} value={description} onInput={(e) => setDescription(e.currentTarget.value)} />}
        </Field>
        <Field label="Environment" field="environment" error={error} hint="Test keys never touch live data.">
          {(a) => (
            <select {...a} data-testid="create-environment" value={environment} onChange={(e) => setEnvironment(e.currentTarget.value as Environment)}>
              <option value="live">Live</option>
              <option value="test">Test</option>
            </select>
          )}
        </Field>
        <Field label="Scopes" field="scopes" error={error} items={sent?.scopes} hint="resource:action, separated by spaces or commas — e.g. achievements:read badges:*">
          {(a) => <input {...a} data-testid="create-scopes" class="mono-input" value={scopes} onInput={(e) => setScopes(e.currentTarget.value)} />}
        </Field>
        <Field label="Allowed client addresses" field="allowed_ips" error={error} items={sent?.allowed_ips} hint="IP addresses or CIDR networks, separated by spaces or commas; empty allows any address">
          {(a) => <input {...a} data-testid="create-ips" class="mono-input" value={ips} onInput={(e) => setIps(e.currentTarget.value)} />}
        </Field>
        <Field label="Expires" field="expires_at" error={error} hint={`${UTC_INPUT_HINT}; empty for no expiry`}>
          {(a) => (
            <div class="row">
              <input {...a} data-testid="create-expires" class="mono-input" placeholder="YYYY-MM-DD HH:MM" value={expires} onInput={(e) => setExpires(e.currentTarget.value)} />
              <span class="presets" role="group" aria-label="Expiry presets">
                <button type="button" class="ghost small" onClick={() => setExpires(inDays(30))}>30 d</button>
                <button type="button" class="ghost small" onClick={() => setExpires(inDays(90))}>90 d</button>
                <button type="button" class="ghost small" onClick={() => setExpires(inDays(365))}>1 y</button>
                <button type="button" class="ghost small" onClick={() => setExpires("")}>never</button>
              </span>
            </div>
          )}
        </Field>
        <LimitsEditor draft={limits} set={setLimits} error={error} testid="create" />
        <div class="actions">
          <button type="button" class="ghost" onClick={() => app.go("/keys")}>Cancel</button>
          <button type="submit" class="primary" data-testid="create-submit" disabled={busy} aria-busy={busy}>
            {busy ? <><Spinner /> Creating…</> : "Create key"}
          </button>
        </div>
      </form>
      {token && <TokenDialog token={token} onDone={done} />}
    </section>
  );
}
