/** The learning-rate schedule of build-nanogpt: linear warm-up, then cosine decay to min_lr, then flat. */
export interface LrSchedule {
  maxLr: number;
  /** min_lr = maxLr * minLrRatio (build-nanogpt: 0.1) */
  minLrRatio: number;
  warmupSteps: number;
  maxSteps: number;
}

/** The learning rate of step `it` (0-based), exactly as build-nanogpt's get_lr. */
export function learningRate(s: LrSchedule, it: number): number {
  const minLr = s.maxLr * s.minLrRatio;
  if (it < s.warmupSteps) return (s.maxLr * (it + 1)) / s.warmupSteps;
  if (it > s.maxSteps) return minLr;
  const ratio = (it - s.warmupSteps) / (s.maxSteps - s.warmupSteps);
  const coeff = 0.5 * (1 + Math.cos(Math.PI * ratio));
  return minLr + coeff * (s.maxLr - minLr);
}
