import { createContext } from "preact";
import { useCallback, useContext, useEffect, useState } from "preact/hooks";
import type { CommandError, Session } from "./bindings";
import * as api from "./api/commands";
import { StatusBar, useSyncStatus } from "./components/StatusBar";
import { Login } from "./screens/Login";
import { Keys } from "./screens/Keys";
import { KeyDetailScreen } from "./screens/KeyDetail";
import { CreateKey } from "./screens/CreateKey";
import { AuditLog } from "./screens/AuditLog";
import { Settings } from "./screens/Settings";

export interface Ctx {
  session: Session;
  /** Runs a command with a progress indicator; an ended session leads back to sign-in. */
  run: <T>(p: Promise<T>) => Promise<T>;
  go: (path: string) => void;
  signOut: () => Promise<void>;
  canWrite: boolean;
}

export const AppCtx = createContext<Ctx | null>(null);
export function useApp(): Ctx {
  const c = useContext(AppCtx);
  if (!c) throw new Error("outside the app");
  return c;
}

function useRoute(): [string, (p: string) => void] {
  const read = () => window.location.hash.replace(/^#/, "") || "/keys";
  const [route, setRoute] = useState(read());
  useEffect(() => {
    const f = () => setRoute(read());
    window.addEventListener("hashchange", f);
    return () => window.removeEventListener("hashchange", f);
  }, []);
  const go = useCallback((p: string) => {
    window.location.hash = p;
    setRoute(p);
  }, []);
  return [route, go];
}

export function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [note, setNote] = useState<string | null>(null);
  const [busy, setBusy] = useState(0);
  const [route, go] = useRoute();
  const status = useSyncStatus();

  useEffect(() => {
    api.currentSession().then(setSession).catch(() => setSession(null));
  }, []);

  const run = useCallback(async <T,>(p: Promise<T>): Promise<T> => {
    setBusy((b) => b + 1);
    try {
      return await p;
    } catch (e) {
      const err = e as CommandError;
      if (err?.code === "unauthenticated") {
        setNote("Your session has ended. Sign in again: your unsynced changes are kept.");
        setSession(null);
      }
      throw e;
    } finally {
      setBusy((b) => b - 1);
    }
  }, []);

  if (session === undefined) return <div class="splash">Keyward</div>;
  if (session === null) {
    return (
      <>
        <Login note={note} onSignedIn={(s) => { setNote(null); setSession(s); go("/keys"); }} />
        <StatusBar status={status} busy={busy > 0} />
      </>
    );
  }

  const signOut = async () => {
    await run(api.logout()).catch(() => {});
    setSession(null);
  };
  const ctx: Ctx = { session, run, go, signOut, canWrite: session.role !== "viewer" };
  const keyMatch = route.match(/^\/keys\/([0-9a-f-]{36})$/);

  return (
    <AppCtx.Provider value={ctx}>
      <div class="shell">
        <nav class="sidebar">
          <div class="brand">Keyward</div>
          <a href="#/keys" data-testid="nav-keys" class={route.startsWith("/keys") ? "active" : ""} onClick={(e) => { e.preventDefault(); go("/keys"); }}>API keys</a>
          <a href="#/audit" data-testid="nav-audit" class={route === "/audit" ? "active" : ""} onClick={(e) => { e.preventDefault(); go("/audit"); }}>Audit log</a>
          <a href="#/settings" data-testid="nav-settings" class={route === "/settings" ? "active" : ""} onClick={(e) => { e.preventDefault(); go("/settings"); }}>Settings</a>
          <div class="who">{session.email}<br /><span class="muted">{session.role}</span></div>
        </nav>
        <main class="content">
          {route === "/keys/new" ? <CreateKey /> : keyMatch?.[1] ? <KeyDetailScreen id={keyMatch[1]} /> : route === "/audit" ? <AuditLog /> : route === "/settings" ? <Settings status={status} /> : <Keys />}
        </main>
      </div>
      <StatusBar status={status} busy={busy > 0} />
    </AppCtx.Provider>
  );
}
