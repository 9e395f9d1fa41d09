import { useEffect, useState } from "preact/hooks";
import type { AuditEntry, CommandError } from "../bindings";
import * as api from "../api/commands";
import { useApp } from "../app";
import { Banner, Spinner } from "../components/Fields";
import { relativeTime, shortDate } from "../lib/format";
import { type AuditFilter, type Period, NO_FILTER, actionWords, changes, matches, reason, targetName } from "../lib/audit";

export const AUDIT_PAGE = 100;

/** The organisation's audit log from the replica, newest first; "Load more" pages by `beforeSeq`. */
export function AuditLog() {
  const app = useApp();
  const [entries, setEntries] = useState<AuditEntry[]>([]);
  const [more, setMore] = useState(false);
  const [loaded, setLoaded] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<CommandError | null>(null);
  const [filter, setFilter] = useState<AuditFilter>(NO_FILTER);

  const load = async (before: number | null) => {
    setBusy(true);
    try {
      const page = await app.run(api.auditLog(AUDIT_PAGE, before));
      setEntries((cur) => (before === null ? page : [...cur, ...page]));
      setMore(page.length === AUDIT_PAGE);
      setError(null);
    } catch (e) {
      setError(api.toCommandError(e));
    } finally {
      setBusy(false);
      setLoaded(true);
    }
  };

  useEffect(() => {
    load(null);
  }, []);

  const oldest = entries[entries.length - 1]?.seq ?? null;
  const actions = [...new Set(entries.map((e) => e.action))].sort();
  const actors = [...new Set(entries.map((e) => e.actor_email ?? "system"))].sort();
  const shown = entries.filter((e) => matches(e, filter));
  const set = (over: Partial<AuditFilter>) => setFilter({ ...filter, ...over });
  const openTarget = (e: AuditEntry) => {
    if (e.target_type === "key" && e.target_id) app.go(`/keys/${encodeURIComponent(e.target_id)}`);
  };

  return (
    <section>
      <header class="page-head">
        <h2>Audit log</h2>
        <span class="muted" data-testid="audit-count">
          {entries.length > 0 && (shown.length === entries.length ? `${entries.length.toLocaleString("en-US")} shown` : `${shown.length.toLocaleString("en-US")} of ${entries.length.toLocaleString("en-US")} loaded`)}
        </span>
        <span class="spacer" />
        <button type="button" class="ghost" data-testid="audit-refresh" disabled={busy} onClick={() => load(null)}>Refresh</button>
      </header>
      <div class="filters" role="search" aria-label="Filter the audit log">
        <label class="sr-only" for="audit-action">Action</label>
        <select id="audit-action" data-testid="audit-filter-action" value={filter.action} onChange={(e) => set({ action: e.currentTarget.value })}>
          <option value="">Every action</option>
          {actions.map((a) => <option value={a}>{actionWords(a)}</option>)}
        </select>
        <label class="sr-only" for="audit-actor">Actor</label>
        <select id="audit-actor" data-testid="audit-filter-actor" value={filter.actor} onChange={(e) => set({ actor: e.currentTarget.value })}>
          <option value="">Every actor</option>
          {actors.map((a) => <option value={a}>{a}</option>)}
        </select>
        <label class="sr-only" for="audit-key">Key</label>
        <input id="audit-key" class="grow" type="search" placeholder="Key name" data-testid="audit-filter-key" value={filter.key} onInput={(e) => set({ key: e.currentTarget.value })} />
        <label class="sr-only" for="audit-period">Period</label>
        <select id="audit-period" data-testid="audit-filter-period" value={filter.period} onChange={(e) => set({ period: e.currentTarget.value as Period })}>
          <option value="all">Any time</option>
          <option value="24h">Last 24 hours</option>
          <option value="7d">Last 7 days</option>
          <option value="30d">Last 30 days</option>
        </select>
      </div>
      <Banner error={error} />
      <div class="table-wrap">
        <table class="audit-table" aria-busy={busy}>
          <thead>
            <tr><th scope="col">#</th><th scope="col">Time</th><th scope="col">What</th><th scope="col">Who</th><th scope="col">Address</th></tr>
          </thead>
          <tbody>
            {shown.map((e) => {
              const name = targetName(e);
              const diff = changes(e);
              const why = reason(e);
              return (
                <tr key={e.id} data-testid="audit-row" data-seq={e.seq} data-action={e.action}>
                  <td class="mono muted">{e.seq.toLocaleString("en-US")}</td>
                  <td title={shortDate(e.created_at)}>{relativeTime(e.created_at)}<div class="muted small">{shortDate(e.created_at)}</div></td>
                  <td>
                    <span title={e.action}>{actionWords(e.action)}</span>
                    {e.target_id && (
                      e.target_type === "key"
                        ? <> <a href={`#/keys/${encodeURIComponent(e.target_id)}`} title={`key ${e.target_id}`} data-testid="audit-target" onClick={(ev) => { ev.preventDefault(); openTarget(e); }}>{name ?? "a key"}</a></>
                        : <> <span title={`${e.target_type} ${e.target_id}`} data-testid="audit-target">{name ?? e.target_type}</span></>
                    )}
                    {why && <div class="small">Reason: “{why}”</div>}
                    {diff.length > 0 && (
                      <ul class="changes small" data-testid="audit-changes">
                        {diff.map((c) => <li>{c.field}: <span class="muted">{c.from}</span> → {c.to}</li>)}
                      </ul>
                    )}
                  </td>
                  <td title={e.actor_id ?? undefined}>{e.actor_email ?? <span class="muted">system</span>}</td>
                  <td class="mono">{e.client_ip ?? "—"}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      {loaded && entries.length > 0 && shown.length === 0 && <p class="empty" data-testid="audit-none">No loaded entry matches these filters.</p>}
      {loaded && entries.length === 0 && !error && <p class="empty">Nothing synced yet.</p>}
      {more && (
        <div class="pager">
          <button type="button" class="ghost" data-testid="audit-more" disabled={busy} onClick={() => load(oldest)}>
            {busy ? <><Spinner /> Loading…</> : "Load more"}
          </button>
        </div>
      )}
    </section>
  );
}
