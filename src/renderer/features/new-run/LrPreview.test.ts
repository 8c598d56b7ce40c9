import { describe, expect, it } from 'vitest';
import { learningRate, lrSamples } from './LrPreview';

const schedule = (warmup: number) => ({ max_lr: 6e-4, min_lr_ratio: 0.1, warmup_steps: warmup });

describe('the learning-rate preview', () => {
  it('draws the peak of a short schedule: the warm-up end at max_lr, and nothing above it', () => {
    for (const [steps, warmup] of [
      [20, 2],
      [60, 5],
      [7, 3],
      [1000, 37],
    ] as const) {
      const c = schedule(warmup);
      const samples = lrSamples(c, steps);
      const at = samples.map((p) => p.step);
      expect(at).toContain(warmup - 1);
      expect(at).toContain(warmup);
      expect(at[0]).toBe(0);
      expect(at[at.length - 1]).toBe(steps - 1);
      const peak = Math.max(...samples.map((p) => p.lr));
      expect(peak).toBeCloseTo(c.max_lr, 12);
      expect(samples.find((p) => p.step === warmup - 1)!.lr).toBeCloseTo(c.max_lr, 12);
      // whole steps only, in order, each once
      expect(at.every((s, i) => Number.isInteger(s) && (i === 0 || s > at[i - 1]!))).toBe(true);
    }
  });

  it('samples every step of a short schedule and about 200 of a long one', () => {
    expect(lrSamples(schedule(2), 20)).toHaveLength(20);
    const long = lrSamples(schedule(100), 19_073);
    expect(long.length).toBeGreaterThan(190);
    expect(long.length).toBeLessThan(210);
    expect(lrSamples(schedule(2), 0)).toEqual([]);
  });

  it('follows the training schedule', () => {
    const c = schedule(2);
    expect(learningRate(c, 20, 0)).toBeCloseTo(3e-4, 12);
    expect(learningRate(c, 20, 2)).toBeCloseTo(6e-4, 12);
    expect(learningRate(c, 20, 20)).toBeCloseTo(6e-5, 12);
  });
});
