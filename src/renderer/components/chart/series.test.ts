import { describe, expect, it } from 'vitest';
import {
  appendPoint,
  clippedRange,
  debiasedEma,
  decimate,
  emptySeries,
  fromMetricSeries,
  joinTables,
  toSeconds,
  xValues,
} from './series';

describe('debiasedEma (TensorBoard smoothing)', () => {
  it('is debiased: the first value is kept, and a step input approaches the new level', () => {
    const s = debiasedEma([10, 0, 0, 0], 0.6);
    expect(s[0]).toBeCloseTo(10, 12);
    // by hand: last = 0.6*last + 0.4*v, divided by 1 - 0.6^n
    expect(s[1]).toBeCloseTo((0.4 * 10 * 0.6) / (1 - 0.36), 12);
    expect(s[2]).toBeCloseTo((0.4 * 10 * 0.36) / (1 - 0.216), 12);
    expect(s[3]).toBeLessThan(s[2]!);
  });

  it('matches TensorBoard on a noisy series', () => {
    const v = [3, 5, 4, 6, 2];
    const w = 0.9;
    let last = 0;
    const expected = v.map((x, i) => {
      last = last * w + (1 - w) * x;
      return last / (1 - w ** (i + 1));
    });
    const got = debiasedEma(v, w);
    got.forEach((g, i) => expect(g).toBeCloseTo(expected[i]!, 12));
  });

  it('passes NaN through without poisoning the average, keeps constant series, and is the identity at 0', () => {
    const s = debiasedEma([1, Number.NaN, 3], 0.5);
    expect(s[1]).toBeNaN();
    expect(s[2]).toBeCloseTo((0.5 * 0.5 * 1 + 0.5 * 3) / (1 - 0.25), 12);
    expect(debiasedEma([2, 2, 2], 0.9)).toEqual([2, 2, 2]);
    expect(debiasedEma([1, 5, 2], 0)).toEqual([1, 5, 2]);
  });
});

describe('series', () => {
  it('replaces the points a resumed run records again', () => {
    const s = emptySeries();
    for (let i = 0; i < 5; i++) appendPoint(s, i, 10 - i, 100 + i, 1024 * (i + 1));
    appendPoint(s, 3, 42, 200, 4096);
    expect(s.steps).toEqual([0, 1, 2, 3]);
    expect(s.values).toEqual([10, 9, 8, 42]);
    expect(s.wall).toEqual([100, 101, 102, 200]);
  });

  it('reads runs-metrics series (null as NaN, wall times in ms or s), and gives x by step, tokens or wall time', () => {
    const s = fromMetricSeries({
      steps: [0, 1],
      values: [1.5, null],
      wallTimes: [1_700_000_000_000, 1_700_000_002_000],
      tokensSeen: [8, 16],
    });
    expect(s.values[1]).toBeNaN();
    expect(s.wall).toEqual([1_700_000_000, 1_700_000_002]);
    expect(toSeconds(1_700_000_000.5)).toBe(1_700_000_000.5);
    expect(xValues(s, 'step', 0)).toEqual([0, 1]);
    expect(xValues(s, 'tokens', 0)).toEqual([8, 16]);
    expect(xValues(s, 'wall', 1_700_000_000)).toEqual([0, 2]);
  });

  it('joins tables of different x on the union of their x values', () => {
    const joined = joinTables([
      { x: [0, 1, 2, 3], ys: [[4, 3, 2, 1]] },
      { x: [0, 2, 5], ys: [[9, 8, 7]] },
    ]);
    expect(joined).toEqual([
      [0, 1, 2, 3, 5],
      [4, 3, 2, 1, null],
      [9, null, 8, null, 7],
    ]);
    expect(
      joinTables([
        { x: [1, 2], ys: [[1, 2]] },
        { x: [1, 2], ys: [[3, 4]] },
      ]),
    ).toEqual([
      [1, 2],
      [1, 2],
      [3, 4],
    ]);
  });

  it('clips outliers to the 5th..95th percentile, padded', () => {
    const col = Array.from({ length: 101 }, (_, i) => i);
    col[0] = 1e6; // a spike
    const [lo, hi] = clippedRange([col])!;
    expect(hi).toBeLessThan(200);
    expect(lo).toBeLessThan(10);
    expect(clippedRange([[null, Number.NaN]])).toBeNull();
    const [llo, lhi] = clippedRange([[0.001, 0.01, 0.1, 1, -1]], true)!;
    expect(llo).toBeGreaterThan(0);
    expect(lhi).toBeGreaterThan(0.1);
  });
});

describe('decimate', () => {
  it('keeps short tables, and of long ones the min and max of each bucket (spikes survive) and the last row', () => {
    const short = { x: [1, 2, 3], ys: [[1, 2, 3]] };
    expect(decimate(short, 10)).toBe(short);
    const n = 100_000;
    const x = Array.from({ length: n }, (_, i) => i);
    const y = x.map((i) => Math.sin(i / 1000));
    y[54_321] = 99; // a spike
    const raw = y.map((v) => v + 0.5);
    const d = decimate({ x, ys: [y, raw] }, 500);
    expect(d.x.length).toBeLessThanOrEqual(500 * 4 + 1);
    expect(d.x.length).toBeGreaterThan(1000);
    expect(d.x).toContain(54_321);
    expect(d.ys[0]![d.x.indexOf(54_321)]).toBe(99);
    expect(d.x[d.x.length - 1]).toBe(n - 1);
    for (let i = 1; i < d.x.length; i++) expect(d.x[i]).toBeGreaterThan(d.x[i - 1]!);
    expect(Math.max(...(d.ys[1] as number[]))).toBe(99.5);
  });

  it('never picks NaN, an infinity or a gap as the min or max of a bucket', () => {
    const n = 10_000;
    const x = Array.from({ length: n }, (_, i) => i);
    const y: (number | null)[] = x.map((i) => (i % 100) / 100);
    y[150] = Number.NaN;
    y[250] = Infinity;
    y[350] = -Infinity;
    y[450] = null;
    const d = decimate({ x, ys: [y] }, 100);
    for (const i of [150, 250, 350, 450]) expect(d.x).not.toContain(i);
    expect(d.ys[0]!.every((v) => v !== null && Number.isFinite(v))).toBe(true);
    expect(d.x).toContain(199); // the max of bucket 1 (0.99)
  });
});
