import { describe, expect, it } from 'vitest';
import type { Series } from '../../components/chart/series';
import {
  assignColors,
  CHART_METRICS,
  SYSTEM_PANELS,
  configRows,
  csvField,
  fileSafe,
  flattenConfig,
  hasMetric,
  MAX_RUNS,
  metricsCsv,
  PANELS,
  panelTable,
  parseSelection,
  REFERENCE_LINES,
  RUN_COLORS,
  runLabels,
  toggleSelection,
  type RunSeries,
} from './compare-data';

const panel = (metric: string) => PANELS.find((p) => p.metric === metric)!;
const series = (steps: number[], values: number[], wall?: number[], tokens?: number[]): Series => ({
  steps,
  values,
  wall: wall ?? steps.map((s) => 1_700_000_000 + s),
  tokens: tokens ?? steps.map((s) => s * 1024),
});

describe('selection', () => {
  it('reads run ids from the query: trimmed, unique, at most ten', () => {
    expect(parseSelection(null)).toEqual([]);
    expect(parseSelection('')).toEqual([]);
    expect(parseSelection(' a , b,,a,c ')).toEqual(['a', 'b', 'c']);
    const many = Array.from({ length: 14 }, (_, i) => `run-${i}`);
    expect(parseSelection(many.join(','))).toEqual(many.slice(0, MAX_RUNS));
  });

  it('toggles a run on (appended, not past ten) and off', () => {
    expect(toggleSelection(['a'], 'b', true)).toEqual(['a', 'b']);
    expect(toggleSelection(['a', 'b'], 'b', true)).toEqual(['a', 'b']);
    expect(toggleSelection(['a', 'b', 'c'], 'b', false)).toEqual(['a', 'c']);
    const ten = Array.from({ length: 10 }, (_, i) => `r${i}`);
    expect(toggleSelection(ten, 'x', true)).toEqual(ten);
  });
});

describe('run colours', () => {
  it('gives ten runs ten different colours, the same whatever else is selected', () => {
    const ids = Array.from({ length: 10 }, (_, i) => `run-20250101-0000${i}-ab${i}d`);
    const colors = assignColors(ids);
    expect(new Set(colors.values()).size).toBe(10);
    for (const c of colors.values()) expect(RUN_COLORS).toContain(c);
    // the same call gives the same colours; a run keeps its colour when another run joins the selection
    expect(assignColors(ids)).toEqual(colors);
    const two = assignColors(ids.slice(0, 2));
    const three = assignColors([...ids.slice(0, 2), 'run-other']);
    expect(three.get(ids[0]!)).toBe(two.get(ids[0]!));
    expect(three.get(ids[1]!)).toBe(two.get(ids[1]!));
  });

  it('moves a run whose colour is taken to the next free one', () => {
    const palette = ['--a', '--b', '--c'];
    const colors = assignColors(['x', 'y', 'z'], palette);
    expect(new Set(colors.values())).toEqual(new Set(palette));
  });
});

