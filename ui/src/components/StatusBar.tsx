import { useEffect, useState } from "preact/hooks";
import type { SyncStatus } from "../bindings";
import * as api from "../api/commands";
import { relativeTime, shortDate } from "../lib/format";

export const EMPTY_STATUS: SyncStatus = { online: false, syncing: false, cursor: 0, queued: 0, queued_revocations: 0, rejected: 0, last_pull_at: null, last_push_at: null, last_error: null };
export const POLL_MS = 5000;

/** Online/offline, last sync, queued changes: from the `sync-status` event and a 5 s poll. */
export function useSyncStatus(): [SyncStatus, (s: SyncStatus) => void] {
  const [status, setStatus] = useState<SyncStatus>(EMPTY_STATUS);
  useEffect(() => {
    let alive = true;
    const poll = () => api.syncStatus().then((s) => alive && setStatus(s)).catch(() => {});
    poll();
    const timer = setInterval(poll, POLL_MS);
    let unlisten: (() => void) | null = null;
    api
      .onSyncStatus((s) => alive && setStatus(s))
      .then((u) => {
        if (alive) unlisten = u;
        else u();
      })
      .catch(() => {});
    return () => {
      alive = false;
      clearInterval(timer);
      unlisten?.();
    };
  }, []);
  return [status, setStatus];
}

/** The bar at the bottom of every screen. `busy` shows an indeterminate progress bar. */
export function StatusBar(props: { status: SyncStatus; busy: boolean }) {
  const s = props.status;
  return (
    <footer class="statusbar" role="status" aria-live="polite">
      <span class={`dot ${s.online ? "on" : "off"}`} aria-hidden="true" />
      <span data-testid="status-online" class="conn">{s.online ? "Online" : "Offline"}</span>
      {s.syncing && <span class="muted" data-testid="status-syncing">syncing…</span>}
      <span class="sep" aria-hidden="true">|</span>
      <span title={s.last_pull_at ? shortDate(s.last_pull_at) : "not synced yet"}>
        Last sync <span data-testid="status-last-sync">{relativeTime(s.last_pull_at)}</span>
      </span>
      <span class="sep" aria-hidden="true">|</span>
      <span class={s.queued > 0 ? "queued has" : "queued"}>
        Queued changes <strong data-testid="status-queued">{s.queued}</strong>
      </span>
      {s.last_error && (
        <span class="last-error" title={s.last_error} data-testid="status-error">
          {s.last_error}
        </span>
      )}
      {props.busy && <span class="progress" role="progressbar" aria-label="Working" data-testid="progress" />}
    </footer>
  );
}
