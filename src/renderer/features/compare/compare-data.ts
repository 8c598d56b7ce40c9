/**
 * The Compare page's pure parts: the selection kept in the URL, each run's colour, the overlaid chart tables, the
 * reference lines, the flattened config table and the CSV export.
 */
import {
  toSeconds,
  debiasedEma,
  decimate,
  finiteOnly,
  joinTables,
  positiveOnly,
  wallOrigin,
  xValues,
  type Series,
  type XKind,
  type XYTable,
} from '../../components/chart/series';
import { REFERENCE } from '../../../shared/reference';
import { GPU_FIELDS, PROCESS_METRICS, gpuMetric, type SystemFormat } from '../../system-metrics';

export const MIN_RUNS = 2;
export const MAX_RUNS = 10;

// ---- the selection -------------------------------------------------------------------------------------------

/** The run ids of a `runs=` query value ("id1,id2"): trimmed, without repeats, at most MAX_RUNS. */
export function parseSelection(value: string | null | undefined): string[] {
  const out: string[] = [];
  for (const part of (value ?? '').split(',')) {
    const id = part.trim();
    if (id && !out.includes(id)) out.push(id);
    if (out.length === MAX_RUNS) break;
  }
  return out;
}

/** The selection with `id` switched on (appended; refused past MAX_RUNS) or off. */
export function toggleSelection(ids: readonly string[], id: string, on: boolean): string[] {
  if (!on) return ids.filter((x) => x !== id);
  if (ids.includes(id) || ids.length >= MAX_RUNS) return ids.slice();
  return [...ids, id];
}

// ---- colours -------------------------------------------------------------------------------------------------

/**
 * The run colours: CSS variables defined (for the light and the dark theme) in compare.css, ten hues that stay
 * apart from each other on either background.
 */
export const RUN_COLORS = Array.from({ length: MAX_RUNS }, (_, i) => `--compare-${i + 1}`);

