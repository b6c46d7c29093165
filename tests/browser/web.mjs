// Drives real Chromium (playwright-core) against a running gateway, as a front-end developer
// would: with a token from POST /api/auth/token (the demo user Alice), the GraphiQL page with
// the token in its headers editor, Swagger UI's "Authorize" and "Try it out", and a page on
// another origin calling the gateway through CORS with the token, and a purchase made in
// GraphiQL (checkout in one tab, the order followed to CONFIRMED by a subscription in another,
// without reloading). Usage: node web.mjs <gateway base
// URL> <id of a product with stock>. Prints one JSON line with what
// each check saw and exits 1 if any check failed.
//
// Every request the browser makes is recorded; one to a host other than the gateway's machine
// fails the run, and so does any console error or uncaught page error.

import http from "node:http";
import { launchChromium, watchPage } from "./support.mjs";

const gateway = new URL(process.argv[2] ?? "");
const productToBuy = process.argv[3];
const TIMEOUT = 30_000;

const report = { checks: {}, offsite: [], consoleErrors: [] };

// Log in as a client would.
const login = await fetch(`${gateway.origin}/api/auth/token`, {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ email: "alice@example.com", password: "shopmesh-demo" }),
});
if (login.status !== 200) {
  console.log(JSON.stringify({ ok: false, login: login.status, body: await login.text() }));
  process.exit(1);
}
const { accessToken } = await login.json();

function watch(page, label) {
  watchPage(page, label, report);
}

async function check(name, body) {
  try {
    report.checks[name] = { ok: true, ...(await body()) };
  } catch (e) {
    report.checks[name] = { ok: false, error: String(e?.stack ?? e) };
  }
}

