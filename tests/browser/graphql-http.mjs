// The GraphQL-over-HTTP spec's own conformance suite (npm graphql-http, `serverAudits`) against
// a GraphQL endpoint, every request carrying a bearer token (the gateway's rate limit and
// fields want a caller). Usage: node graphql-http.mjs <endpoint URL> <access token>.
// Prints one JSON line: the audits that passed, and those that did not by requirement level
// (MUST, SHOULD, MAY), each with its id, name and reason.

import { serverAudits } from "graphql-http";

const [url, token] = process.argv.slice(2);

// graphql-http's audits call `fetch` with their own headers; the token is added to them.
function fetchFn(input, init = {}) {
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${token}`);
  return fetch(input, { ...init, headers });
}

const report = { ok: [], MUST: [], SHOULD: [], MAY: [] };
for (const { id, name, fn } of serverAudits({ url, fetchFn })) {
  const result = await fn();
  if (result.status === "ok") {
    report.ok.push(id);
  } else {
    const level = name.split(" ")[0];
    report[level].push({ id, name, reason: result.reason });
  }
}
console.log(JSON.stringify(report));
