/** What a page gives a chart: its lines, its reference lines, and what it can ask of a drawn chart. */

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
