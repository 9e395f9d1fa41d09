import { useEffect, useState } from "preact/hooks";
import type { CommandError, Environment, KeyFilter, KeyList, KeySort, KeyStatus } from "../bindings";
import * as api from "../api/commands";
import { useApp } from "../app";
import { Banner } from "../components/Fields";
import { relativeTime, shortDate } from "../lib/format";

export const PAGE = 50;

export function StatusBadge(props: { status: KeyStatus }) {
  return <span class={`badge ${props.status}`}>{props.status}</span>;
}

/** The keys list: search, filters and sort run in the replica; one page is rendered at a time. */
export function Keys() {
  const app = useApp();
  const [search, setSearch] = useState("");
  const [status, setStatus] = useState<KeyStatus | "">("");
  const [environment, setEnvironment] = useState<Environment | "">("");
  const [scope, setScope] = useState("");
  const [sort, setSort] = useState<KeySort>("created");
  const [descending, setDescending] = useState(true);
  const [offset, setOffset] = useState(0);
  const [list, setList] = useState<KeyList | null>(null);
  const [error, setError] = useState<CommandError | null>(null);

  useEffect(() => {
    const filter: KeyFilter = {
      search: search || null,
      status: status || null,
      environment: environment || null,
      scope: scope || null,
      sort,
      descending,
      limit: PAGE,
      offset,
    };
    let alive = true;
    app.run(api.listKeys(filter)).then((l) => alive && (setList(l), setError(null))).catch((e) => alive && setError(e));
    const timer = setInterval(() => {
      api.listKeys(filter).then((l) => alive && setList(l)).catch(() => {});
    }, 3000);
    return () => {
      alive = false;
      clearInterval(timer);
    };
  }, [search, status, environment, scope, sort, descending, offset]);

  const reset = <T,>(set: (v: T) => void) => (v: T) => { set(v); setOffset(0); };
  const total = list?.total ?? 0;

  return (
    <section>
      <header class="page-head">
        <h2>API keys</h2>
        {app.canWrite && <button class="primary" data-testid="new-key" onClick={() => app.go("/keys/new")}>New key</button>}
      </header>
      <div class="filters">
        <input type="search" placeholder="Search by name" aria-label="Search" data-testid="search" value={search} onInput={(e) => reset(setSearch)(e.currentTarget.value)} />
        <select aria-label="Status" data-testid="filter-status" value={status} onChange={(e) => reset(setStatus)(e.currentTarget.value as KeyStatus | "")}>
          <option value="">Any status</option>
          <option value="active">Active</option>
          <option value="expired">Expired</option>
          <option value="revoked">Revoked</option>
          <option value="disabled">Disabled</option>
        </select>
        <select aria-label="Environment" data-testid="filter-environment" value={environment} onChange={(e) => reset(setEnvironment)(e.currentTarget.value as Environment | "")}>
          <option value="">Any environment</option>
          <option value="live">Live</option>
          <option value="test">Test</option>
        </select>
        <input placeholder="Scope, e.g. badges:read" aria-label="Scope" data-testid="filter-scope" value={scope} onInput={(e) => reset(setScope)(e.currentTarget.value.trim())} />
        <select aria-label="Sort" data-testid="sort" value={sort} onChange={(e) => reset(setSort)(e.currentTarget.value as KeySort)}>
          <option value="created">Created</option>
          <option value="name">Name</option>
          <option value="last_used">Last used</option>
          <option value="expires">Expiry</option>
        </select>
        <button class="ghost" aria-label="Sort direction" onClick={() => setDescending(!descending)}>{descending ? "↓" : "↑"}</button>
      </div>
      <Banner error={error} />
      <table class="keys">
        <thead>
          <tr><th>Name</th><th>Key</th><th>Env</th><th>Status</th><th>Scopes</th><th>Last used</th><th>Expires</th></tr>
        </thead>
        <tbody>
          {list?.items.map(({ key, pending, error }) => (
            <tr data-testid="key-row" data-key-id={key.id} data-status={key.status} tabIndex={0} onClick={() => app.go(`/keys/${key.id}`)} onKeyDown={(e) => e.key === "Enter" && app.go(`/keys/${key.id}`)}>
              <td>
                {key.name}
                {pending && <span class="marker pending" title="waiting to sync">⟳</span>}
                {error && <span class="marker rejected" title={`${error.code}: ${error.detail}`}>!</span>}
              </td>
              <td class="mono">{key.prefix}…</td>
              <td>{key.environment}</td>
              <td><StatusBadge status={key.status} /></td>
              <td class="scopes">{key.scopes.join(" ") || <span class="muted">none</span>}</td>
              <td>{relativeTime(key.last_used_at)}</td>
              <td>{shortDate(key.expires_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {list && list.items.length === 0 && <p class="empty">No keys match.</p>}
      <footer class="pager">
        <span>{total === 0 ? "0 keys" : `${offset + 1}–${Math.min(offset + PAGE, total)} of ${total}`}</span>
        <button class="ghost" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>Previous</button>
        <button class="ghost" disabled={offset + PAGE >= total} onClick={() => setOffset(offset + PAGE)}>Next</button>
      </footer>
    </section>
  );
}
