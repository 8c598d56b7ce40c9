/**
 * A metric's series (what runs-metrics returns, kept live by run events) and the pure transforms behind the charts:
 * TensorBoard's debiased EMA, the x axis (step, tokens or wall time), aligning series of different x onto one table
 * for uPlot, thinning, and outlier clipping.
 */

/** One metric's points in step order (runs-metrics' shape; wall times in seconds). */
export interface Series {
  steps: number[];
  values: number[];
  /** Unix seconds */
  wall: number[];
  tokens: number[];
}

export type XKind = 'step' | 'tokens' | 'wall';

export const emptySeries = (): Series => ({ steps: [], values: [], wall: [], tokens: [] });

/** A wall time in seconds, whether it was recorded in seconds or in milliseconds. */
export const toSeconds = (t: number): number => (t > 1e11 ? t / 1000 : t);

/** The series as runs-metrics returns it (over JSON a NaN arrives as null). */
export function fromMetricSeries(m: {
  steps: number[];
  values: (number | null)[];
  wallTimes: number[];
  tokensSeen: number[];
}): Series {
  return {
    steps: m.steps.slice(),
    values: m.values.map((v) => (v === null ? Number.NaN : v)),
    wall: m.wallTimes.map(toSeconds),
    tokens: m.tokensSeen.slice(),
  };
}

/** Drops the points at or after `step` (a resumed run records them again). */
export function truncateFrom(s: Series, step: number): void {
  let n = s.steps.length;
  while (n > 0 && s.steps[n - 1]! >= step) n--;
  if (n === s.steps.length) return;
  s.steps.length = n;
  s.values.length = n;
  s.wall.length = n;
  s.tokens.length = n;
}

/** Appends a point, replacing any at or after its step. */
export function appendPoint(s: Series, step: number, value: number, wall: number, tokens: number): void {
  truncateFrom(s, step);
  s.steps.push(step);
  s.values.push(value);
  s.wall.push(wall);
  s.tokens.push(tokens);
}

/**
 * TensorBoard's smoothing: an exponential moving average debiased as Adam does (dividing by 1 - w^n), so that the
 * first points are not pulled towards zero. Non-finite values pass through unsmoothed and do not enter the
 * average; a constant series is returned as it is. `weight` is in [0, 1); 0 leaves the values as they are.
 */
export function debiasedEma(values: readonly number[], weight: number): number[] {
  const out = new Array<number>(values.length);
  if (weight <= 0 || values.length === 0) {
    for (let i = 0; i < values.length; i++) out[i] = values[i]!;
    return out;
  }
  const w = Math.min(weight, 0.9999);
  const first = values[0];
  let constant = true;
  for (let i = 1; i < values.length; i++) {
    if (values[i] !== first) {
      constant = false;
      break;
    }
  }
  let last = 0;
  let wn = 1; // w^n, n = the finite values averaged so far
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (constant || !Number.isFinite(v)) {
      out[i] = v;
      continue;
    }
    last = last * w + (1 - w) * v;
    wn *= w;
    out[i] = last / (1 - wn);
  }
  return out;
}

/** The x values of a series: its steps, its tokens seen, or seconds since `t0`. */
export function xValues(s: Series, kind: XKind, t0: number): number[] {
  if (kind === 'step') return s.steps;
  if (kind === 'tokens') return s.tokens;
  return s.wall.map((t) => t - t0);
}

/** The earliest wall time of any series (the zero of the wall-time axis). */
export function wallOrigin(series: Iterable<Series>): number {
  let t0 = Infinity;
  for (const s of series) if (s.wall.length && s.wall[0]! < t0) t0 = s.wall[0]!;
  return Number.isFinite(t0) ? t0 : 0;
}

/** A table of y columns over one x column. */
export interface XYTable {
  x: readonly number[];
  ys: readonly (readonly (number | null)[])[];
}

/**
 * Aligns tables on the union of their x values (sorted ascending), as uPlot wants: [x, ...every y], with null
 * where a table has no point. Each table's x must be ascending. Equal x columns take a fast path.
 */
