// The chart bundle of the self-contained HTML report: one IIFE file with ECharts and the same
// chart builders as the console, written into the Python package backtest_report/assets (not
// committed) together with the console's message tables and metric list (report-meta.json), which the
// report's tables use.
// backtest_report inlines the bundle into every report, so a report opens from disk offline.
import { defineConfig } from "vite";
import { en } from "./src/i18n/en";
import { zhCN } from "./src/i18n/zh-CN";
import { METRICS } from "./src/analytics/metrics";

export default defineConfig({
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  // Library mode keeps process.env references of dependencies (ECharts' dev checks); a report
  // runs in a plain browser page, so fix them at build time.
  define: { "process.env.NODE_ENV": JSON.stringify("production") },
  plugins: [{
    name: "report-messages",
    generateBundle() {
      this.emitFile({ type: "asset", fileName: "report-meta.json", source: JSON.stringify({ messages: { en, "zh-CN": zhCN }, metrics: METRICS }) });
    },
  }],
  build: {
    outDir: "../backtest_report/assets",
    emptyOutDir: true,
    target: "es2020",
    lib: {
      entry: "src/report/main.ts",
      name: "ZquantReport",
      formats: ["iife"],
      fileName: () => "report.js",
    },
    reportCompressedSize: false,
  },
});
