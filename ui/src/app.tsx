import { createContext } from "preact";
import { useCallback, useContext, useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { Session, SyncStatus } from "./bindings";
import * as api from "./api/commands";
import { StatusBar, useSyncStatus } from "./components/StatusBar";
import { SyncBanners } from "./components/SyncBanners";
import { Login } from "./screens/Login";
import { Keys } from "./screens/Keys";
import { KeyDetailScreen } from "./screens/KeyDetail";
import { CreateKey } from "./screens/CreateKey";
import { AuditLog } from "./screens/AuditLog";
import { Settings } from "./screens/Settings";
import { DashboardScreen } from "./screens/Dashboard";
import { AlertsScreen } from "./screens/Alerts";
import { ReportsScreen } from "./screens/Reports";

export interface Ctx {
  session: Session;
  /** The latest sync status (event + poll). */
  status: SyncStatus;
  setStatus: (s: SyncStatus) => void;
  /** Runs a command with the progress indicator; an ended session leads back to sign-in. */
  run: <T>(p: Promise<T>) => Promise<T>;
  /** The same for background refreshes: no progress indicator. */
  quiet: <T>(p: Promise<T>) => Promise<T>;
  go: (path: string) => void;
  signOut: () => Promise<void>;
  /** Viewers read; owners and admins also write. */
  canWrite: boolean;
}

export const AppCtx = createContext<Ctx | null>(null);
export function useApp(): Ctx {
  const c = useContext(AppCtx);
  if (!c) throw new Error("useApp outside the app");
  return c;
}

export type Route =
  | { name: "keys" }
  | { name: "new-key" }
  | { name: "key"; id: string }
  | { name: "audit" }
  | { name: "dashboard" }
  | { name: "alerts" }
  | { name: "reports" }
  | { name: "settings" };

/** `#/keys`, `#/keys/new`, `#/keys/<id>`, `#/dashboard`, `#/alerts`, `#/reports`, `#/audit`, `#/settings`; anything else is the keys list. */
export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, "").replace(/\/+$/, "") || "/keys";
  if (path === "/keys/new") return { name: "new-key" };
  const key = path.match(/^\/keys\/([^/]+)$/);
  if (key?.[1]) return { name: "key", id: decodeURIComponent(key[1]) };
  if (path === "/dashboard") return { name: "dashboard" };
  if (path === "/alerts") return { name: "alerts" };
  if (path === "/reports") return { name: "reports" };
  if (path === "/audit") return { name: "audit" };
  if (path === "/settings") return { name: "settings" };
  return { name: "keys" };
}

function useRoute(): [Route, (p: string) => void] {
  const [hash, setHash] = useState(() => window.location.hash);
  useEffect(() => {
    const f = () => setHash(window.location.hash);
    window.addEventListener("hashchange", f);
    return () => window.removeEventListener("hashchange", f);
  }, []);
  const go = useCallback((p: string) => {
    window.location.hash = p;
    setHash(`#${p}`);
  }, []);
  return [useMemo(() => parseRoute(hash), [hash]), go];
}

const UNSYNCED_NOTE = "Your session has ended. Sign in again — your unsynced changes are kept.";

