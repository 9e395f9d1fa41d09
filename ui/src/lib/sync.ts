import type { KeyListItem } from "../bindings";

/**
 * What a key's queued changes mean for client systems right now, when that differs from what
 * this device shows:
 * - `not_synced`: made (or rotated in) on this device; the server refuses its token until sync;
 * - `revocation_queued`: revoked on this device; the server keeps accepting the key until sync.
 */
export type PendingState = "not_synced" | "revocation_queued" | null;

export function pendingState(item: KeyListItem): PendingState {
  if (!item.pending) return null;
  if (item.server_status === null) return "not_synced";
  const k = item.key;
  if (k.revoked_at !== null && k.revoked_at !== item.server_revoked_at) return "revocation_queued";
  return null;
}

export const PENDING_TEXT: Record<Exclude<PendingState, null>, { badge: string; sentence: string }> = {
  not_synced: {
    badge: "not active until synced",
    sentence: "Not active until synced — the server refuses this key until this device syncs.",
  },
  revocation_queued: {
    badge: "revocation queued",
    sentence: "Revocation queued — the key still works until this device syncs.",
  },
};
