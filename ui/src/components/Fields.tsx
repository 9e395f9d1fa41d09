import type { ComponentChildren } from "preact";
import type { CommandError, FieldError } from "../bindings";

/** The messages for `field` (and its entries, `field[0]`...) from a validation error. */
export function errorsFor(error: CommandError | null, field: string): FieldError[] {
  if (!error) return [];
  return error.fields.filter((f) => f.field === field || f.field.startsWith(`${field}[`));
}

export function Field(props: {
  label: string;
  field: string;
  error: CommandError | null;
  hint?: string;
  children: ComponentChildren;
}) {
  const errs = errorsFor(props.error, props.field);
  return (
    <label class={`field${errs.length ? " invalid" : ""}`}>
      <span class="label">{props.label}</span>
      {props.children}
      {props.hint && !errs.length && <span class="hint">{props.hint}</span>}
      {errs.map((e) => (
        <span class="field-error" data-testid={`field-error-${e.field}`} role="alert">
          {e.field !== props.field ? `${e.field}: ` : ""}
          {e.message}
        </span>
      ))}
    </label>
  );
}

/** A command error that is not about one field. */
export function Banner(props: { error: CommandError | null }) {
  if (!props.error || (props.error.code === "validation_failed" && props.error.fields.length)) return null;
  return (
    <div class="banner error" role="alert" data-testid="error-banner">
      {props.error.message}
    </div>
  );
}
