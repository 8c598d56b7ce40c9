/**
 * One uPlot line chart: theme colours from CSS variables, a linear or log y axis, an x axis of steps, tokens or
 * wall time, optional outlier clipping, a live legend with the values under the cursor (synchronised across the
 * charts of one key), drag to zoom and double-click to reset. It redraws with setData when `data` changes and is
 * rebuilt only when its shape or options change. Reference values (a published loss, say) can be drawn as
 * labelled horizontal dashed lines, and the chart can be rendered to an image with its title and legend.
 * ChartToolbar holds the options that a page of charts shares.
 */
import { useEffect, useId, useImperativeHandle, useMemo, useRef, type Ref } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { clock, compact, metric } from '../format';
import { clippedRange, type XKind } from '../features/run/series';
import { useThemeName } from '../theme';

export interface ChartLine {
  label: string;
  /** a CSS variable holding the colour ("--chart-1" or "var(--chart-1)"), or a CSS colour ("#5048e5") */
  color: string;
  width?: number;
  alpha?: number;
  /** a dash pattern in CSS pixels, e.g. [6, 4]; solid when absent */
  dash?: number[];
  /** draw the points (for sparse series such as val loss) */
  points?: boolean;
  /** marks only: points, never a line between them (e.g. the guard's actions on the loss curve) */
  marks?: boolean;
  /** value formatter for the legend */
  format?: (v: number) => string;
}

/** A horizontal reference line: a labelled, dashed line at `value` across the plot. */
export interface ChartBaseline {
  label: string;
  value: number;
  /** as ChartLine.color */
  color: string;
  /** the dash pattern; [6, 4] when absent */
  dash?: number[];
}

/** What a parent can do with a chart (through `ref`). */
export interface ChartHandle {
  /** The chart as it is drawn now, with its title above and a legend of its lines and reference lines below. */
  toImage(): HTMLCanvasElement | null;
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
  /** horizontal reference lines (the y range is widened to show them) */
  baselines?: ChartBaseline[];
  /**
   * The legend shows, for each line, its point nearest the cursor rather than its value at the cursor's row
   * (for lines with different x values, as several runs joined on one x axis).
   */
  nearestLegend?: boolean;
  ref?: Ref<ChartHandle>;
}

const X_LABEL: Record<XKind, string> = { step: 'Step', tokens: 'Tokens', wall: 'Time' };

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
}

/** A colour given as a CSS variable ("--chart-1", "var(--chart-1)") or as a CSS colour, resolved for a canvas. */
export function resolveColor(color: string): string {
  const m = /^var\((--[\w-]+)\)$/.exec(color.trim());
  if (m) return cssVar(m[1]);
  return color.startsWith('--') ? cssVar(color) : color;
}

/**
 * A y range widened to include the reference values (with a 5% margin of the result on the side that grew), so
 * that a switched-on baseline is always in view.
 */
export function withBaselines(range: [number, number], values: readonly number[], log = false): [number, number] {
  const vs = values.filter((v) => Number.isFinite(v) && (!log || v > 0));
  if (vs.length === 0) return range;
  let [min, max] = range;
  const lo = Math.min(...vs);
  const hi = Math.max(...vs);
  if (lo >= min && hi <= max) return range;
  if (log) {
    const [a, b] = [Math.log10(Math.min(min, lo)), Math.log10(Math.max(max, hi))];
    const pad = (b - a || 1) * 0.05;
    return [lo < min ? 10 ** (a - pad) : min, hi > max ? 10 ** (b + pad) : max];
  }
  const a = Math.min(min, lo);
  const b = Math.max(max, hi);
  const pad = (b - a || Math.abs(b) || 1) * 0.05;
  if (lo < min) min = a - pad;
  if (hi > max) max = b + pad;
  return [min, max];
}

/**
 * The index of the non-null value of `col` nearest to row `idx` along `xs` (itself when it has one; the earlier
 * one on a tie); -1 when the column has none.
 */