export function joinTables(tables: readonly XYTable[]): (number | null)[][] {
  if (tables.length === 0) return [[]];
  const x0 = tables[0]!.x;
  const sameX = tables.every((t) => t.x === x0 || sameArray(t.x, x0));
  if (sameX) return [x0.slice() as number[], ...tables.flatMap((t) => t.ys.map((y) => y.slice()))];
  // k-way merge of the ascending x columns
  const xs: number[] = [];
  const pos = tables.map(() => 0);
  for (;;) {
    let next = Infinity;
    for (let t = 0; t < tables.length; t++) {
      const tx = tables[t]!.x;
      const p = pos[t]!;
      if (p < tx.length && tx[p]! < next) next = tx[p]!;
    }
    if (next === Infinity) break;
    xs.push(next);
    for (let t = 0; t < tables.length; t++) {
      const tx = tables[t]!.x;
      let p = pos[t]!;
      while (p < tx.length && tx[p] === next) p++;
      pos[t] = p;
    }
  }
  const out: (number | null)[][] = [xs];
  for (const t of tables) {
    const cols = t.ys.map(() => new Array<number | null>(xs.length).fill(null));
    let j = 0;
    for (let i = 0; i < t.x.length; i++) {
      while (xs[j]! < t.x[i]!) j++;
      for (let c = 0; c < cols.length; c++) cols[c]![j] = t.ys[c]![i]!;
    }
    out.push(...cols);
  }
  return out;
}

function sameArray(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The y range that ignores outliers, as TensorBoard's "ignore outliers in chart scaling": from the 5th to the
 * 95th percentile of the finite values, padded by 10% of that span on each side. Null when there are no values
 * (or, for a log axis, no positive ones).
 */
export function clippedRange(
  columns: readonly (readonly (number | null)[])[],
  log = false,
  lo = 0.05,
  hi = 0.95,
): [number, number] | null {
  const v: number[] = [];
  for (const col of columns)
    for (const x of col) if (x !== null && Number.isFinite(x) && (!log || x > 0)) v.push(log ? Math.log10(x) : x);
  if (v.length === 0) return null;
  v.sort((a, b) => a - b);
  const q = (p: number) => {
    const i = p * (v.length - 1);
    const f = Math.floor(i);
    return f + 1 < v.length ? v[f]! + (v[f + 1]! - v[f]!) * (i - f) : v[f]!;
  };
  let min = q(lo);
  let max = q(hi);
  const span = max - min || Math.abs(max) * 0.1 || 1;
  min -= span * 0.1;
  max += span * 0.1;
  return log ? [10 ** min, 10 ** max] : [min, max];
}

/** For a log axis: values that are not positive become gaps. */
export function positiveOnly(col: readonly (number | null)[]): (number | null)[] {
  return col.map((v) => (v !== null && v > 0 ? v : null));
}

/** NaN and infinities become gaps (uPlot draws null as a gap). */
export function finiteOnly(col: readonly (number | null)[]): (number | null)[] {
  return col.map((v) => (v !== null && Number.isFinite(v) ? v : null));
}

/**
 * Thins a long table for drawing: the rows are cut into `buckets` runs of equal length, and of each run only the
 * rows holding the minimum and the maximum of each column are kept (in order), so that spikes and the envelope
 * survive while a 100k-point series draws as a few thousand. Shorter tables are returned as they are.
 */
export function decimate(t: XYTable, buckets = 1000): XYTable {
  const n = t.x.length;
  if (n <= buckets * 4) return t;
  const keep: number[] = [];
  const size = n / buckets;
  const picked: number[] = [];
  for (let b = 0; b < buckets; b++) {
    const from = Math.floor(b * size);
    const to = Math.min(n, Math.floor((b + 1) * size));
    if (to <= from) continue;
    picked.length = 0;
    picked.push(from);
    for (const col of t.ys) {
      let lo = -1;
      let hi = -1;
      let vlo = Infinity;
      let vhi = -Infinity;
      for (let i = from; i < to; i++) {
        const v = col[i]!;
        // null and non-finite values are never picked (v - v is NaN for them)
        if (v === null || v - v !== 0) continue;
        if (v < vlo) {
          vlo = v;
          lo = i;
        }
        if (v > vhi) {
          vhi = v;
          hi = i;
        }
      }
      if (lo >= 0) picked.push(lo);
      if (hi >= 0) picked.push(hi);
    }
    // a few indices per bucket: sort, then keep each once
    picked.sort((x, y) => x - y);
    for (let j = 0; j < picked.length; j++) if (j === 0 || picked[j] !== picked[j - 1]) keep.push(picked[j]!);
  }
  if (keep[keep.length - 1] !== n - 1) keep.push(n - 1);
  const x = new Array<number>(keep.length);
  for (let j = 0; j < keep.length; j++) x[j] = t.x[keep[j]!]!;
  return {
    x,
    ys: t.ys.map((col) => {
      const out = new Array<number | null>(keep.length);
      for (let j = 0; j < keep.length; j++) out[j] = col[keep[j]!]!;
      return out;
    }),
  };
}
