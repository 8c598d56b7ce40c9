/**
 * The charts of the studio (Run and Compare pages): the uPlot chart and the toolbar of options a page of charts
 * shares, and the metric series with the transforms that turn them into a chart's table.
 */
export { Chart, type ChartProps } from './Chart';
export { ChartToolbar } from './ChartToolbar';
export type { ChartBaseline, ChartHandle, ChartLine } from './types';
export * from './series';
