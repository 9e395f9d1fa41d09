// Alerts as last synced (the replica): open, acknowledged and resolved, with Acknowledge for
// open ones. Acknowledging needs the server: offline the backend refuses it with a message.
// Below them, "Key events": the organisation's events (GET /v1/events — key revoked, expired,
// quota exceeded...), pulled with the analytics and read from the replica, so offline they show
// the last pull and when it was made.
import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import type { Alert, AlertStatus, AlertsView, CommandError, KeyEvent, KeyEventsView } from "../bindings";
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

/** Each alert kind in words. */
export const KIND_WORDS: Record<string, string> = {
  rate_spike: "Traffic spike",
  rate_drop: "Traffic drop",
  invalid_secret_burst: "Many calls with a wrong secret",
  ip_not_allowed_burst: "Many calls from addresses the key does not allow",
  insufficient_scope_burst: "Many calls outside the key's scopes",
  new_network: "Used from a new network",
  idle_key_used: "An idle key was used again",
};

export function kindWords(kind: string): string {
  return KIND_WORDS[kind] ?? kind.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
}

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
      {!app.status.online && app.canWrite && items.some((a) => a.status === "open") && (
        <p class="muted small" role="status" data-testid="ack-offline">Acknowledging an alert needs the server: you are offline.</p>
      )}
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
                  <td title={a.kind}>{kindWords(a.kind)}{a.detail && <div class="muted small">{a.detail}</div>}</td>
                  <td>{measure(a.observed)}</td>
                  <td>{measure(a.expected)}</td>
                  <td class="window">{windowLabel(a.window_secs)} from <span class="nowrap">{shortDate(a.window_start)}</span></td>
                  <td class="nowrap" title={shortDate(a.opened_at)}>{relativeTime(a.opened_at)}</td>
                  <td>
                    <span class={`badge ${a.status}`} data-testid="alert-status">{STATUS_LABEL[a.status]}</span>
                    {a.acked_at && <div class="muted small" data-testid="alert-acked-at" title={shortDate(a.acked_at)}>acknowledged {relativeTime(a.acked_at)}{a.acked_by && <> by {a.acked_by}</>}</div>}
                    {a.resolved_at && <div class="muted small" data-testid="alert-resolved-at" title={shortDate(a.resolved_at)}>resolved {relativeTime(a.resolved_at)}</div>}
                  </td>
                  <td>
                    {a.status === "open" && app.canWrite && (
                      <button
                        type="button"
                        data-testid="alert-ack"
                        disabled={acking !== null || !app.status.online}
                        aria-label={`Acknowledge “${kindWords(a.kind)}” on ${a.key_name}`}
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
      <KeyEvents />
    </section>
  );
}

type EventType = KeyEvent["type"];

/** Each event type as the table shows it. */
export const EVENT_LABEL: Record<EventType, string> = {
  "key.created": "Created",
  "key.revoked": "Revoked",
  "key.rotated": "Rotated",
  "key.expiring": "Expiring soon",
  "key.expired": "Expired",
  "key.unused": "Unused",
  "limit.soft_threshold": "Soft limit reached",
  "limit.quota_exceeded": "Quota exceeded",
  "alert.opened": "Alert opened",
  "alert.acked": "Alert acknowledged",
  "alert.resolved": "Alert resolved",
  "webhook.test": "Test event",
};

type Category = "key" | "limit" | "alert" | null;
const CATEGORIES: { value: Category; label: string; testid: string }[] = [
  { value: null, label: "All", testid: "events-filter-all" },
  { value: "key", label: "Keys", testid: "events-filter-key" },
  { value: "limit", label: "Limits", testid: "events-filter-limit" },
  { value: "alert", label: "Alerts", testid: "events-filter-alert" },
];

/** The period a quota's window index names: a UTC day or month. */
function quotaWindow(rule: string, index: number): string {
  if (rule === "daily") return `day ${new Date(index * 86_400_000).toISOString().slice(0, 10)}`;
  if (rule === "monthly") {
    const year = 1970 + Math.floor(index / 12);
    return `month ${year}-${String((index % 12) + 1).padStart(2, "0")}`;
  }
  return "";
}

function KeyLink(props: { id: string; children: ComponentChildren; testid?: string }) {
  const app = useApp();
  const href = `/keys/${encodeURIComponent(props.id)}`;
  return (
    <a
      href={`#${href}`}
      data-testid={props.testid}
      onClick={(e) => {
        e.preventDefault();
        app.go(href);
      }}
    >
      {props.children}
    </a>
  );
}

