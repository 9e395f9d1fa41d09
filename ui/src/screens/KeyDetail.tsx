import { useEffect, useState } from "preact/hooks";
import type { CommandError, KeyDetail } from "../bindings";
import * as api from "../api/commands";
import { useApp } from "../app";
import { Banner, Field } from "../components/Fields";
import { TokenDialog } from "../components/TokenDialog";
import { UsageGraph } from "../components/UsageGraph";
import { localInputToIso, relativeTime, shortDate, splitList } from "../lib/format";
import { StatusBadge } from "./Keys";

type Panel = null | "edit" | "revoke" | "rotate";

export function KeyDetailScreen(props: { id: string }) {
  const app = useApp();
  const [detail, setDetail] = useState<KeyDetail | null>(null);
  const [error, setError] = useState<CommandError | null>(null);
  const [panel, setPanel] = useState<Panel>(null);
  const [token, setToken] = useState<string | null>(null);

  const load = () => app.run(api.getKey(props.id)).then(setDetail).catch(setError);
  useEffect(() => {
    load();
    const t = setInterval(() => api.getKey(props.id).then(setDetail).catch(() => {}), 3000);
    return () => clearInterval(t);
  }, [props.id]);

  if (!detail) return <section><Banner error={error} /></section>;
  const { key, pending } = detail.item;
  const rejected = detail.item.error;
  const open = key.status !== "revoked" && app.canWrite;
  const done = () => { setPanel(null); load(); };

  return (
    <section data-testid="key-detail">
      <header class="page-head">
        <button class="ghost" onClick={() => app.go("/keys")}>← Keys</button>
        <h2>{key.name}</h2>
        <StatusBadge status={key.status} />
        {pending && <span class="marker pending">waiting to sync</span>}
      </header>
      {rejected && (
        <div class="banner error" data-testid="key-error" role="alert">
          The server refused a change to this key ({rejected.code}): {rejected.detail}
        </div>
      )}
      {open && (
        <div class="actions">
          <button data-testid="edit-open" onClick={() => setPanel("edit")}>Edit</button>
          <button data-testid="toggle-disabled" onClick={() => app.run(api.updateKey(key.id, { name: null, description: null, scopes: null, allowed_ips: null, expires_at: null, clear_expiry: false, disabled: !key.disabled })).then(load).catch(setError)}>
            {key.disabled ? "Enable" : "Disable"}
          </button>
          <button data-testid="rotate-open" onClick={() => setPanel("rotate")}>Rotate</button>
          <button class="danger" data-testid="revoke-open" onClick={() => setPanel("revoke")}>Revoke</button>
        </div>
      )}
      <Banner error={error} />
      {panel === "edit" && <EditPanel detail={detail} onDone={done} onCancel={() => setPanel(null)} />}
      {panel === "revoke" && <RevokePanel id={key.id} onDone={done} onCancel={() => setPanel(null)} />}
      {panel === "rotate" && <RotatePanel id={key.id} onIssued={(t) => { setPanel(null); setToken(t); }} onCancel={() => setPanel(null)} />}
      {token && <TokenDialog token={token} onDone={() => { setToken(null); load(); }} />}
      <dl class="facts">
        <dt>Key</dt><dd class="mono">{key.prefix}…</dd>
        <dt>Environment</dt><dd>{key.environment}</dd>
        <dt>Description</dt><dd>{key.description ?? <span class="muted">none</span>}</dd>
        <dt>Scopes</dt><dd>{key.scopes.join(", ") || <span class="muted">none</span>}</dd>
        <dt>Allowed addresses</dt><dd>{key.allowed_ips.join(", ") || <span class="muted">any</span>}</dd>
        <dt>Expires</dt><dd>{shortDate(key.expires_at)}</dd>
        <dt>Revocation</dt><dd>{key.revoked_at ? `${shortDate(key.revoked_at)}${key.revoke_reason ? ` (${key.revoke_reason})` : ""}` : <span class="muted">none</span>}</dd>
        <dt>Last used</dt><dd>{relativeTime(key.last_used_at)}{key.last_used_ip ? ` from ${key.last_used_ip}` : ""}</dd>
        <dt>Lineage</dt><dd>{key.rotated_from ? <a href={`#/keys/${key.rotated_from}`}>previous key</a> : "first key"}{key.replaced_by && <> · <a href={`#/keys/${key.replaced_by}`}>replaced by</a></>}</dd>
        <dt>Created</dt><dd>{shortDate(key.created_at)}</dd>
      </dl>
      <UsageGraph keyId={key.id} />
      <h3>Audit trail</h3>
      <ul class="audit">
        {detail.audit.map((e) => (
          <li><span class="mono">{shortDate(e.created_at)}</span> <strong>{e.action}</strong> by {e.actor_email ?? "system"}{e.client_ip ? ` from ${e.client_ip}` : ""}</li>
        ))}
        {detail.audit.length === 0 && <li class="muted">No entries synced yet.</li>}
      </ul>
    </section>
  );
}

