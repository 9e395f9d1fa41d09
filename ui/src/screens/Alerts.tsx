// Alerts as last synced (the replica): open, acknowledged and resolved, with Acknowledge for
// open ones. Acknowledging needs the server: offline the backend refuses it with a message.
import { useEffect, useState } from "preact/hooks";
import type { Alert, AlertStatus, AlertsView, CommandError } from "../bindings";
import * as api from "../api/commands";
import { useApp } from "../app";
import { Banner } from "../components/Fields";
import { measure, relativeTime, shortDate, windowLabel } from "../lib/format";
import { Segmented } from "../components/Segmented";

const FILTERS: { value: AlertStatus | null; label: string; testid: string }[] = [
  { value: "open", label: "Open", testid: "alerts-filter-open" },
  { value: "acked", label: "Acknowledged", testid: "alerts-filter-acked" },
  { value: "resolved", label: "Resolved", testid: "alerts-filter-resolved" },
  { value: null, label: "All", testid: "alerts-filter-all" },
];

const STATUS_LABEL: Record<AlertStatus, string> = { open: "open", acked: "acknowledged", resolved: "resolved" };

export function AlertsScreen() {
  const app = useApp();
  const [filter, setFilter] = useState<AlertStatus | null>("open");
  const [view, setView] = useState<AlertsView | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<CommandError | null>(null);
  const [acking, setAcking] = useState<string | null>(null);
  const [ackError, setAckError] = useState<CommandError | null>(null);

  useEffect(() => {
    let alive = true;
    setLoading(true);
    setError(null);
    app
      .quiet(api.alerts(filter))
      .then((v) => alive && setView(v))
      .catch((e: unknown) => alive && setError(api.toCommandError(e)))
      .finally(() => alive && setLoading(false));
    return () => {
      alive = false;
    };
  }, [filter]);

  const acknowledge = async (a: Alert) => {
    setAcking(a.id);
    setAckError(null);
    try {
      const updated = await app.run(api.ackAlert(a.id));
      setView((v) => v && {
        ...v,
        // The open list drops it; other lists show its new status.
        items: filter === "open" ? v.items.filter((x) => x.id !== a.id) : v.items.map((x) => (x.id === a.id ? updated : x)),
      });
    } catch (e) {
      setAckError(api.toCommandError(e));
    } finally {
      setAcking(null);
    }
  };

  const items = view?.items ?? [];
  return (
    <section data-testid="alerts-screen" aria-busy={loading}>
      <header class="page-head">
        <h2>Alerts</h2>
        <Segmented label="Status" choices={FILTERS} value={filter} onChange={setFilter} testid={(f) => f.testid} />
        <span class="spacer" />
        <span class="muted small" data-testid="alerts-state">
          {loading ? "loading…" : view ? (view.synced_at ? `synced ${relativeTime(view.synced_at)}` : "not synced yet") : ""}
        </span>
      </header>
      <Banner error={error} testid="alerts-error" />
      <Banner error={ackError} testid="ack-error" />
      {!loading && !error && items.length === 0 && (
        <p class="empty" data-testid="alerts-empty">
          {view?.synced_at ? "No alerts here." : "No alerts synced yet: they arrive with the next sync while online."}
        </p>
      )}
      {items.length > 0 && (
        <div class="table-wrap">
          <table class="limits-table" data-testid="alerts-table">
            <thead>
              <tr>
                <th scope="col">Key</th><th scope="col">Kind</th><th scope="col">Observed</th><th scope="col">Expected</th>
                <th scope="col">Window</th><th scope="col">Opened</th><th scope="col">Status</th><th scope="col"><span class="sr-only">Actions</span></th>
              </tr>
            </thead>
            <tbody>
              {items.map((a) => (
                <tr key={a.id} data-testid="alert-row" data-alert-id={a.id} title={a.detail}>
                  <td>
                    <a
                      href={`#/keys/${encodeURIComponent(a.key_id)}`}
                      onClick={(e) => {
                        e.preventDefault();
                        app.go(`/keys/${encodeURIComponent(a.key_id)}`);
                      }}
                    >
                      {a.key_name || a.key_id}
                    </a>
                  </td>
                  <td>{a.kind.replace(/_/g, " ")}{a.detail && <div class="muted small">{a.detail}</div>}</td>
                  <td>{measure(a.observed)}</td>
                  <td>{measure(a.expected)}</td>
                  <td class="nowrap">{windowLabel(a.window_secs)} from {shortDate(a.window_start)}</td>
                  <td class="nowrap" title={shortDate(a.opened_at)}>{relativeTime(a.opened_at)}</td>
                  <td><span class={`badge ${a.status}`} data-testid="alert-status">{STATUS_LABEL[a.status]}</span></td>
                  <td>
                    {a.status === "open" && app.canWrite && (
                      <button
                        type="button"
                        data-testid="alert-ack"
                        disabled={acking !== null}
                        aria-label={`Acknowledge the ${a.kind.replace(/_/g, " ")} alert on ${a.key_name}`}
                        title={app.status.online ? "Acknowledge on the server" : "Acknowledging needs the server: you are offline"}
                        onClick={() => acknowledge(a)}
                      >
                        {acking === a.id ? "Acknowledging…" : "Acknowledge"}
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
