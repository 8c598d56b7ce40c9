/**
 * One uPlot line chart: theme colours from CSS variables, a linear or log y axis, an x axis of steps, tokens or
 * wall time, optional outlier clipping, a live legend with the values under the cursor (synchronised across the
 * charts of one key), drag to zoom and double-click to reset. It redraws with setData when `data` changes and is
 * rebuilt only when its shape or options change. Reference values (a published loss, say) can be drawn as
 * labelled horizontal dashed lines, and the chart can be rendered to an image with its title and legend.
 */
import { useEffect, useImperativeHandle, useMemo, useRef, type Ref } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { useThemeName } from '../../theme';
import { axesOf, yRangeOf } from './axes';
import { chartImage } from './export';
import { countValues, drawBaselines, lineExtents, lineSeries, lineStroke, xSeries } from './marks';
import type { XKind } from './series';
import type { ChartBaseline, ChartHandle, ChartLine } from './types';

export interface ChartProps {
  title: string;
  testId: string;
  /** [x, ...one column per line]; null is a gap */
  data: (number | null)[][];
  lines: ChartLine[];
  xKind: XKind;
  logY?: boolean;
  clip?: boolean;
  /** charts of the same key share the cursor */
  syncKey?: string;
  height?: number;
  /** the unit shown after the title */
  unit?: string;
  /** the y axis' tick format; it also gets every tick of the axis, to choose a precision that tells them apart */
  yFormat?: (v: number, splits: readonly number[]) => string;
  /** horizontal reference lines (the y range is widened to show them) */
  baselines?: ChartBaseline[];
  /** values the y range always includes, without a line (0, for an amount whose size matters more than its wiggle) */
  yInclude?: readonly number[];
  /**
   * The legend shows, for each line, its point nearest the cursor rather than its value at the cursor's row
   * (for lines with different x values, as several runs joined on one x axis).
   */
  nearestLegend?: boolean;
  ref?: Ref<ChartHandle>;
}

export function Chart({
  title,
  testId,
  data,
  lines,
  xKind,
  logY = false,
  clip = false,
  syncKey,
  height = 190,
  unit,
  yFormat,
  baselines,
  yInclude,
  nearestLegend = false,
  ref,
}: ChartProps) {
  const wrap = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const dataRef = useRef(data);
  dataRef.current = data;
  const clipRef = useRef(clip);
  clipRef.current = clip;
  const baselinesRef = useRef<readonly ChartBaseline[]>(baselines ?? []);
  baselinesRef.current = baselines ?? [];
  const baselinesKey = JSON.stringify(baselinesRef.current);
  const yIncludeRef = useRef<readonly number[]>(yInclude ?? []);
  yIncludeRef.current = yInclude ?? [];
  const zoomed = useRef(false);
  const theme = useThemeName();
  // rebuild when the lines' labels or colours change, not on every render
  const linesKey = JSON.stringify(lines.map((l) => [l.label, l.color, l.width, l.alpha, l.points, l.marks, l.dash]));
  const linesRef = useRef(lines);
  linesRef.current = lines;
  const logYRef = useRef(logY);
  logYRef.current = logY;
  const titleRef = useRef({ title, unit });
  titleRef.current = { title, unit };

  useEffect(() => {
    const el = wrap.current;
    if (!el) return;
    let drawStart = 0;
    let draws = 0;
    const yRange = yRangeOf(
      logY,
      () => clipRef.current,
      () => [...baselinesRef.current.map((b) => b.value), ...yIncludeRef.current],
    );
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      pxAlign: false,
      // the legend's marker is a short bar in the line's colour
      legend: { live: true, markers: { width: 0, fill: (u, si) => lineStroke(u, si) } },
      cursor: {
        sync: syncKey ? { key: syncKey, setSeries: false } : undefined,
        drag: { x: true, y: false, setScale: true },
        points: { size: 6 },
      },
      scales: {
        x: { time: false },
        y: logY ? { distr: 3, log: 10, range: yRange } : { range: yRange },
      },
      axes: axesOf(xKind, logY, yFormat),
      series: [xSeries(xKind), ...linesRef.current.map((l) => lineSeries(l, nearestLegend))],
      hooks: {
        drawClear: [() => (drawStart = performance.now())],
        draw: [
          (u) => {
            // the reference lines drawn, for tests and tools that read the page
            el.setAttribute('data-baselines', drawBaselines(u, baselinesRef.current, logY).join('|'));
            el.setAttribute('data-draw-ms', (performance.now() - drawStart).toFixed(2));
            el.setAttribute('data-draws', String(++draws));
            // the plot's height and each line's vertical extent on it, in CSS pixels from its top
            el.setAttribute('data-plot-height', (u.bbox.height / uPlot.pxRatio).toFixed(1));
            el.setAttribute('data-line-extents', lineExtents(u).join('|'));
          },
        ],
        setSelect: [
          (u) => {
            if (u.select.width > 0) zoomed.current = true;
          },
        ],
      },
    };
    const u = new uPlot(opts, dataRef.current as uPlot.AlignedData, el);
    plot.current = u;
    if (xKind === 'step')
      u.root
        .querySelector('.u-legend .u-series:first-child .u-label')
        ?.setAttribute('title', 'The step under the cursor, counted from 0 (step 1 is the second step)');
    zoomed.current = false;
    const onDbl = () => {
      zoomed.current = false;
    };
    u.over.addEventListener('dblclick', onDbl);
    const ro = new ResizeObserver(() => {
      const w = Math.max(200, el.clientWidth);
      if (Math.abs(w - u.width) >= 1) u.setSize({ width: w, height });
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.over.removeEventListener('dblclick', onDbl);
      u.destroy();
      plot.current = null;
    };
  }, [linesKey, xKind, logY, height, syncKey, theme, yFormat, nearestLegend]);

  useEffect(() => {
    plot.current?.setData(data as uPlot.AlignedData, !zoomed.current);
  }, [data]);

  // clipping and reference lines change the y range: recompute it (and leave any zoom)
  useEffect(() => {
    const u = plot.current;
    if (u) u.setData(u.data, true);
    zoomed.current = false;
  }, [clip, baselinesKey]);

  useImperativeHandle(
    ref,
    () => ({
      toImage: () => {
        const u = plot.current;
        return u
          ? chartImage(
              u,
              titleRef.current.title,
              titleRef.current.unit,
              linesRef.current,
              baselinesRef.current,
              logYRef.current,
            )
          : null;
      },
    }),
    [],
  );

  const counts = useMemo(() => data.slice(1).map(countValues), [data]);
  const points = counts[0] ?? 0;

  return (
    <figure className="chart" data-testid={testId} data-points={points} data-line-points={counts.join(',')}>
      <figcaption className="chart-title">
        {title}
        {unit && <span className="muted"> · {unit}</span>}
      </figcaption>
      <div className="chart-plot" ref={wrap} />
      {counts.every((n) => n === 0) && <div className="chart-empty muted small">No points yet</div>}
    </figure>
  );
}
