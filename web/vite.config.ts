// The console: a single-page app served by the Envoy gateway at /console/ (see deploy/envoy.yaml).
// Asset file names carry a content hash, so the gateway may cache them forever; index.html is
// served no-cache and names the current hashes.
import { defineConfig, type Plugin } from "vite";

// Envoy would gzip each script again for every browser that asks (the chart chunk costs it tens of
// milliseconds of CPU per request, on the page's critical path): the build writes `<file>.gz`
// beside every script and style sheet, and the gateway serves that to clients accepting gzip
// (services/console_routes.py). CompressionStream is zlib's default level, as Envoy's was.
const MIN_PRECOMPRESS_BYTES = 1024;
function precompress(): Plugin {
  return {
    name: "zquant-precompress",
    apply: "build",
    // Once the files are written: Vite still edits chunks (their preload lists) after generateBundle.
    async writeBundle(options, bundle) {
      for (const fileName of Object.keys(bundle)) {
        if (!/\.(js|css)$/.test(fileName)) continue;
        const path = `${options.dir}/${fileName}`;
        const bytes = await this.fs.readFile(path);
        if (bytes.length < MIN_PRECOMPRESS_BYTES) continue;
        const gz = new Response(new Blob([new Uint8Array(bytes)]).stream().pipeThrough(new CompressionStream("gzip")));
        await this.fs.writeFile(`${path}.gz`, new Uint8Array(await gz.arrayBuffer()));
      }
    },
  };
}

export default defineConfig({
  base: "/console/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  plugins: [precompress()],
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
