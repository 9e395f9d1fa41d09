import { useEffect, useRef, useState } from "preact/hooks";
import type { CommandError, Environment, KeyFilter, KeyList, KeyListItem, KeySort, KeyStatus } from "../bindings";
import * as api from "../api/commands";
import { useApp } from "../app";
import { Banner } from "../components/Fields";
import { relativeTime, shortDate } from "../lib/format";
import { PENDING_TEXT, pendingState } from "../lib/sync";

export const PAGE_SIZES = [25, 50, 100, 200] as const;
export const DEFAULT_PAGE = 50;
/** Typing in the search and scope boxes waits this long before querying. */
export const DEBOUNCE_MS = 250;
/** Background refresh while the list is open (it also refreshes on every sync). */
export const REFRESH_MS = 10_000;

export interface KeysView {
  search: string;
  status: KeyStatus | "";
  environment: Environment | "";
  scope: string;
  sort: KeySort;
  descending: boolean;
  limit: number;
  offset: number;
}

export const DEFAULT_VIEW: KeysView = {
  search: "", status: "", environment: "", scope: "", sort: "created", descending: true, limit: DEFAULT_PAGE, offset: 0,
};

// The list's filters survive opening a key and coming back (memory only, for this run).
let remembered: KeysView = DEFAULT_VIEW;
/** For tests: forget the remembered filters. */
export function resetKeysView() {
  remembered = DEFAULT_VIEW;
}

/** The command's filter for a view of the list. Empty text boxes mean "any". */
export function toFilter(v: KeysView): KeyFilter {
  return {
    search: v.search.trim() || null,
    status: v.status || null,
    environment: v.environment || null,
    scope: v.scope.trim() || null,
    sort: v.sort,
    descending: v.descending,
    limit: v.limit,
    offset: v.offset,
  };
}

export function StatusBadge(props: { status: KeyStatus }) {
  return <span class={`badge ${props.status}`} data-testid="status-badge">{props.status}</span>;
}

/**
 * The status a key's row and page show: what the server enforces when a queued change has not
 * reached it yet (a revocation queued here, a key made here), else the key's status.
 */
export function KeyStatusBadge(props: { item: KeyListItem }) {
  const state = pendingState(props.item);
  if (!state) return <StatusBadge status={props.item.key.status} />;
  return (
    <span class={`badge pending-${state}`} data-testid="status-badge" data-pending-state={state} title={PENDING_TEXT[state].sentence}>
      {PENDING_TEXT[state].badge}
    </span>
  );
}

export function EnvBadge(props: { environment: Environment }) {
  return <span class={`env ${props.environment}`}>{props.environment}</span>;
}

/** Markers for a key whose changes wait in the outbox or were refused by the server. */
export function SyncMarkers(props: { item: KeyListItem }) {
  const { pending, error } = props.item;
  return (
    <>
      {pending && (
        <span class="marker pending" title="Changed on this device; waiting to sync" data-testid="key-pending">
          <span aria-hidden="true">⟳</span> pending
        </span>
      )}
      {error && (
        <span class="marker rejected" title={`Refused by the server (${error.code}): ${error.detail}`} data-testid="key-rejected">
          <span aria-hidden="true">⚠</span> rejected
        </span>
      )}
    </>
  );
}

const COLUMNS: { label: string; sort?: KeySort }[] = [
  { label: "Name", sort: "name" },
  { label: "Key" },
  { label: "Env" },
  { label: "Status" },
  { label: "Scopes" },
  { label: "Last used", sort: "last_used" },
  { label: "Expires", sort: "expires" },
  { label: "Created", sort: "created" },
];

/**
 * The keys list. Search, filters, sort and paging run in the replica (`list_keys` with limit and
 * offset): only one page is ever fetched and rendered, so 10,000 keys stay fast.
 */
