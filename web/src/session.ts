// The signed-in person: tokens from the gateway's `login`, kept across reloads, traded for new
// ones before they expire (each refresh token is single use) and revoked on log-out.
import {
  LogInDocument,
  LogOutDocument,
  MeDocument,
  RefreshTokenDocument,
  createGraphqlClient,
  createSubscriptionClient,
  type GraphqlError,
  type SubscriptionClient,
} from "@shopmesh/sdk";

/** What the app knows about the signed-in person. */
export interface Person {
  id: string;
  name: string;
  /** From the token; only chooses what the page offers, the services decide what is allowed. */
  admin: boolean;
}

interface Tokens {
  accessToken: string;
  refreshToken: string;
  /** Epoch milliseconds. */
  expiresAt: number;
}

const STORAGE_KEY = "shopmesh.session";
/** Refresh this long before the access token expires. */
const REFRESH_MARGIN_MS = 30_000;

let tokens: Tokens | null = load();
let person: Person | null = null;
let refreshTimer: ReturnType<typeof setTimeout> | undefined;
let socket: SubscriptionClient | null = null;
const listeners = new Set<() => void>();

/** GraphQL against this gateway, with the current access token. */
export const graphql = createGraphqlClient({
  baseUrl: location.origin,
  token: () => tokens?.accessToken,
});

function load(): Tokens | null {
  try {
    const stored = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "null") as Tokens | null;
    return stored && typeof stored.refreshToken === "string" ? stored : null;
  } catch {
    return null;
  }
}

function changed(): void {
  for (const listener of listeners) listener();
}

/** Calls `listener` whenever the person signs in or out. */
export function onSessionChange(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** The signed-in person, or null. */
export function currentPerson(): Person | null {
  return person;
}

function roleOf(accessToken: string): string | undefined {
  try {
    const payload = accessToken.split(".")[1] ?? "";
    const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
    return (JSON.parse(json) as { role?: string }).role;
  } catch {
    return undefined;
  }
}

async function keep(next: Tokens | null): Promise<GraphqlError[] | null> {
  tokens = next;
  clearTimeout(refreshTimer);
  void socket?.dispose();
  socket = null;
  if (next === null) {
    localStorage.removeItem(STORAGE_KEY);
    person = null;
    changed();
    return null;
  }
  localStorage.setItem(STORAGE_KEY, JSON.stringify(next));
  refreshTimer = setTimeout(() => void refresh(), Math.max(next.expiresAt - Date.now() - REFRESH_MARGIN_MS, 1_000));
  const me = await graphql.request(MeDocument, {}).catch((e: unknown) => {
    // No answer at all (the network, or a navigation cutting the request short).
    console.warn("shopmesh: who am I?", e);
    return null;
  });
  if (me === null) return [{ message: "no answer", code: "BAD_RESPONSE", extensions: {} }];
  if (!me.ok) {
    console.warn("shopmesh: who am I?", me.errors);
    return me.errors;
  }
  person = { id: me.data.me.id, name: me.data.me.name, admin: roleOf(next.accessToken) === "admin" };
  changed();
  return null;
}

function fromPayload(p: { accessToken: string; refreshToken: string; expiresIn: number }): Tokens {
  return { accessToken: p.accessToken, refreshToken: p.refreshToken, expiresAt: Date.now() + p.expiresIn * 1000 };
}

/**
 * Trades the refresh token for new tokens. Tabs share one session: the Web Lock lets one tab
 * refresh at a time, and a tab that finds the stored token already traded by another uses it
 * (trading a used refresh token again would revoke the whole log-in).
 */
async function refresh(): Promise<void> {
  const held = tokens?.refreshToken;
  await navigator.locks.request("shopmesh.refresh", async () => {
    const stored = load();
    if (stored && stored.refreshToken !== held && stored.expiresAt - Date.now() > REFRESH_MARGIN_MS) {
      await keep(stored);
      return;
    }
    if (!stored) {
      await keep(null);
      return;
    }
    const result = await graphql.request(RefreshTokenDocument, { refreshToken: stored.refreshToken }).catch(() => null);
    if (result?.ok) await keep(fromPayload(result.data.refreshToken));
    else if (result !== null && refused(result.errors)) await keep(null);
    // Unanswered: the token is unused, so keep it and try again shortly.
    else refreshTimer = setTimeout(() => void refresh(), 5_000);
  });
}

/** Whether `errors` say the tokens are no good (rather than that the shop could not answer). */
function refused(errors: readonly GraphqlError[]): boolean {
  return errors.some((e) => e.code === "UNAUTHENTICATED" || e.code === "BAD_USER_INPUT");
}

/**
 * Restores the session a reload interrupted; resolves once the person is known (or not). Only
 * tokens the gateway refuses end the session: a moment when it cannot answer does not.
 */
export async function resume(): Promise<void> {
  for (let attempt = 0; tokens !== null && attempt < 3; attempt++) {
    if (tokens.expiresAt - Date.now() <= REFRESH_MARGIN_MS) return refresh();
    const failed = await keep(tokens);
    if (failed === null) return;
    if (refused(failed)) return refresh();
    await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
  }
}

/** Logs in; the errors to show when it fails. */
export async function logIn(email: string, password: string): Promise<GraphqlError[] | null> {
  const result = await graphql.request(LogInDocument, { email, password });
  if (!result.ok) return result.errors;
  return keep(fromPayload(result.data.login));
}

/** Revokes the log-in (every token of it) and forgets it here. */
export async function logOut(): Promise<void> {
  const held = tokens?.refreshToken;
  if (held !== undefined) await graphql.request(LogOutDocument, { refreshToken: held });
  await keep(null);
}

/** The WebSocket for subscriptions, opened with the current access token. */
export function subscriptions(): SubscriptionClient {
  socket ??= createSubscriptionClient({ baseUrl: location.origin, token: () => tokens?.accessToken });
  return socket;
}
