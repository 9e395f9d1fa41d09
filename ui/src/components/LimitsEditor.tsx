import type { ApiKey, CommandError, Consistency, FieldError, LimitsForm, Quota, RateLimitRule } from "../bindings";
import { Field } from "./Fields";

/** One rule as typed: numbers stay text until the form is sent. */
export interface RuleDraft {
  algorithm: string;
  limit: string;
  window: string;
  burst: string;
  consistency: Consistency;
}

export interface LimitsDraft {
  tier: string;
  /** `null`: the key has no rules of its own (its tier's apply). */
  rules: RuleDraft[] | null;
  daily: string;
  monthly: string;
  quotaConsistency: Consistency;
}

/** The fields the editor shows errors for (for the form's banner). */
export const LIMIT_FIELDS = ["tier", "rate_limits", "quota", "quota.daily", "quota.monthly"];

const ALGORITHMS: [string, string][] = [
  ["fixed_window", "Fixed window"],
  ["sliding_window", "Sliding window"],
  ["gcra", "Token bucket (GCRA)"],
];

const str = (n: number | undefined | null) => (n === undefined || n === null ? "" : String(n));

export function draftFrom(k: ApiKey | null): LimitsDraft {
  return {
    tier: k?.tier ?? "",
    rules: k?.rate_limits
      ? k.rate_limits.map((r) => ({
          algorithm: r.algorithm,
          limit: str(r.limit),
          window: str(r.window_seconds),
          burst: str(r.burst),
          consistency: r.consistency,
        }))
      : null,
    daily: str(k?.quota?.daily),
    monthly: str(k?.quota?.monthly),
    quotaConsistency: k?.quota?.consistency ?? "leased",
  };
}

const NEW_RULE: RuleDraft = { algorithm: "fixed_window", limit: "100", window: "60", burst: "", consistency: "leased" };

/**
 * The draft as the command takes it, or the entries that are not whole numbers (every one at
 * once, by the same field paths the server uses). Ranges are the backend's to judge.
 */
export function formFromDraft(d: LimitsDraft): { form: LimitsForm } | { error: CommandError } {
  const errors: FieldError[] = [];
  const whole = (text: string, field: string): number | undefined => {
    const t = text.trim().replace(/[,_\s]/g, "");
    if (t === "") return undefined;
    if (!/^-?\d+$/.test(t)) {
      errors.push({ field, code: "not_a_number", message: "Must be a whole number." });
      return undefined;
    }
    return Number(t);
  };
  const rules: RateLimitRule[] | null = d.rules
    ? d.rules.map((r, i) => {
        const at = (f: string) => `rate_limits[${i}].${f}`;
        const limit = whole(r.limit, at("limit"));
        const window = whole(r.window, at("window_seconds"));
        if (r.limit.trim() === "") errors.push({ field: at("limit"), code: "required", message: "A limit is required." });
        if (r.window.trim() === "") errors.push({ field: at("window_seconds"), code: "required", message: "A window is required." });
        const burst = r.algorithm === "gcra" ? whole(r.burst, at("burst")) : undefined;
        const rule: RateLimitRule = { algorithm: r.algorithm, limit: limit ?? 0, window_seconds: window ?? 0, consistency: r.consistency };
        if (burst !== undefined) rule.burst = burst;
        return rule;
      })
    : null;
  const daily = whole(d.daily, "quota.daily");
  const monthly = whole(d.monthly, "quota.monthly");
  if (errors.length) {
    return { error: { code: "validation_failed", message: `${errors.length} field${errors.length === 1 ? "" : "s"} need attention`, fields: errors } };
  }
  let quota: Quota | null = null;
  if (daily !== undefined || monthly !== undefined) {
    quota = { consistency: d.quotaConsistency };
    if (daily !== undefined) quota.daily = daily;
    if (monthly !== undefined) quota.monthly = monthly;
  }
  return { form: { tier: d.tier.trim() || null, rate_limits: rules, quota } };
}

/** Whether two drafts mean the same limits (an edit that changes nothing is not sent). */
export function sameLimits(a: LimitsDraft, b: LimitsDraft): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Tier, rate-limit rules (algorithm, limit, window, burst, consistency) and daily/monthly
 * quota of a key. Checked offline with the server's rules when the form is sent.
 */
