import { useState } from "preact/hooks";

/** Shows a new key's token once. Closing it forgets the token: the app stores it nowhere. */
export function TokenDialog(props: { token: string; onDone: () => void }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(props.token);
      setCopied(true);
    } catch {
      const el = document.querySelector("[data-testid='issued-token']");
      if (el) window.getSelection()?.selectAllChildren(el);
    }
  };
  return (
    <div class="modal" role="dialog" aria-modal="true" aria-labelledby="token-title">
      <div class="card">
        <h3 id="token-title">Your new API key</h3>
        <p class="warning">Copy it now: you won't see it again. Keyward keeps only a hash.</p>
        <code class="token" data-testid="issued-token">{props.token}</code>
        <div class="actions">
          <button data-testid="copy-token" onClick={copy}>{copied ? "Copied" : "Copy"}</button>
          <button class="primary" data-testid="token-done" onClick={props.onDone}>Done</button>
        </div>
      </div>
    </div>
  );
}