export function Keys() {
  const app = useApp();
  const [view, setView] = useState<KeysView>(remembered);
  // The text boxes update at once; the query follows after a pause in typing.
  const [search, setSearch] = useState(view.search);
  const [scope, setScope] = useState(view.scope);
  const [list, setList] = useState<KeyList | null>(null);
  const [error, setError] = useState<CommandError | null>(null);
  const [loading, setLoading] = useState(false);
  const seq = useRef(0);

  const update = (patch: Partial<KeysView>) =>
    setView((v) => {
      const next = { ...v, offset: 0, ...patch };
      remembered = next;
      return next;
    });

  useEffect(() => {
    if (search === view.search && scope === view.scope) return;
    const t = setTimeout(() => update({ search, scope }), DEBOUNCE_MS);
    return () => clearTimeout(t);
  }, [search, scope]);

  const load = (background: boolean) => {
    const mine = ++seq.current;
    if (!background) setLoading(true);
    const p = api.listKeys(toFilter(view));
    return (background ? app.quiet(p) : app.run(p))
      .then((l) => {
        if (mine !== seq.current) return;
        // Past the end (keys went away under a filter): step back to the last page.
        if (l.items.length === 0 && l.total > 0 && view.offset >= l.total) {
          update({ offset: Math.max(0, Math.floor((l.total - 1) / view.limit) * view.limit) });
          return;
        }
        setList(l);
        setError(null);
      })
      .catch((e: CommandError) => mine === seq.current && !background && setError(e))
      .finally(() => mine === seq.current && setLoading(false));
  };

  useEffect(() => {
    load(false);
    const timer = setInterval(() => load(true), REFRESH_MS);
    return () => clearInterval(timer);
  }, [view]);

  // Every sync (and every queued change) may change what the replica holds.
  const syncMark = `${app.status.last_pull_at}|${app.status.queued}`;
  const firstMark = useRef(syncMark);
  useEffect(() => {
    if (syncMark === firstMark.current) return;
    firstMark.current = syncMark;
    load(true);
  }, [syncMark]);

  const total = list?.total ?? 0;
  const page = Math.floor(view.offset / view.limit) + 1;
  const pages = Math.max(1, Math.ceil(total / view.limit));
  const filtered = !!(view.search || view.status || view.environment || view.scope);
  const open = (id: string) => app.go(`/keys/${encodeURIComponent(id)}`);

  const sortBy = (s: KeySort) =>
    update(view.sort === s ? { descending: !view.descending } : { sort: s, descending: s !== "name" });

  return (
    <section>
      <header class="page-head">
        <h2>API keys</h2>
        <span class="muted" data-testid="keys-total">{list ? `${total.toLocaleString()} ${filtered ? "matching" : "in total"}` : ""}</span>
        <span class="spacer" />
        {app.canWrite && (
          <button type="button" class="primary" data-testid="new-key" onClick={() => app.go("/keys/new")}>
            + New key
          </button>
        )}
      </header>
      <div class="filters" role="search">
        <input
          type="search"
          class="grow"
          placeholder="Search name, description or key id"
          aria-label="Search keys"
          data-testid="search"
          value={search}
          onInput={(e) => setSearch(e.currentTarget.value)}
        />
        <select aria-label="Status" data-testid="filter-status" value={view.status} onChange={(e) => update({ status: e.currentTarget.value as KeyStatus | "" })}>
          <option value="">Any status</option>
          <option value="active">Active</option>
          <option value="expired">Expired</option>
          <option value="revoked">Revoked</option>
          <option value="disabled">Disabled</option>
        </select>
        <select aria-label="Environment" data-testid="filter-environment" value={view.environment} onChange={(e) => update({ environment: e.currentTarget.value as Environment | "" })}>
          <option value="">Any environment</option>
          <option value="live">Live</option>
          <option value="test">Test</option>
        </select>
        <input
          placeholder="Scope, e.g. badges:read"
          aria-label="Has scope"
          data-testid="filter-scope"
          value={scope}
          onInput={(e) => setScope(e.currentTarget.value)}
        />
        <select aria-label="Sort by" data-testid="sort" value={view.sort} onChange={(e) => update({ sort: e.currentTarget.value as KeySort })}>
          <option value="created">Created</option>
          <option value="name">Name</option>
          <option value="last_used">Last used</option>
          <option value="expires">Expiry</option>
        </select>
        <button
          type="button"
          class="ghost icon"
          data-testid="sort-direction"
          aria-label={view.descending ? "Descending; switch to ascending" : "Ascending; switch to descending"}
          title={view.descending ? "Descending" : "Ascending"}
          onClick={() => update({ descending: !view.descending })}
        >
          {view.descending ? "↓" : "↑"}
        </button>
        {filtered && (
          <button type="button" class="ghost" data-testid="clear-filters" onClick={() => { setSearch(""); setScope(""); update({ search: "", scope: "", status: "", environment: "" }); }}>
            Clear
          </button>
        )}
      </div>
      <Banner error={error} />
      <div class="table-wrap">
        <table class="keys" aria-busy={loading} aria-rowcount={total}>
          <thead>
            <tr>
              {COLUMNS.map((c) => (
                <th
                  scope="col"
                  aria-sort={c.sort && c.sort === view.sort ? (view.descending ? "descending" : "ascending") : undefined}
                >
                  {c.sort ? (
                    <button type="button" class="th-sort" onClick={() => c.sort && sortBy(c.sort)}>
                      {c.label}
                      {c.sort === view.sort && <span aria-hidden="true">{view.descending ? " ↓" : " ↑"}</span>}
                    </button>
                  ) : c.label}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {list?.items.map((item) => {
              const k = item.key;
              return (
                <tr
                  key={k.id}
                  data-testid="key-row"
                  data-key-id={k.id}
                  data-status={k.status}
                  data-pending={item.pending ? "true" : "false"}
                  class={item.error ? "has-error" : ""}
                  tabIndex={0}
                  onClick={() => open(k.id)}
                  onKeyDown={(e) => {
                    if (e.key === "Enter" || e.key === " ") {
                      e.preventDefault();
                      open(k.id);
                    }
                  }}
                >
                  <td class="name">
                    <a href={`#/keys/${encodeURIComponent(k.id)}`} tabIndex={-1} onClick={(e) => e.preventDefault()}>{k.name}</a>
                    <SyncMarkers item={item} />
                  </td>
                  <td class="mono prefix" title={`${k.prefix}… (id ${k.id})`}>{k.prefix}…</td>
                  <td><EnvBadge environment={k.environment} /></td>
                  <td><KeyStatusBadge item={item} /></td>
                  <td class="scopes"><Scopes scopes={k.scopes} /></td>
                  <td title={k.last_used_at ? `${shortDate(k.last_used_at)}${k.last_used_ip ? ` from ${k.last_used_ip}` : ""}` : undefined}>
                    {relativeTime(k.last_used_at)}
                  </td>
                  <td title={shortDate(k.expires_at)}>{k.expires_at ? relativeTime(k.expires_at) : <span class="muted">never</span>}</td>
                  <td title={shortDate(k.created_at)}>{relativeTime(k.created_at)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      {list && list.items.length === 0 && (
        <p class="empty" data-testid="keys-empty">
          {filtered ? "No keys match these filters." : app.canWrite ? "No keys yet. Create the first one with “New key”." : "No keys yet."}
        </p>
      )}
      <nav class="pager" aria-label="Pages">
        <label class="muted small">
          Per page{" "}
          <select data-testid="page-size" value={String(view.limit)} onChange={(e) => update({ limit: Number(e.currentTarget.value) })}>
            {PAGE_SIZES.map((n) => <option value={String(n)}>{n}</option>)}
          </select>
        </label>
        <span class="spacer" />
        <span data-testid="page-info">
          {total === 0 ? "0 keys" : `${(view.offset + 1).toLocaleString()}–${Math.min(view.offset + view.limit, total).toLocaleString()} of ${total.toLocaleString()}`}
          {pages > 1 && <span class="muted"> · page {page} of {pages}</span>}
        </span>
        <button type="button" class="ghost" aria-label="First page" disabled={view.offset === 0} onClick={() => update({ offset: 0 })}>«</button>
        <button type="button" class="ghost" data-testid="page-prev" disabled={view.offset === 0} onClick={() => update({ offset: Math.max(0, view.offset - view.limit) })}>Previous</button>
        <button type="button" class="ghost" data-testid="page-next" disabled={view.offset + view.limit >= total} onClick={() => update({ offset: view.offset + view.limit })}>Next</button>
        <button type="button" class="ghost" aria-label="Last page" disabled={view.offset + view.limit >= total} onClick={() => update({ offset: (pages - 1) * view.limit })}>»</button>
      </nav>
    </section>
  );
}

/** Up to three scopes as chips, then "+N". */
export function Scopes(props: { scopes: readonly string[]; all?: boolean }) {
  if (props.scopes.length === 0) return <span class="muted">none</span>;
  const shown = props.all ? props.scopes : props.scopes.slice(0, 3);
  const more = props.scopes.length - shown.length;
  return (
    <span class="chips" title={props.scopes.join(" ")}>
      {shown.map((s) => <code class="chip">{s}</code>)}
      {more > 0 && <span class="chip more">+{more}</span>}
    </span>
  );
}