export function LimitsEditor(props: { draft: LimitsDraft; set: (d: LimitsDraft) => void; error: CommandError | null; testid: string }) {
  const d = props.draft;
  const set = (over: Partial<LimitsDraft>) => props.set({ ...d, ...over });
  const setRule = (i: number, over: Partial<RuleDraft>) =>
    set({ rules: (d.rules ?? []).map((r, j) => (j === i ? { ...r, ...over } : r)) });
  const t = props.testid;
  return (
    <fieldset class="limits-editor" data-testid={`${t}-limits`}>
      <legend>Rate limits and quota</legend>
      <Field label="Tier" field="tier" error={props.error} hint="A tier of your organisation; its rules apply where the key has none of its own. Empty: no tier.">
        {(a) => <input {...a} data-testid={`${t}-tier`} value={d.tier} onInput={(e) => set({ tier: e.currentTarget.value })} />}
      </Field>
      <div class="rules">
        <p class="label">Rules {d.rules === null && <span class="muted">— none of its own (the tier’s apply)</span>}</p>
        {(d.rules ?? []).map((r, i) => (
          <div class="rule-row" data-testid={`${t}-rule`} role="group" aria-label={`Rule ${i + 1}`}>
            <Field label="Algorithm" field={`rate_limits[${i}].algorithm`} error={props.error}>
              {(a) => (
                <select {...a} data-testid={`${t}-rule-algorithm`} value={r.algorithm} onChange={(e) => setRule(i, { algorithm: e.currentTarget.value })}>
                  {ALGORITHMS.map(([v, label]) => <option value={v}>{label}</option>)}
                </select>
              )}
            </Field>
            <Field label="Limit" field={`rate_limits[${i}].limit`} error={props.error} hint="1 to 1,000,000">
              {(a) => <input {...a} data-testid={`${t}-rule-limit`} inputMode="numeric" value={r.limit} onInput={(e) => setRule(i, { limit: e.currentTarget.value })} />}
            </Field>
            <Field label="Window (s)" field={`rate_limits[${i}].window_seconds`} error={props.error} hint="1 to 86,400">
              {(a) => <input {...a} data-testid={`${t}-rule-window`} inputMode="numeric" value={r.window} onInput={(e) => setRule(i, { window: e.currentTarget.value })} />}
            </Field>
            {r.algorithm === "gcra" && (
              <Field label="Burst" field={`rate_limits[${i}].burst`} error={props.error} hint="optional; default: the limit">
                {(a) => <input {...a} data-testid={`${t}-rule-burst`} inputMode="numeric" value={r.burst} onInput={(e) => setRule(i, { burst: e.currentTarget.value })} />}
              </Field>
            )}
            <Field label="Across nodes" field={`rate_limits[${i}].consistency`} error={props.error}>
              {(a) => (
                <select {...a} data-testid={`${t}-rule-consistency`} value={r.consistency} onChange={(e) => setRule(i, { consistency: e.currentTarget.value as Consistency })}>
                  <option value="leased">Leased (fast)</option>
                  <option value="exact">Exact</option>
                </select>
              )}
            </Field>
            <button type="button" class="ghost small" data-testid={`${t}-rule-remove`} aria-label={`Remove rule ${i + 1}`}
              onClick={() => { const rest = (d.rules ?? []).filter((_, j) => j !== i); set({ rules: rest.length ? rest : null }); }}>
              Remove
            </button>
          </div>
        ))}
        <button type="button" class="ghost small" data-testid={`${t}-rule-add`} onClick={() => set({ rules: [...(d.rules ?? []), { ...NEW_RULE }] })}>
          Add a rule
        </button>
      </div>
      <div class="row">
        <Field label="Daily quota" field="quota.daily" error={props.error} hint="requests per UTC day; empty: none">
          {(a) => <input {...a} data-testid={`${t}-quota-daily`} inputMode="numeric" value={d.daily} onInput={(e) => set({ daily: e.currentTarget.value })} />}
        </Field>
        <Field label="Monthly quota" field="quota.monthly" error={props.error} hint="requests per UTC month; empty: none">
          {(a) => <input {...a} data-testid={`${t}-quota-monthly`} inputMode="numeric" value={d.monthly} onInput={(e) => set({ monthly: e.currentTarget.value })} />}
        </Field>
      </div>
    </fieldset>
  );
}
