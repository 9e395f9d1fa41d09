import { useState } from "preact/hooks";
import type { CommandError } from "../bindings";
import * as api from "../api/commands";
import { useApp } from "../app";
import { Banner, Spinner } from "../components/Fields";
import { relativeTime, shortDate } from "../lib/format";
import { AlertSettings } from "./AlertSettings";
import { ChangePassword, SignOutEverywhere } from "./AccountSecurity";
import { RejectedChanges } from "./RejectedChanges";

/** Server, account, sync status; "Sync now", alert sensitivity, password, "Sign out" and "Sign out everywhere". */
export function Settings() {
  const app = useApp();
  const s = app.status;
  const [syncing, setSyncing] = useState(false);
  const [error, setError] = useState<CommandError | null>(null);
  const [confirm, setConfirm] = useState(false);

  const syncNow = async () => {
    setSyncing(true);
    try {
      app.setStatus(await app.run(api.syncNow()));
      setError(null);
    } catch (e) {
      setError(api.toCommandError(e));
    } finally {
      setSyncing(false);
    }
  };

  return (
    <section>
      <header class="page-head"><h2>Settings</h2></header>
      <div class="settings-grid">
        <div class="panel-box">
          <h3>Account</h3>
          <dl class="facts plain">
            <dt>Server</dt><dd class="mono" data-testid="settings-server">{app.session.server_url}</dd>
            <dt>Email</dt><dd data-testid="settings-email">{app.session.email}</dd>
            <dt>Role</dt><dd data-testid="settings-role"><span class={`role ${app.session.role}`}>{app.session.role}</span>{!app.canWrite && <span class="muted"> — read-only</span>}</dd>
            <dt>Organization</dt><dd data-testid="settings-org" title={`organisation ${app.session.org_id}`}>{app.session.org_name || <span class="mono">{app.session.org_id}</span>}</dd>
          </dl>
        </div>
        <div class="panel-box">
          <h3>Sync</h3>
          <dl class="facts plain">
            <dt>Connection</dt><dd data-testid="settings-online">{s.online ? "Online" : "Offline"}{s.syncing && <span class="muted"> — syncing…</span>}</dd>
            <dt>Last sync</dt><dd data-testid="settings-last-sync">{relativeTime(s.last_pull_at)}{s.last_pull_at && <span class="muted"> ({shortDate(s.last_pull_at)})</span>}</dd>
            <dt>Queued changes</dt><dd data-testid="settings-queued">{s.queued}</dd>
            <dt>Last error</dt><dd data-testid="settings-last-error">{s.last_error ?? <span class="muted">none</span>}</dd>
          </dl>
          <Banner error={error} />
          <div class="actions">
            <button type="button" data-testid="sync-now" disabled={syncing} aria-busy={syncing} onClick={syncNow}>
              {syncing ? <><Spinner /> Syncing…</> : "Sync now"}
            </button>
          </div>
        </div>
      </div>
      <RejectedChanges />
      <AlertSettings />
      <ChangePassword />
      <div class="panel-box">
        <h3>Sign out</h3>
        <p class="muted">
          Your session is kept in the system keychain; signing out removes it. Changes not yet
          synced stay on this device and are sent after you sign in again.
        </p>
        {confirm && s.queued > 0 ? (
          <div class="actions">
            <span class="warning" role="alert">{s.queued} change{s.queued === 1 ? "" : "s"} not synced yet (kept on this device).</span>
            <button type="button" class="ghost" onClick={() => setConfirm(false)}>Cancel</button>
            <button type="button" class="danger" data-testid="sign-out-confirm" onClick={() => app.signOut()}>Sign out anyway</button>
          </div>
        ) : (
          <div class="actions">
            <button type="button" class="danger" data-testid="sign-out" onClick={() => (s.queued > 0 ? setConfirm(true) : app.signOut())}>Sign out</button>
          </div>
        )}
      </div>
      <SignOutEverywhere />
    </section>
  );
}
