// What the app says to people: API errors in words, money in the shop's currency.
import { fieldRules, type FieldRule, type GraphqlError } from "@shopmesh/sdk";

/** One sentence for what went wrong, from the errors' `extensions.code` and messages. */
export function explain(errors: readonly GraphqlError[]): string {
  const first = errors[0];
  if (first === undefined) return "Something went wrong.";
  const retry = first.extensions.retryAfter;
  switch (first.code) {
    case "UNAUTHENTICATED":
      return "Please log in (again) to do this.";
    case "FORBIDDEN":
      return "Your account may not do this: it is for shop staff.";
    case "NOT_FOUND":
      return "There is no such thing here, or it is not yours to see.";
    case "RATE_LIMITED":
    case "TOO_MANY_REQUESTS":
      return `Too many requests: try again${typeof retry === "number" ? ` in ${retry} s` : " shortly"}.`;
    case "DOWNSTREAM_UNAVAILABLE":
    case "DOWNSTREAM_TIMEOUT":
    case "INTERNAL_SERVER_ERROR":
    case "BAD_RESPONSE":
    case "SOCKET_ERROR":
      return "The shop could not answer just now. Please try again.";
    default:
      // BAD_USER_INPUT, CONFLICT, UNPROCESSABLE, ...: the gateway's message is written for people.
      return first.message;
  }
}

/** Digits after the point in `currency`'s major unit (2 for EUR, 0 for JPY). */
function minorDigits(currency: string): number {
  try {
    return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits ?? 2;
  } catch {
    return 2;
  }
}

/** `amountMinor` of `currency` as people read it (`€19.99`). */
export function money(m: { amountMinor: number; currency: string }): string {
  const format = new Intl.NumberFormat("en", { style: "currency", currency: m.currency });
  return format.format(m.amountMinor / 10 ** minorDigits(m.currency));
}

/** An amount typed in the major unit (`12.50`) in the minor unit (`1250`), or null. */
export function toMinor(typed: string, currency: string): number | null {
  const digits = minorDigits(currency);
  const match = new RegExp(`^(\\d+)(?:\\.(\\d{0,${digits}}))?$`).exec(typed.trim());
  if (!match) return null;
  return Number(match[1]) * 10 ** digits + Number((match[2] ?? "").padEnd(digits, "0") || 0);
}

/** An amount in the minor unit as typed in the major unit (`1250` EUR: `12.50`). */
export function fromMinor(m: { amountMinor: number; currency: string }): string {
  const digits = minorDigits(m.currency);
  return (m.amountMinor / 10 ** digits).toFixed(digits);
}

/** A status as words: `STOCK_RESERVED` → `stock reserved`. */
export function statusWords(status: string): string {
  return status.toLowerCase().replace(/_/g, " ");
}

/** When something happened, in the reader's time zone (the API's times are UTC). */
export function when(at: string): string {
  return new Date(at).toLocaleString("en", { dateStyle: "medium", timeStyle: "short" });
}

type Schema = keyof typeof fieldRules;

/** The contract's rule for a field, for a form's input attributes and its own check. */
export function ruleOf<S extends Schema>(schema: S, field: keyof (typeof fieldRules)[S]): FieldRule {
  return fieldRules[schema][field] as FieldRule;
}

/** HTML attributes enforcing `rule` in the browser (the gateway checks again). */
export function inputAttributes(rule: FieldRule): Record<string, string | number | boolean> {
  const attributes: Record<string, string | number | boolean> = { required: rule.required };
  if (rule.minLength !== undefined) attributes.minLength = rule.minLength;
  if (rule.maxLength !== undefined) attributes.maxLength = rule.maxLength;
  if (rule.minimum !== undefined) attributes.min = rule.minimum;
  if (rule.maximum !== undefined) attributes.max = rule.maximum;
  if (rule.pattern !== undefined) attributes.pattern = rule.pattern;
  return attributes;
}

/** Why `value` breaks `rule`, in words, or null. */
export function breaks(label: string, rule: FieldRule, value: string): string | null {
  if (value === "") return rule.required ? `${label} is required.` : null;
  if (rule.minLength !== undefined && value.length < rule.minLength)
    return `${label} needs at least ${rule.minLength} characters.`;
  if (rule.maxLength !== undefined && value.length > rule.maxLength)
    return `${label} may have at most ${rule.maxLength} characters.`;
  if (rule.format === "email" && !/^[^@\s]+@[^@\s]+$/.test(value)) return `${label} must be an email address.`;
  const n = Number(value);
  if (rule.minimum !== undefined && n < rule.minimum) return `${label} must be at least ${rule.minimum}.`;
  if (rule.maximum !== undefined && n > rule.maximum) return `${label} may be at most ${rule.maximum}.`;
  return null;
}
