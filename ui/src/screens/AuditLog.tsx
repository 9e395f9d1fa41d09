import { useEffect, useState } from "preact/hooks";
import type { AuditEntry, CommandError } from "../bindings";
import * as api from "../api/commands";
import { useApp } from "../app";
import { Banner } from "../components/Fields";
import { shortDate } from "../lib/format";

const PAGE = 100;

export function AuditLog() {
  const app = useApp();
  const [entries, setEntries] = useState<AuditEntry[]>([]);
  const [more, setMore] = useState(false);
  const [error, setError] = useState<CommandError | null>(null);

  const load = (before: number | null) =>
    app.run(api.auditLog(PAGE, before)).then((page) => {
      setEntries((cur) => (before === null ? page : [...cur, ...page]));
      setMore(page.length === PAGE);
    }).catch(setError);

  useEffect(() => { load(null); }, []);

  return (
    <section>
      <header class="page-head"><h2>Audit log</h2></header>
      <Banner error={error} />
      <table class="audit-table">
        <thead><tr><th>Time</th><th>Action</th><th>Actor</th><th>Target</th><th>Address</th></tr></thead>
        <tbody>
          {entries.map((e) => (
            <tr data-testid="audit-row">
              <td class="mono">{shortDate(e.created_at)}</td>
              <td>{e.action}</td>
              <td>{e.actor_email ?? "system"}</td>
              <td class="mono">{e.target_type}{e.target_id ? ` ${e.target_id.slice(0, 8)}…` : ""}</td>
              <td>{e.client_ip ?? "—"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {entries.length === 0 && <p class="empty">Nothing synced yet.</p>}
      {more && <button class="ghost" onClick={() => load(entries[entries.length - 1]?.seq ?? null)}>Load more</button>}
    </section>
  );
}
