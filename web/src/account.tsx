// Log-in and sign-up, their fields checked with the contract's rules before anything is sent.
import { SignUpDocument } from "@shopmesh/sdk";
import { useState } from "preact/hooks";

import { go } from "./nav";
import { graphql, logIn } from "./session";
import { breaks, explain, inputAttributes, ruleOf } from "./words";

/** Only fragments of this app: a `next` pointing anywhere else is ignored. */
function returnTo(next: string | null): string {
  return next !== null && next.startsWith("#/") ? next : "#/";
}

interface FieldProps {
  id: string;
  label: string;
  type: string;
  autocomplete: string;
  rule: ReturnType<typeof ruleOf>;
  hint?: string;
}

function Field({ id, label, type, autocomplete, rule, hint }: FieldProps) {
  return (
    <p class="field">
      <label for={id}>{label}</label>
      <input
        id={id}
        name={id}
        type={type}
        autocomplete={autocomplete}
        aria-describedby={hint ? `${id}-hint` : undefined}
        {...inputAttributes(rule)}
      />
      {hint && (
        <span id={`${id}-hint`} class="muted">
          {hint}
        </span>
      )}
    </p>
  );
}

function value(form: HTMLFormElement, name: string): string {
  const v = new FormData(form).get(name);
  return typeof v === "string" ? v : "";
}

/** `#/login`. */
export function LogInPage({ next }: { next: string | null }) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  return (
    <section class="narrow">
      <h1>Log in</h1>
      <form
        noValidate
        onSubmit={async (e) => {
          e.preventDefault();
          const form = e.currentTarget;
          const email = value(form, "email");
          const password = value(form, "password");
          const wrong =
            breaks("Email", ruleOf("Credentials", "email"), email) ??
            breaks("Password", ruleOf("Credentials", "password"), password);
          if (wrong) return setError(wrong);
          setBusy(true);
          const failed = await logIn(email, password);
          setBusy(false);
          if (failed) return setError(explain(failed));
          go(returnTo(next));
        }}
      >
        <Field id="email" label="Email" type="email" autocomplete="username" rule={ruleOf("Credentials", "email")} />
        <Field
          id="password"
          label="Password"
          type="password"
          autocomplete="current-password"
          rule={ruleOf("Credentials", "password")}
        />
        {error && <p role="alert">{error}</p>}
        <button type="submit" disabled={busy}>
          Log in
        </button>
      </form>
      <p>
        New here? <a href={`#/signup${next ? `?next=${encodeURIComponent(next)}` : ""}`}>Sign up</a>
      </p>
    </section>
  );
}

/** `#/signup`: registers, then logs in. */
export function SignUpPage({ next }: { next: string | null }) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  // One key per sign-up: a retry after a lost answer registers once.
  const [key] = useState(() => crypto.randomUUID());
  const rules = {
    name: ruleOf("CreateUserRequest", "name"),
    email: ruleOf("CreateUserRequest", "email"),
    password: ruleOf("CreateUserRequest", "password"),
  };
  return (
    <section class="narrow">
      <h1>Sign up</h1>
      <form
        noValidate
        onSubmit={async (e) => {
          e.preventDefault();
          const form = e.currentTarget;
          const input = { name: value(form, "name"), email: value(form, "email"), password: value(form, "password") };
          const wrong =
            breaks("Name", rules.name, input.name) ??
            breaks("Email", rules.email, input.email) ??
            breaks("Password", rules.password, input.password);
          if (wrong) return setError(wrong);
          setBusy(true);
          const created = await graphql.request(SignUpDocument, { input, idempotencyKey: key });
          const failed = created.ok ? await logIn(input.email, input.password) : created.errors;
          setBusy(false);
          if (failed) return setError(explain(failed));
          go(returnTo(next));
        }}
      >
        <Field id="name" label="Name" type="text" autocomplete="name" rule={rules.name} />
        <Field id="email" label="Email" type="email" autocomplete="email" rule={rules.email} />
        <Field
          id="password"
          label="Password"
          type="password"
          autocomplete="new-password"
          rule={rules.password}
          hint={`${rules.password.minLength ?? 1} to ${rules.password.maxLength ?? "any number of"} characters`}
        />
        {error && <p role="alert">{error}</p>}
        <button type="submit" disabled={busy}>
          Sign up
        </button>
      </form>
      <p>
        Have an account? <a href={`#/login${next ? `?next=${encodeURIComponent(next)}` : ""}`}>Log in</a>
      </p>
    </section>
  );
}
