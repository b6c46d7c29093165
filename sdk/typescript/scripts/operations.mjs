// The operations the SDK sends, exactly as it sends them (graphql-js `print` of each generated
// document, fragments included), by their SHA-256: the gateway's allow-list under
// GRAPHQL_OPERATIONS=registered, and the hashes a persisted-query client sends for them.
// Usage: node scripts/operations.mjs <src/gen/graphql.ts> <operations.json>
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { print } from "graphql";

const [source, out] = process.argv.slice(2);
const generated = /^export const (\w+)Document = (\{.*\}) as unknown as DocumentNode</;
const operations = [];
for (const line of readFileSync(source, "utf8").split("\n")) {
  const found = generated.exec(line);
  if (!found) continue;
  const document = print(JSON.parse(found[2]));
  const sha256 = createHash("sha256").update(document).digest("hex");
  operations.push({ name: found[1], sha256, document });
}
if (operations.length === 0) {
  console.error(`${source}: no generated documents found`);
  process.exit(1);
}
operations.sort((a, b) => a.name.localeCompare(b.name));
writeFileSync(out, JSON.stringify({ operations }, null, 2) + "\n");
