//! A small GraphQL playground page served by the gateway itself, with no external assets, so
//! it works offline. It sends queries to `POST /graphql` and shows the JSON answer.

/// The page served at `GET /graphql`.
pub const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>shopmesh GraphQL playground</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0; display: grid; grid-template-columns: 1fr 1fr; height: 100vh; }
  header { grid-column: 1 / 3; padding: .5rem 1rem; background: #1f2937; color: #f9fafb; display: flex; gap: .5rem; align-items: center; }
  header h1 { font-size: 1rem; margin: 0 1rem 0 0; }
  section { display: flex; flex-direction: column; padding: .5rem; min-height: 0; }
  textarea, pre { flex: 1; font-family: ui-monospace, monospace; font-size: 13px; border: 1px solid #d1d5db; border-radius: 4px; padding: .5rem; margin: 0; overflow: auto; }
  #variables { flex: 0 0 6rem; margin-top: .5rem; }
  button, select { padding: .3rem .8rem; }
</style>
</head>
<body>
<header>
  <h1>shopmesh GraphQL</h1>
  <select id="examples" aria-label="examples"></select>
  <button id="run" title="Ctrl+Enter">Run</button>
  <span id="status"></span>
</header>
<section>
  <textarea id="query" spellcheck="false" aria-label="query"></textarea>
  <textarea id="variables" spellcheck="false" aria-label="variables">{}</textarea>
</section>
<section><pre id="result" aria-label="result"></pre></section>
<script>
const examples = {
  "createOrder": ["mutation CreateOrder($input: CreateOrderInput!) {\n  createOrder(input: $input) {\n    id\n    status\n    createdAt\n    user { name }\n  }\n}", {"input": {"userId": "1", "productId": "101", "quantity": 2}}],
  "getOrder": ["query GetOrder($id: ID!) {\n  order(id: $id) {\n    id\n    quantity\n    status\n    user { id name email }\n    notifications { message status sentAt }\n  }\n}", {"id": "1"}],
  "userName": ["query UserName($id: ID!) {\n  userName(id: $id)\n}", {"id": "1"}],
  "ordersByUser": ["query Orders($userId: ID!) {\n  ordersByUser(userId: $userId, first: 5) {\n    nodes { id productId quantity user { name } }\n    pageInfo { hasNextPage endCursor }\n  }\n}", {"userId": "1"}]
};
const $ = (id) => document.getElementById(id);
for (const name of Object.keys(examples)) { const o = document.createElement("option"); o.textContent = name; $("examples").appendChild(o); }
function pick(name) { $("query").value = examples[name][0]; $("variables").value = JSON.stringify(examples[name][1], null, 2); }
$("examples").onchange = (e) => pick(e.target.value);
pick("createOrder");
async function run() {
  let variables;
  try { variables = JSON.parse($("variables").value || "{}"); } catch (e) { $("result").textContent = "variables are not JSON: " + e; return; }
  $("status").textContent = "…";
  const started = performance.now();
  const resp = await fetch(location.pathname, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query: $("query").value, variables }) });
  const text = await resp.text();
  $("status").textContent = resp.status + " in " + Math.round(performance.now() - started) + " ms";
  try { $("result").textContent = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { $("result").textContent = text; }
}
$("run").onclick = run;
document.addEventListener("keydown", (e) => { if (e.ctrlKey && e.key === "Enter") run(); });
</script>
</body>
</html>
"#;
