// A row of toggle buttons choosing one value (period, granularity, status filter).

export interface Choice<T> {
  value: T;
  label: string;
}

/** One pressed button among `choices`; `testid` names each button for the tests. */
export function Segmented<T, C extends Choice<T>>(props: {
  label: string;
  choices: readonly C[];
  value: T;
  onChange: (value: T) => void;
  testid: (choice: C) => string;
}) {
  return (
    <span class="segmented" role="group" aria-label={props.label}>
      {props.choices.map((c) => (
        <button
          type="button"
          key={props.testid(c)}
          class={c.value === props.value ? "on" : ""}
          aria-pressed={c.value === props.value}
          data-testid={props.testid(c)}
          onClick={() => props.onChange(c.value)}
        >
          {c.label}
        </button>
      ))}
    </span>
  );
}
