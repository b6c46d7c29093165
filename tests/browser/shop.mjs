// Drives real Chromium (playwright-core) through the shop at the gateway's `/` as its people
// would: a shopper signs up, searches, fills a cart by mouse and by keyboard, changes a
// quantity, pays with the succeeding test token and watches the order reach CONFIRMED without
// reloading; pays again with a declined token and is told why; reloads and is still logged
// in; another shopper is refused the first one's order and the admin page; the admin ships the
// order and the first shopper's open page shows it shipped. Every page is checked with
// axe-core (no serious or critical violation) and photographed at 375 and 1,280 px.
//
// Usage: node shop.mjs <gateway base URL> <search term> <artifacts dir> <product id>:<name>...
// Prints one JSON line with what each check saw and exits 1 if any check failed. Every request
// is recorded; one leaving the machine fails the run, and so does any console or page error.

import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { launchChromium, watchPage } from "./support.mjs";

const gateway = new URL(process.argv[2] ?? "");
const searchTerm = process.argv[3] ?? "";
const artifacts = process.argv[4] ?? "shop-artifacts";
const products = process.argv.slice(5).map((p) => {
  const [id, ...name] = p.split(":");
  return { id, name: name.join(":") };
});
const TIMEOUT = 30_000;
const WIDTHS = [375, 1280];
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

const report = { checks: {}, offsite: [], consoleErrors: [], accessibility: {}, screenshots: [], overflow: [], graphqlErrors: [], failedRequests: [], navigations: [], consoleWarnings: [] };
mkdirSync(artifacts, { recursive: true });

function watch(page, label) {
  watchPage(page, label, report);
  page.on("console", (m) => m.type() === "warning" && report.consoleWarnings.push(`${label}: ${m.text()}`));
  page.on("requestfailed", (r) => report.failedRequests.push(`${label}: ${r.url()} ${r.failure()?.errorText}`));
  page.on("framenavigated", (f) => f === page.mainFrame() && report.navigations.push(`${label}: ${f.url()}`));
  // GraphQL errors the page was answered with (some are expected: a refused order, a declined
  // import), so a failure shows what the gateway said.
  page.on("response", async (r) => {
    if (!r.url().endsWith("/graphql") || r.request().method() !== "POST") return;
    const body = await r.json().catch(() => null);
    if (body?.errors) {
      const operation = /^\s*(?:query|mutation)\s+(\w+)/.exec(JSON.parse(r.request().postData() ?? "{}").query ?? "")?.[1];
      report.graphqlErrors.push(`${label}: ${operation}: ${body.errors.map((e) => `${e.extensions?.code} ${e.message}`).join("; ")}`);
    }
  });
}

let lastPage;
async function check(name, body) {
  try {
    report.checks[name] = { ok: true, ...(await body()) };
  } catch (e) {
    const seen = await lastPage?.locator("body").innerText().catch(() => "") ?? "";
    report.checks[name] = { ok: false, error: String(e?.stack ?? e), seen };
  }
}

/** axe-core on the page as it is (run through the debugger, so the page's CSP does not apply). */
async function audit(page, name) {
  const violations = await page.evaluate(
    `${axeSource};
     axe.run(document, { resultTypes: ["violations"] }).then((r) =>
       r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, help: v.help })))`,
  );
  report.accessibility[name] = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
}

/** Audits the page and photographs it at each width. */
async function capture(page, name) {
  await audit(page, name);
  const width = page.viewportSize()?.width ?? 1280;
  for (const w of WIDTHS) {
    await page.setViewportSize({ width: w, height: 900 });
    const path = `${artifacts}/${name}-${w}.png`;
    await page.screenshot({ path, fullPage: true });
    report.screenshots.push(path);
    // Nothing wider than the screen: no sideways scrolling on a phone.
    const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
    if (scrollWidth > w) report.overflow.push(`${name} at ${w} px is ${scrollWidth} px wide`);
  }
  await page.setViewportSize({ width, height: 900 });
}

async function signUp(page, name, email) {
  await page.goto(`${gateway.origin}/#/signup`);
  await page.getByLabel("Name", { exact: true }).fill(name);
  await page.getByLabel("Email", { exact: true }).fill(email);
  await page.getByLabel("Password", { exact: true }).fill("correct horse battery");
  await page.getByRole("button", { name: "Sign up" }).click();
  await page.getByRole("button", { name: "Log out" }).waitFor();
}

async function addToCart(page, product, quantity, { keyboard = false } = {}) {
  await page.goto(`${gateway.origin}/#/product/${product.id}`);
  await page.getByRole("heading", { name: product.name }).waitFor();
  const field = page.getByLabel("Quantity");
  await field.fill(String(quantity));
  if (keyboard) {
    await field.focus();
    await page.keyboard.press("Tab");
    await page.keyboard.press("Enter");
  } else {
    await page.getByRole("button", { name: "Add to cart" }).click();
  }
  await page.getByText(`Added ${quantity} to your cart.`).waitFor();
}

