import { useMemo } from 'react';
import {
  Chart,
  debiasedEma,
  decimate,
  finiteOnly,
  joinTables,
  positiveOnly,
  wallOrigin,
  xValues,
  type ChartLine,
  type Series,
  type XKind,
  type XYTable,
} from '../../components/chart';
import { compact, metric } from '../../format';
import {
  GPU_FIELDS,
  PROCESS_METRICS,
  formatSystem,
  formatSystemTick,
  gpuIndices,
  gpuMetric,
} from '../../system-metrics';
import './system-charts.css';

export interface ChartOptions {
  smoothing: number;
  logY: boolean;
  xKind: XKind;
  clip: boolean;
}

interface Panel {
  id: string;
  title: string;
  unit?: string;
  lines: ChartLine[];
  data: (number | null)[][];
  yFormat?: (v: number, splits: readonly number[]) => string;
  /** values the y range includes: 0 for amounts of bytes, whose size matters more than a wiggle of a few kB */
  yInclude?: readonly number[];
}

/** One series of the steps where the guard acted, valued at that step's train loss (so the mark sits on the curve). */
export function guardMarks(loss: Series | undefined, actions: (Series | undefined)[]): Series | null {
  const steps = [...new Set(actions.flatMap((a) => a?.steps ?? []))].sort((a, b) => a - b);
  if (!loss || !steps.length) return null;
  const at = new Map(loss.steps.map((st, i) => [st, i]));
  const out: Series = { steps: [], values: [], wall: [], tokens: [] };
  for (const st of steps) {
    const i = at.get(st);
    if (i === undefined) continue;
    out.steps.push(st);
    out.values.push(loss.values[i]!);
    out.wall.push(loss.wall[i]!);
    out.tokens.push(loss.tokens[i]!);
  }
  return out.steps.length ? out : null;
}

const pct = (v: number) => `${(v * 100).toFixed(1)}%`;
const compactY = (v: number) => compact(v);
const lrTick = (v: number) => (v === 0 ? '0' : v.toExponential(1));
const lrValue = (v: number) => v.toExponential(3);

/**
 * The System group: the worker's CPU, memory, threads and the workspace's free disk, and each GPU's utilisation,
 * memory, power and temperature (one line per GPU), as sampled every few seconds. Raw values (no smoothing, linear
 * axes) on the page's x axis; a chart appears once its metric has a point.
 */
export function systemPanels(series: Record<string, Series>, xKind: XKind): Panel[] {
  const t0 = wallOrigin(Object.values(series));
  const table = (s: Series | undefined): XYTable | null => {
    if (!s || !s.steps.length) return null;
    const d = decimate({ x: xValues(s, xKind, t0), ys: [s.values] });
    return { x: d.x, ys: d.ys.map(finiteOnly) };
  };
  const out: Panel[] = [];
  for (const m of PROCESS_METRICS) {
    const t = table(series[m.metric]);
    if (!t) continue;
    const format = (v: number) => formatSystem(m.format, v);
    const tick = (v: number, splits: readonly number[]) => formatSystemTick(m.format, v, splits);
    out.push({
      id: m.id,
      title: m.title,
      unit: m.unit,
      lines: [{ label: m.title.toLowerCase(), color: '--chart-1', width: 1.6, format }],
      data: joinTables([t]),
      yFormat: tick,
      ...(m.format === 'bytes' ? { yInclude: [0] } : {}),
    });
  }
  const gpus = gpuIndices(Object.keys(series));
  const color = (i: number) => `--chart-${(i % 6) + 1}`;
  for (const f of GPU_FIELDS) {
    const format = (v: number) => formatSystem(f.format, v);
    const tick = (v: number, splits: readonly number[]) => formatSystemTick(f.format, v, splits);
    const lines: ChartLine[] = [];
    const tables: XYTable[] = [];
    for (const [i, g] of gpus.entries()) {
      const t = table(series[gpuMetric(g, f.field)]);
      if (!t) continue;
      lines.push({ label: `gpu${g}`, color: color(i), width: 1.6, format });
      tables.push(t);
      if (f.field === 'mem_used_bytes') {
        // the GPU's capacity, dashed and faint above its use
        const total = table(series[gpuMetric(g, 'mem_total_bytes')]);
        if (total) {
          lines.push({ label: `gpu${g} total`, color: color(i), width: 1, alpha: 0.45, dash: [5, 4], format });
          tables.push(total);
        }
      }
    }
    if (!tables.length) continue;
    out.push({ id: `sys-gpu-${f.id}`, title: f.title, unit: f.unit, lines, data: joinTables(tables), yFormat: tick });
  }
  return out;
}

