/**
 * One uPlot line chart: theme colours from CSS variables, a linear or log y axis, an x axis of steps, tokens or
 * wall time, optional outlier clipping, a live legend with the values under the cursor (synchronised across the
 * charts of one key), drag to zoom and double-click to reset. It redraws with setData when `data` changes and is
 * rebuilt only when its shape or options change.
 */
import { useEffect, useMemo, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { clock, compact, metric } from '../format';
import { clippedRange, type XKind } from '../features/run/series';
import { useThemeName } from '../theme';

export interface ChartLine {
  label: string;
  /** a CSS variable holding the colour, e.g. "--chart-1" */
  color: string;
  width?: number;
  alpha?: number;
  /** draw the points (for sparse series such as val loss) */
  points?: boolean;
  /** value formatter for the legend */
  format?: (v: number) => string;
}

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
  /** the y axis' tick format */
  yFormat?: (v: number) => string;
}

const X_LABEL: Record<XKind, string> = { step: 'Step', tokens: 'Tokens', wall: 'Time' };

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
}

/** A tick label: short, without trailing zeros. */
export function tick(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e4) return compact(v);
  if (a !== 0 && a < 1e-3) return v.toExponential(1);
  return String(Number(v.toPrecision(6)));
}

const UNITS: [number, string][] = [
  [1e12, 'T'],
  [1e9, 'B'],
  [1e6, 'M'],
  [1e3, 'K'],
];

/**
 * Labels for a set of ticks with just the decimals that tell them apart: 1.52M 1.54M 1.56M rather than 1.5M 1.5M
 * 1.6M, 0.25 0.5 0.75 rather than 0.250 0.500 0.750.
 */
export function formatTicks(splits: readonly number[]): string[] {
  const finite = splits.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return splits.map(() => '');
  const maxAbs = Math.max(...finite.map(Math.abs));
  // the fewest decimals (up to `max`) at which every value is exact
  const decimals = (vals: number[], max: number) => {
    for (let d = 0; d <= max; d++) {
      const f = 10 ** d;
      if (vals.every((v) => Math.abs(Math.round(v * f) - v * f) < 1e-6 * Math.max(1, Math.abs(v * f)))) return d;
    }
    return max;
  };
  const label = (scale: number, suffix: string, max: number) => {
    const d = decimals(finite.map((v) => v / scale), max);
    return splits.map((v) => (Number.isFinite(v) ? `${(v / scale).toFixed(d)}${suffix}` : ''));
  };
  if (maxAbs >= 1e4) {
    const [unit, suffix] = UNITS.find(([u]) => maxAbs >= u) ?? [1, ''];
    return label(unit, suffix, 3);
  }
  if (maxAbs > 0 && maxAbs < 1e-3) {
    const e = Math.floor(Math.log10(maxAbs));
    return label(10 ** e, `e${e}`, 3);
  }
  return label(1, '', 6);
}

/** A "nice" step (1, 2 or 5 times a power of ten) near `raw`. */
function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

/**
 * Ticks of a log axis: 1-2-5 per decade over a wide range, and evenly spaced nice values over a narrow one (a
 * loss between 3 and 11 would otherwise get no tick at all).
 */
export function logSplits(min: number, max: number): number[] {
  if (!(min > 0) || !(max > min)) return [];
  const out: number[] = [];
  if (max / min < 10) {
    const step = niceStep((max - min) / 4);
    for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
    return out;
  }
  const decades = Math.log10(max / min);
  const mults = decades > 6 ? [1] : [1, 2, 5];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
    for (const m of mults) {
      const v = m * 10 ** e;
      if (v >= min * (1 - 1e-9) && v <= max * (1 + 1e-9)) out.push(Number(v.toPrecision(12)));
    }
  }
  return out;
}

/** Tick increments for counts (steps, tokens): 1, 2, 5, 10, 20, 50, ... */
const COUNT_INCRS = Array.from({ length: 16 }, (_, e) => [1, 2, 5].map((m) => m * 10 ** e)).flat();

/** The last non-null value of a column (what the legend shows while the cursor is away). */
function lastValue(col: ArrayLike<number | null | undefined> | undefined): number | null {
  if (!col) return null;
  for (let i = col.length - 1; i >= 0; i--) {
    const v = col[i];
    if (v !== null && v !== undefined) return v;
  }
  return null;
}

function countValues(col: ArrayLike<number | null | undefined> | undefined): number {
  let n = 0;
  if (col) for (let i = 0; i < col.length; i++) if (col[i] !== null && col[i] !== undefined) n++;
  return n;
}

function xFormat(kind: XKind): (v: number) => string {
  if (kind === 'wall') return clock;
  if (kind === 'tokens') return compact;
  return (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1));
}