describe('chart tables', () => {
  const opts = { smoothing: 0, logY: false, xKind: 'step' as const, buckets: 500 };

  it('joins the runs on the union of their steps, one column per run, in order, with gaps', () => {
    const runs: RunSeries[] = [
      { id: 'a', series: { 'train/loss': series([0, 1, 2], [5, 4, 3]) } },
      { id: 'b', series: { 'train/loss': series([1, 3], [6, 2]) } },
      { id: 'c', series: {} },
    ];
    expect(panelTable(panel('train/loss'), runs, opts)).toEqual([
      [0, 1, 2, 3],
      [5, 4, 3, null],
      [null, 6, null, 2],
      [null, null, null, null],
    ]);
  });

  it('smooths the smoothed metrics only, and drops non-positive values on a log axis', () => {
    const runs = [{ id: 'a', series: { 'train/loss': series([0, 1], [4, 2]), 'train/lr': series([0, 1], [0, 1e-3]) } }];
    const loss = panelTable(panel('train/loss'), runs, { ...opts, smoothing: 0.5 });
    // the debiased EMA: 4, then (0.5*4*0.5 + 0.5*2) / (1 - 0.25) = 2.6667
    expect(loss[1]![0]).toBe(4);
    expect(loss[1]![1]).toBeCloseTo(2.6667, 4);
    const lr = panelTable(panel('train/lr'), runs, { ...opts, smoothing: 0.5, logY: true });
    expect(lr[1]).toEqual([null, 1e-3]);
  });

  it('has System charts for the process and each GPU, loaded with the rest, unsmoothed on a linear axis', () => {
    const ids = SYSTEM_PANELS.map((p) => p.metric);
    for (const m of ['sys/cpu_pct', 'sys/rss_bytes', 'sys/threads', 'sys/disk_free_bytes', 'sys/gpu0/util_pct'])
      expect(ids).toContain(m);
    for (const m of ['sys/gpu1/mem_used_bytes', 'sys/gpu7/power_w', 'sys/gpu3/temp_c']) expect(ids).toContain(m);
    for (const p of SYSTEM_PANELS) {
      expect(p.optional).toBe(true);
      expect(p.smooth).toBe(false);
      expect(p.system).toBeDefined();
      expect(CHART_METRICS).toContain(p.metric);
    }
    expect(new Set(SYSTEM_PANELS.map((p) => p.id)).size).toBe(SYSTEM_PANELS.length);
    const cpu = SYSTEM_PANELS.find((p) => p.metric === 'sys/cpu_pct')!;
    const runs = [{ id: 'a', series: { 'sys/cpu_pct': series([0, 4], [0, 180]) } }];
    // a log axis leaves them alone: 0% CPU stays a point
    expect(panelTable(cpu, runs, { ...opts, smoothing: 0.9, logY: true })).toEqual([
      [0, 4],
      [0, 180],
    ]);
    expect(hasMetric(runs, 'sys/gpu0/util_pct')).toBe(false);
  });

  it('counts wall time from each run’s own first point, and takes tokens as they are', () => {
    const runs = [
      { id: 'a', series: { 'train/loss': series([0, 1], [1, 2], [1000, 1010]) } },
      { id: 'b', series: { 'train/loss': series([0, 1], [3, 4], [5000, 5020]) } },
    ];
    expect(panelTable(panel('train/loss'), runs, { ...opts, xKind: 'wall' })).toEqual([
      [0, 10, 20],
      [1, 2, null],
      [3, null, 4],
    ]);
    expect(panelTable(panel('train/loss'), runs, { ...opts, xKind: 'tokens' })[0]).toEqual([0, 1024]);
  });

  it('thins 100,000 points to at most three per bucket (its first row, lowest and highest), keeping the extremes and both ends', () => {
    const n = 100_000;
    const steps = Array.from({ length: n }, (_, i) => i);
    const values = steps.map((i) => (i === 54_321 ? 100 : 3 + Math.sin(i / 1000)));
    const runs = [
      { id: 'a', series: { 'train/loss': series(steps, values) } },
      {
        id: 'b',
        series: {
          'train/loss': series(
            steps,
            values.map((v) => v + 1),
          ),
        },
      },
    ];
    const t = panelTable(panel('train/loss'), runs, opts);
    const count = (col: (number | null)[]) => col.filter((v) => v !== null).length;
    expect(count(t[1]!)).toBeGreaterThan(500);
    expect(count(t[1]!)).toBeLessThanOrEqual(3 * 500 + 1);
    expect(Math.max(...(t[1]!.filter((v) => v !== null) as number[]))).toBe(100);
    expect(t[0]![0]).toBe(0);
    expect(t[0]![t[0]!.length - 1]).toBe(n - 1);
  });

  it('knows which runs have a metric, and labels runs that share a name by their id', () => {
    expect(hasMetric([{ id: 'a', series: { 'hellaswag/acc_norm': series([], []) } }], 'hellaswag/acc_norm')).toBe(
      false,
    );
    expect(hasMetric([{ id: 'a', series: { 'hellaswag/acc_norm': series([5], [0.3]) } }], 'hellaswag/acc_norm')).toBe(
      true,
    );
    const labels = runLabels([
      { id: 'run-1-aaaaaa', name: 'lr 6e-4' },
      { id: 'run-2-bbbbbb', name: 'lr 6e-4' },
      { id: 'run-3-cccccc', name: 'lr 1e-3' },
    ]);
    expect([...labels.values()]).toEqual(['lr 6e-4 (aaaaaa)', 'lr 6e-4 (bbbbbb)', 'lr 1e-3']);
  });

  it('has the published reference values on the val loss and HellaSwag charts', () => {
    const byId = Object.fromEntries(REFERENCE_LINES.map((r) => [r.id, r]));
    expect(byId['gpt2-val']).toMatchObject({ metric: 'val/loss', value: 3.2924 });
    expect(byId['gpt2-hellaswag']).toMatchObject({ metric: 'hellaswag/acc_norm', value: 0.2955 });
    expect(byId['gpt3-hellaswag']).toMatchObject({ metric: 'hellaswag/acc_norm', value: 0.337 });
    for (const r of REFERENCE_LINES) expect(PANELS.some((p) => p.metric === r.metric)).toBe(true);
  });
});