function EditPanel(props: { detail: KeyDetail; onDone: () => void; onCancel: () => void }) {
  const app = useApp();
  const k = props.detail.item.key;
  const [name, setName] = useState(k.name);
  const [description, setDescription] = useState(k.description ?? "");
  const [scopes, setScopes] = useState(k.scopes.join(" "));
  const [ips, setIps] = useState(k.allowed_ips.join(" "));
  const [expires, setExpires] = useState("");
  const [clearExpiry, setClearExpiry] = useState(false);
  const [error, setError] = useState<CommandError | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    try {
      await app.run(api.updateKey(k.id, {
        name, description, scopes: splitList(scopes), allowed_ips: splitList(ips),
        expires_at: localInputToIso(expires), clear_expiry: clearExpiry, disabled: null,
      }));
      props.onDone();
    } catch (err) {
      setError(err as CommandError);
    }
  };
  return (
    <form class="panel form" onSubmit={submit}>
      <Banner error={error} />
      <Field label="Name" field="name" error={error}><input data-testid="edit-name" value={name} onInput={(e) => setName(e.currentTarget.value)} /></Field>
      <Field label="Description" field="description" error={error}><textarea value={description} onInput={(e) => setDescription(e.currentTarget.value)} /></Field>
      <Field label="Scopes" field="scopes" error={error}><input data-testid="edit-scopes" value={scopes} onInput={(e) => setScopes(e.currentTarget.value)} /></Field>
      <Field label="Allowed client addresses" field="allowed_ips" error={error}><input data-testid="edit-ips" value={ips} onInput={(e) => setIps(e.currentTarget.value)} /></Field>
      <Field label="New expiry" field="expires_at" error={error} hint="leave empty to keep">
        <input type="datetime-local" value={expires} onInput={(e) => setExpires(e.currentTarget.value)} />
      </Field>
      <label class="check"><input type="checkbox" checked={clearExpiry} onChange={(e) => setClearExpiry(e.currentTarget.checked)} /> Remove the expiry</label>
      <div class="actions">
        <button type="button" class="ghost" onClick={props.onCancel}>Cancel</button>
        <button type="submit" class="primary" data-testid="edit-submit">Save</button>
      </div>
    </form>
  );
}

function RevokePanel(props: { id: string; onDone: () => void; onCancel: () => void }) {
  const app = useApp();
  const [grace, setGrace] = useState("0");
  const [reason, setReason] = useState("");
  const [error, setError] = useState<CommandError | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    const secs = Number(grace);
    if (!Number.isInteger(secs) || secs < 0) {
      setError({ code: "validation_failed", message: "grace period", fields: [{ field: "grace_seconds", code: "invalid", message: "must be a whole number of seconds, 0 or more" }] });
      return;
    }
    try {
      await app.run(api.revokeKey(props.id, { grace_seconds: secs, reason: reason.trim() || null }));
      props.onDone();
    } catch (err) {
      setError(err as CommandError);
    }
  };
  return (
    <form class="panel form" onSubmit={submit}>
      <p>Revocation is final. With a grace period the key keeps working until it ends.</p>
      <Banner error={error} />
      <Field label="Grace period (seconds)" field="grace_seconds" error={error} hint="0 revokes at once; at most 30 days">
        <input data-testid="revoke-grace" inputMode="numeric" value={grace} onInput={(e) => setGrace(e.currentTarget.value)} />
      </Field>
      <Field label="Reason" field="reason" error={error}>
        <input data-testid="revoke-reason" value={reason} onInput={(e) => setReason(e.currentTarget.value)} />
      </Field>
      <div class="actions">
        <button type="button" class="ghost" onClick={props.onCancel}>Cancel</button>
        <button type="submit" class="danger" data-testid="revoke-submit">Revoke key</button>
      </div>
    </form>
  );
}

function RotatePanel(props: { id: string; onIssued: (token: string) => void; onCancel: () => void }) {
  const app = useApp();
  const [grace, setGrace] = useState("86400");
  const [error, setError] = useState<CommandError | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    const secs = Number(grace);
    if (!Number.isInteger(secs) || secs < 0) {
      setError({ code: "validation_failed", message: "grace period", fields: [{ field: "grace_seconds", code: "invalid", message: "must be a whole number of seconds, 0 or more" }] });
      return;
    }
    try {
      const issued = await app.run(api.rotateKey(props.id, secs));
      props.onIssued(issued.token);
    } catch (err) {
      setError(err as CommandError);
    }
  };
  return (
    <form class="panel form" onSubmit={submit}>
      <p>A new key with the same settings replaces this one; the old key stops after the grace period (0 for a leaked key).</p>
      <Banner error={error} />
      <Field label="Grace period (seconds)" field="grace_seconds" error={error}>
        <input data-testid="rotate-grace" inputMode="numeric" value={grace} onInput={(e) => setGrace(e.currentTarget.value)} />
      </Field>
      <div class="actions">
        <button type="button" class="ghost" onClick={props.onCancel}>Cancel</button>
        <button type="submit" class="primary" data-testid="rotate-submit">Rotate key</button>
      </div>
    </form>
  );
}
