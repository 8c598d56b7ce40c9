/**
 * The chart's axes and scales: tick labels with just the decimals that tell them apart, log ticks that work over a
 * narrow range too, the x axis of steps, tokens or wall time, and a y range that ignores outliers on request and
 * always shows the reference lines.
 */
import uPlot from 'uplot';
import { clock, compact } from '../../format';
import { cssVar } from './colors';
import { clippedRange, type XKind } from './series';

export const X_LABEL: Record<XKind, string> = { step: 'Step', tokens: 'Tokens', wall: 'Time' };

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
    const d = decimals(
      finite.map((v) => v / scale),
      max,
    );
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
 * Ticks of a log axis: 1-2-5 per decade over a range of a decade or more. Over a narrower one five points evenly
 * spaced in log space, each rounded to a nice value at its own scale, so that the ticks sit about evenly up the
 * plot (0.6 1 1.5 2 3 4); within a factor of two, where log and linear spacing barely differ, one nice step (a loss
 * between 6 and 11: 6 7 8 9 10 11).
 */
export function logSplits(min: number, max: number): number[] {
  if (!(min > 0) || !(max > min)) return [];
  const out: number[] = [];
  if (max / min < 2) {
    // log and linear spacing barely differ: one nice step
    const step = niceStep((max - min) / 4);
    for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
    return out;
  }
  if (max / min < 10) {
    const a = Math.log10(min);
    const span = Math.log10(max) - a;
    const n = 5;
    const ratio = 10 ** (span / n);
    for (let i = 0; i <= n; i++) {
      const t = 10 ** (a + (span * i) / n);
      // the nice step of the gap to the next tick, so that neighbours stay apart
      const step = niceStep(t * (ratio - 1));
      const v = Number((Math.round(t / step) * step).toPrecision(12));
      if (v >= min * (1 - 1e-9) && v <= max * (1 + 1e-9) && v > (out[out.length - 1] ?? 0)) out.push(v);
    }
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

/** The least distance, in CSS pixels, between two y tick labels (11 px text). */
const LABEL_SPACE = 15;

/**
 * The ticks that get a label: from the lowest up, each at least `space` pixels from the last one labelled; the
 * others are null (their grid line stays).
 */
export function spacedLabels(splits: readonly number[], pos: (v: number) => number, space: number): (number | null)[] {
  let last = Number.NaN;
  return splits.map((v) => {
    const p = pos(v);
    if (!Number.isFinite(p)) return null;
    if (Number.isFinite(last) && Math.abs(p - last) < space) return null;
    last = p;
    return v;
  });
}

/** Tick increments for counts (steps, tokens): 1, 2, 5, 10, 20, 50, ... */
const COUNT_INCRS = Array.from({ length: 16 }, (_, e) => [1, 2, 5].map((m) => m * 10 ** e)).flat();

/** How an x value reads: a clock time since the start, a token count, or a step. */
export function xFormat(kind: XKind): (v: number) => string {
  if (kind === 'wall') return clock;
  if (kind === 'tokens') return compact;
  return (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1));
}

/** The x and y axes, in the theme's colours. */
export function axesOf(
  xKind: XKind,
  logY: boolean,
  yFormat: ((v: number, splits: readonly number[]) => string) | undefined,
): uPlot.Axis[] {
  const grid = cssVar('--chart-grid');
  const axis = cssVar('--chart-axis');
  const fmtX = xFormat(xKind);
  return [
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
      values: (_u, splits) =>
        yFormat ? splits.map((v) => (v === null ? '' : yFormat(v, splits))) : formatTicks(splits),
      splits: logY ? (u) => logSplits(u.scales.y!.min ?? 0, u.scales.y!.max ?? 0) : undefined,
      // every tick of ours is labelled (uPlot's own log filter keeps only 1-2-5 labels, 3 of 6 within a decade)
      // unless two would overlap
      filter: logY ? (u, splits) => spacedLabels(splits, (v) => u.valToPos(v, 'y'), LABEL_SPACE) : undefined,
      font: '11px system-ui, sans-serif',
      size: 52,
    },
  ];
}

/**
 * The y range: of the data (from the 5th to the 95th percentile while `clip()` says so), widened to show the
 * reference values of `refs()`. Both are read at each redraw, so that switching them needs no rebuild.
 */
export function yRangeOf(logY: boolean, clip: () => boolean, refs: () => number[]): uPlot.Range.Function {
  return (u, min, max) => {
    const values = refs();
    if (clip()) {
      const r = clippedRange(u.data.slice(1) as (number | null)[][], logY);
      if (r) return withBaselines(r, values, logY);
    }
    if (min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)) {
      const finite = values.filter((v) => Number.isFinite(v) && (!logY || v > 0));
      if (finite.length === 0) return logY ? [0.1, 10] : [0, 1];
      min = Math.min(...finite);
      max = Math.max(...finite);
    } else {
      [min, max] = withBaselines([min, max], values, logY);
    }
    if (logY) return logRange(min, max);
    return uPlot.rangeNum(min, max, 0.08, true);
  };
}

/**
 * The range of a log axis around the data: padded by 6% of its span in log space on each side, not snapped to
 * whole decades, so that a loss between 6 and 11 fills the plot rather than a sliver of 10 to 100. A single value
 * (or one that is not positive on either end) gets ±5% around it.
 */
export function logRange(min: number, max: number): [number, number] {
  if (!(max > 0)) return [0.1, 10];
  if (!(min > 0)) min = max / 10;
  const a = Math.log10(min);
  const b = Math.log10(max);
  const pad = (b - a) * 0.06 || 0.02;
  return [10 ** (a - pad), 10 ** (b + pad)];
}