export function Chart({ title, testId, data, lines, xKind, logY = false, clip = false, syncKey, height = 190, unit, yFormat }: ChartProps) {
  const wrap = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const dataRef = useRef(data);
  dataRef.current = data;
  const clipRef = useRef(clip);
  clipRef.current = clip;
  const zoomed = useRef(false);
  const theme = useThemeName();
  // rebuild when the lines' labels or colours change, not on every render
  const linesKey = JSON.stringify(lines.map((l) => [l.label, l.color, l.width, l.alpha, l.points]));
  const linesRef = useRef(lines);
  linesRef.current = lines;

  useEffect(() => {
    const el = wrap.current;
    if (!el) return;
    const grid = cssVar('--chart-grid');
    const axis = cssVar('--chart-axis');
    const fmtX = xFormat(xKind);
    let drawStart = 0;
    const yRange: uPlot.Range.Function = (u, min, max) => {
      if (clipRef.current) {
        const r = clippedRange(u.data.slice(1) as (number | null)[][], logY);
        if (r) return r;
      }
      if (min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)) return logY ? [0.1, 10] : [0, 1];
      if (logY) return uPlot.rangeLog(min, max, 10, false);
      return uPlot.rangeNum(min, max, 0.08, true);
    };
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      pxAlign: false,
      legend: { live: true },
      cursor: {
        sync: syncKey ? { key: syncKey, setSeries: false } : undefined,
        drag: { x: true, y: false, setScale: true },
        points: { size: 6 },
      },
      scales: {
        x: { time: false },
        y: logY ? { distr: 3, log: 10, range: yRange } : { range: yRange },
      },
      axes: [
        {
          stroke: axis,
          grid: { stroke: grid, width: 1 },
          ticks: { stroke: grid, width: 1, size: 4 },
          values: (_u, splits) => (xKind === 'wall' ? splits.map((v) => fmtX(v)) : formatTicks(splits)),
          incrs: xKind === 'wall' ? undefined : COUNT_INCRS,
          font: '11px system-ui, sans-serif',
          size: 28,
        },
        {
          stroke: axis,
          grid: { stroke: grid, width: 1 },
          ticks: { stroke: grid, width: 1, size: 4 },
          values: (_u, splits) => (yFormat ? splits.map((v) => (v === null ? '' : yFormat(v))) : formatTicks(splits)),
          splits: logY ? (u) => logSplits(u.scales.y.min ?? 0, u.scales.y.max ?? 0) : undefined,
          font: '11px system-ui, sans-serif',
          size: 52,
        },
      ],
      series: [
        {
          label: X_LABEL[xKind],
          value: (u, v, _s, idx) => {
            const x = idx === null ? lastValue(u.data[0]) : v;
            return x === null || x === undefined ? '—' : fmtX(x);
          },
        },
        ...linesRef.current.map((l): uPlot.Series => {
          const color = cssVar(l.color);
          return {
            label: l.label,
            stroke: color,
            width: l.width ?? 1.6,
            alpha: l.alpha,
            spanGaps: true,
            // sparse series (val loss, HellaSwag) show their points while there are few of them
            points: l.points ? { show: (u, sidx) => countValues(u.data[sidx]) <= 120, size: 5, fill: color, stroke: color } : { show: false },
            // the value under the cursor; the latest one while the cursor is away
            value: (u, v, sidx, idx) => {
              const y = idx === null ? lastValue(u.data[sidx]) : v;
              return y === null || y === undefined ? '—' : (l.format ?? metric)(y);
            },
          };
        }),
      ],
      hooks: {
        drawClear: [() => (drawStart = performance.now())],
        draw: [() => el.setAttribute('data-draw-ms', (performance.now() - drawStart).toFixed(2))],
        setSelect: [(u) => { if (u.select.width > 0) zoomed.current = true; }],
      },
    };
    const u = new uPlot(opts, dataRef.current as uPlot.AlignedData, el);
    plot.current = u;
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
  }, [linesKey, xKind, logY, height, syncKey, theme, yFormat]);

  useEffect(() => {
    plot.current?.setData(data as uPlot.AlignedData, !zoomed.current);
  }, [data]);

  useEffect(() => {
    const u = plot.current;
    if (u) u.setData(u.data, true);
    zoomed.current = false;
  }, [clip]);

  const points = useMemo(() => {
    const col = data[1] ?? [];
    let n = 0;
    for (const v of col) if (v !== null && v !== undefined) n++;
    return n;
  }, [data]);

  return (
    <figure className="chart" data-testid={testId} data-points={points}>
      <figcaption className="chart-title">
        {title}
        {unit && <span className="muted"> · {unit}</span>}
      </figcaption>
      <div className="chart-plot" ref={wrap} />
      {points === 0 && <div className="chart-empty muted small">No points yet</div>}
    </figure>
  );
}
