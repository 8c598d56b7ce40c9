/**
 * The loss-spike / NaN guard (as llm.c does it): an update whose loss or gradient norm is non-finite, or more
 * than `zThreshold` standard deviations above the mean of the recent window, is skipped. Too many skips in a
 * row stop the run. Its state is plain data, saved in checkpoints so that a resumed run decides the same way.
 */
export interface GuardState {
  losses: number[];
  norms: number[];
  consecutiveSkips: number;
}

export interface GuardOptions {
  enabled: boolean;
  zThreshold: number;
  /** accepted steps needed before z-scores are used */
  warmup: number;
  maxConsecutiveSkips: number;
  /** window length */
  window?: number;
}

export const newGuardState = (): GuardState => ({ losses: [], norms: [], consecutiveSkips: 0 });

function zScore(x: number, xs: number[]): number {
  const n = xs.length;
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  const variance = xs.reduce((a, b) => a + (b - mean) * (b - mean), 0) / n;
  const std = Math.sqrt(variance);
  return std > 0 ? (x - mean) / std : 0;
}

export interface GuardVerdict {
  skip: boolean;
  reason?: string;
}

/** Decides whether to apply this step's update, and records it. */
export function checkStep(s: GuardState, o: GuardOptions, loss: number, norm: number): GuardVerdict {
  let reason: string | undefined;
  if (!Number.isFinite(loss) || !Number.isFinite(norm)) {
    reason = `loss ${loss} / norm ${norm} is not finite`;
  } else if (o.enabled && s.losses.length >= Math.max(2, o.warmup)) {
    const zl = zScore(loss, s.losses);
    const zn = zScore(norm, s.norms);
    if (zl > o.zThreshold) reason = `loss ${loss.toFixed(4)} is ${zl.toFixed(1)} standard deviations above the recent mean`;
    else if (zn > o.zThreshold) reason = `grad norm ${norm.toFixed(4)} is ${zn.toFixed(1)} standard deviations above the recent mean`;
  }
  if (reason) {
    s.consecutiveSkips++;
    return { skip: true, reason };
  }
  s.consecutiveSkips = 0;
  const w = o.window ?? 100;
  s.losses.push(loss);
  s.norms.push(norm);
  if (s.losses.length > w) s.losses.shift();
  if (s.norms.length > w) s.norms.shift();
  return { skip: false };
}
