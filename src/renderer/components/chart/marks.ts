/**
 * What the chart draws on its plot and shows in its legend: each line (or marks, or sparse points) with the value
 * under the cursor, and the labelled reference lines drawn over the plot.
 */
import uPlot from 'uplot';
import { metric } from '../../format';
import { X_LABEL, xFormat } from './axes';
import { cssVar, resolveColor } from './colors';
import type { XKind } from './series';
import type { ChartBaseline, ChartLine } from './types';

export const BASELINE_DASH = [6, 4];

/**
 * The index of the non-null value of `col` nearest to row `idx` along `xs` (itself when it has one; the earlier
 * one on a tie); -1 when the column has none, or none on one side of the row: a run that ended at step 26 has no
 * value at step 59, and one that starts later has none before its first point.
 */
export function nearestIndex(
  col: ArrayLike<number | null | undefined>,
  xs: ArrayLike<number | null | undefined>,
  idx: number,
): number {
  const has = (i: number) => col[i] !== null && col[i] !== undefined;
  if (idx < 0 || idx >= col.length) return -1;
  if (has(idx)) return idx;
  let l = idx - 1;
  while (l >= 0 && !has(l)) l--;
  let r = idx + 1;
  while (r < col.length && !has(r)) r++;
  if (l < 0 || r >= col.length) return -1;
  const x = Number(xs[idx]);
  return Math.abs(x - Number(xs[r])) < Math.abs(x - Number(xs[l])) ? r : l;
}

/** The last non-null value of a column (what the legend shows while the cursor is away). */
function lastValue(col: ArrayLike<number | null | undefined> | undefined): number | null {
  if (!col) return null;
  for (let i = col.length - 1; i >= 0; i--) {
    const v = col[i];
    if (v !== null && v !== undefined) return v;
  }
  return null;
}

export function countValues(col: ArrayLike<number | null | undefined> | undefined): number {
  let n = 0;
  if (col) for (let i = 0; i < col.length; i++) if (col[i] !== null && col[i] !== undefined) n++;
  return n;
}

/**
 * Each line's vertical extent on the plot as drawn, "top,bottom" in CSS pixels from the plot's top (its values
 * within the x range shown, clamped to the plot), or "" for a line with none shown: what a test reads to see how
 * much of the plot the data fills.
 */
export function lineExtents(u: uPlot): string[] {
  const xs = u.data[0];
  const { min: x0 = -Infinity, max: x1 = Infinity } = u.scales.x ?? {};
  const h = u.bbox.height / uPlot.pxRatio;
  const out: string[] = [];
  for (let si = 1; si < u.data.length; si++) {
    const col = u.data[si]!;
    let lo = Infinity;
    let hi = -Infinity;
    for (let j = 0; j < col.length; j++) {
      const v = col[j];
      const x = xs[j];
      if (v === null || v === undefined || !Number.isFinite(v) || x === undefined || x < x0 || x > x1) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (lo > hi) {
      out.push('');
      continue;
    }
    const clamp = (p: number) => Math.min(h, Math.max(0, p));
    out.push(`${clamp(u.valToPos(hi, 'y')).toFixed(1)},${clamp(u.valToPos(lo, 'y')).toFixed(1)}`);
  }
  return out;
}

/** The stroke colour of a series (uPlot keeps it as a function once the chart is built). */
export function lineStroke(u: uPlot, si: number): string {
  const stroke = u.series[si]?.stroke;
  const c = typeof stroke === 'function' ? stroke(u, si) : stroke;
  return typeof c === 'string' ? c : '';
}

/** The x series: its legend shows the x under the cursor, or the latest one while the cursor is away. */
export function xSeries(xKind: XKind): uPlot.Series {
  const fmtX = xFormat(xKind);
  return {
    label: X_LABEL[xKind],
    value: (u, v, _s, idx) => {
      const x = idx === null ? lastValue(u.data[0]) : v;
      return x === null || x === undefined ? '—' : fmtX(x);
    },
  };
}

/**
 * A line as uPlot draws it. With `nearestLegend` the legend shows the line's point nearest the cursor rather than
 * its value at the cursor's row (for lines with different x values, as several runs joined on one x axis).
 */
export function lineSeries(l: ChartLine, nearestLegend: boolean): uPlot.Series {
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
      : l.points
        ? { show: (u, sidx) => countValues(u.data[sidx]) <= 120, size: 5, fill: color, stroke: color }
        : { show: false },
    ...(l.marks ? { paths: () => null, spanGaps: false } : {}),
    // the value under the cursor (or the line's nearest point); the latest one while the cursor is away
    value: (u, v, sidx, idx) => {
      let y: number | null | undefined = v;
      if (idx === null) y = lastValue(u.data[sidx]);
      else if (nearestLegend && (y === null || y === undefined)) {
        const col = u.data[sidx]!;
        const at = nearestIndex(col, u.data[0], idx);
        y = at >= 0 ? col[at] : null;
      }
      return y === null || y === undefined ? '—' : (l.format ?? metric)(y);
    },
  };
}

/** Where reference lines are painted: the plot's box and the y position of a value, in the context's units. */
export interface BaselineSurface {
  ctx: CanvasRenderingContext2D;
  box: { left: number; top: number; width: number; height: number };
  /** context units per CSS pixel */
  ratio: number;
  yPos: (v: number) => number;
}

/**
 * Draws the reference lines over the plot, each with its label at its right end (a hook of uPlot's draw), and
 * returns the labels of those drawn (in the y range).
 */
export function drawBaselines(u: uPlot, baselines: readonly ChartBaseline[], log: boolean): string[] {
  if (baselines.length === 0) return [];
  const surface = { ctx: u.ctx, box: u.bbox, ratio: uPlot.pxRatio, yPos: (v: number) => u.valToPos(v, 'y', true) };
  return paintBaselines(surface, baselines, log);
}

/** Paints the reference lines on a surface (the chart's canvas, or an exported image of it). */
export function paintBaselines(s: BaselineSurface, baselines: readonly ChartBaseline[], log: boolean): string[] {
  const drawn: string[] = [];
  if (baselines.length === 0) return drawn;
  const { ctx, ratio } = s;
  const { left, top, width, height } = s.box;
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
    // on a pixel's middle, so that the dashes are sharp
    const y = Math.round(s.yPos(b.value)) + 0.5;
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
