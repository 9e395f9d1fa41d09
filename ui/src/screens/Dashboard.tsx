// The organisation's usage over a period (`dashboard`): totals and shares, the series as bars,
// the busiest and most refused keys, open alerts and keys close to expiry or a limit. All from
// the replica (synced analytics), so offline it shows the last synced data and when it synced.
import { useEffect, useState } from "preact/hooks";
import type { Alert, Attention, CommandError, Dashboard, DashboardPeriod, KeyUsageTotal, UsagePoint } from "../bindings";
import * as api from "../api/commands";
import { useApp } from "../app";
import { measure, relativeTime, windowLabel } from "../lib/format";
import { Segmented } from "../components/Segmented";

const PERIODS: { value: DashboardPeriod; label: string }[] = [
  { value: "24h", label: "24 h" },
  { value: "7d", label: "7 days" },
  { value: "30d", label: "30 days" },
];

/** 0.1234 → "12.3%"; 0 → "0%". */
export function percent(share: number): string {
  if (!Number.isFinite(share) || share <= 0) return "0%";
  const p = share * 100;
  return `${p >= 10 ? p.toFixed(0) : p.toFixed(1)}%`;
}

const count = (n: number) => n.toLocaleString("en-US");

/** A point's time label: the hour for hourly series, the date for daily ones. */
function pointLabel(p: UsagePoint, daily: boolean): string {
  const d = new Date(p.ts);
  if (Number.isNaN(d.getTime())) return p.ts;
  const iso = d.toISOString();
  return daily ? iso.slice(0, 10) : `${iso.slice(5, 10)} ${iso.slice(11, 16)}`;
}

const num = measure;

export function DashboardScreen() {
  const app = useApp();
  const [period, setPeriod] = useState<DashboardPeriod>("24h");
  const [board, setBoard] = useState<Dashboard | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<CommandError | null>(null);

  useEffect(() => {
    let alive = true;
    setLoading(true);
    setError(null);
    app
      .quiet(api.dashboard(period))
      .then((b) => alive && setBoard(b))
      .catch((e: CommandError) => {
        if (!alive) return;
        setBoard(null);
        setError(e);
      })
      .finally(() => alive && setLoading(false));
    return () => {
      alive = false;
    };
  }, [period]);

  const shown = board && board.period === period ? board : null;
  return (
    <section class="dashboard" data-testid="dashboard" aria-busy={loading}>
      <div class="page-head">
        <h2>Dashboard</h2>
        <Segmented label="Period" choices={PERIODS} value={period} onChange={setPeriod} testid={(p) => `period-${p.value}`} />
        <span class="spacer" />
        <span class="muted small" data-testid="dashboard-state">
          {loading ? "loading…" : shown ? `synced ${relativeTime(shown.fetched_at)}` : ""}
        </span>
      </div>
      {error && (
        <p class="banner error" role="alert" data-testid="dashboard-error">
          Dashboard unavailable: {error.message}
        </p>
      )}
      {shown && <Body board={shown} />}
    </section>
  );
}

function Body(props: { board: Dashboard }) {
  const u = props.board.usage;
  const total = u.totals.allowed + u.totals.rate_limited + u.totals.rejected;
  return (
    <>
      <dl class="stat-grid" data-testid="dashboard-totals">
        <div class="stat"><dt>Requests</dt><dd data-testid="total-requests">{count(total)}</dd></div>
        <div class="stat"><dt>Allowed</dt><dd data-testid="total-allowed">{count(u.totals.allowed)}</dd></div>
        <div class="stat"><dt>Rate limited</dt><dd data-testid="total-rate-limited">{count(u.totals.rate_limited)}</dd></div>
        <div class="stat"><dt>Rejected</dt><dd data-testid="total-rejected">{count(u.totals.rejected)}</dd></div>
        <div class="stat"><dt>Error share</dt><dd data-testid="error-share">{percent(u.error_share)}</dd></div>
        <div class="stat"><dt>Rate-limited share</dt><dd data-testid="rate-limited-share">{percent(u.rate_limited_share)}</dd></div>
      </dl>
      <Series points={u.series} daily={u.granularity === "day"} />
      <div class="dashboard-grid">
        <TopKeys title="Top keys by volume" testid="top-volume" keys={u.top_by_volume} value={(t) => t.allowed + t.rate_limited + t.rejected} unit="requests" />
        <TopKeys title="Top keys by rejections" testid="top-rejections" keys={u.top_by_rejections} value={(t) => t.rejected + t.rate_limited} unit="refused" />
      </div>
      <div class="dashboard-grid">
        <Alerts alerts={props.board.alerts} />
        <AttentionList items={props.board.attention} />
      </div>
    </>
  );
}

