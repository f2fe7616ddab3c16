// The console: a single-page app served by the Envoy gateway at /console/ (see deploy/envoy.yaml).
// Asset file names carry a content hash, so the gateway may cache them forever; index.html is
// served no-cache and names the current hashes.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/console/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "dist/console",
    emptyOutDir: true,
    target: "es2022",
    // One chunk per concern so a page that needs no editor does not wait for it.
    rolldownOptions: {
      output: {
        manualChunks(id: string) {
          if (id.includes("node_modules/echarts") || id.includes("node_modules/zrender")) return "charts";
          if (id.includes("node_modules/@codemirror") || id.includes("node_modules/@lezer")
              || id.includes("node_modules/codemirror") || id.includes("node_modules/style-mod")
              || id.includes("node_modules/w3c-keyname") || id.includes("node_modules/crelt")) return "editor";
          return undefined;
        },
      },
    },
    // The gateway serves files it lists at start-up; a stable, small set keeps that simple.
    assetsInlineLimit: 0,
    reportCompressedSize: false,
  },
});
