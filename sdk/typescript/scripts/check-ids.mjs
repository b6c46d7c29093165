// Normalizing caches (Apollo Client, urql's graphcache) key an object by its `id`: an object
// selected without it cannot be cached or updated. Lists, for every operation document in
// schema/graphql/operations/, each selection of a type with an `id` field that does not
// select `id` (directly or through a fragment). Prints one line per miss; exits 1 if any.
// Usage: node scripts/check-ids.mjs <schema.graphql> <operations.graphql>...
import { readFileSync } from "node:fs";
import {
  Kind,
  TypeInfo,
  buildSchema,
  getNamedType,
  isObjectType,
  parse,
  visit,
  visitWithTypeInfo,
} from "graphql";

const [schemaPath, ...documents] = process.argv.slice(2);
const schema = buildSchema(readFileSync(schemaPath, "utf8"));
const misses = [];
for (const path of documents) {
  const document = parse(readFileSync(path, "utf8"));
  const fragments = new Map(
    document.definitions.filter((d) => d.kind === Kind.FRAGMENT_DEFINITION).map((d) => [d.name.value, d]),
  );
  // Whether `set` selects `id`, directly or through a fragment spread or inline fragment.
  const selectsId = (set) =>
    set.selections.some((s) =>
      s.kind === Kind.FIELD
        ? s.name.value === "id" && s.alias === undefined
        : s.kind === Kind.FRAGMENT_SPREAD
          ? selectsId(fragments.get(s.name.value).selectionSet)
          : selectsId(s.selectionSet),
    );
  const typeInfo = new TypeInfo(schema);
  visit(
    document,
    visitWithTypeInfo(typeInfo, {
      Field(node) {
        const type = getNamedType(typeInfo.getType());
        if (node.selectionSet && isObjectType(type) && "id" in type.getFields() && !selectsId(node.selectionSet)) {
          const where = node.loc ? `${path}:${node.loc.startToken.line}` : path;
          misses.push(`${where}: ${node.name.value} (${type.name}) does not select id`);
        }
      },
    }),
  );
}
for (const miss of misses) console.log(miss);
process.exit(misses.length > 0 ? 1 : 0);
