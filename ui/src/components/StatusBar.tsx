import { useEffect, useState } from "preact/hooks";
import type { SyncStatus } from "../bindings";
import * as api from "../api/commands";
import { relativeTime } from "../lib/format";

const EMPTY: SyncStatus = { online: false, syncing: false, last_sync_at: null, queued: 0, last_error: null };

/** Online/offline, last sync, queued changes: from the sync-status event and a 5 s poll. */
export function useSyncStatus(): SyncStatus {
  const [status, setStatus] = useState<SyncStatus>(EMPTY);
  useEffect(() => {
    let alive = true;
    const poll = () => api.syncStatus().then((s) => alive && setStatus(s)).catch(() => {});
    poll();
    const timer = setInterval(poll, 5000);
    let unlisten: (() => void) | null = null;
    api.onSyncStatus((s) => alive && setStatus(s)).then((u) => (unlisten = u)).catch(() => {});
    return () => {
      alive = false;
      clearInterval(timer);
      unlisten?.();
    };
  }, []);
  return status;
}

export function StatusBar(props: { status: SyncStatus; busy: boolean }) {
  const s = props.status;
  return (
    <footer class="statusbar" aria-live="polite">
      <span class={`dot ${s.online ? "on" : "off"}`} />
      <span data-testid="status-online">{s.online ? "Online" : "Offline"}</span>
      <span class="sep">·</span>
      <span>
        Last sync <span data-testid="status-last-sync">{relativeTime(s.last_sync_at)}</span>
      </span>
      <span class="sep">·</span>
      <span>
        Queued changes <strong data-testid="status-queued">{s.queued}</strong>
      </span>
      {s.last_error && !s.online && <span class="muted" title={s.last_error}>· {s.last_error}</span>}
      {props.busy && <span class="progress" role="progressbar" aria-label="working" />}
    </footer>
  );
}