export function nearestIndex(col: ArrayLike<number | null | undefined>, xs: ArrayLike<number | null | undefined>, idx: number): number {
  const has = (i: number) => col[i] !== null && col[i] !== undefined;
  if (idx < 0 || idx >= col.length) return -1;
  if (has(idx)) return idx;
  let l = idx - 1;
  while (l >= 0 && !has(l)) l--;
  let r = idx + 1;
  while (r < col.length && !has(r)) r++;
  if (l < 0) return r < col.length ? r : -1;
  if (r >= col.length) return l;
  const x = Number(xs[idx]);
  return Math.abs(x - Number(xs[r])) < Math.abs(x - Number(xs[l])) ? r : l;
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

const BASELINE_DASH = [6, 4];

/** The stroke colour of a series (uPlot keeps it as a function once the chart is built). */
function lineStroke(u: uPlot, si: number): string {
  const stroke = u.series[si]?.stroke;
  const c = typeof stroke === 'function' ? stroke(u, si) : stroke;
  return typeof c === 'string' ? c : '';
}

/**
 * Draws the reference lines over the plot, each with its label at its right end (a hook of uPlot's draw), and
 * returns the labels of those drawn (in the y range).
 */
function drawBaselines(u: uPlot, baselines: readonly ChartBaseline[], log: boolean): string[] {
  const drawn: string[] = [];
  if (baselines.length === 0) return drawn;
  const ctx = u.ctx;
  const { left, top, width, height } = u.bbox;
  const ratio = uPlot.pxRatio;
  const surface = cssVar('--surface');
  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top, width, height);
  ctx.clip();
  ctx.font = `${Math.round(11 * ratio)}px system-ui, sans-serif`;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'bottom';
  for (const b of baselines) {
    if (!Number.isFinite(b.value) || (log && b.value <= 0)) continue;
    const y = Math.round(u.valToPos(b.value, 'y', true)) + 0.5;
    if (y < top || y > top + height) continue;
    const color = resolveColor(b.color);
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.25 * ratio;
    ctx.setLineDash((b.dash ?? BASELINE_DASH).map((d) => d * ratio));
    ctx.beginPath();
    ctx.moveTo(left, y);
    ctx.lineTo(left + width, y);
    ctx.stroke();
    const text = b.label;
    const tw = ctx.measureText(text).width;
    const x = left + width - 4 * ratio;
    const th = 13 * ratio;
    // above the line, or below it when there is no room above
    const above = y - th - 2 * ratio >= top;
    const ty = above ? y - 2 * ratio : y + th + 1 * ratio;
    ctx.globalAlpha = 0.85;
    ctx.fillStyle = surface;
    ctx.fillRect(x - tw - 3 * ratio, ty - th + 1 * ratio, tw + 6 * ratio, th);
    ctx.globalAlpha = 1;
    ctx.fillStyle = color;
    ctx.fillText(text, x, ty);
    drawn.push(b.label);
  }
  ctx.restore();
  return drawn;
}

interface LegendItem {
  label: string;
  color: string;
  width: number;
  dash?: number[];
  /** a hidden line (switched off in the legend) is drawn faint */
  faint?: boolean;
}

/**
 * The chart as an image: the title (and unit) above the plot as uPlot drew it, and below it a legend of the lines
 * and the reference lines, wrapped to the plot's width, on the theme's surface colour.
 */
