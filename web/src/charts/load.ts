// ECharts is the console's largest chunk: it is fetched on demand. A page that will draw charts
// calls preloadCharts() as early as it can (the boot does it for a task page, before that page's
// own code has arrived) so the download and compile overlap the data requests.
let charts: Promise<typeof import("./echarts")> | null = null;

export function preloadCharts(): Promise<typeof import("./echarts")> {
  charts ??= import("./echarts");
  return charts;
}
