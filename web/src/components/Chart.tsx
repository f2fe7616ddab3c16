import { useEffect, useRef } from "preact/hooks";
import type { Option } from "../charts/echarts";

interface Props {
  option: Option;
  /** Accessible name of the figure. */
  label: string;
  height?: number;
  testId?: string;
}

type Drawn = ReturnType<typeof import("../charts/echarts").draw>;

// ECharts is the largest chunk: it is fetched on demand, and a page that will draw charts calls
// preloadCharts() first so the download runs while its data is being fetched.
let charts: Promise<typeof import("../charts/echarts")> | null = null;
export function preloadCharts(): Promise<typeof import("../charts/echarts")> {
  charts ??= import("../charts/echarts");
  return charts;
}

/** One ECharts figure; redraws when `option` changes. */
export function Chart({ option, label, height = 320, testId }: Props) {
  const ref = useRef<HTMLDivElement>(null);
  const handle = useRef<Drawn | null>(null);
  const latest = useRef(option);
  latest.current = option;
  useEffect(() => {
    let live = true;
    void preloadCharts().then(({ draw }) => {
      if (live && ref.current) handle.current = draw(ref.current, latest.current);
    });
    return () => {
      live = false;
      handle.current?.dispose();
      handle.current = null;
    };
  }, []);
  useEffect(() => {
    handle.current?.update(option);
  }, [option]);
  return <div ref={ref} class="chart" role="img" aria-label={label} data-testid={testId} style={{ height: `${height}px` }} />;
}
