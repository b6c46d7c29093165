// The web app's build, run by `cargo xtask gen` (`WEB_OUT_DIR` redirects it: `gen --check`
// builds elsewhere and compares). One script and one stylesheet with fixed names, embedded
// in the gateway (services/gateway/assets/shop/) and served under /shop/.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

export default defineConfig({
  base: "/shop/",
  // The SDK is used from its sources, so a contract change reaches the app's type check.
  resolve: { alias: { "@shopmesh/sdk": here("../sdk/typescript/src/index.ts") } },
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  logLevel: "warn",
  build: {
    outDir: process.env.WEB_OUT_DIR ?? here("../services/gateway/assets/shop"),
    emptyOutDir: true,
    target: "es2022",
    modulePreload: false,
    reportCompressedSize: false,
    rollupOptions: {
      output: {
        entryFileNames: "shop.js",
        chunkFileNames: "shop-[name].js",
        assetFileNames: "shop.[ext]",
      },
    },
  },
});
