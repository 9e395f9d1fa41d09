import type { SyncStatus } from "../bindings";
import * as api from "../api/commands";
import { useApp } from "../app";
import { relativeTime } from "../lib/format";

export function Settings(props: { status: SyncStatus }) {
  const app = useApp();
  const s = props.status;
  return (
    <section>
      <header class="page-head"><h2>Settings</h2></header>
      <dl class="facts">
        <dt>Server</dt><dd class="mono" data-testid="settings-server">{app.session.server_url}</dd>
        <dt>Account</dt><dd>{app.session.email} ({app.session.role})</dd>
        <dt>Organization</dt><dd class="mono">{app.session.org_id}</dd>
        <dt>Connection</dt><dd>{s.online ? "Online" : "Offline"}</dd>
        <dt>Last sync</dt><dd>{relativeTime(s.last_sync_at)}</dd>
        <dt>Queued changes</dt><dd>{s.queued}</dd>
        <dt>Last error</dt><dd>{s.last_error ?? <span class="muted">none</span>}</dd>
      </dl>
      <div class="actions">
        <button data-testid="sync-now" onClick={() => app.run(api.syncNow()).catch(() => {})}>Sync now</button>
        <button class="danger" data-testid="sign-out" onClick={() => app.signOut()}>Sign out</button>
      </div>
      <p class="muted">Your session is kept in the system keychain. Signing out removes it; unsynced changes stay on this device.</p>
    </section>
  );
}
