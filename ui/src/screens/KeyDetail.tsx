import { useEffect, useRef, useState } from "preact/hooks";
import type { ApiKey, AuditEntry, CommandError, KeyDetail, KeyEdit, LimitUsage } from "../bindings";
import * as api from "../api/commands";
import { useApp } from "../app";
import { Banner, Field, Spinner } from "../components/Fields";
import { TokenDialog } from "../components/TokenDialog";
import { UsageGraph } from "../components/UsageGraph";
import { LIMIT_FIELDS, LimitsEditor, draftFrom, formFromDraft, sameLimits } from "../components/LimitsEditor";
import {
  UTC_INPUT_HINT, formatDuration, isoToUtcInput, parseSeconds, relativeTime, sameItems, sentence, shortDate, splitList, utcInputToIso,
} from "../lib/format";
import { usePolled } from "../lib/polled";
import { actionWords, reason } from "../lib/audit";
import { badTime, requiredName } from "./CreateKey";
import { EnvBadge, KeyStatusBadge, Scopes, SyncMarkers } from "./Keys";
import { PENDING_TEXT, pendingState } from "../lib/sync";
import { GatewaySection } from "./KeyGateway";

type Panel = null | "edit" | "revoke" | "rotate";
const REFRESH_MS = 10_000;

/** A grace period that cannot be sent at all (the parameter is a whole number of seconds). */
function badSeconds(): CommandError {
  return {
    code: "validation_failed",
    message: "grace period",
    fields: [{ field: "grace_seconds", code: "invalid", message: "Enter a whole number of seconds (0 or more)." }],
  };
}

/**
 * The edit to send: only what changed, everything else left as it is (`null`). Emptying the
 * description clears it; emptying the expiry removes it. Null when nothing changed.
 */
export function editFrom(
  k: ApiKey,
  v: { name: string; description: string; scopes: string; ips: string; expires: string },
): KeyEdit | null {
  const scopes = splitList(v.scopes);
  const ips = splitList(v.ips);
  const expiresIso = utcInputToIso(v.expires) ?? null;
  const expiryChanged = v.expires.trim() !== isoToUtcInput(k.expires_at);
  const edit: KeyEdit = {
    name: v.name.trim() !== k.name ? v.name.trim() : null,
    description: v.description.trim() !== (k.description ?? "") ? v.description.trim() : null,
    scopes: sameItems(scopes, k.scopes) ? null : scopes,
    allowed_ips: sameItems(ips, k.allowed_ips) ? null : ips,
    expires_at: expiryChanged && expiresIso ? expiresIso : null,
    clear_expiry: expiryChanged && !v.expires && k.expires_at !== null,
    disabled: null,
    limits: null,
  };
  const changed = edit.name !== null || edit.description !== null || edit.scopes !== null ||
    edit.allowed_ips !== null || edit.expires_at !== null || edit.clear_expiry;
  return changed ? edit : null;
}

/** The email of admin `id`, from the audit entries they made (the key's own trail). */
function creator(audit: readonly AuditEntry[], id: string): string | null {
  return audit.find((e) => e.actor_id === id && e.actor_email)?.actor_email ?? null;
}

const KEEP: KeyEdit = { name: null, description: null, scopes: null, allowed_ips: null, expires_at: null, clear_expiry: false, disabled: null, limits: null };

