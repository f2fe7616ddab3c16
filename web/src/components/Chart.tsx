import { useEffect, useLayoutEffect, useRef } from "preact/hooks";
import type { Option } from "../charts/echarts";
import { preloadCharts } from "../charts/load";

interface Props {
  option: Option;
  /** Accessible name of the figure. */
  label: string;
  height?: number;
  testId?: string;
}

type Drawn = ReturnType<typeof import("../charts/echarts").draw>;

/** One ECharts figure; redraws when `option` changes. */
export function Chart({ option, label, height = 320, testId }: Props) {
  const ref = useRef<HTMLDivElement>(null);
  const handle = useRef<Drawn | null>(null);
  const latest = useRef(option);
  latest.current = option;
  // Before the browser paints (a layout effect), so the page's first frame has its charts. The
  // size is read here, while no chart has drawn yet: a page's charts then cost one layout, where
  // each ECharts init measuring its own container would force another after the previous draw.
  useLayoutEffect(() => {
    let live = true;
    const size = { width: ref.current?.clientWidth ?? 0, height: ref.current?.clientHeight ?? 0 };
    void preloadCharts().then(({ draw }) => {
      if (live && ref.current) handle.current = draw(ref.current, latest.current, size);
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
