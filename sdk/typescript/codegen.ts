// graphql-codegen, run by `cargo xtask gen`: typed documents for the operations in
// schema/graphql/operations against the gateway's SDL. `SDK_GEN_DIR` redirects the output
// (`gen --check` generates elsewhere and compares).
import type { CodegenConfig } from "@graphql-codegen/cli";

const out = process.env.SDK_GEN_DIR ?? "src/gen";

const config: CodegenConfig = {
  overwrite: true,
  silent: true,
  schema: "../../schema/graphql/gateway.graphql",
  documents: "../../schema/graphql/operations/*.graphql",
  generates: {
    [`${out}/graphql.ts`]: {
      plugins: ["typescript-operations", "typed-document-node"],
      config: {
        scalars: { DateTime: "string" },
        enumsAsTypes: true,
        useTypeImports: true,
        avoidOptionals: { field: true, inputValue: false },
      },
    },
  },
};

export default config;
