/**
 * A chart as an image (the Compare page's PNG export): its plot drawn again at the device's pixel ratio, at least
 * 2x (the chart's own canvas is at the screen's ratio, 1 on most desktop screens), with its title and a legend.
 */
import uPlot from 'uplot';
import { cssVar, resolveColor } from './colors';
import { BASELINE_DASH, countValues, paintBaselines } from './marks';
import type { ChartBaseline, ChartLine } from './types';

interface LegendItem {
  label: string;
  color: string;
  width: number;
  dash?: number[];
  /** a hidden line (switched off in the legend) is drawn faint */
  faint?: boolean;
}

/** The legend of the image: the lines (faint where switched off), then the reference lines. */
function legendItems(u: uPlot, lines: readonly ChartLine[], baselines: readonly ChartBaseline[]): LegendItem[] {
  return [
    ...lines.map((l, i) => ({
      label: l.label,
      color: resolveColor(l.color),
      width: l.width ?? 1.6,
      dash: l.dash,
      faint: u.series[i + 1]?.show === false,
    })),
    ...baselines.map((b) => ({
      label: b.label,
      color: resolveColor(b.color),
      width: 1.25,
      dash: b.dash ?? BASELINE_DASH,
    })),
  ];
}

/** Device pixels per CSS pixel of an exported chart: the screen's ratio, and at least 2. */
export function exportRatio(devicePixelRatio: number): number {
  return Math.max(2, Number.isFinite(devicePixelRatio) ? devicePixelRatio : 1);
}

/** What uPlot keeps of an axis once drawn: its tick values and their labels (null where a tick is left out). */
interface DrawnAxis {
  scale?: string;
  side?: number;
  _splits?: (number | null)[] | null;
  _values?: (string | number | null)[] | null;
}

const AXIS_FONT = '11px system-ui, sans-serif';
const TICK = 4;
const TICK_GAP = 5;

/**
 * Draws the plot again, in CSS pixels on a context scaled to the image's ratio: the grid, ticks and tick labels
 * as uPlot laid them out, each shown line at its place on the current scales (zoom included), its points where
 * the chart shows them, and the reference lines. False when the chart has not laid out its axes yet.
 */
function drawPlot(
  ctx: CanvasRenderingContext2D,
  u: uPlot,
  lines: readonly ChartLine[],
  baselines: readonly ChartBaseline[],
  log: boolean,
): boolean {
  const axes = u.axes as DrawnAxis[];
  if (!axes.every((a) => Array.isArray(a._splits))) return false;
  const k = uPlot.pxRatio;
  const box = { left: u.bbox.left / k, top: u.bbox.top / k, width: u.bbox.width / k, height: u.bbox.height / k };
  const grid = cssVar('--chart-grid');
  const axisColour = cssVar('--chart-axis');
  ctx.save();
  ctx.font = AXIS_FONT;
  ctx.lineWidth = 1;
  for (const a of axes) {
    const key = a.scale ?? 'x';
    const vertical = (a.side ?? (key === 'x' ? 2 : 3)) % 2 === 1;
    const splits = a._splits ?? [];
    const labels = a._values ?? [];
    ctx.fillStyle = axisColour;
    ctx.textAlign = vertical ? 'right' : 'center';
    ctx.textBaseline = vertical ? 'middle' : 'top';
    splits.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) return;
      const at = u.valToPos(v, key);
      if (!Number.isFinite(at) || at < -0.5 || at > (vertical ? box.height : box.width) + 0.5) return;
      ctx.strokeStyle = grid;
      ctx.beginPath();
      if (vertical) {
        const y = Math.round(box.top + at) + 0.5;
        ctx.moveTo(box.left - TICK, y);
        ctx.lineTo(box.left + box.width, y);
      } else {
        const x = Math.round(box.left + at) + 0.5;
        ctx.moveTo(x, box.top);
        ctx.lineTo(x, box.top + box.height + TICK);
      }
      ctx.stroke();
      const label = labels[i];
      if (label === null || label === undefined || label === '') return;
      if (vertical) ctx.fillText(String(label), box.left - TICK - TICK_GAP, box.top + at);
      else ctx.fillText(String(label), box.left + at, box.top + box.height + TICK + TICK_GAP);
    });
  }
  ctx.beginPath();
  ctx.rect(box.left, box.top, box.width, box.height);
  ctx.clip();
  const xs = u.data[0];
  lines.forEach((l, li) => {
    const si = li + 1;
    const col = u.data[si];
    if (!col || u.series[si]?.show === false) return;
    const colour = resolveColor(l.color);
    const at = (j: number): [number, number] | null => {
      const x = xs[j];
      const y = col[j];
      if (x === null || x === undefined || y === null || y === undefined || (log && y <= 0)) return null;
      return [box.left + u.valToPos(x, 'x'), box.top + u.valToPos(y, 'y')];
    };
    ctx.globalAlpha = l.alpha ?? 1;
    ctx.strokeStyle = colour;
    ctx.fillStyle = colour;
    if (!l.marks) {
      // gaps are spanned, as the chart draws them
      ctx.lineWidth = l.width ?? 1.6;
      ctx.lineJoin = 'round';
      ctx.setLineDash(l.dash ?? []);
      ctx.beginPath();
      let started = false;
      for (let j = 0; j < xs.length; j++) {
        const p = at(j);
        if (!p) continue;
        if (started) ctx.lineTo(p[0], p[1]);
        else ctx.moveTo(p[0], p[1]);
        started = true;
      }
      ctx.stroke();
      ctx.setLineDash([]);
    }
    // the points the chart shows: marks always, a sparse line's while it has few
    const size = l.marks ? 9 : l.points && countValues(col) <= 120 ? 5 : 0;
    if (size > 0)
      for (let j = 0; j < xs.length; j++) {
        const p = at(j);
        if (!p) continue;
        ctx.beginPath();
        ctx.arc(p[0], p[1], size / 2, 0, Math.PI * 2);
        ctx.fill();
      }
    ctx.globalAlpha = 1;
  });
  ctx.restore();
  paintBaselines({ ctx, box, ratio: 1, yPos: (v) => box.top + u.valToPos(v, 'y') }, baselines, log);
  return true;
}

/**
 * The chart as an image: the title (and unit) above the plot, and below it a legend of the lines and the reference
 * lines, wrapped to the plot's width, on the theme's surface colour; `ratio` device pixels per CSS pixel.
 */
export function chartImage(
  u: uPlot,
  title: string,
  unit: string | undefined,
  lines: readonly ChartLine[],
  baselines: readonly ChartBaseline[],
  log = false,
  ratio = exportRatio(window.devicePixelRatio),
): HTMLCanvasElement {
  const items = legendItems(u, lines, baselines);
  const src = u.ctx.canvas;
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
    rows[rows.length - 1]!.push({ item, x });
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
  ctx.save();
  ctx.translate(pad, pad + titleH);
  // the plot at the image's resolution; the canvas as drawn (scaled) if its axes are not laid out yet
  if (!drawPlot(ctx, u, lines, baselines, log)) ctx.drawImage(src, 0, 0, u.width, u.height);
  ctx.restore();
  ctx.textBaseline = 'middle';
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
