/** The chart's colours come from the theme's CSS variables, read when a chart is built or drawn. */

export function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
}

/** A colour given as a CSS variable ("--chart-1", "var(--chart-1)") or as a CSS colour, resolved for a canvas. */
export function resolveColor(color: string): string {
  const m = /^var\((--[\w-]+)\)$/.exec(color.trim());
  if (m) return cssVar(m[1]!);
  return color.startsWith('--') ? cssVar(color) : color;
}
