// A small shop client on @shopmesh/sdk: register, log in, place orders over GraphQL and REST,
// page through them, read an order's notifications, handle a rejected order as a typed error,
// and buy a product: cart, checkout with a test card, hear the order reach CONFIRMED through a
// subscription.
// Usage: node examples/dist/shop.js http://localhost:3000 [productId to buy]
// Prints one JSON report line at the end (tests/e2e/tests/sdk.rs reads it).
import { randomUUID } from "node:crypto";
import WebSocket from "ws";
import {
  CheckoutDocument,
  CreateOrderDocument,
  CreateUserDocument,
  GetOrderDocument,
  LogInDocument,
  OrderProgressDocument,
  OrdersByUserDocument,
  SetCartLineDocument,
  WatchOrdersDocument,
  createGraphqlClient,
  createSubscriptionClient,
  createRestClient,
  type GraphqlResult,
  type OrderStatus,
  type OrdersByUserQuery,
} from "@shopmesh/sdk";

const baseUrl = process.argv[2] ?? "http://localhost:3000";
let token: string | undefined;
const graphql = createGraphqlClient({ baseUrl, token: () => token });
const rest = createRestClient({ baseUrl, token: () => token });

function fail(step: string, detail: unknown): never {
  console.log(JSON.stringify({ ok: false, step, detail }));
  process.exit(1);
}

const email = `sdk-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
const password = "sdk-example-password";
const created = await graphql.request(CreateUserDocument, { input: { name: "SDK Example", email, password } });
if (!created.ok) fail("createUser", created.errors);
const userId: string = created.data.createUser.id;

const login = await graphql.request(LogInDocument, { email, password });
if (!login.ok) fail("login", login.errors);
token = login.data.login.accessToken;

// Three orders over GraphQL, one over REST.
const statuses: OrderStatus[] = [];
for (const productId of ["101", "102", "103"]) {
  const order = await graphql.request(CreateOrderDocument, { input: { userId, productId, quantity: 2 } });
  if (!order.ok) fail("createOrder", order.errors);
  statuses.push(order.data.createOrder.status);
}
const restOrder = await rest.POST("/api/orders", {
  body: { userId: Number(userId), productId: 104, quantity: 1 },
});
if (restOrder.error) fail("POST /api/orders", restOrder.error);
const restOrderId = restOrder.data.id;

// Page through the user's orders two at a time.
const seen: string[] = [];
let after: string | null = null;
let pages = 0;
for (;;) {
  const page: GraphqlResult<OrdersByUserQuery> = await graphql.request(OrdersByUserDocument, { userId, first: 2, after });
  if (!page.ok) fail("ordersByUser", page.errors);
  pages += 1;
  seen.push(...page.data.ordersByUser.nodes.map((o) => o.id));
  if (!page.data.ordersByUser.pageInfo.hasNextPage) break;
  after = page.data.ordersByUser.pageInfo.endCursor;
}

// The REST order's notification arrives through RabbitMQ; wait for it.
let notifications = 0;
for (let i = 0; i < 120 && notifications === 0; i++) {
  const order = await graphql.request(GetOrderDocument, { id: String(restOrderId) });
  if (!order.ok) fail("order", order.errors);
  notifications = order.data.order?.notifications.length ?? 0;
  if (notifications === 0) await new Promise((r) => setTimeout(r, 250));
}

// A rejected order: a typed GraphQL error and a problem+json REST error.
const rejected = await graphql.request(CreateOrderDocument, { input: { userId, productId: "101", quantity: 0 } });
const graphqlError = rejected.ok ? null : { code: rejected.errors[0]?.code, message: rejected.errors[0]?.message };
const restRejected = await rest.POST("/api/orders", { body: { userId: Number(userId), productId: 101, quantity: 0 } });
const restError = restRejected.error
  ? { status: restRejected.response.status, type: restRejected.error.type, title: restRejected.error.title }
  : null;

// Buy a product: put it in the cart, check out with a test card, follow the saga.
let purchase: { status: OrderStatus; total: number | undefined; timeline: string[]; heard: string[] } | null = null;
const toBuy = process.argv[3];
if (toBuy) {
  const cart = await graphql.request(SetCartLineDocument, { productId: toBuy, quantity: 1 });
  if (!cart.ok) fail("setCartLine", cart.errors);
  // Listen before buying, so no change is missed; the order's changes arrive as they happen.
  const live = createSubscriptionClient({ baseUrl, token: () => token, webSocketImpl: WebSocket });
  const heard: string[] = [];
  let orderId: string | undefined;
  const confirmed = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not confirmed within 30 s; heard ${heard.join(",")}`)), 30_000);
    live.subscribe(WatchOrdersDocument, {}, {
      next: (data) => {
        const change = data.orderStatusChanged;
        if (change.orderId !== orderId) return;
        heard.push(change.to);
        if (change.to === "CONFIRMED") {
          clearTimeout(timer);
          resolve();
        }
      },
      error: (errors) => reject(new Error(errors.map((e) => `${e.code}: ${e.message}`).join("; "))),
    });
  });
  // The socket is open (its connection_ack) once a subscription is running on it.
  await new Promise((r) => setTimeout(r, 500));
  // One key per purchase: a retry with it answers the same order instead of buying twice.
  const bought = await graphql.request(CheckoutDocument, { paymentToken: "tok_visa", idempotencyKey: randomUUID() });
  if (!bought.ok) fail("checkout", bought.errors);
  orderId = bought.data.checkout.id;
  let status: OrderStatus = bought.data.checkout.status;
  await confirmed;
  await live.dispose();
  const seen = await graphql.request(OrderProgressDocument, { id: orderId });
  if (!seen.ok) fail("order status", seen.errors);
  status = seen.data.order?.status ?? status;
  const timeline = seen.data.order?.timeline.map((t) => t.to) ?? [];
  purchase = { status, total: bought.data.checkout.total?.amountMinor, timeline, heard };
}

console.log(
  JSON.stringify({
    ok: true,
    purchase,
    statuses,
    orders: seen.length,
    pages,
    notifications,
    graphqlError,
    restError,
    rateLimit: login.rateLimit,
  }),
);
