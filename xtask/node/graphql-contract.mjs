// The GraphQL contract checks xtask runs; prints JSON on stdout.
//   node graphql-contract.mjs diff OLD.graphql NEW.graphql
//     every change graphql-inspector finds, with its criticality (BREAKING, DANGEROUS,
//     NON_BREAKING), its schema coordinate and why
//   node graphql-contract.mjs validate SCHEMA.graphql DOC.graphql...
//     every validation error of each operation document against the schema
import { readFileSync } from 'node:fs';
import { buildSchema, parse, validate, GraphQLError } from 'graphql';
import { diff } from '@graphql-inspector/core';

const read = (path) => readFileSync(path, 'utf8');
const [command, ...args] = process.argv.slice(2);

if (command === 'diff') {
  const [oldPath, newPath] = args;
  const changes = await diff(buildSchema(read(oldPath)), buildSchema(read(newPath)));
  const out = changes.map((c) => ({
    criticality: c.criticality.level,
    type: c.type,
    path: c.path ?? '',
    message: c.message,
    reason: c.criticality.reason ?? '',
  }));
  process.stdout.write(JSON.stringify(out));
} else if (command === 'validate') {
  const [schemaPath, ...docs] = args;
  const schema = buildSchema(read(schemaPath));
  const out = [];
  for (const doc of docs) {
    let errors;
    try {
      errors = validate(schema, parse(read(doc)));
    } catch (e) {
      errors = [e instanceof GraphQLError ? e : new GraphQLError(String(e))];
    }
    for (const e of errors) {
      const at = (e.locations ?? []).map((l) => `${l.line}:${l.column}`).join(', ');
      out.push({ file: doc, location: at, message: e.message });
    }
  }
  process.stdout.write(JSON.stringify(out));
} else {
  process.stderr.write('usage: graphql-contract.mjs diff OLD NEW | validate SCHEMA DOC...\n');
  process.exit(2);
}
