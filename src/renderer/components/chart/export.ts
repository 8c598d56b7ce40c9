/** A chart as an image (the Compare page's PNG export): its plot as drawn, with its title and a legend. */
import type uPlot from 'uplot';
import { cssVar, resolveColor } from './colors';
import { BASELINE_DASH } from './marks';
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

/**
 * The chart as an image: the title (and unit) above the plot as uPlot drew it, and below it a legend of the lines
 * and the reference lines, wrapped to the plot's width, on the theme's surface colour.
 */
export function chartImage(
  u: uPlot,
  title: string,
  unit: string | undefined,
  lines: readonly ChartLine[],
  baselines: readonly ChartBaseline[],
): HTMLCanvasElement {
  const items = legendItems(u, lines, baselines);
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