async function checkOut(page, token) {
  await page.goto(`${gateway.origin}/#/cart`);
  await page.getByRole("radio", { name: new RegExp(token) }).check();
  await page.getByRole("button", { name: "Place order" }).click();
  await page.waitForURL(/#\/orders\/\d+$/);
  return page.url().split("/").pop();
}

async function statusIs(page, status) {
  await page.getByTestId("order-status").getByText(status, { exact: true }).waitFor();
}

async function available(id) {
  const r = await fetch(`${gateway.origin}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query: `{ product(id: "${id}") { stock { available } } }` }),
  });
  return (await r.json()).data.product.stock.available;
}

const browser = await launchChromium();
const stamp = Date.now();
const shopperEmail = `shopper-${stamp}@example.com`;
let firstOrder;
try {
  const shopper = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  shopper.setDefaultTimeout(TIMEOUT);
  const page = await shopper.newPage();
  lastPage = page;
  watch(page, "shopper");

  await check("purchase", async () => {
    await page.goto(`${gateway.origin}/`);
    await page.getByRole("heading", { name: "Products" }).waitFor();
    await capture(page, "products");
    await page.getByRole("link", { name: "Sign up" }).click();
    await page.getByRole("heading", { name: "Sign up" }).waitFor();
    await capture(page, "signup");
    await signUp(page, "Pat Shopper", shopperEmail);
    // Search finds both products by the term they share.
    await page.goto(`${gateway.origin}/`);
    await page.getByLabel("Search by name or SKU").fill(searchTerm);
    await page.getByRole("button", { name: "Search" }).click();
    for (const p of products) await page.getByRole("link", { name: p.name }).waitFor();
    const [first, second] = products;
    await page.getByRole("link", { name: first.name }).click();
    await page.getByRole("heading", { name: first.name }).waitFor();
    await capture(page, "product");
    await addToCart(page, first, 1);
    await addToCart(page, second, 1, { keyboard: true });
    await page.goto(`${gateway.origin}/#/cart`);
    const quantity = page.getByLabel(`Quantity of ${first.name}`);
    const before = await page.getByTestId("cart-total").textContent();
    await quantity.fill("2");
    await quantity.press("Tab");
    const total = await page.getByTestId("cart-total").filter({ hasNotText: before }).textContent();
    await capture(page, "cart");
    // A marker the page keeps only if it is never reloaded.
    await page.evaluate(() => (window.notReloaded = true));
    firstOrder = await checkOut(page, "tok_visa");
    await statusIs(page, "confirmed");
    const timeline = await page.getByTestId("timeline").locator("li").allTextContents();
    const stayed = await page.evaluate(() => window.notReloaded === true);
    await capture(page, "order");
    return { order: firstOrder, total, timeline, stayed };
  });

  await check("declined", async () => {
    const product = products[0];
    const before = await available(product.id);
    await addToCart(page, product, 1);
    await checkOut(page, "tok_declined");
    await statusIs(page, "cancelled");
    const why = await page.getByTestId("order-why").textContent();
    const after = await available(product.id);
    return { why, before, after };
  });

  await check("session", async () => {
    await page.goto(`${gateway.origin}/#/orders`);
    await page.reload();
    await page.getByRole("button", { name: "Log out" }).waitFor();
    await page.locator(".orders li").first().waitFor();
    const orders = await page.locator(".orders li").count();
    await capture(page, "orders");
    return { orders };
  });

  await check("privacy", async () => {
    const other = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    other.setDefaultTimeout(TIMEOUT);
    const stranger = await other.newPage();
    watch(stranger, "stranger");
    await signUp(stranger, "Sam Stranger", `stranger-${stamp}@example.com`);
    await stranger.goto(`${gateway.origin}/#/orders/${firstOrder}`);
    const order = await stranger.getByRole("alert").textContent();
    await stranger.goto(`${gateway.origin}/#/admin`);
    const admin = await stranger.getByRole("alert").textContent();
    await capture(stranger, "admin-refused");
    // The API refuses too: the page hides nothing the services would allow.
    const ship = await stranger.evaluate(async (id) => {
      const { accessToken } = JSON.parse(localStorage.getItem("shopmesh.session"));
      const r = await fetch("/graphql", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${accessToken}` },
        body: JSON.stringify({ query: `mutation { shipOrder(id: "${id}") { status } }` }),
      });
      return (await r.json()).errors?.[0]?.extensions?.code;
    }, firstOrder);
    await other.close();
    return { order, admin, ship };
  });

  await check("admin", async () => {
    // The shopper's page stays open on the order; the admin works in another browser.
    await page.goto(`${gateway.origin}/#/orders/${firstOrder}`);
    await statusIs(page, "confirmed");
    await page.evaluate(() => (window.notReloaded = true));
    const staff = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    staff.setDefaultTimeout(TIMEOUT);
    const admin = await staff.newPage();
    lastPage = admin;
    watch(admin, "admin");
    await admin.goto(`${gateway.origin}/#/login`);
    await capture(admin, "login");
    await admin.getByLabel("Email").fill("admin@example.com");
    await admin.getByLabel("Password").fill("shopmesh-demo");
    await admin.getByRole("button", { name: "Log in" }).click();
    await admin.getByRole("link", { name: "Admin" }).click();

    // A product, created from the form, then given stock with a reason.
    const sku = `ADM-${stamp}`;
    const tabs = admin.getByRole("navigation", { name: "Admin" });
    await tabs.getByRole("link", { name: "Products" }).click();
    await admin.getByRole("link", { name: "New product" }).click();
    // The list's search box is labelled "Name or SKU": wait for the form, and match its labels exactly,
    // or the fills can land in the list that is still on screen.
    await admin.getByRole("heading", { name: "New product" }).waitFor();
    await admin.getByLabel("SKU", { exact: true }).fill(sku);
    await admin.getByLabel("Name", { exact: true }).fill(`${searchTerm} Teapot`);
    await admin.getByLabel("Price", { exact: true }).fill("19.90");
    await admin.getByRole("button", { name: "Create product" }).click();
    await admin.getByRole("heading", { name: `Edit ${searchTerm} Teapot` }).waitFor();
    await admin.getByLabel("Units (+ or −)").fill("7");
    await admin.getByLabel("Reason").fill("delivery");
    await admin.getByRole("button", { name: "Adjust stock" }).click();
    await admin.getByText("Stock adjusted by 7").waitFor();
    const stock = await admin.getByTestId("stock").textContent();
    await capture(admin, "admin-product");

    // An import with one bad row: reported, and nothing written.
    await tabs.getByRole("link", { name: "Import CSV" }).click();
    const good = `IMP-${stamp}`;
    await admin.getByLabel("or paste it").fill(
      `sku,name,description,price_minor,currency,active,image_url\n${good},Imported mug,,900,EUR,true,\nBAD-${stamp},Bad mug,,900,XXX,true,\n`,
    );
    await admin.getByRole("button", { name: "Import" }).click();
    await admin.getByTestId("rejected").waitFor();
    const rejected = await admin.getByTestId("rejected").locator("tbody tr").allTextContents();
    await capture(admin, "admin-import");
    const written = await fetch(`${gateway.origin}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: `{ productBySku(sku: "${good}") { id } }` }),
    }).then((r) => r.json());

    // The confirmed order, found by status and shipped; the shopper's open page shows it.
    await tabs.getByRole("link", { name: "Orders" }).click();
    await admin.getByLabel("Status").selectOption("CONFIRMED");
    await capture(admin, "admin-orders");
    await admin.getByRole("button", { name: `Ship order ${firstOrder}` }).click();
    await admin.getByRole("button", { name: `Ship order ${firstOrder}` }).waitFor({ state: "detached" });
    await statusIs(page, "shipped");
    const stayed = await page.evaluate(() => window.notReloaded === true);

    // The event the notifications service gave up on, moved back once its cause is fixed.
    await tabs.getByRole("link", { name: "Dead letters" }).click();
    const waiting = admin.getByTestId("dead-letters");
    const deadLetters = [await waiting.textContent()];
    await capture(admin, "admin-dead-letters");
    await admin.getByRole("button", { name: "Redrive" }).click();
    const redrive = await admin.getByRole("status").textContent();
    deadLetters.push(await waiting.filter({ hasNotText: deadLetters[0] }).textContent());
    await staff.close();
    lastPage = page;
    return { stock, rejected, importedWithBadRow: written.data?.productBySku ?? null, stayed, deadLetters, redrive };
  });

  await check("logout", async () => {
    const header = page.getByRole("banner");
    await header.getByRole("button", { name: "Log out" }).click();
    await header.getByRole("link", { name: "Log in" }).waitFor();
    await page.reload();
    await header.getByRole("link", { name: "Log in" }).waitFor();
    return { stored: await page.evaluate(() => localStorage.getItem("shopmesh.session")) };
  });
  await shopper.close();
} finally {
  await browser.close();
}

const failed = Object.values(report.checks).some((c) => !c.ok);
console.log(JSON.stringify(report));
process.exit(failed ? 1 : 0);