describe('config table', () => {
  it('flattens a config to dotted keys, arrays and empty objects as leaves', () => {
    expect(
      flattenConfig({
        model: { preset: 'nano', n_layer: 4, extra: {} },
        betas: [0.9, 0.95],
        dataset: 'builtin',
        x: null,
      }),
    ).toEqual({
      'model.preset': 'nano',
      'model.n_layer': 4,
      'model.extra': {},
      betas: [0.9, 0.95],
      dataset: 'builtin',
      x: null,
    });
  });

  it('lists every key of any run, sorted, marking where the runs differ (a missing key differs)', () => {
    const rows = configRows([
      { max_lr: 6e-4, model: { preset: 'nano' }, seed: 1 },
      { max_lr: 1e-3, model: { preset: 'nano' } },
    ]);
    expect(rows).toEqual([
      { key: 'max_lr', values: ['0.0006', '0.001'], differs: true },
      { key: 'model.preset', values: ['nano', 'nano'], differs: false },
      { key: 'seed', values: ['1', '—'], differs: true },
    ]);
  });
});

describe('CSV', () => {
  it('quotes fields as RFC 4180 says', () => {
    expect(csvField('plain')).toBe('plain');
    expect(csvField('a, "b"')).toBe('"a, ""b"""');
    expect(csvField('two\nlines')).toBe('"two\nlines"');
    expect(csvField(3.5)).toBe('3.5');
  });

  it('writes one row per run, metric and step, wall times in Unix seconds, NaN as an empty field', () => {
    const csv = metricsCsv([
      {
        id: 'run-a',
        name: 'lr, high',
        metrics: {
          'val/loss': { steps: [10], values: [null], wallTimes: [1_700_000_010_500], tokensSeen: [10240] },
          'train/loss': {
            steps: [0, 1],
            values: [10.9, 10.25],
            wallTimes: [1_700_000_000_000, 1_700_000_001_250],
            tokensSeen: [1024, 2048],
          },
        },
      },
      {
        id: 'run-b',
        name: 'b',
        metrics: { 'train/loss': { steps: [0], values: [11], wallTimes: [1_700_000_000], tokensSeen: [512] } },
      },
    ]);
    expect(csv.split('\r\n')).toEqual([
      'run_id,run_name,metric,step,value,wall_time,tokens_seen',
      'run-a,"lr, high",train/loss,0,10.9,1700000000,1024',
      'run-a,"lr, high",train/loss,1,10.25,1700000001.25,2048',
      'run-a,"lr, high",val/loss,10,,1700000010.5,10240',
      'run-b,b,train/loss,0,11,1700000000,512',
      '',
    ]);
  });

  it('makes file names of titles', () => {
    expect(fileSafe('train loss / nats')).toBe('train-loss-nats');
    expect(fileSafe('///')).toBe('chart');
  });
});
