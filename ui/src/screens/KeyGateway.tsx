// A key's gateway traffic (route groups with status classes, server-error share and latency)
// over the last 24 hours or 7 days, and the networks the key was used from. Both come from the
// server while online and are kept in the replica, so offline the last copy shows with its
// fetch time.
import { useState } from "preact/hooks";
import type { GatewayGroup, GatewayPeriod } from "../bindings";
import * as api from "../api/commands";
import { useApp } from "../app";
import { relativeTime, shortDate } from "../lib/format";
import { usePolled } from "../lib/polled";
import { Segmented } from "../components/Segmented";

/** Gateway figures are refetched this often while the detail is open. */
const REFRESH_MS = 30_000;

const PERIODS: { value: GatewayPeriod; label: string; words: string }[] = [
  { value: "24h", label: "24 h", words: "24 hours" },
  { value: "7d", label: "7 days", words: "7 days" },
];

/** A latency in milliseconds: "—" when unknown, one decimal below 10 ms, whole above. */
export function latencyMs(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "—";
  return v < 10 ? v.toFixed(1) : Math.round(v).toLocaleString("en-US");
}

/** A share (0..1) as a percentage: "0 %", "0.4 %", "12.5 %", "100 %". */
export function percent(share: number): string {
  if (!Number.isFinite(share) || share <= 0) return "0 %";
  const p = share * 100;
  return `${p >= 99.95 ? 100 : Number(p.toFixed(1))} %`;
}

/** "fetched 5 min ago", with a note when the copy is an offline one. */
function fetchedLabel(at: string, online: boolean): string {
  return `fetched ${relativeTime(at)}${online ? "" : " · offline: the last copy kept on this device"}`;
}

function GroupRow(props: { g: GatewayGroup; total?: boolean }) {
  const g = props.g;
  const route = props.total ? "All routes" : g.route ?? "—";
  return (
    <tr class={props.total ? "total" : ""} data-testid="gateway-row" data-route={props.total ? "" : g.route ?? ""}>
      <th scope="row">{props.total ? <strong>{route}</strong> : <code>{route}</code>}</th>
      <td class="num">{g.calls.toLocaleString("en-US")}</td>
      <td class="num">{g.status.success.toLocaleString("en-US")}</td>
      <td class="num">{g.status.client_error.toLocaleString("en-US")}</td>
      <td class="num">{g.status.server_error.toLocaleString("en-US")}</td>
      <td class="num">{percent(g.error_share)}</td>
      <td class="num">{latencyMs(g.latency_mean_ms)}</td>
      <td class="num">{latencyMs(g.latency_p50_ms)}</td>
      <td class="num">{latencyMs(g.latency_p95_ms)}</td>
    </tr>
  );
}

/**
 * The key's gateway calls by route group over the chosen period (the key's total first), and
 * the networks it was used from, most recent first.
 */
export function GatewaySection(props: { keyId: string }) {
  const app = useApp();
  const id = props.keyId;
  const [period, setPeriod] = useState<GatewayPeriod>("24h");
  const { value: snapshot, loading, error } = usePolled(() => api.keyGateway(id, period), [id, period], REFRESH_MS);
  const { value: networks, loading: netLoading, error: netError } = usePolled(() => api.keyNetworks(id), [id], REFRESH_MS);

  const words = PERIODS.find((p) => p.value === period)?.words ?? period;
  const groups = snapshot?.usage.groups ?? [];
  const [total, ...routes] = groups;
  const quiet = snapshot !== null && (!total || total.calls === 0);
  return (
    <section class="limits panel-box" aria-labelledby="gateway-title" data-testid="key-gateway" aria-busy={loading}>
      <div class="usage-head">
        <h3 id="gateway-title">Gateway</h3>
        <Segmented
          label="Gateway period"
          choices={PERIODS}
          value={period}
          onChange={setPeriod}
          testid={(p) => `gateway-period-${p.value}`}
        />
        <span class="muted small" data-testid="gateway-state">
          {loading && !snapshot ? "loading…" : snapshot ? fetchedLabel(snapshot.fetched_at, app.status.online) : ""}
        </span>
      </div>
      {error && <p class="muted small" role="alert" data-testid="gateway-error">Gateway traffic unavailable: {error.message}</p>}
      {quiet && <p class="empty small" data-testid="gateway-empty">No gateway calls in the last {words}</p>}
      {snapshot && total && total.calls > 0 && (
        <div class="table-wrap">
          <table class="limits-table compact gateway-table" data-testid="gateway-table">
            <caption class="sr-only">
              Gateway calls in the last {words} by route group, the key's total first; latency is the time to the upstream's response headers
            </caption>
            <thead>
              <tr>
                <th scope="col">Route</th><th scope="col" class="num">Calls</th>
                <th scope="col" class="num">2xx</th><th scope="col" class="num">4xx</th><th scope="col" class="num">5xx</th>
                <th scope="col" class="num" title="server errors (5xx, including the gateway's own 502/504) over all calls">Server errors</th>
                <th scope="col" class="num">Mean ms</th><th scope="col" class="num">p50 ms</th><th scope="col" class="num">p95 ms</th>
              </tr>
            </thead>
            <tbody>
              <GroupRow g={total} total />
              {routes.map((g) => <GroupRow key={g.route ?? ""} g={g} />)}
            </tbody>
          </table>
        </div>
      )}
      <div class="usage-head networks-head">
        <h4 id="networks-title">Networks</h4>
        <span class="muted small" data-testid="networks-state">
          {netLoading && !networks ? "loading…" : networks ? fetchedLabel(networks.fetched_at, app.status.online) : ""}
        </span>
      </div>
      {netError && <p class="muted small" role="alert" data-testid="networks-error">Networks unavailable: {netError.message}</p>}
      {networks && networks.items.length === 0 && (
        <p class="empty small" data-testid="networks-empty">No successful calls from any network yet</p>
      )}
      {networks && networks.items.length > 0 && (
        <table class="limits-table compact" data-testid="networks-table" aria-labelledby="networks-title">
          <thead>
            <tr><th scope="col">Network</th><th scope="col">Last seen</th><th scope="col">First seen</th><th scope="col" class="num">Calls</th></tr>
          </thead>
          <tbody>
            {networks.items.map((n) => (
              <tr key={n.network} data-testid="network-row">
                <td class="mono">{n.network}</td>
                <td title={shortDate(n.last_seen)}>{relativeTime(n.last_seen)} <span class="muted small">({shortDate(n.last_seen)})</span></td>
                <td title={shortDate(n.first_seen)}>{shortDate(n.first_seen)}</td>
                <td class="num">{n.calls.toLocaleString("en-US")}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
