import { useEffect, useState } from "preact/hooks";
import type { AuditEntry, CommandError } from "../bindings";
import * as api from "../api/commands";
import { useApp } from "../app";
import { Banner, Spinner } from "../components/Fields";
import { relativeTime, shortDate } from "../lib/format";

export const AUDIT_PAGE = 100;

/** The organisation's audit log from the replica, newest first; "Load more" pages by `beforeSeq`. */
export function AuditLog() {
  const app = useApp();
  const [entries, setEntries] = useState<AuditEntry[]>([]);
  const [more, setMore] = useState(false);
  const [loaded, setLoaded] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<CommandError | null>(null);

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
  const openTarget = (e: AuditEntry) => {
    if (e.target_type === "key" && e.target_id) app.go(`/keys/${encodeURIComponent(e.target_id)}`);
  };

  return (
    <section>
      <header class="page-head">
        <h2>Audit log</h2>
        <span class="muted">{entries.length > 0 && `${entries.length.toLocaleString()} shown`}</span>
        <span class="spacer" />
        <button type="button" class="ghost" data-testid="audit-refresh" disabled={busy} onClick={() => load(null)}>Refresh</button>
      </header>
      <Banner error={error} />
      <div class="table-wrap">
        <table class="audit-table" aria-busy={busy}>
          <thead>
            <tr><th scope="col">#</th><th scope="col">Time</th><th scope="col">Action</th><th scope="col">Actor</th><th scope="col">Target</th><th scope="col">Address</th></tr>
          </thead>
          <tbody>
            {entries.map((e) => (
              <tr key={e.id} data-testid="audit-row" data-seq={e.seq}>
                <td class="mono muted">{e.seq}</td>
                <td title={shortDate(e.created_at)}>{relativeTime(e.created_at)}<div class="muted small">{shortDate(e.created_at)}</div></td>
                <td><code>{e.action}</code></td>
                <td>{e.actor_email ?? <span class="muted">system</span>}</td>
                <td>
                  {e.target_type}
                  {e.target_id && (
                    e.target_type === "key"
                      ? <> <a href={`#/keys/${encodeURIComponent(e.target_id)}`} class="mono" title={e.target_id} onClick={(ev) => { ev.preventDefault(); openTarget(e); }}>{e.target_id.slice(0, 8)}…</a></>
                      : <> <span class="mono" title={e.target_id}>{e.target_id.slice(0, 8)}…</span></>
                  )}
                </td>
                <td class="mono">{e.client_ip ?? "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
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