/** What matters in an event's payload, in a few words (and links). */
function EventDetail(props: { event: KeyEvent }) {
  const e = props.event;
  switch (e.type) {
    case "key.created":
      return (
        <>
          {e.data.environment}
          {e.data.expires_at && `, expires ${shortDate(e.data.expires_at)}`}
          {e.data.rotated_from && <>, successor of <KeyLink id={e.data.rotated_from}>the rotated key</KeyLink></>}
        </>
      );
    case "key.revoked":
      return (
        <>
          {e.data.reason ? `reason: ${e.data.reason}` : "no reason given"}
          {e.data.replaced_by && (
            <>, replaced by <KeyLink id={e.data.replaced_by} testid="event-replaced-by">its successor</KeyLink></>
          )}
        </>
      );
    case "key.rotated":
      return (
        <>
          retires {shortDate(e.data.retires_at)}, replaced by{" "}
          <KeyLink id={e.data.new_key_id} testid="event-replaced-by">its successor</KeyLink>
        </>
      );
    case "key.expiring":
      return <>expires {shortDate(e.data.expires_at)}{e.data.within_days != null && ` (within ${e.data.within_days} d)`}</>;
    case "key.expired":
      return <>expired {shortDate(e.data.expires_at)}</>;
    case "key.unused":
      return <>{e.data.last_used_at ? `last used ${shortDate(e.data.last_used_at)}` : "never used"}</>;
    case "limit.soft_threshold":
    case "limit.quota_exceeded": {
      const window = quotaWindow(e.data.rule, e.data.window_index);
      return (
        <>
          {e.data.rule}: {measure(e.data.used)} of {measure(e.data.limit)}
          {window ? `, ${window}` : `, at ${shortDate(e.data.at)}`}
        </>
      );
    }
    case "alert.opened":
      return <>{kindWords(e.data.kind)}{e.data.detail && `: ${e.data.detail}`}</>;
    case "alert.acked":
      return <>{kindWords(e.data.kind)}, acknowledged by {e.data.acked_by}</>;
    case "alert.resolved":
      return <>{kindWords(e.data.kind)}</>;
    case "webhook.test":
      return <>{e.data.message}</>;
  }
}

/** The organisation's events as last pulled, newest first, filtered by category here. */
function KeyEvents() {
  const app = useApp();
  const [view, setView] = useState<KeyEventsView | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<CommandError | null>(null);
  const [category, setCategory] = useState<Category>(null);

  useEffect(() => {
    let alive = true;
    app
      .quiet(api.events())
      .then((v) => alive && setView(v))
      .catch((e: unknown) => alive && setError(api.toCommandError(e)))
      .finally(() => alive && setLoading(false));
    return () => {
      alive = false;
    };
  }, [app.status.last_pull_at]);

  const items = (view?.items ?? []).filter((e) => category === null || e.type.startsWith(`${category}.`));
  return (
    <section class="key-events" data-testid="key-events" aria-busy={loading} aria-labelledby="key-events-title">
      <header class="page-head">
        <h3 id="key-events-title">Key events</h3>
        <Segmented label="Event category" choices={CATEGORIES} value={category} onChange={setCategory} testid={(c) => c.testid} />
        <span class="spacer" />
        <span class="muted small" data-testid="events-state">
          {loading ? "loading…" : view ? (view.synced_at ? `pulled ${relativeTime(view.synced_at)}` : "not pulled yet") : ""}
        </span>
      </header>
      <Banner error={error} testid="events-error" />
      {!loading && !error && items.length === 0 && (
        <p class="empty" data-testid="events-empty">
          {view?.synced_at ? "No key events here." : "No key events pulled yet: they arrive with the next sync while online."}
        </p>
      )}
      {items.length > 0 && (
        <div class="table-wrap">
          <table class="limits-table" data-testid="events-table">
            <thead>
              <tr>
                <th scope="col">Event</th><th scope="col">Key</th><th scope="col">When</th><th scope="col">Details</th>
              </tr>
            </thead>
            <tbody>
              {items.map((e) => (
                <tr key={e.id} data-testid="event-row" data-event-type={e.type}>
                  <td><span class={`badge event-${e.type.split(".")[0]}`} data-testid="event-label">{EVENT_LABEL[e.type] ?? e.type}</span></td>
                  <td>
                    {e.key_id ? <KeyLink id={e.key_id} testid="event-key">{e.key_name || e.key_id}</KeyLink> : "—"}
                  </td>
                  <td class="nowrap" title={shortDate(e.created_at)}>{relativeTime(e.created_at)}</td>
                  <td data-testid="event-detail"><EventDetail event={e} /></td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