/** The run's curves: loss (train and val), learning rate, gradient norm, throughput, and HellaSwag when measured. */
export function RunCharts({
  series,
  version,
  options,
  syncKey,
}: {
  series: Record<string, Series>;
  version: number;
  options: ChartOptions;
  syncKey: string;
}) {
  const { smoothing, logY, xKind, clip } = options;

  const panels = useMemo((): Panel[] => {
    void version; // the series are mutated in place; `version` says when
    const t0 = wallOrigin(Object.values(series));
    const get = (name: string) => series[name];
    const y = (col: readonly (number | null)[]) => (logY ? positiveOnly(col) : col);
    const smoothed = (s: Series) => y(debiasedEma(s.values, smoothing));
    const raw = (s: Series) => y(s.values);
    // thinned first (decimate skips NaN and infinities), then what is left has its non-finite values turned into gaps
    const table = (s: Series | undefined, cols: (s: Series) => (readonly (number | null)[])[]): XYTable | null => {
      if (!s || !s.steps.length) return null;
      const d = decimate({ x: xValues(s, xKind, t0), ys: cols(s) });
      return { x: d.x, ys: d.ys.map(finiteOnly) };
    };
    const smoothedLines = (label: string, color: string): ChartLine[] =>
      smoothing > 0
        ? [
            { label, color, width: 2 },
            { label: `${label} (raw)`, color, width: 1, alpha: 0.28 },
          ]
        : [{ label, color, width: 1.6 }];
    const smoothedCols = (s: Series) => (smoothing > 0 ? [smoothed(s), raw(s)] : [raw(s)]);
    const nLines = (lines: ChartLine[]) => lines.length;
    const join = (tables: (XYTable | null)[], widths: number[]) =>
      joinTables(tables.map((t, i) => t ?? { x: [], ys: Array.from({ length: widths[i]! }, () => []) }));

    const out: Panel[] = [];
    {
      const train = smoothedLines('train', '--chart-1');
      const val: ChartLine = { label: 'val', color: '--chart-2', width: 2, points: true };
      // the guard's actions, marked on the train loss of the step they judged
      const guard = guardMarks(get('train/loss'), [get('guard/skip'), get('guard/rollback'), get('guard/rebaseline')]);
      const marks: ChartLine[] = guard
        ? [{ label: 'guard', color: '--danger', marks: true, format: (v) => metric(v) }]
        : [];
      out.push({
        id: 'loss',
        title: 'Loss',
        unit: 'cross-entropy, nats',
        lines: [...train, val, ...marks],
        data: join(
          [
            table(get('train/loss'), smoothedCols),
            table(get('val/loss'), (s) => [raw(s)]),
            ...(guard ? [table(guard, (s) => [raw(s)])] : []),
          ],
          [nLines(train), 1, ...(guard ? [1] : [])],
        ),
      });
    }
    out.push({
      id: 'lr',
      title: 'Learning rate',
      lines: [{ label: 'lr', color: '--chart-3', width: 1.8, format: lrValue }],
      data: join([table(get('train/lr'), (s) => [raw(s)])], [1]),
      yFormat: lrTick,
    });
    {
      const lines = smoothedLines('norm', '--chart-4');
      out.push({
        id: 'norm',
        title: 'Gradient norm',
        unit: 'before clipping',
        lines,
        data: join([table(get('train/norm'), smoothedCols)], [lines.length]),
      });
    }
    {
      const lines = smoothedLines('tok/s', '--chart-5').map((l) => ({ ...l, format: compactY }));
      out.push({
        id: 'tok-per-sec',
        title: 'Throughput',
        unit: 'tokens / s',
        lines,
        data: join([table(get('train/tok_per_sec'), smoothedCols)], [lines.length]),
      });
    }
    const hs = get('hellaswag/acc_norm');
    if (hs && hs.steps.length) {
      out.push({
        id: 'hellaswag',
        title: 'HellaSwag',
        unit: 'acc_norm',
        lines: [{ label: 'acc_norm', color: '--chart-6', width: 2, points: true, format: pct }],
        data: join([table(hs, (s) => [raw(s)])], [1]),
        yFormat: pct,
      });
    }
    return out;
  }, [series, version, smoothing, logY, xKind]);

  const system = useMemo(() => {
    void version;
    return systemPanels(series, xKind);
  }, [series, version, xKind]);

  return (
    <>
      <div className="chart-grid">
        {panels.map((p) => (
          <Chart
            key={p.id}
            testId={`chart-${p.id}`}
            title={p.title}
            unit={p.unit}
            data={p.data}
            lines={p.lines}
            xKind={xKind}
            logY={logY}
            clip={clip}
            syncKey={syncKey}
            yFormat={p.yFormat}
          />
        ))}
      </div>
      {system.length > 0 && (
        <section className="system-charts" aria-labelledby="system-title" data-testid="system-charts">
          <h3 id="system-title" className="chart-group-title">
            System
          </h3>
          <div className="chart-grid">
            {system.map((p) => (
              <Chart
                key={p.id}
                testId={`chart-${p.id}`}
                title={p.title}
                unit={p.unit}
                data={p.data}
                lines={p.lines}
                xKind={xKind}
                logY={false}
                clip={clip}
                syncKey={syncKey}
                yFormat={p.yFormat}
                yInclude={p.yInclude}
              />
            ))}
          </div>
        </section>
      )}
    </>
  );
}
