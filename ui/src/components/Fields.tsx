import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import type { CommandError, FieldError } from "../bindings";
import { sentence } from "../lib/format";

/** The errors for `field` itself and for its entries (`scopes` → `scopes`, `scopes[0]`, ...). */
export function errorsFor(error: CommandError | null, field: string): FieldError[] {
  if (!error) return [];
  return error.fields.filter((f) => f.field === field || f.field.startsWith(`${field}[`));
}

/** The index in `scopes[3]`, or null. */
function entryIndex(path: string): number | null {
  const m = path.match(/\[(\d+)\]$/);
  return m?.[1] ? Number(m[1]) : null;
}

let nextId = 0;

/** What a field's control needs to be tied to its label, hint and errors. */
export interface ControlProps {
  id: string;
  "aria-describedby": string | undefined;
  "aria-invalid": boolean;
}

/**
 * A labelled form field with its inline errors (`field-error-<path>`). `items` are the values
 * sent for a list field, so an error on `scopes[1]` can name the entry it is about.
 */
export function Field(props: {
  label: string;
  field: string;
  error: CommandError | null;
  hint?: string | undefined;
  items?: readonly string[] | undefined;
  children: (control: ControlProps) => ComponentChildren;
}) {
  // Every error of the field shows at once; typing in the field clears them until the next
  // answer (the form's `error` object changes).
  const [editedAfter, setEditedAfter] = useState<CommandError | null>(null);
  const errs = editedAfter === props.error ? [] : errorsFor(props.error, props.field);
  const [id] = useState(() => `f${++nextId}`);
  const describedBy = [props.hint ? `${id}-hint` : "", errs.length ? `${id}-err` : ""].filter(Boolean).join(" ") || undefined;
  return (
    <div class={`field${errs.length ? " invalid" : ""}`} onInputCapture={() => props.error && setEditedAfter(props.error)} onChangeCapture={() => props.error && setEditedAfter(props.error)}>
      <label class="label" for={id}>{props.label}</label>
      {props.children({ id, "aria-describedby": describedBy, "aria-invalid": errs.length > 0 })}
      {props.hint && <span class="hint" id={`${id}-hint`}>{props.hint}</span>}
      {errs.length > 0 && (
        <ul class="field-errors" id={`${id}-err`}>
          {errs.map((e) => {
            const i = entryIndex(e.field);
            const item = i !== null && e.field !== props.field ? props.items?.[i] : undefined;
            return (
              <li class="field-error" data-testid={`field-error-${e.field}`} role="alert">
                {item !== undefined ? <><code>{item}</code>: </> : e.field !== props.field ? `${e.field}: ` : ""}
                {sentence(e.message)}
              </li>
            );
          })}
        </ul>
      )}
    </div>
  );
}

/**
 * A command error that is not shown next to a field: any error without field details, and
 * field errors for fields this form does not show (`shown`), so none is ever lost.
 */
export function Banner(props: { error: CommandError | null; shown?: readonly string[]; testid?: string }) {
  const e = props.error;
  if (!e) return null;
  const shown = props.shown ?? [];
  const stray = e.fields.filter((f) => !shown.some((s) => f.field === s || f.field.startsWith(`${s}[`)));
  if (e.fields.length > 0 && stray.length === 0) return null;
  return (
    <div class="banner error" role="alert" data-testid={props.testid ?? "error-banner"} data-code={e.code}>
      {stray.length > 0 ? (
        <ul>
          {stray.map((f) => <li data-testid={`field-error-${f.field}`}><strong>{f.field}</strong>: {sentence(f.message)}</li>)}
        </ul>
      ) : (
        <>{sentence(e.message)}</>
      )}
    </div>
  );
}

/** A small spinner for buttons while their command runs. */
export function Spinner() {
  return <span class="spinner" aria-hidden="true" />;
}