export function KeyDetailScreen(props: { id: string }) {
  const app = useApp();
  const [detail, setDetail] = useState<KeyDetail | null>(null);
  const [error, setError] = useState<CommandError | null>(null);
  const [panel, setPanel] = useState<Panel>(null);
  const [issued, setIssued] = useState<{ token: string; id: string; oldStops: string } | null>(null);
  const [toggling, setToggling] = useState(false);

  const load = (background = false) => {
    const p = api.getKey(props.id);
    return (background ? app.quiet(p) : app.run(p))
      .then((d) => {
        setDetail(d);
        if (!background) setError(null);
      })
      .catch((e: CommandError) => !background && setError(e));
  };

  useEffect(() => {
    load();
    const t = setInterval(() => load(true), REFRESH_MS);
    return () => clearInterval(t);
  }, [props.id]);

  const syncMark = `${app.status.last_pull_at}|${app.status.queued}`;
  const firstMark = useRef(syncMark);
  useEffect(() => {
    if (syncMark === firstMark.current) return;
    firstMark.current = syncMark;
    load(true);
  }, [syncMark]);

  if (!detail) {
    return (
      <section>
        <header class="page-head">
          <button type="button" class="ghost" onClick={() => app.go("/keys")}>← Keys</button>
          <h2>{error ? (error.code === "not_found" ? "No such key" : "Key") : "Loading…"}</h2>
        </header>
        <Banner error={error} />
      </section>
    );
  }

  const item = detail.item;
  const key = item.key;
  const rejected = item.error;
  const live = key.status !== "revoked";
  const done = () => {
    setPanel(null);
    load();
  };
  const toggle = async () => {
    setToggling(true);
    try {
      const updated = await app.run(api.updateKey(key.id, { ...KEEP, disabled: !key.disabled }));
      setDetail({ ...detail, item: updated });
      setError(null);
    } catch (e) {
      setError(api.toCommandError(e));
    } finally {
      setToggling(false);
    }
  };
  const revokeLater = key.revoked_at && new Date(key.revoked_at).getTime() > Date.now();
  const pending = pendingState(item);
  const dismiss = async () => {
    try {
      await app.run(api.dismissKeyError(key.id));
      setDetail({ ...detail, item: { ...item, error: null } });
    } catch (e) {
      setError(api.toCommandError(e));
    }
  };

  return (
    <section data-testid="key-detail" data-key-id={key.id} data-status={key.status}>
      <header class="page-head">
        <button type="button" class="ghost" onClick={() => app.go("/keys")}>← Keys</button>
        <h2>{key.name}</h2>
        <KeyStatusBadge item={item} />
        <EnvBadge environment={key.environment} />
        <SyncMarkers item={item} />
      </header>
      {rejected && (
        <div class="banner error" data-testid="key-error" role="alert">
          <strong>The server refused a change to this key:</strong> {sentence(rejected.detail)}{" "}
          <a href="#/settings" onClick={(e) => { e.preventDefault(); app.go("/settings"); }}>Review refused changes</a>
          <button type="button" class="ghost small" data-testid="key-error-dismiss" onClick={dismiss}>Dismiss</button>
        </div>
      )}
      {pending ? (
        <p class={`banner ${pending === "revocation_queued" ? "error" : "info"}`} role="status" data-testid="key-pending-state" data-pending-state={pending}>
          <strong>{PENDING_TEXT[pending].sentence}</strong>
        </p>
      ) : item.pending && (
        <p class="banner info small" role="status">Changes to this key are saved on this device and wait to sync.</p>
      )}
      {app.canWrite ? (
        <div class="actions toolbar" role="toolbar" aria-label="Key actions">
          <button type="button" data-testid="edit-open" aria-expanded={panel === "edit"} disabled={!live} onClick={() => setPanel(panel === "edit" ? null : "edit")}>Edit</button>
          {live && (
            <button type="button" data-testid="toggle-disabled" disabled={toggling} aria-busy={toggling} onClick={toggle}>
              {toggling && <Spinner />} {key.disabled ? "Enable" : "Disable"}
            </button>
          )}
          <button type="button" data-testid="rotate-open" aria-expanded={panel === "rotate"} disabled={!live} onClick={() => setPanel(panel === "rotate" ? null : "rotate")}>Rotate</button>
          <button type="button" class="danger" data-testid="revoke-open" aria-expanded={panel === "revoke"} disabled={!live} onClick={() => setPanel(panel === "revoke" ? null : "revoke")}>Revoke</button>
        </div>
      ) : (
        <p class="muted small" data-testid="read-only">Read-only: your role is viewer.</p>
      )}
      <Banner error={error} />
      {panel === "edit" && <EditPanel k={key} onDone={done} onCancel={() => setPanel(null)} />}
      {panel === "revoke" && <RevokePanel id={key.id} onDone={done} onCancel={() => setPanel(null)} />}
      {panel === "rotate" && (
        <RotatePanel
          id={key.id}
          onIssued={(token, id, oldStops) => {
            setPanel(null);
            setIssued({ token, id, oldStops });
          }}
          onCancel={() => setPanel(null)}
        />
      )}
      {issued && (
        <TokenDialog
          token={issued.token}
          title={`The replacement for ${key.name}`}
          note={`This new key replaces “${key.name}”. The old key keeps working until ${shortDate(issued.oldStops)}, then stops; move every client to this one before then.`}
          onDone={() => {
            const next = issued.id;
            setIssued(null);
            app.go(`/keys/${encodeURIComponent(next)}`);
          }}
        />
      )}
      <div class="detail-grid">
        <dl class="facts" aria-label="Settings">
          <dt>Key</dt><dd class="mono" data-testid="detail-prefix">{key.prefix}…</dd>
          <dt>Key id</dt><dd class="mono">{key.id}</dd>
          <dt>Description</dt><dd>{key.description ?? <span class="muted">none</span>}</dd>
          <dt>Scopes</dt><dd data-testid="detail-scopes"><Scopes scopes={key.scopes} all /></dd>
          <dt>Allowed addresses</dt>
          <dd data-testid="detail-ips">{key.allowed_ips.length ? <Scopes scopes={key.allowed_ips} all /> : <span class="muted">any address</span>}</dd>
          <dt>Expires</dt>
          <dd>{key.expires_at ? <>{shortDate(key.expires_at)} <span class="muted">({relativeTime(key.expires_at)})</span></> : <span class="muted">never</span>}</dd>
          <dt>Disabled</dt><dd>{key.disabled ? "yes" : "no"}</dd>
          <dt>Revocation</dt>
          <dd data-testid="detail-revocation" data-revoked-at={pending === "revocation_queued" ? undefined : key.revoked_at ?? undefined}>
            {pending === "revocation_queued" ? (
              <>
                queued on this device; the server sets the time when it syncs
                {key.revoke_reason && <> — “{key.revoke_reason}”</>}
              </>
            ) : key.revoked_at ? (
              <>
                {revokeLater ? "takes effect " : ""}{shortDate(key.revoked_at)} <span class="muted">({relativeTime(key.revoked_at)})</span>
                {key.revoke_reason && <> — “{key.revoke_reason}”</>}
              </>
            ) : <span class="muted">not revoked</span>}
          </dd>
          <dt>Last used</dt>
          <dd data-testid="detail-last-used" data-last-used={key.last_used_at ?? undefined}>
            {key.last_used_at ? <>{relativeTime(key.last_used_at)} <span class="muted">({shortDate(key.last_used_at)})</span></> : "never"}
            {key.last_used_ip && <> from <span class="mono">{key.last_used_ip}</span></>}
          </dd>
          <dt>Created</dt>
          <dd data-testid="detail-created">
            {shortDate(key.created_at)}
            {key.created_by && <span class="muted" title={`admin ${key.created_by}`}> by {creator(detail.audit, key.created_by) ?? "an admin of your organisation"}</span>}
          </dd>
          <dt>Updated</dt><dd>{shortDate(key.updated_at)}</dd>
          <dt>Rotation lineage</dt>
          <dd data-testid="detail-lineage">
            {key.rotated_from ? <a href={`#/keys/${encodeURIComponent(key.rotated_from)}`}>← replaces an earlier key</a> : <span class="muted">first key of its lineage</span>}
            {key.replaced_by && (
              <div data-testid="detail-rotated-out">
                <strong>Rotated out:</strong> <a href={`#/keys/${encodeURIComponent(key.replaced_by)}`}>replaced by a newer key →</a>
                {key.revoked_at && <> — {new Date(key.revoked_at).getTime() > Date.now() ? "stops working" : "stopped working"} {shortDate(key.revoked_at)} <span class="muted">({relativeTime(key.revoked_at)})</span></>}
              </div>
            )}
            {key.lineage_id !== key.id && <div class="muted small mono">lineage {key.lineage_id}</div>}
          </dd>
        </dl>
      </div>
      <UsageGraph keyId={key.id} />
      <LimitsSection k={key} />
      <GatewaySection keyId={key.id} />
      <h3>Audit trail</h3>
      <table class="audit-table compact" data-testid="key-audit">
        <thead><tr><th scope="col">Time</th><th scope="col">Action</th><th scope="col">Actor</th><th scope="col">Address</th></tr></thead>
        <tbody>
          {detail.audit.map((e) => (
            <tr key={e.id}>
              <td title={shortDate(e.created_at)}>{relativeTime(e.created_at)}</td>
              <td title={e.action}>{actionWords(e.action)}{reason(e) && <> — “{reason(e)}”</>}</td>
              <td>{e.actor_email ?? <span class="muted">system</span>}</td>
              <td class="mono">{e.client_ip ?? "—"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {detail.audit.length === 0 && <p class="empty small">No entries synced yet.</p>}
    </section>
  );
}

const KINDS: Record<string, string> = {
  gcra: "token bucket",
  fixed_window: "fixed window",
  sliding_window: "sliding window",
  daily: "daily quota",
  monthly: "monthly quota",
};

/** A rule's kind in words: `gcra` → "token bucket", `daily` → "daily quota". */
export function kindLabel(kind: string): string {
  return KINDS[kind] ?? kind.replace(/_/g, " ");
}

const isQuota = (r: LimitUsage) => r.kind === "daily" || r.kind === "monthly";

/** 45 → "resets in 45 s", 600 → "resets in 10 min", 7200 → "resets in 2 h", 5 days → "resets in 5 d". */
export function resetsIn(seconds: number): string {
  if (seconds <= 0) return "resets now";
  if (seconds < 60) return `resets in ${seconds} s`;
  if (seconds < 3600) return `resets in ${Math.max(1, Math.round(seconds / 60))} min`;
  if (seconds < 2 * 86_400) return `resets in ${Math.max(1, Math.round(seconds / 3600))} h`;
  return `resets in ${Math.round(seconds / 86_400)} d`;
}

/** Where a rule stands: past the soft threshold warns, at the limit is reached. */
export function level(r: LimitUsage, softThreshold: number): "ok" | "warn" | "full" {
  if (r.used >= r.limit || (r.remaining === 0 && r.used > 0)) return "full";
  return r.used > 0 && r.used >= softThreshold * r.limit ? "warn" : "ok";
}

/** Whose rules apply: the key's own (`own`), its tier's, or none. */
function source(own: boolean, tier: string | null): string {
  if (own) return "set on this key";
  return tier ? `inherited from tier ${tier}` : "inherited (no tier)";
}

/**
 * The key's standing against each of its rate limits and quotas (`key_limits`), its tier, and
 * its refusals in the last 24 hours. Refreshed in the background like the rest of the screen.
 */
function LimitsSection(props: { k: ApiKey }) {
  const id = props.k.id;
  const { value: snapshot, loading, error } = usePolled(() => api.keyLimits(id), [id], REFRESH_MS);

  const l = snapshot?.limits;
  const threshold = l?.soft_threshold ?? 1;
  return (
    <section class="limits panel-box" aria-labelledby="limits-title" data-testid="key-limits" aria-busy={loading}>
      <div class="usage-head">
        <h3 id="limits-title">Limits</h3>
        <span class="muted small" data-testid="limits-state">
          {loading && !snapshot ? "loading…" : snapshot ? `fetched ${relativeTime(snapshot.fetched_at)} · counters ${snapshot.limits.mode}` : ""}
        </span>
      </div>
      {error && <p class="muted small" role="alert" data-testid="limits-error">Limits unavailable: {error.message}</p>}
      {l && (
        <>
          <dl class="facts plain limits-facts">
            <dt>Tier</dt>
            <dd data-testid="limits-tier">{l.tier ? <span class="chip">{l.tier}</span> : <span class="muted">no tier</span>}</dd>
            <dt>Rate limits</dt>
            <dd data-testid="limits-source-rate">{source(props.k.rate_limits !== null, l.tier)}</dd>
            <dt>Quota</dt>
            <dd data-testid="limits-source-quota">{source(props.k.quota !== null, l.tier)}</dd>
            {l.forecast.length > 0 && (
              <>
                <dt>Forecast</dt>
                <dd data-testid="limits-forecast">
                  {l.forecast.map((f) => (
                    <div data-quota={f.quota}>
                      {f.quota === "daily" ? "Daily quota" : "Monthly quota"}:{" "}
                      {f.exhausts_at === null
                        ? `lasts the ${f.quota === "daily" ? "day" : "month"} at the rate so far`
                        : new Date(f.exhausts_at).getTime() <= Date.now() + 60_000
                          ? "used up"
                          : `runs out around ${shortDate(f.exhausts_at)} (${relativeTime(f.exhausts_at)}) at the rate so far`}
                      <span class="muted small"> · {f.confidence} confidence</span>
                    </div>
                  ))}
                </dd>
              </>
            )}
          </dl>
          {l.rules.length === 0 ? (
            <p class="empty small" data-testid="limits-empty">No rate limits or quotas</p>
          ) : (
            <table class="limits-table compact" data-testid="limits-rules">
              <caption class="sr-only">Usage against each rule; a warning past {Math.round(threshold * 100)}% of a limit</caption>
              <thead>
                <tr><th scope="col">Policy</th><th scope="col">Kind</th><th scope="col">Used</th><th scope="col">Resets</th></tr>
              </thead>
              <tbody>
                {l.rules.map((r) => <RuleRow key={`${r.kind}:${r.policy}`} r={r} threshold={threshold} own={isQuota(r) ? props.k.quota !== null : props.k.rate_limits !== null} />)}
              </tbody>
            </table>
          )}
          {(l.rules.length > 0 || l.violations.length > 0) && (
            <>
              <h4 id="violations-title">Recent violations</h4>
              {l.violations.length === 0 ? (
                <p class="muted small" data-testid="violations-empty">No violations in the last 24 hours</p>
              ) : (
                <table class="limits-table compact" data-testid="violations" aria-labelledby="violations-title">
                  <thead><tr><th scope="col">Rule</th><th scope="col">Refusals</th><th scope="col">Last</th></tr></thead>
                  <tbody>
                    {l.violations.map((v) => (
                      <tr key={v.rule} data-testid="violation-row">
                        <td><code>{v.rule}</code></td>
                        <td>{v.count.toLocaleString()}</td>
                        <td title={shortDate(v.last_at)}>{relativeTime(v.last_at)} <span class="muted small">({shortDate(v.last_at)})</span></td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
            </>
          )}
        </>
      )}
    </section>
  );
}

function RuleRow(props: { r: LimitUsage; threshold: number; own: boolean }) {
  const r = props.r;
  const state = level(r, props.threshold);
  const pct = r.limit > 0 ? Math.min(100, Math.round((r.used / r.limit) * 100)) : 0;
  const label = `${r.used.toLocaleString()} / ${r.limit.toLocaleString()}`;
  return (
    <tr class={state === "ok" ? "" : state} data-testid="limit-row" data-policy={r.policy} data-level={state}>
      <td><code>{r.policy}</code>{!props.own && <span class="muted small"> (tier)</span>}</td>
      <td>
        {kindLabel(r.kind)}
        {!isQuota(r) && r.window_seconds > 0 && <span class="muted small"> · per {formatDuration(r.window_seconds)}</span>}
        {r.consistency === "exact" && (
          <span class="muted small" data-testid="exact" title="Checked against the shared counter on every request when limits are shared by several servers">
            {" "}· exact
          </span>
        )}
      </td>
      <td>
        <div class="meter">
          <div
            class={`bar ${state}`}
            role="progressbar"
            aria-label={`${r.policy} used`}
            aria-valuemin={0}
            aria-valuemax={r.limit}
            aria-valuenow={Math.min(r.used, r.limit)}
            aria-valuetext={`${label} used (${pct}%)`}
            data-testid="limit-progress"
          >
            <span class="fill" style={{ width: `${pct}%` }} />
          </div>
          <span class="meter-label" data-testid="limit-used">{label}</span>
          {state !== "ok" && (
            <span class={`limit-flag ${state}`} data-testid="limit-warning">
              {state === "full" ? "⚠ limit reached" : "⚠ near limit"}
            </span>
          )}
        </div>
      </td>
      <td class="nowrap">{resetsIn(r.reset_seconds)}</td>
    </tr>
  );
}

function useFocusFirst() {
  const ref = useRef<HTMLFormElement>(null);
  useEffect(() => {
    ref.current?.querySelector<HTMLElement>("input, textarea, select")?.focus();
  }, []);
  return ref;
}

function EditPanel(props: { k: ApiKey; onDone: () => void; onCancel: () => void }) {
  const app = useApp();
  const k = props.k;
  const [name, setName] = useState(k.name);
  const [description, setDescription] = useState(k.description ?? "");
  const [scopes, setScopes] = useState(k.scopes.join(" "));
  const [ips, setIps] = useState(k.allowed_ips.join(" "));
  const [expires, setExpires] = useState(isoToUtcInput(k.expires_at));
  const [initialLimits] = useState(() => draftFrom(k));
  const [limits, setLimits] = useState(initialLimits);
  const [error, setError] = useState<CommandError | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const [sent, setSent] = useState<KeyEdit | null>(null);
  const [busy, setBusy] = useState(false);
  const ref = useFocusFirst();

  const submit = async (e: Event) => {
    e.preventDefault();
    setNote(null);
    const local = requiredName(name);
    if (local) return setError(local);
    if (utcInputToIso(expires) === undefined) return setError(badTime("expires_at"));
    let edit = editFrom(k, { name, description, scopes, ips, expires });
    if (!sameLimits(limits, initialLimits)) {
      const l = formFromDraft(limits);
      if ("error" in l) return setError(l.error);
      edit = { ...(edit ?? KEEP), limits: l.form };
    }
    if (!edit) {
      setError(null);
      setNote("Nothing changed.");
      return;
    }
    setSent(edit);
    setBusy(true);
    try {
      await app.run(api.updateKey(k.id, edit));
      props.onDone();
    } catch (err) {
      setError(api.toCommandError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="panel form" onSubmit={submit} ref={ref} noValidate aria-label="Edit key">
      <h3>Edit key</h3>
      <Banner error={error} shown={["name", "description", "scopes", "allowed_ips", "expires_at", ...LIMIT_FIELDS]} />
      {note && <p class="muted" role="status">{note}</p>}
      <Field label="Name" field="name" error={error}>
        {(a) => <input {...a} data-testid="edit-name" value={name} onInput={(e) => setName(e.currentTarget.value)} />}
      </Field>
      <Field label="Description" field="description" error={error} hint="empty removes it">
        {(a) => <textarea {...a} data-testid="edit-description" rows={2} value={description} onInput={(e) => setDescription(e.currentTarget.value)} />}
      </Field>
      <Field label="Scopes" field="scopes" error={error} items={sent?.scopes ?? undefined} hint="separated by spaces or commas">
        {(a) => <input {...a} data-testid="edit-scopes" class="mono-input" value={scopes} onInput={(e) => setScopes(e.currentTarget.value)} />}
      </Field>
      <Field label="Allowed client addresses" field="allowed_ips" error={error} items={sent?.allowed_ips ?? undefined} hint="empty allows any address">
        {(a) => <input {...a} data-testid="edit-ips" class="mono-input" value={ips} onInput={(e) => setIps(e.currentTarget.value)} />}
      </Field>
      <Field label="Expires" field="expires_at" error={error} hint={`${UTC_INPUT_HINT}; empty for no expiry`}>
        {(a) => <input {...a} data-testid="edit-expires" class="mono-input" placeholder="YYYY-MM-DD HH:MM" value={expires} onInput={(e) => setExpires(e.currentTarget.value)} />}
      </Field>
      <LimitsEditor draft={limits} set={setLimits} error={error} testid="edit" />
      <div class="actions">
        <button type="button" class="ghost" onClick={props.onCancel}>Cancel</button>
        <button type="submit" class="primary" data-testid="edit-submit" disabled={busy} aria-busy={busy}>
          {busy ? <><Spinner /> Saving…</> : "Save changes"}
        </button>
      </div>
    </form>
  );
}

/** Common grace periods, as buttons beside the seconds field. */
function GracePresets(props: { set: (v: string) => void; testid: string }) {
  const presets = [0, 3600, 86_400, 7 * 86_400];
  return (
    <span class="presets" role="group" aria-label="Grace period presets">
      {presets.map((s) => (
        <button type="button" class="ghost small" data-testid={`${props.testid}-${s}`} onClick={() => props.set(String(s))}>
          {s === 0 ? "now" : formatDuration(s)}
        </button>
      ))}
    </span>
  );
}

function RevokePanel(props: { id: string; onDone: () => void; onCancel: () => void }) {
  const app = useApp();
  const [grace, setGrace] = useState("0");
  const [reason, setReason] = useState("");
  const [error, setError] = useState<CommandError | null>(null);
  const [busy, setBusy] = useState(false);
  const ref = useFocusFirst();
  const secs = parseSeconds(grace);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (secs === null) return setError(badSeconds());
    setBusy(true);
    try {
      await app.run(api.revokeKey(props.id, { grace_seconds: secs, reason: reason.trim() || null }));
      props.onDone();
    } catch (err) {
      setError(api.toCommandError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="panel form danger-zone" onSubmit={submit} ref={ref} noValidate aria-label="Revoke key">
      <h3>Revoke key</h3>
      <p>Revocation is final. With a grace period the key keeps working until the period ends.</p>
      <Banner error={error} shown={["grace_seconds", "reason"]} />
      <Field label="Grace period (seconds)" field="grace_seconds" error={error} hint={secs !== null ? `Stops working ${secs === 0 ? "immediately" : `in ${formatDuration(secs)}`}.` : "0 revokes at once"}>
        {(a) => (
          <div class="row">
            <input {...a} data-testid="revoke-grace" inputMode="numeric" value={grace} onInput={(e) => setGrace(e.currentTarget.value)} />
            <GracePresets set={setGrace} testid="revoke-grace-preset" />
          </div>
        )}
      </Field>
      <Field label="Reason" field="reason" error={error} hint="optional; kept in the audit log">
        {(a) => <input {...a} data-testid="revoke-reason" value={reason} onInput={(e) => setReason(e.currentTarget.value)} />}
      </Field>
      <div class="actions">
        <button type="button" class="ghost" onClick={props.onCancel}>Cancel</button>
        <button type="submit" class="danger" data-testid="revoke-submit" disabled={busy} aria-busy={busy}>
          {busy ? <><Spinner /> Revoking…</> : "Revoke key"}
        </button>
      </div>
    </form>
  );
}

function RotatePanel(props: { id: string; onIssued: (token: string, id: string, oldStops: string) => void; onCancel: () => void }) {
  const app = useApp();
  const [grace, setGrace] = useState("86400");
  const [error, setError] = useState<CommandError | null>(null);
  const [busy, setBusy] = useState(false);
  const ref = useFocusFirst();
  const secs = parseSeconds(grace);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (secs === null) return setError(badSeconds());
    setBusy(true);
    try {
      const issued = await app.run(api.rotateKey(props.id, secs));
      props.onIssued(issued.token, issued.key.id, new Date(Date.now() + secs * 1000).toISOString());
    } catch (err) {
      setError(api.toCommandError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="panel form" onSubmit={submit} ref={ref} noValidate aria-label="Rotate key">
      <h3>Rotate key</h3>
      <p>
        A new key with the same settings replaces this one. The old key keeps working for the grace
        period so clients can switch over; use <strong>0</strong> for a leaked key to stop it immediately.
      </p>
      <Banner error={error} shown={["grace_seconds"]} />
      <Field label="Grace period for the old key (seconds)" field="grace_seconds" error={error} hint={secs !== null ? `Old key stops ${secs === 0 ? "immediately" : `in ${formatDuration(secs)}`}.` : "0 = immediately"}>
        {(a) => (
          <div class="row">
            <input {...a} data-testid="rotate-grace" inputMode="numeric" value={grace} onInput={(e) => setGrace(e.currentTarget.value)} />
            <GracePresets set={setGrace} testid="rotate-grace-preset" />
          </div>
        )}
      </Field>
      <div class="actions">
        <button type="button" class="ghost" onClick={props.onCancel}>Cancel</button>
        <button type="submit" class="primary" data-testid="rotate-submit" disabled={busy} aria-busy={busy}>
          {busy ? <><Spinner /> Rotating…</> : "Rotate key"}
        </button>
      </div>
    </form>
  );
}