const browser = await launchChromium();
try {
  const context = await browser.newContext();
  context.setDefaultTimeout(TIMEOUT);

  // 1. GraphiQL: loads from the gateway alone, runs an operation, shows its result.
  await check("graphiql", async () => {
    const page = await context.newPage();
    watch(page, "graphiql");
    const query = '{ userName(id: "1") }';
    await page.goto(`${gateway.origin}/graphql?query=${encodeURIComponent(query)}`);
    await page.locator(".graphiql-container").waitFor();
    // The schema arrived by introspection: the documentation explorer lists the root types.
    await page.locator('button[aria-label="Show Documentation Explorer"]').click();
    await page.locator(".graphiql-doc-explorer").getByText("Query").first().waitFor();
    const tabs = await page.locator(".graphiql-tab").count();
    // The token goes into the headers editor, as a developer pastes it.
    await page.getByRole("button", { name: "Headers" }).click();
    await page.locator(".graphiql-editor-tool .graphiql-editor").last().click();
    await page.keyboard.insertText(JSON.stringify({ Authorization: `Bearer ${accessToken}` }));
    await page.locator(".graphiql-execute-button").click();
    const result = page.locator(".result-window");
    await result.getByText("Alice Johnson").waitFor();
    const shown = (await result.innerText()).replace(/\s+/g, " ").trim();
    await page.close();
    return { tabs, shown };
  });

  // 1b. GraphiQL's first minute: a fresh load opens on the log-in tab with the demo user's
  // variables; running it puts the token in the headers, so the next tab (Me) answers with
  // nothing pasted.
  await check("firstMinute", async () => {
    const page = await context.newPage();
    watch(page, "firstMinute");
    await page.goto(`${gateway.origin}/graphql`);
    await page.locator(".graphiql-container").waitFor();
    const firstTab = (await page.locator(".graphiql-tab").first().innerText()).trim();
    await page.locator(".graphiql-execute-button").click();
    const result = page.locator(".result-window");
    await result.getByText("accessToken").waitFor();
    const loggedIn = (await result.innerText()).replace(/\s+/g, " ").trim();
    await page.locator(".graphiql-tab", { hasText: "Me" }).first().click();
    await page.locator(".graphiql-query-editor").getByText("query Me").waitFor();
    // GraphiQL re-reads the operation name a moment after a tab switch (a debounce); a run
    // clicked within it sends the previous tab's name. A person is slower than that.
    await page.waitForTimeout(1000);
    await page.locator(".graphiql-execute-button").click();
    await result.getByText("Alice Johnson").waitFor().catch(async (e) => {
      throw new Error(`${e.message}\nthe Me tab showed: ${await result.innerText()}`);
    });
    const me = (await result.innerText()).replace(/\s+/g, " ").trim();
    await page.close();
    return { firstTab, loggedIn: loggedIn.slice(0, 80), me };
  });

  // 2. Swagger UI: "Try it out" on GET /api/users/{id}/name answers 200 with the name.
  await check("swagger", async () => {
    const page = await context.newPage();
    watch(page, "swagger");
    await page.goto(`${gateway.origin}/docs`);
    // "Authorize" with the bearer token, then the operation sends it.
    await page.locator(".auth-wrapper .authorize").click();
    await page.locator(".modal-ux input").first().fill(accessToken);
    await page.locator(".modal-ux .auth-btn-wrapper .authorize").click();
    await page.locator(".modal-ux .btn-done").click();
    const op = page.locator(".opblock", { hasText: "/api/users/{id}/name" }).first();
    await op.locator(".opblock-summary").click();
    await op.getByRole("button", { name: "Try it out" }).click();
    await op.locator('tr[data-param-name="id"] input').fill("1");
    await op.getByRole("button", { name: "Execute" }).click();
    const status = op.locator(".live-responses-table .response .response-col_status").first();
    await status.waitFor();
    const code = (await status.innerText()).trim();
    const body = (await op.locator(".live-responses-table .response-col_description pre").first().innerText()).trim();
    await page.close();
    if (code !== "200") throw new Error(`Try it out answered ${code}: ${body}`);
    return { status: code, body };
  });

  // 3. CORS: a page served from another origin (another port, and `localhost` rather than the
  // gateway's 127.0.0.1) calls the gateway; the preflight passes and the page can read the
  // rate-limit fields the gateway exposes.
  await check("cors", async () => {
    const app = http.createServer((_, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end("<!doctype html><title>front end</title><p>another origin</p>");
    });
    await new Promise((ok) => app.listen(0, "127.0.0.1", ok));
    const origin = `http://localhost:${app.address().port}`;
    try {
      const page = await context.newPage();
      watch(page, "cors");
      await page.goto(`${origin}/`);
      const seen = await page.evaluate(async ([url, token]) => {
        const resp = await fetch(url, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
          body: JSON.stringify({ query: '{ userName(id: "1") }' }),
        });
        return {
          status: resp.status,
          body: await resp.json(),
          rateLimit: resp.headers.get("ratelimit"),
          rateLimitPolicy: resp.headers.get("ratelimit-policy"),
        };
      }, [`${gateway.origin}/graphql`, accessToken]);
      await page.close();
      if (seen.body?.data?.userName !== "Alice Johnson") throw new Error(JSON.stringify(seen));
      if (!seen.rateLimitPolicy) throw new Error(`RateLimit-Policy not exposed: ${JSON.stringify(seen)}`);
      return { origin, ...seen };
    } finally {
      app.close();
    }
  });

  // 4. A purchase in GraphiQL: the cart filled over REST, `checkout` run in the editor with a
  // test card, and the order heard reaching CONFIRMED by a subscription in another tab.
  await check("purchase", async () => {
    if (!productToBuy) throw new Error("no product to buy was given");
    const cart = await fetch(`${gateway.origin}/api/users/1/cart/lines/${productToBuy}`, {
      method: "PUT",
      headers: { "content-type": "application/json", authorization: `Bearer ${accessToken}` },
      body: JSON.stringify({ quantity: 1 }),
    });
    if (cart.status !== 200) throw new Error(`cart answered ${cart.status}`);
    const page = await context.newPage();
    watch(page, "purchase");
    // Each operation as a developer runs it: opened, the token pasted into the headers, run.
    const opened = async (p, query) => {
      await p.goto(`${gateway.origin}/graphql?query=${encodeURIComponent(query)}`);
      await p.locator(".graphiql-container").waitFor();
      await p.getByRole("button", { name: "Headers" }).click();
      await p.locator(".graphiql-editor-tool .graphiql-editor").last().click();
      await p.keyboard.press("Control+A");
      await p.keyboard.insertText(JSON.stringify({ Authorization: `Bearer ${accessToken}` }));
      await p.locator(".graphiql-execute-button").click();
    };
    const run = async (query, expected) => {
      await opened(page, query);
      const result = page.locator(".result-window");
      await result.getByText(expected).first().waitFor();
      return (await result.innerText()).replace(/\s+/g, " ").trim();
    };
    // A second tab listens before the purchase and is never reloaded.
    const live = await context.newPage();
    watch(live, "live status");
    await opened(live, "subscription { orderStatusChanged { orderId to } }");
    // GraphiQL shows a running subscription with a stop button.
    await live.locator(".graphiql-execute-button[aria-label*='Stop'], .graphiql-execute-button[aria-label*='stop']").first().waitFor();
    const key = crypto.randomUUID();
    const bought = await run(
      `mutation { checkout(paymentToken: "tok_visa", idempotencyKey: "${key}") { id status total { amountMinor currency } } }`,
      "PENDING",
    );
    const id = /"id": "(\d+)"/.exec(bought)?.[1];
    if (!id) throw new Error(`no order id in ${bought}`);
    const heard = live.locator(".result-window");
    await heard.getByText('"CONFIRMED"').first().waitFor();
    const confirmed = (await heard.innerText()).replace(/\s+/g, " ").trim();
    if (!confirmed.includes(`"${id}"`)) throw new Error(`the confirmation heard is not order ${id}'s: ${confirmed}`);
    await live.close();
    await page.close();
    return { bought, confirmed };
  });
} finally {
  await browser.close();
}

const ok =
  Object.values(report.checks).every((c) => c.ok) &&
  report.offsite.length === 0 &&
  report.consoleErrors.length === 0;
console.log(JSON.stringify({ ok, ...report }));
process.exit(ok ? 0 : 1);
