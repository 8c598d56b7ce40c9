import { describe, expect, it } from 'vitest';
import { formatTicks, logSplits, tick, withBaselines } from './axes';
import { nearestIndex } from './marks';

describe('chart ticks', () => {
  it('gives a narrow log range evenly spaced nice ticks, and a wide one 1-2-5 per decade', () => {
    expect(logSplits(3.2, 10.9)).toEqual([4, 6, 8, 10]);
    expect(logSplits(1e-4, 1.2e-3)).toEqual([0.0001, 0.0002, 0.0005, 0.001]);
    expect(logSplits(0.5, 1e8)).toEqual([1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000]);
    expect(logSplits(0, 1)).toEqual([]);
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
    expect(nearestIndex([null, null, null, null, 7], xs, 0)).toBe(4);
    expect(nearestIndex([null, null], [0, 1], 1)).toBe(-1);
  });
});
