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
 * one on a tie); -1 when the column has none.
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
  if (l < 0) return r < col.length ? r : -1;
  if (r >= col.length) return l;
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

/**
 * Draws the reference lines over the plot, each with its label at its right end (a hook of uPlot's draw), and
 * returns the labels of those drawn (in the y range).
 */
export function drawBaselines(u: uPlot, baselines: readonly ChartBaseline[], log: boolean): string[] {
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