function composeImage(u: uPlot, title: string, unit: string | undefined, items: readonly LegendItem[]): HTMLCanvasElement {
  const src = u.ctx.canvas;
  const ratio = src.width / Math.max(1, u.width);
  const pad = 14;
  const w = u.width + pad * 2;
  const probe = document.createElement('canvas').getContext('2d')!;
  probe.font = '12px system-ui, sans-serif';
  // lay the legend out in rows
  const rows: { item: LegendItem; x: number }[][] = [[]];
  let x = 0;
  for (const item of items) {
    const iw = 22 + probe.measureText(item.label).width + 16;
    if (x > 0 && x + iw > u.width) {
      rows.push([]);
      x = 0;
    }
    rows[rows.length - 1].push({ item, x });
    x += iw;
  }
  const titleH = 26;
  const rowH = 18;
  const legendH = items.length ? rows.length * rowH + 8 : 0;
  const h = pad + titleH + u.height + legendH + pad;
  const out = document.createElement('canvas');
  out.width = Math.round(w * ratio);
  out.height = Math.round(h * ratio);
  const ctx = out.getContext('2d')!;
  ctx.scale(ratio, ratio);
  ctx.fillStyle = cssVar('--surface');
  ctx.fillRect(0, 0, w, h);
  ctx.textBaseline = 'middle';
  ctx.fillStyle = cssVar('--text');
  ctx.font = '600 14px system-ui, sans-serif';
  ctx.fillText(title, pad, pad + titleH / 2 - 2);
  if (unit) {
    const tw = ctx.measureText(title).width;
    ctx.font = '12px system-ui, sans-serif';
    ctx.fillStyle = cssVar('--muted');
    ctx.fillText(` · ${unit}`, pad + tw, pad + titleH / 2 - 2);
  }
  ctx.drawImage(src, pad, pad + titleH, u.width, u.height);
  ctx.font = '12px system-ui, sans-serif';
  let y = pad + titleH + u.height + 8 + rowH / 2;
  for (const row of rows) {
    for (const { item, x: ix } of row) {
      const x0 = pad + ix;
      ctx.globalAlpha = item.faint ? 0.35 : 1;
      ctx.strokeStyle = item.color;
      ctx.lineWidth = Math.max(1.5, item.width);
      ctx.setLineDash(item.dash ?? []);
      ctx.beginPath();
      ctx.moveTo(x0, y);
      ctx.lineTo(x0 + 16, y);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.fillStyle = cssVar('--text');
      ctx.fillText(item.label, x0 + 22, y);
      ctx.globalAlpha = 1;
    }
    y += rowH;
  }
  return out;
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
  const zoomed = useRef(false);
  const theme = useThemeName();
  // rebuild when the lines' labels or colours change, not on every render
  const linesKey = JSON.stringify(lines.map((l) => [l.label, l.color, l.width, l.alpha, l.points, l.marks, l.dash]));
  const linesRef = useRef(lines);
  linesRef.current = lines;
  const titleRef = useRef({ title, unit });
  titleRef.current = { title, unit };

  useEffect(() => {
    const el = wrap.current;
    if (!el) return;
    const grid = cssVar('--chart-grid');
    const axis = cssVar('--chart-axis');
    const fmtX = xFormat(xKind);
    let drawStart = 0;
    let draws = 0;
    const yRange: uPlot.Range.Function = (u, min, max) => {
      const refs = baselinesRef.current.map((b) => b.value);
      if (clipRef.current) {
        const r = clippedRange(u.data.slice(1) as (number | null)[][], logY);
        if (r) return withBaselines(r, refs, logY);
      }
      if (min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)) {
        const finite = refs.filter((v) => Number.isFinite(v) && (!logY || v > 0));
        if (finite.length === 0) return logY ? [0.1, 10] : [0, 1];
        min = Math.min(...finite);
        max = Math.max(...finite);
      } else {
        [min, max] = withBaselines([min, max], refs, logY);
      }
      if (logY) return uPlot.rangeLog(min, max, 10, false);
      return uPlot.rangeNum(min, max, 0.08, true);
    };
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
          const color = resolveColor(l.color);
          return {
            label: l.label,
            stroke: color,
            width: l.width ?? 1.6,
            alpha: l.alpha,
            dash: l.dash,
            spanGaps: true,
            // sparse series (val loss, HellaSwag) show their points while there are few of them
            points: l.marks
              ? { show: true, size: 9, fill: color, stroke: color }
              : l.points ? { show: (u, sidx) => countValues(u.data[sidx]) <= 120, size: 5, fill: color, stroke: color } : { show: false },
            ...(l.marks ? { paths: () => null, spanGaps: false } : {}),
            // the value under the cursor (or the line's nearest point); the latest one while the cursor is away
            value: (u, v, sidx, idx) => {
              let y: number | null | undefined = v;
              if (idx === null) y = lastValue(u.data[sidx]);
              else if (nearestLegend && (y === null || y === undefined)) {
                const col = u.data[sidx];
                const at = nearestIndex(col, u.data[0], idx);
                y = at >= 0 ? col[at] : null;
              }
              return y === null || y === undefined ? '—' : (l.format ?? metric)(y);
            },
          };
        }),
      ],
      hooks: {
        drawClear: [() => (drawStart = performance.now())],
        draw: [
          (u) => {
            // the reference lines drawn, for tests and tools that read the page
            el.setAttribute('data-baselines', drawBaselines(u, baselinesRef.current, logY).join('|'));
            el.setAttribute('data-draw-ms', (performance.now() - drawStart).toFixed(2));
            el.setAttribute('data-draws', String(++draws));
          },
        ],
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
        if (!u) return null;
        const items: LegendItem[] = [
          ...linesRef.current.map((l, i) => ({
            label: l.label,
            color: resolveColor(l.color),
            width: l.width ?? 1.6,
            dash: l.dash,
            faint: u.series[i + 1]?.show === false,
          })),
          ...baselinesRef.current.map((b) => ({ label: b.label, color: resolveColor(b.color), width: 1.25, dash: b.dash ?? BASELINE_DASH })),
        ];
        return composeImage(u, titleRef.current.title, titleRef.current.unit, items);
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

/** The options of a set of charts: smoothing, the x axis (step, tokens, wall time), log y and outlier clipping. */
export function ChartToolbar(p: {
  smoothing: number;
  setSmoothing: (v: number) => void;
  logY: boolean;
  setLogY: (v: boolean) => void;
  xKind: XKind;
  setXKind: (v: XKind) => void;
  clip: boolean;
  setClip: (v: boolean) => void;
}) {
  const sid = useId();
  return (
    <div className="toolbar chart-toolbar">
      <label className="slider" htmlFor={sid}>
        <span>Smoothing</span>
        <input
          id={sid}
          type="range"
          min={0}
          max={0.99}
          step={0.01}
          value={p.smoothing}
          onChange={(e) => p.setSmoothing(Number(e.target.value))}
          aria-valuetext={p.smoothing.toFixed(2)}
        />
        <output className="mono">{p.smoothing.toFixed(2)}</output>
      </label>
      <div className="segmented" role="radiogroup" aria-label="X axis">
        {(
          [
            ['step', 'Step'],
            ['tokens', 'Tokens'],
            ['wall', 'Wall time'],
          ] as const
        ).map(([k, label]) => (
          <button key={k} type="button" role="radio" aria-checked={p.xKind === k} className="segmented-item" onClick={() => p.setXKind(k)}>
            {label}
          </button>
        ))}
      </div>
      <label className="check">
        <input type="checkbox" checked={p.logY} onChange={(e) => p.setLogY(e.target.checked)} />
        Log y
      </label>
      <label className="check" title="Scale the y axis to the 5th–95th percentile, as TensorBoard's 'ignore outliers'">
        <input type="checkbox" checked={p.clip} onChange={(e) => p.setClip(e.target.checked)} />
        Clip outliers
      </label>
    </div>
  );
}
