import { describe, expect, it } from 'vitest';
import { formatTicks, logRange, logSplits, spacedLabels, tick, withBaselines } from './axes';
import { exportRatio } from './export';
import { nearestIndex } from './marks';

describe('chart ticks', () => {
  it('gives a narrow log range nice ticks about evenly up the plot, and a wide one 1-2-5 per decade', () => {
    expect(logSplits(3.2, 10.9)).toEqual([4, 5, 6, 8, 10]);
    expect(logSplits(0.55, 4.4)).toEqual([0.6, 1, 1.5, 2, 3, 4]);
    expect(logSplits(5.98, 6.32)).toEqual([6, 6.1, 6.2, 6.3]);
    expect(logSplits(1e-4, 1.2e-3)).toEqual([0.0001, 0.0002, 0.0005, 0.001]);
    expect(logSplits(0.5, 1e8)).toEqual([1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000]);
    expect(logSplits(0, 1)).toEqual([]);
  });

  it('fits a log range to a loss between 6 and 11 rather than to whole decades', () => {
    const [lo, hi] = logRange(6, 11);
    expect(lo).toBeLessThan(6);
    expect(lo).toBeGreaterThan(5);
    expect(hi).toBeGreaterThan(11);
    expect(hi).toBeLessThan(12);
    // the data fills most of the plot's height (log space), at least half of it
    const filled = (Math.log10(11) - Math.log10(6)) / (Math.log10(hi) - Math.log10(lo));
    expect(filled).toBeGreaterThan(0.85);
    // ticks within the decade, each a round number, and enough of them to read the axis
    const ticks = logSplits(lo, hi);
    expect(ticks).toEqual([6, 7, 8, 9, 10, 11]);
    // one value, or a non-positive lower end, still gives a range around the data
    const [a, b] = logRange(7, 7);
    expect(a).toBeLessThan(7);
    expect(b).toBeGreaterThan(7);
    expect(logRange(0, 5)[1]).toBeGreaterThan(5);
  });

  it('labels every tick of a log axis unless two would overlap', () => {
    // a 120 px plot from 5.8 to 11.4: every tick is 15 px or more from the one below
    const [lo, hi] = logRange(6, 11);
    const pos = (v: number) => ((Math.log10(hi) - Math.log10(v)) / (Math.log10(hi) - Math.log10(lo))) * 120;
    expect(spacedLabels(logSplits(lo, hi), pos, 15)).toEqual([6, 7, 8, 9, 10, 11]);
    // a 40 px one: some go
    const small = (v: number) => pos(v) / 3;
    expect(spacedLabels(logSplits(lo, hi), small, 15)).toEqual([6, null, 8, null, null, 11]);
  });

  it('labels a set of ticks with the decimals that tell them apart', () => {
    expect(formatTicks([1.52e6, 1.54e6, 1.56e6])).toEqual(['1.52M', '1.54M', '1.56M']);
    expect(formatTicks([0, 1e10, 2e10])).toEqual(['0B', '10B', '20B']);
    expect(formatTicks([0.25, 0.5, 0.75])).toEqual(['0.25', '0.50', '0.75']);
    expect(formatTicks([2, 4, 6])).toEqual(['2', '4', '6']);
    expect(formatTicks([2.5, 5, 7.5, 10])).toEqual(['2.5', '5.0', '7.5', '10.0']);
    expect(formatTicks([1e-4, 2e-4, 3e-4])).toEqual(['1e-4', '2e-4', '3e-4']);
  });

  it('labels ticks briefly', () => {
    expect(tick(10)).toBe('10');
    expect(tick(2.5)).toBe('2.5');
    expect(tick(0.00025)).toBe('2.5e-4');
    expect(tick(125000)).toBe('125K');
  });
});

describe('reference lines and nearest values', () => {
  it('widens a y range to show the reference values, and leaves it when they are inside', () => {
    expect(withBaselines([4, 6], [5])).toEqual([4, 6]);
    const [lo, hi] = withBaselines([4, 6], [3.2924]);
    expect(lo).toBeLessThan(3.2924);
    expect(hi).toBe(6);
    const [lo2, hi2] = withBaselines([0.25, 0.3], [0.2955, 0.337]);
    expect(lo2).toBe(0.25);
    expect(hi2).toBeGreaterThan(0.337);
    // a log axis ignores non-positive values
    expect(withBaselines([1, 10], [-1, 0], true)).toEqual([1, 10]);
    expect(withBaselines([1, 10], [20], true)[1]).toBeGreaterThan(20);
  });

  it('finds the nearest point of a line along x', () => {
    const xs = [0, 1, 2, 10, 11];
    expect(nearestIndex([null, 5, null, null, 7], xs, 1)).toBe(1);
    expect(nearestIndex([null, 5, null, null, 7], xs, 2)).toBe(1); // 1 away vs 9 away
    expect(nearestIndex([null, 5, null, null, 7], xs, 3)).toBe(4);
    expect(nearestIndex([null, null, null, null, 7], xs, 4)).toBe(4);
    expect(nearestIndex([null, null], [0, 1], 1)).toBe(-1);
  });

  it('finds no value of a line before its first point or past its last', () => {
    // a run of steps 0..26 joined with one of 0..59: at step 59 the short run shows nothing
    const xs = Array.from({ length: 60 }, (_, i) => i);
    const short = xs.map((x) => (x < 27 ? 10 - x / 10 : null));
    expect(nearestIndex(short, xs, 59)).toBe(-1);
    expect(nearestIndex(short, xs, 27)).toBe(-1);
    expect(nearestIndex(short, xs, 26)).toBe(26);
    const late = xs.map((x) => (x >= 30 && x % 10 === 0 ? 5 : null));
    expect(nearestIndex(late, xs, 10)).toBe(-1);
    expect(nearestIndex(late, xs, 33)).toBe(30);
    expect(nearestIndex(late, xs, 55)).toBe(-1);
  });
});

describe('chart export', () => {
  it('exports at the screen pixel ratio, and at least 2x', () => {
    expect(exportRatio(1)).toBe(2);
    expect(exportRatio(1.25)).toBe(2);
    expect(exportRatio(3)).toBe(3);
    expect(exportRatio(Number.NaN)).toBe(2);
  });
});
