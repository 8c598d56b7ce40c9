/**
 * Test support for test/store-crash.test.ts (not used by the studio): the metrics a crash-test writer records at
 * each step, so the test can check every value it reads back.
 */
export const CRASH_METRIC_NAMES = [
  'train/loss',
  'train/lr',
  'train/norm',
  'train/dt_ms',
  'train/tok_per_sec',
  'train/mfu',
] as const;

export const TOKENS_PER_STEP = 524_288;

export function crashMetricsFor(step: number): Record<string, number> {
  return {
    'train/loss': 11 - step / 1000,
    'train/lr': 6e-4 * Math.min(1, (step + 1) / 715),
    'train/norm': 1 + (step % 7) / 10,
    'train/dt_ms': 100 + (step % 13),
    'train/tok_per_sec': TOKENS_PER_STEP / ((100 + (step % 13)) / 1000),
    'train/mfu': 0.4 + (step % 5) / 100,
  };
}
