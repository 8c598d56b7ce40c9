/**
 * The training guard. It protects a run from a bad update without ever stopping a run that trains:
 * - a step whose loss or gradient norm is not finite never updates the weights (the update is skipped);
 * - with spike detection on (`enabled`), a step whose loss is more than `zThreshold` robust standard deviations
 *   above the median of the recent accepted losses is skipped too. The gradient norm alone is never a spike:
 *   clipping already bounds the step it takes.
 * - a skip leaves the weights as they were, so a streak of `maxConsecutiveSkips` skips means the state itself is
 *   the problem: the guard then rolls back to its last good snapshot (weights and optimizer state, in memory) and
 *   the run goes on with the next batches, so the batches since the snapshot are skipped (as PaLM does).
 * - a finite loss that stays high after a rollback is a new level, not a spike: the guard takes it as its new
 *   baseline and applies the update. Only a NaN or Inf that survives `maxRollbacks` rollbacks fails the run.
 * Its state is plain data, saved in checkpoints so that a resumed run decides the same way.
 */
export interface GuardState {
  /** losses of the recent accepted steps: the baseline a spike is judged against */
  losses: number[];
  consecutiveSkips: number;
  /** rollbacks since the last accepted step */
  rollbacksInARow: number;
  /** totals over the run */
  skips: number;
  rollbacks: number;
}

export interface GuardOptions {
  /** judge loss spikes (non-finite steps are always caught) */
  enabled: boolean;
  /** robust z-score above which a loss is a spike */
  zThreshold: number;
  /** accepted steps needed before spikes are judged */
  warmup: number;
  /** skips in a row before the guard rolls back */
  maxConsecutiveSkips: number;
  /** rollbacks in a row that a non-finite loss may survive before the run fails */
  maxRollbacks?: number;
  /** length of the baseline window */
  window?: number;
}

export const newGuardState = (): GuardState => ({
  losses: [],
  consecutiveSkips: 0,
  rollbacksInARow: 0,
  skips: 0,
  rollbacks: 0,
});

/** A guard state from a checkpoint, including one written before the rollback fields existed. */
export function restoreGuardState(s: unknown): GuardState {
  const o = (s && typeof s === 'object' ? s : {}) as Partial<GuardState>;
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  return {
    losses: Array.isArray(o.losses)
      ? o.losses.filter((x): x is number => typeof x === 'number' && Number.isFinite(x))
      : [],
    consecutiveSkips: num(o.consecutiveSkips),
    rollbacksInARow: num(o.rollbacksInARow),
    skips: num(o.skips),
    rollbacks: num(o.rollbacks),
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * How far `x` lies above the window, in robust standard deviations: (x - median) / (1.4826 * MAD). The scale has a
 * floor of 1% of the median, so that a window of near-identical losses does not turn noise into a spike.
 */
export function robustZ(x: number, xs: number[]): number {
  const med = median(xs);
  const mad = median(xs.map((v) => Math.abs(v - med)));
  const scale = Math.max(1.4826 * mad, 0.01 * Math.abs(med), 1e-6);
  return (x - med) / scale;
}

export type GuardAction =
  /** apply the update */
  | { kind: 'apply' }
  /** apply the update, and take this loss level as the new baseline (a spike that outlived a rollback) */
  | { kind: 'rebaseline'; reason: string }
  /** do not apply the update */
  | { kind: 'skip'; reason: string }
  /** do not apply the update; restore the last snapshot */
  | { kind: 'rollback'; reason: string }
  /** give up: a non-finite loss survived every rollback (or there is no snapshot) */
  | { kind: 'fail'; reason: string };

/**
 * Decides what to do with this step's update, and records it. `canRollback` says whether a snapshot is there to
 * roll back to. A rollback or rebaseline restarts the streak count.
 */
export function judgeStep(
  s: GuardState,
  o: GuardOptions,
  loss: number,
  norm: number,
  canRollback: boolean,
): GuardAction {
  const window = o.window ?? 50;
  const maxRollbacks = o.maxRollbacks ?? 2;
  const finite = Number.isFinite(loss) && Number.isFinite(norm);
  let reason: string | undefined;
  if (!finite) {
    reason = `loss ${loss} / grad norm ${norm} is not finite`;
  } else if (o.enabled && s.losses.length >= Math.max(5, o.warmup)) {
    const z = robustZ(loss, s.losses);
    if (z > o.zThreshold)
      reason = `loss ${loss.toFixed(4)} is ${z.toFixed(1)} robust standard deviations above the recent median ${median(s.losses).toFixed(4)}`;
  }
  const accept = () => {
    s.consecutiveSkips = 0;
    s.rollbacksInARow = 0;
    s.losses.push(loss);
    if (s.losses.length > window) s.losses.splice(0, s.losses.length - window);
  };
  if (!reason) {
    accept();
    return { kind: 'apply' };
  }
  s.consecutiveSkips++;
  if (s.consecutiveSkips < o.maxConsecutiveSkips) {
    s.skips++;
    return { kind: 'skip', reason };
  }
  // a streak: the state, not one batch, is the problem
  if (!finite) {
    if (canRollback && s.rollbacksInARow < maxRollbacks) {
      s.consecutiveSkips = 0;
      s.rollbacksInARow++;
      s.rollbacks++;
      return {
        kind: 'rollback',
        reason: `${o.maxConsecutiveSkips} updates in a row were not finite (last: ${reason})`,
      };
    }
    const tried = canRollback
      ? `${s.skips + 1} updates were skipped and the run was rolled back ${s.rollbacksInARow} time${s.rollbacksInARow === 1 ? '' : 's'} in a row to its last good weights, skipping the batches in between`
      : `${o.maxConsecutiveSkips} updates in a row were skipped, and there was no snapshot to roll back to (guard.snapshot_interval is 0)`;
    return { kind: 'fail', reason: `${reason}; tried: ${tried}` };
  }
  if (canRollback && s.rollbacksInARow === 0) {
    s.consecutiveSkips = 0;
    s.rollbacksInARow++;
    s.rollbacks++;
    return { kind: 'rollback', reason: `${o.maxConsecutiveSkips} loss spikes in a row (last: ${reason})` };
  }
  // the loss stays at its new level after a rollback (or with nothing to roll back to): that is the run's level now
  s.losses = [];
  accept();
  return {
    kind: 'rebaseline',
    reason: `the loss stayed high (${reason}); the guard takes it as its new baseline and applies the update`,
  };
}
