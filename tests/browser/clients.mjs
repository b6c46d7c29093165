// GraphQL client libraries as an application uses them, unmodified, against a running gateway,
// with the SDK's own operation documents (schema/graphql/operations/shop.graphql):
// - urql with graphcache (queries sent with GET, urql's default), and
// - Apollo Client with its InMemoryCache, and
// - Apollo Client sending automatic persisted queries (hashes over GET) for a public query.
// Usage: node clients.mjs <gateway base URL> <access token> <id of one of the caller's orders>.
// Prints one JSON line with what each client saw (every request's method, the answers, the
// warnings the libraries logged) and exits 1 if a client failed.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { parse } from "graphql";
import { Client, fetchExchange } from "@urql/core";
import { cacheExchange } from "@urql/exchange-graphcache";
import { ApolloClient, HttpLink, InMemoryCache } from "@apollo/client";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";

const [base, token, orderId] = process.argv.slice(2);
const endpoint = `${base}/graphql`;
const shop = parse(
  readFileSync(new URL("../../schema/graphql/operations/shop.graphql", import.meta.url), "utf8"),
);

/** One operation of the SDK's document, by name, as a document of its own. */
function operation(name) {
  const definition = shop.definitions.find((d) => d.name?.value === name);
  if (!definition) throw new Error(`no operation ${name} in shop.graphql`);
  return { kind: "Document", definitions: [definition] };
}

const report = { ok: true, warnings: [], urql: {}, apollo: {}, persisted: {} };
// Both libraries report what they cannot cache (a missing field, an entity without a key) as
// console warnings; every one is a finding.
for (const level of ["warn", "error"]) {
  console[level] = (...args) => report.warnings.push(args.map(String).join(" "));
}

/** `fetch`, recording each request's method in `methods`. */
function recording(methods) {
  return (input, init = {}) => {
    methods.push(init.method ?? "GET");
    return fetch(input, init);
  };
}

async function urql() {
  const methods = [];
  const client = new Client({
    url: endpoint,
    exchanges: [cacheExchange({}), fetchExchange],
    fetch: recording(methods),
    fetchOptions: { headers: { authorization: `Bearer ${token}` } },
  });
  const run = async (kind, name, variables) => {
    const result = await client[kind](operation(name), variables).toPromise();
    if (result.error) throw new Error(`urql ${name}: ${result.error.message}`);
    return result.data;
  };
  const me = await run("query", "Me", {});
  const order = await run("query", "GetOrder", { id: orderId });
  const products = await run("query", "Products", { first: 3 });
  const missing = await run("query", "UserName", { id: "999999" });
  return {
    methods,
    me: me.me.name,
    order: order.order.id,
    products: products.products.nodes.length,
    missingName: missing.userName,
  };
}

async function apollo() {
  const methods = [];
  const client = new ApolloClient({
    link: new HttpLink({
      uri: endpoint,
      fetch: recording(methods),
      headers: { authorization: `Bearer ${token}` },
    }),
    cache: new InMemoryCache(),
  });
  const me = await client.query({ query: operation("Me") });
  const order = await client.query({ query: operation("GetOrder"), variables: { id: orderId } });
  const normalized = Object.keys(client.cache.extract()).filter((k) => k !== "ROOT_QUERY");
  return { methods, me: me.data.me.name, order: order.data.order.id, normalized };
}

/** Two visitors' Apollo Clients asking for the product list by its hash over GET. */
async function persisted() {
  const requests = [];
  const visitor = () =>
    new ApolloClient({
      link: new PersistedQueryLink({
        sha256: (query) => createHash("sha256").update(query).digest("hex"),
        useGETForHashedQueries: true,
      }).concat(
        new HttpLink({
          uri: endpoint,
          fetch: async (input, init = {}) => {
            const response = await fetch(input, init);
            const sent = init.method === "POST" ? "query" : new URL(input).searchParams.has("query") ? "query" : "hash";
            requests.push(`${init.method ?? "GET"} ${sent} ${response.status} ${response.headers.get("cache-control")}`);
            return response;
          },
        }),
      ),
      cache: new InMemoryCache(),
    });
  const first = await visitor().query({ query: operation("Products"), variables: { first: 3 } });
  const second = await visitor().query({ query: operation("Products"), variables: { first: 3 } });
  return { requests, products: [first, second].map((r) => r.data.products.nodes.length) };
}

for (const [name, run] of [["urql", urql], ["apollo", apollo], ["persisted", persisted]]) {
  try {
    report[name] = await run();
  } catch (e) {
    report.ok = false;
    report[name] = { error: String(e?.stack ?? e) };
  }
}
process.stdout.write(`${JSON.stringify(report)}\n`);
process.exit(report.ok ? 0 : 1);
