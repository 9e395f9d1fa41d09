import { useEffect, useRef, useState } from "preact/hooks";

/**
 * Shows a new key's token once. The token lives only in the parent's state while this dialog is
 * open; closing it (Done) drops it: the app writes it nowhere (no storage, no logs, no URL).
 */
export function TokenDialog(props: { token: string; title?: string; note?: string; onDone: () => void }) {
  const [copy, setCopy] = useState<"idle" | "copied" | "selected">("idle");
  const tokenRef = useRef<HTMLElement>(null);
  const dialogRef = useRef<HTMLDivElement>(null);
  const copyRef = useRef<HTMLButtonElement>(null);

  useEffect(() => {
    const before = document.activeElement as HTMLElement | null;
    copyRef.current?.focus();
    return () => before?.focus?.();
  }, []);

  const select = () => {
    const el = tokenRef.current;
    const sel = window.getSelection?.();
    if (el && sel) {
      sel.removeAllRanges();
      sel.selectAllChildren(el);
    }
  };

  const onCopy = async () => {
    try {
      if (!navigator.clipboard?.writeText) throw new Error("no clipboard");
      await navigator.clipboard.writeText(props.token);
      setCopy("copied");
    } catch {
      // No clipboard access (permissions, older webview): select the text for Ctrl+C.
      select();
      setCopy("selected");
    }
  };

  // Keep Tab inside the dialog; Escape does not close it, so the token is not lost by accident.
  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key !== "Tab" || !dialogRef.current) return;
    const items = Array.from(dialogRef.current.querySelectorAll<HTMLElement>("button, [tabindex='0']"));
    const first = items[0];
    const last = items[items.length - 1];
    if (!first || !last) return;
    if (e.shiftKey && document.activeElement === first) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && document.activeElement === last) {
      e.preventDefault();
      first.focus();
    }
  };

  return (
    <div class="modal" onKeyDown={onKeyDown}>
      <div class="card dialog" role="dialog" aria-modal="true" aria-labelledby="token-title" aria-describedby="token-warning" ref={dialogRef}>
        <h3 id="token-title">{props.title ?? "Your new API key"}</h3>
        {props.note && <p data-testid="token-note">{props.note}</p>}
        <p class="warning" id="token-warning">
          <strong>Copy it now — you won't see it again.</strong> Keyward keeps only a hash of the
          secret; if you lose this token, rotate the key.
        </p>
        <code class="token" data-testid="issued-token" ref={tokenRef} tabIndex={0} onFocus={select} onClick={select}>
          {props.token}
        </code>
        <div class="actions">
          <button type="button" data-testid="copy-token" ref={copyRef} onClick={onCopy}>
            {copy === "copied" ? "Copied ✓" : "Copy to clipboard"}
          </button>
          {copy === "selected" && <span class="muted" role="status">Selected — press Ctrl+C (⌘C) to copy.</span>}
          <span class="spacer" />
          <button type="button" class="primary" data-testid="token-done" onClick={props.onDone}>
            I've stored it — close
          </button>
        </div>
      </div>
    </div>
  );
}
