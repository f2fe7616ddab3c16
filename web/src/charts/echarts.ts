// ECharts, modular: only the charts and components the console draws, SVG renderer (crisp when
// printed, and tests can read the drawn DOM).
import { BarChart, CandlestickChart, HeatmapChart, LineChart, ParallelChart, ScatterChart } from "echarts/charts";
import {
  DataZoomInsideComponent, DataZoomSliderComponent, GridComponent, LegendPlainComponent, MarkAreaComponent,
  ParallelComponent, TooltipComponent, VisualMapContinuousComponent,
} from "echarts/components";
import * as echarts from "echarts/core";
import { SVGRenderer } from "echarts/renderers";

echarts.use([
  LineChart, BarChart, HeatmapChart, CandlestickChart, ScatterChart, ParallelChart, ParallelComponent,
  GridComponent, TooltipComponent,
  LegendPlainComponent, DataZoomInsideComponent, DataZoomSliderComponent, VisualMapContinuousComponent,
  MarkAreaComponent, SVGRenderer,
]);

export type Option = echarts.EChartsCoreOption;

/** What a test (or a curious reader) can check about a drawn chart without pixels: each
 *  series' name, number of points and last value, stored on the container as data-series. */
export interface SeriesSummary {
  name: string;
  points: number;
  last: unknown;
}

function summarize(option: Option): SeriesSummary[] {
  const series = (option.series ?? []) as Array<{ name?: string; data?: unknown[] }>;
  return series.map((s) => ({
    name: s.name ?? "",
    points: s.data?.length ?? 0,
    last: s.data && s.data.length ? s.data[s.data.length - 1] : null,
  }));
}

/** Draws (or redraws) a chart into `el`; returns a disposer. `size`, when the caller has measured
 *  `el` already, spares ECharts measuring it again (a forced layout when other charts have just
 *  drawn); 0 or absent means "measure". */
export function draw(el: HTMLElement, option: Option, size?: { width: number; height: number }):
    { update(o: Option): void; dispose(): void } {
  const chart = echarts.init(el, undefined, {
    renderer: "svg", width: size?.width || undefined, height: size?.height || undefined,
  });
  const apply = (o: Option) => {
    chart.setOption(o, { notMerge: true });
    el.dataset.series = JSON.stringify(summarize(o));
  };
  apply(option);
  // Redraw on a real size change only: the observer also reports the size it starts with, and a
  // resize is a full redraw.
  let drawn = `${chart.getWidth()}x${chart.getHeight()}`;
  const ro = typeof ResizeObserver === "undefined" ? null : new ResizeObserver(() => {
    const now = `${el.clientWidth}x${el.clientHeight}`;
    if (now !== drawn) {
      drawn = now;
      // Explicit: a size given to init would otherwise stay.
      chart.resize({ width: el.clientWidth, height: el.clientHeight });
    }
  });
  ro?.observe(el);
  return {
    update: apply,
    dispose() {
      ro?.disconnect();
      chart.dispose();
    },
  };
}