/** A 32-bit FNV-1a hash of a string. */
export function hashId(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * A colour slot per run: the one its id hashes to, or the next free one when an earlier run of the selection
 * holds it. A run keeps its colour when others are added to the selection, and the same run has the same colour
 * on every chart, in the legend and in the table.
 */
export function assignColors(ids: readonly string[], palette: readonly string[] = RUN_COLORS): Map<string, string> {
  const taken = new Set<number>();
  const out = new Map<string, string>();
  for (const id of ids) {
    if (out.has(id)) continue;
    let slot = hashId(id) % palette.length;
    for (let tries = 0; taken.has(slot) && tries < palette.length; tries++) slot = (slot + 1) % palette.length;
    taken.add(slot);
    out.set(id, palette[slot]!);
  }
  return out;
}

// ---- charts --------------------------------------------------------------------------------------------------

export interface MetricPanel {
  id: string;
  /** the metric's name in the store */
  metric: string;
  title: string;
  unit?: string;
  /** drawn only when a selected run has it */
  optional?: boolean;
  /** the run page smooths this metric (losses, norm, throughput; not the lr or sparse evals) */
  smooth: boolean;
  /** drawn with its points while they are few (evals) */
  points?: boolean;
  kind?: 'percent' | 'lr' | 'count';
  /** a system metric (CPU, memory, disk, a GPU): charted under the System heading, its values read this way */
  system?: SystemFormat;
}

/** The GPUs whose readings the page loads: sys/gpu0 .. sys/gpu7. */
export const COMPARE_GPUS = 8;

/**
 * The System charts: the worker's CPU, memory, threads and free disk, then each GPU's utilisation, memory, power and
 * temperature, one chart per GPU and reading (the lines are the runs). Each is drawn only when a selected run has it.
 */
export const SYSTEM_PANELS: readonly MetricPanel[] = [
  ...PROCESS_METRICS.map((m): MetricPanel => ({
    id: m.id,
    metric: m.metric,
    title: m.title,
    unit: m.unit,
    optional: true,
    smooth: false,
    system: m.format,
  })),
  ...Array.from({ length: COMPARE_GPUS }, (_, g) =>
    GPU_FIELDS.map((f): MetricPanel => ({
      id: `sys-gpu${g}-${f.id}`,
      metric: gpuMetric(g, f.field),
      title: `${f.title} · gpu${g}`,
      unit: f.unit,
      optional: true,
      smooth: false,
      system: f.format,
    })),
  ).flat(),
];

/** The charts of the Compare page, in order. */
export const PANELS: readonly MetricPanel[] = [
  { id: 'train-loss', metric: 'train/loss', title: 'Train loss', unit: 'cross-entropy, nats', smooth: true },
  { id: 'val-loss', metric: 'val/loss', title: 'Val loss', unit: 'cross-entropy, nats', smooth: false, points: true },
  { id: 'lr', metric: 'train/lr', title: 'Learning rate', smooth: false, kind: 'lr' },
  { id: 'norm', metric: 'train/norm', title: 'Gradient norm', unit: 'before clipping', smooth: true },
  {
    id: 'tok-per-sec',
    metric: 'train/tok_per_sec',
    title: 'Throughput',
    unit: 'tokens / s',
    smooth: true,
    kind: 'count',
  },
  {
    id: 'hellaswag',
    metric: 'hellaswag/acc_norm',
    title: 'HellaSwag',
    unit: 'acc_norm',
    optional: true,
    smooth: false,
    points: true,
    kind: 'percent',
  },
];

/** The metrics the page loads for each run. */
export const CHART_METRICS = [...PANELS, ...SYSTEM_PANELS].map((p) => p.metric);

export interface ReferenceLine {
  id: string;
  /** the metric whose chart shows it */
  metric: string;
  value: number;
  /** drawn on the chart, next to the line */
  label: string;
  /** the switch's longer text */
  description: string;
  color: string;
  dash: number[];
}

/**
 * Published figures to measure a run against: the val loss of OpenAI's GPT-2 124M on FineWeb-edu (as measured in
 * "Let's reproduce GPT-2"), and the HellaSwag acc_norm of GPT-2 124M and of GPT-3 124M (GPT-3 paper, table of
 * zero-shot results).
 */
/** 0.2955 -> "29.55%" */
const percent = (v: number): string => `${Number((v * 100).toFixed(2))}%`;

export const REFERENCE_LINES: readonly ReferenceLine[] = [
  {
    id: 'gpt2-val',
    metric: 'val/loss',
    value: REFERENCE.gpt2ValLoss,
    label: `GPT-2 124M · ${REFERENCE.gpt2ValLoss}`,
    description: `GPT-2 124M val loss on FineWeb-edu (${REFERENCE.gpt2ValLoss})`,
    color: '--muted',
    dash: [6, 4],
  },
  {
    id: 'gpt2-hellaswag',
    metric: 'hellaswag/acc_norm',
    value: REFERENCE.hellaswag.gpt2.accNorm,
    label: `GPT-2 124M · ${percent(REFERENCE.hellaswag.gpt2.accNorm)}`,
    description: `GPT-2 124M HellaSwag (${REFERENCE.hellaswag.gpt2.accNorm})`,
    color: '--muted',
    dash: [6, 4],
  },
  {
    id: 'gpt3-hellaswag',
    metric: 'hellaswag/acc_norm',
    value: REFERENCE.hellaswag.gpt3.accNorm,
    label: `GPT-3 124M · ${percent(REFERENCE.hellaswag.gpt3.accNorm)}`,
    description: `GPT-3 124M HellaSwag (${REFERENCE.hellaswag.gpt3.accNorm})`,
    color: '--warn',
    dash: [2, 3],
  },
];

export interface PanelOptions {
  smoothing: number;
  logY: boolean;
  xKind: XKind;
  /** thin each run's series to about this many buckets (the chart's width in pixels) */
  buckets: number;
}

/** One run's metric series, as loaded. */
export interface RunSeries {
  id: string;
  series: Record<string, Series>;
}

/**
 * A chart's table for uPlot: [x, one column per run], each run's series smoothed (when the metric is smoothed),
 * moved onto the chosen x axis (wall time counts from the run's own first point, so that runs of different days
 * overlay), decimated to the chart's width, and joined on the union of their x values. A run without the metric
 * gets an empty column, so columns stay in the order of `runs`.
 */
export function panelTable(panel: MetricPanel, runs: readonly RunSeries[], o: PanelOptions): (number | null)[][] {
  const tables: XYTable[] = runs.map((r) => {
    const s = r.series[panel.metric];
    if (!s || s.steps.length === 0) return { x: [], ys: [[]] };
    const t0 = o.xKind === 'wall' ? wallOrigin(Object.values(r.series)) : 0;
    const values = panel.smooth ? debiasedEma(s.values, o.smoothing) : s.values;
    // thin first (it skips NaN and infinities), then turn what is left into gaps: a copy of a few thousand, not 100k
    // system charts keep linear axes (a CPU at 0% stays a point)
    const logY = o.logY && !panel.system;
    const d = decimate({ x: xValues(s, o.xKind, t0), ys: [logY ? positiveOnly(values) : values] }, o.buckets);
    return { x: d.x, ys: [finiteOnly(d.ys[0]!)] };
  });
  if (tables.length === 0) return [[]];
  return joinTables(tables);
}

/** Whether any run has a point of the metric. */
export function hasMetric(runs: readonly RunSeries[], metric: string): boolean {
  return runs.some((r) => (r.series[metric]?.steps.length ?? 0) > 0);
}

/** Legend labels: the run's name, with the end of its id when two selected runs share a name. */
export function runLabels(runs: readonly { id: string; name: string }[]): Map<string, string> {
  const count = new Map<string, number>();
  for (const r of runs) count.set(r.name, (count.get(r.name) ?? 0) + 1);
  return new Map(runs.map((r) => [r.id, (count.get(r.name) ?? 0) > 1 ? `${r.name} (${r.id.slice(-6)})` : r.name]));
}

// ---- config table --------------------------------------------------------------------------------------------

/**
 * A config as dotted keys: {model: {n_layer: 4}} -> {"model.n_layer": 4}. Arrays are leaves (shown as JSON), and
 * so is an empty object.
 */
export function flattenConfig(value: unknown, prefix = '', out: Record<string, unknown> = {}): Record<string, unknown> {
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length > 0) {
    for (const [k, v] of Object.entries(value as Record<string, unknown>))
      flattenConfig(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) {
    out[prefix] = value;
  }
  return out;
}

/** A config value for a table cell: strings as they are, everything else as JSON; a missing key is "—". */
export function formatConfigValue(v: unknown): string {
  if (v === undefined) return '—';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

export interface ConfigRow {
  key: string;
  /** one cell per run, in the order of the runs */
  values: string[];
  /** not every run has the same value (a key that some runs lack differs) */
  differs: boolean;
}

/** The rows of the config table: every dotted key of any run, sorted, each with whether the runs differ there. */
export function configRows(configs: readonly unknown[]): ConfigRow[] {
  const flat = configs.map((c) => flattenConfig(c));
  const keys = [...new Set(flat.flatMap((f) => Object.keys(f)))].sort();
  return keys.map((key) => {
    const values = flat.map((f) => formatConfigValue(f[key]));
    const differs = flat.some((f) => !(key in f)) || values.some((v) => v !== values[0]);
    return { key, values, differs };
  });
}

// ---- CSV -----------------------------------------------------------------------------------------------------

export const CSV_HEADER = ['run_id', 'run_name', 'metric', 'step', 'value', 'wall_time', 'tokens_seen'] as const;

/** A CSV field, quoted as RFC 4180 says when it holds a comma, a quote or a line break. */
export function csvField(v: string | number): string {
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export interface CsvRun {
  id: string;
  name: string;
  /** runs-metrics' answer: wall times in ms (or s), NaN as null */
  metrics: Record<string, { steps: number[]; values: (number | null)[]; wallTimes: number[]; tokensSeen: number[] }>;
}

/**
 * The runs' scalars as CSV, one row per run, metric and step (metrics in name order, steps ascending), with a
 * header. wall_time is Unix seconds; a NaN value is an empty field. Lines end with CRLF, as RFC 4180 has it.
 */
export function metricsCsv(runs: readonly CsvRun[]): string {
  const lines: string[] = [CSV_HEADER.join(',')];
  for (const r of runs) {
    const id = csvField(r.id);
    const name = csvField(r.name);
    for (const metric of Object.keys(r.metrics).sort()) {
      const m = r.metrics[metric]!;
      const mf = csvField(metric);
      for (let i = 0; i < m.steps.length; i++) {
        const v = m.values[i];
        const value = v === null || Number.isNaN(v) ? '' : String(v);
        const wall = Math.round(toSeconds(m.wallTimes[i]!) * 1000) / 1000;
        lines.push(`${id},${name},${mf},${m.steps[i]},${value},${wall},${m.tokensSeen[i]}`);
      }
    }
  }
  return lines.join('\r\n') + '\r\n';
}

/** A file name part: letters, digits, '.', '_' and '-' only. */
export function fileSafe(s: string): string {
  return (
    s
      .replace(/[^\w.-]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 60) || 'chart'
  );
}
