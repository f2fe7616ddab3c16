// Unit tests of the console's pure modules (series, metrics, router, messages) in Node.
import { defineConfig } from "vitest/config";

export default defineConfig({
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  test: { include: ["test/**/*.test.ts"], environment: "node" },
});
