import type { SyncStatus } from "../bindings";

/**
 * Banners above every screen while something on this device differs from what the server
 * enforces: queued revocations (those keys still work) and changes the server refused.
 */
export function SyncBanners(props: { status: SyncStatus; go: (path: string) => void }) {
  const s = props.status;
  const n = s.queued_revocations;
  const r = s.rejected;
  return (
    <>
      {!s.online && s.last_pull_at !== null && (
        <p class="banner info" role="status" data-testid="offline-banner">
          Offline — showing what this device last synced. Changes are saved here and sent when the server can be reached.
        </p>
      )}
      {n > 0 && (
        <p class="banner error" role="alert" data-testid="revocations-banner">
          <strong>{n === 1 ? "1 revocation is queued" : `${n} revocations are queued`}</strong> — {n === 1 ? "that key still works" : "those keys still work"} until this device syncs.
        </p>
      )}
      {r > 0 && (
        <p class="banner error" role="alert" data-testid="rejected-banner">
          <strong>The server refused {r === 1 ? "1 change" : `${r} changes`} made on this device.</strong>{" "}
          <a href="#/settings" onClick={(e) => { e.preventDefault(); props.go("/settings"); }}>Review: retry or discard</a>
        </p>
      )}
    </>
  );
}
