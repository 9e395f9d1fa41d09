import { Fragment } from "preact";
import { useEffect, useState } from "preact/hooks";
import type { CommandError, RejectedChange } from "../bindings";
import * as api from "../api/commands";
import { useApp } from "../app";
import { Banner } from "../components/Fields";
import { relativeTime, sentence, shortDate } from "../lib/format";

/**
 * Changes the server refused: what each was, why it was refused, and Retry (sent again on the
 * key as the server has it now) or Discard. Nothing refused is lost silently.
 */
export function RejectedChanges() {
  const app = useApp();
  const [items, setItems] = useState<RejectedChange[] | null>(null);
  const [error, setError] = useState<CommandError | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const mark = `${app.status.rejected}|${app.status.last_push_at}`;

  const load = () =>
    app.quiet(api.rejectedChanges()).then(setItems).catch((e) => setError(api.toCommandError(e)));
  useEffect(() => {
    void load();
  }, [mark]);

  const act = async (c: RejectedChange, what: "retry" | "discard") => {
    setBusy(c.op_id);
    try {
      if (what === "retry") await app.run(api.retryRejected(c.op_id));
      else await app.run(api.discardRejected(c.op_id));
      setError(null);
      app.setStatus(await app.quiet(api.syncStatus()));
      await load();
    } catch (e) {
      setError(api.toCommandError(e));
    } finally {
      setBusy(null);
    }
  };

  return (
    <div class="panel-box" data-testid="rejected-changes">
      <h3>Refused changes</h3>
      <Banner error={error} />
      {items === null ? null : items.length === 0 ? (
        <p class="muted" data-testid="rejected-empty">The server has accepted every change made on this device.</p>
      ) : (
        <ul class="rejected-list">
          {items.map((c) => (
            <li key={c.op_id} data-testid="rejected-change" data-op-id={c.op_id} data-kind={c.kind}>
              <div>
                <strong>{c.summary}</strong> of <a href={`#/keys/${encodeURIComponent(c.key_id)}`} title={c.key_id}>{c.key_name || "a key"}</a>
                <span class="muted small"> — made {shortDate(c.queued_at)}, refused {relativeTime(c.rejected_at)}</span>
              </div>
              {c.fields.length > 0 && (
                <dl class="facts plain compact" data-testid="rejected-fields">
                  {c.fields.map((f) => (
                    <Fragment key={f.field}><dt>{f.field}</dt><dd>{f.value}</dd></Fragment>
                  ))}
                </dl>
              )}
              <p class="small" data-testid="rejected-reason">Why: {sentence(c.error.detail)}</p>
              <div class="actions">
                {c.retryable && app.canWrite && (
                  <button type="button" data-testid="rejected-retry" disabled={busy !== null} onClick={() => act(c, "retry")}>Retry</button>
                )}
                <button type="button" class="ghost" data-testid="rejected-discard" disabled={busy !== null} onClick={() => act(c, "discard")}>Discard</button>
                {!c.retryable && <span class="muted small">A refused {c.kind === "create_key" ? "new key" : "rotation"} cannot be sent again: its token was shown once. Make it anew.</span>}
              </div>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
