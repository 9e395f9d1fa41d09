import { useState } from "preact/hooks";
import type { CommandError, Environment } from "../bindings";
import * as api from "../api/commands";
import { useApp } from "../app";
import { Banner, Field } from "../components/Fields";
import { TokenDialog } from "../components/TokenDialog";
import { localInputToIso, splitList } from "../lib/format";

export function CreateKey() {
  const app = useApp();
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [environment, setEnvironment] = useState<Environment>("live");
  const [scopes, setScopes] = useState("");
  const [ips, setIps] = useState("");
  const [expires, setExpires] = useState("");
  const [error, setError] = useState<CommandError | null>(null);
  const [token, setToken] = useState<string | null>(null);
  const [id, setId] = useState<string | null>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      const issued = await app.run(
        api.createKey({
          name,
          description: description.trim() || null,
          environment,
          scopes: splitList(scopes),
          allowed_ips: splitList(ips),
          expires_at: localInputToIso(expires),
        }),
      );
      setId(issued.key.id);
      setToken(issued.token);
    } catch (err) {
      setError(err as CommandError);
    }
  };

  if (token) {
    return <TokenDialog token={token} onDone={() => { setToken(null); app.go(id ? "/keys" : "/keys"); }} />;
  }
  return (
    <section>
      <header class="page-head"><h2>New API key</h2></header>
      <form class="form" onSubmit={submit}>
        <Banner error={error} />
        <Field label="Name" field="name" error={error}>
          <input data-testid="create-name" value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
        <Field label="Description" field="description" error={error}>
          <textarea data-testid="create-description" value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
        </Field>
        <Field label="Environment" field="environment" error={error}>
          <select data-testid="create-environment" value={environment} onChange={(e) => setEnvironment(e.currentTarget.value as Environment)}>
            <option value="live">Live</option>
            <option value="test">Test</option>
          </select>
        </Field>
        <Field label="Scopes" field="scopes" error={error} hint="resource:action, separated by spaces or commas (e.g. achievements:* badges:read)">
          <input data-testid="create-scopes" value={scopes} onInput={(e) => setScopes(e.currentTarget.value)} />
        </Field>
        <Field label="Allowed client addresses" field="allowed_ips" error={error} hint="CIDR networks or addresses; empty allows any">
          <input data-testid="create-ips" value={ips} onInput={(e) => setIps(e.currentTarget.value)} />
        </Field>
        <Field label="Expires" field="expires_at" error={error} hint="optional">
          <input data-testid="create-expires" type="datetime-local" value={expires} onInput={(e) => setExpires(e.currentTarget.value)} />
        </Field>
        <div class="actions">
          <button type="button" class="ghost" onClick={() => app.go("/keys")}>Cancel</button>
          <button type="submit" class="primary" data-testid="create-submit">Create key</button>
        </div>
      </form>
    </section>
  );
}