export function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [last, setLast] = useState<Session | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const [busy, setBusy] = useState(0);
  const [route, go] = useRoute();
  const [status, setStatus] = useSyncStatus();
  const sessionRef = useRef(session);
  sessionRef.current = session;
  const mainRef = useRef<HTMLElement>(null);
  const shownRoute = useRef(route);

  // After navigating, move focus to the new screen (unless the screen already focused a field),
  // so keyboard and screen-reader users land on the content.
  useEffect(() => {
    if (shownRoute.current === route) return;
    shownRoute.current = route;
    const main = mainRef.current;
    if (main && !main.contains(document.activeElement)) main.focus();
  }, [route]);

  useEffect(() => {
    api.currentSession().then(setSession).catch(() => setSession(null));
  }, []);

  const ended = useCallback((e: unknown) => {
    if (api.isUnauthenticated(e) && sessionRef.current) {
      setLast(sessionRef.current);
      setNote(UNSYNCED_NOTE);
      setSession(null);
    }
  }, []);

  const quiet = useCallback(async <T,>(p: Promise<T>): Promise<T> => {
    try {
      return await p;
    } catch (e) {
      ended(e);
      throw e;
    }
  }, [ended]);

  const run = useCallback(async <T,>(p: Promise<T>): Promise<T> => {
    setBusy((b) => b + 1);
    try {
      return await quiet(p);
    } finally {
      setBusy((b) => b - 1);
    }
  }, [quiet]);

  const signOut = useCallback(async () => {
    await run(api.logout()).catch(() => {});
    setLast(sessionRef.current ?? null);
    setNote(null);
    setSession(null);
  }, [run]);

  const ctx = useMemo<Ctx | null>(
    () => session ? { session, status, setStatus, run, quiet, go, signOut, canWrite: session.role !== "viewer" } : null,
    [session, status, setStatus, run, quiet, go, signOut],
  );

  if (session === undefined) {
    return <div class="splash" aria-busy="true">Keyward</div>;
  }
  if (!ctx) {
    return (
      <>
        <Login
          note={note}
          serverUrl={last?.server_url ?? null}
          email={last?.email ?? null}
          onSignedIn={(s) => {
            setNote(null);
            setSession(s);
            go("/keys");
          }}
        />
        <StatusBar status={status} busy={busy > 0} />
      </>
    );
  }

  const nav = (path: string, label: string, testid: string, active: boolean) => (
    <a
      href={`#${path}`}
      data-testid={testid}
      class={active ? "active" : ""}
      aria-current={active ? "page" : undefined}
      onClick={(e) => {
        e.preventDefault();
        go(path);
      }}
    >
      {label}
    </a>
  );
  const onKeys = route.name === "keys" || route.name === "key" || route.name === "new-key";

  return (
    <AppCtx.Provider value={ctx}>
      <div class="shell">
        <nav class="sidebar" aria-label="Main">
          <div class="brand"><span class="logo" aria-hidden="true">K</span> Keyward</div>
          {nav("/keys", "API keys", "nav-keys", onKeys)}
          {nav("/dashboard", "Dashboard", "nav-dashboard", route.name === "dashboard")}
          {nav("/alerts", "Alerts", "nav-alerts", route.name === "alerts")}
          {nav("/reports", "Reports", "nav-reports", route.name === "reports")}
          {nav("/audit", "Audit log", "nav-audit", route.name === "audit")}
          {nav("/settings", "Settings", "nav-settings", route.name === "settings")}
          <div class="who">
            <div class="email">{ctx.session.email}</div>
            <span class={`role ${ctx.session.role}`}>{ctx.session.role}</span>
          </div>
        </nav>
        <main class="content" id="main" ref={mainRef} tabIndex={-1}>
          <SyncBanners status={status} go={go} />
          <Screen route={route} canWrite={ctx.canWrite} />
        </main>
      </div>
      <StatusBar status={status} busy={busy > 0} />
    </AppCtx.Provider>
  );
}

function Screen(props: { route: Route; canWrite: boolean }) {
  const r = props.route;
  switch (r.name) {
    case "new-key":
      return props.canWrite ? <CreateKey /> : <ReadOnly />;
    case "key":
      return <KeyDetailScreen key={r.id} id={r.id} />;
    case "dashboard":
      return <DashboardScreen />;
    case "alerts":
      return <AlertsScreen />;
    case "reports":
      return <ReportsScreen />;
    case "audit":
      return <AuditLog />;
    case "settings":
      return <Settings />;
    default:
      return <Keys />;
  }
}

function ReadOnly() {
  return (
    <section>
      <h2>New API key</h2>
      <p class="banner info" role="status">Your role is viewer: you can look at keys but not change them.</p>
    </section>
  );
}