function Series(props: { points: UsagePoint[]; daily: boolean }) {
  const max = Math.max(1, ...props.points.map((p) => p.allowed + p.rate_limited + p.rejected));
  return (
    <section class="panel-box" aria-labelledby="series-title" data-testid="dashboard-series">
      <h3 id="series-title">Requests over time</h3>
      {props.points.length === 0 ? (
        <p class="empty small" data-testid="series-empty">No requests in this period</p>
      ) : (
        <div class="series-scroll">
          <table class="series-table compact">
            <caption class="sr-only">Requests per {props.daily ? "day" : "hour"}: allowed, rate limited and rejected</caption>
            <thead>
              <tr><th scope="col">Time (UTC)</th><th scope="col">Requests</th><th scope="col">Allowed</th><th scope="col">Rate limited</th><th scope="col">Rejected</th></tr>
            </thead>
            <tbody>
              {props.points.map((p) => {
                const sum = p.allowed + p.rate_limited + p.rejected;
                const w = (n: number) => `${(n / max) * 100}%`;
                return (
                  <tr key={p.ts}>
                    <th scope="row" class="nowrap">{pointLabel(p, props.daily)}</th>
                    <td>
                      <span class="stack" aria-hidden="true">
                        <span class="seg allowed" style={{ width: w(p.allowed) }} />
                        <span class="seg limited" style={{ width: w(p.rate_limited) }} />
                        <span class="seg rejected" style={{ width: w(p.rejected) }} />
                      </span>
                      <span class="small">{count(sum)}</span>
                    </td>
                    <td>{count(p.allowed)}</td>
                    <td>{count(p.rate_limited)}</td>
                    <td>{count(p.rejected)}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function TopKeys(props: {
  title: string;
  testid: string;
  keys: KeyUsageTotal[];
  value: (t: KeyUsageTotal["totals"]) => number;
  unit: string;
}) {
  const app = useApp();
  const id = `${props.testid}-title`;
  return (
    <section class="panel-box" aria-labelledby={id} data-testid={props.testid}>
      <h3 id={id}>{props.title}</h3>
      {props.keys.length === 0 ? (
        <p class="empty small">No keys</p>
      ) : (
        <ol class="top-keys">
          {props.keys.map((k) => (
            <li key={k.key_id}>
              <a
                href={`#/keys/${encodeURIComponent(k.key_id)}`}
                onClick={(e) => {
                  e.preventDefault();
                  app.go(`/keys/${encodeURIComponent(k.key_id)}`);
                }}
              >
                {k.name}
              </a>
              <span class="muted small">{count(props.value(k.totals))} {props.unit}</span>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

function AttentionList(props: { items: Attention[] }) {
  const app = useApp();
  return (
    <section class="panel-box" aria-labelledby="attention-title" data-testid="dashboard-attention">
      <h3 id="attention-title">Close to expiry or a limit</h3>
      {props.items.length === 0 ? (
        <p class="empty small" data-testid="attention-empty">No key needs attention</p>
      ) : (
        <ul class="attention-list">
          {props.items.map((a) => (
            <li key={`${a.kind}-${a.key_id}-${a.detail}`} data-testid="attention-item">
              <span class={`badge ${a.kind === "expiry" ? "expired" : "acked"}`}>{a.kind === "expiry" ? "expires" : "limit"}</span>
              <a
                href={`#/keys/${encodeURIComponent(a.key_id)}`}
                onClick={(e) => {
                  e.preventDefault();
                  app.go(`/keys/${encodeURIComponent(a.key_id)}`);
                }}
              >
                {a.key_name}
              </a>
              <span class="muted small">{a.detail}</span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

function Alerts(props: { alerts: Alert[] }) {
  const app = useApp();
  return (
    <section class="panel-box" aria-labelledby="alerts-title" data-testid="dashboard-alerts">
      <h3 id="alerts-title">
        Open alerts{" "}
        <a
          href="#/alerts"
          class="small"
          data-testid="dashboard-alerts-all"
          onClick={(e) => {
            e.preventDefault();
            app.go("/alerts");
          }}
        >
          all alerts
        </a>
      </h3>
      {props.alerts.length === 0 ? (
        <p class="empty small" data-testid="alerts-empty">No open alerts</p>
      ) : (
        <table class="limits-table compact">
          <thead>
            <tr><th scope="col">Key</th><th scope="col">Kind</th><th scope="col">Observed</th><th scope="col">Expected</th><th scope="col">Window</th></tr>
          </thead>
          <tbody>
            {props.alerts.map((a) => (
              <tr key={a.id} title={a.detail}>
                <td>{a.key_name}</td>
                <td>{a.kind.replace(/_/g, " ")}</td>
                <td>{num(a.observed)}</td>
                <td>{num(a.expected)}</td>
                <td class="nowrap">{windowLabel(a.window_secs)} from {new Date(a.window_start).toISOString().slice(0, 16).replace("T", " ")}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
