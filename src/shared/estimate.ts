/**
 * How long a run takes: the one estimator behind the New run page's plan (before the first step) and the run
 * page's ETA (while it trains). Pure arithmetic, so that the renderer, the service and the benchmark share it.
 *
 * A run's wall time is its start-up, its optimizer steps, and what happens between steps: val loss evaluations,
 * HellaSwag, samples, checkpoints and the guard's in-memory snapshots. Each part is timed on its own:
 *   - a step: the median of the last steps' dt (train/dt_ms) plus their capped excess over it (robustStepMs),
 *     which holds through the slow first steps and a stalled step (the trainer times evaluations outside dt);
 *   - an evaluation, sample or checkpoint: what the run recorded per occurrence (time/eval_ms, ...); where a run
 *     has no such metrics (older runs), the wall-clock gap between two steps less the later step's dt; else a
 *     calibration of the same shape and micro-batch; else a rough prior from the step time;
 *   - and each is multiplied by how many remain, counted from the config's intervals as the trainer runs them.
 */
import { gradAccumSteps, totalSteps, type RunConfig } from './run-config';

/** What happens between optimizer steps. */
export const EVENT_KINDS = ['eval', 'hellaswag', 'sample', 'checkpoint', 'snapshot'] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

/**
 * The metric the training worker records (in ms, at the step where it happened) for each kind; the guard's
 * snapshots have none (they are read off the wall clock, or taken from a calibration).
 */
export const EVENT_METRICS: Partial<Record<EventKind, string>> = {
  eval: 'time/eval_ms',
  hellaswag: 'time/hellaswag_ms',
  sample: 'time/sample_ms',
  checkpoint: 'time/checkpoint_ms',
};

/** The config fields the estimate reads (a validated RunConfig has them all). */
export type TimedConfig = Pick<
  RunConfig,
  | 'max_steps'
  | 'token_budget'
  | 'total_batch_size'
  | 'batch_size'
  | 'seq_len'
  | 'world_size'
  | 'eval_interval'
  | 'eval_iters'
  | 'hellaswag_interval'
  | 'hellaswag_limit'
  | 'sample_interval'
  | 'sample'
  | 'checkpoint_interval'
  | 'guard'
>;

/** Steps between the guard's in-memory snapshots (weights and AdamW state); 0 when it takes none. */
function snapshotInterval(c: TimedConfig): number {
  return (c.guard as { snapshot_interval?: number } | undefined)?.snapshot_interval ?? 0;
}

export type EventCounts = Record<EventKind, number>;
/** Milliseconds per occurrence; absent where not known. */
export type EventCosts = Partial<Record<EventKind, number>>;

/** Where an event's cost came from. */
export type CostSource = 'measured' | 'wall-gap' | 'timing' | 'prior' | 'none';

/**
 * The measured costs of one (model shape, micro-batch B x T, engine): from a calibration (a timed training step
 * in a child process) or from a finished run. Costs are per unit, so that they carry over to another config of
 * the same shape and micro-batch (other accumulation, eval_iters or sample length).
 */
export interface StepTiming {
  /** the engine that ran them, e.g. native-cpu */
  engine: string;
  batchSize: number;
  seqLen: number;
  /** forward + backward of one (B, T) micro-batch */
  microStepMs: number;
  /** once per optimizer step: zeroing, the gradient norm, clipping and AdamW */
  updateMs: number;
  /** how much longer the first step takes than the others (allocation, caches) */
  firstStepExtraMs?: number;
  /** one (B, T) val batch: a forward with per-token losses */
  evalIterMs?: number;
  /** one sample as the trainer draws it, with the count and length it was measured at */
  sample?: { ms: number; count: number; maxTokens: number };
  /** writing one checkpoint (weights, AdamW state, state.json) */
  checkpointMs?: number;
  /** copying the weights and AdamW state in memory (the guard's snapshot) */
  snapshotMs?: number;
  /** HellaSwag: per example, and the examples the workspace has (0: no data, so the run skips it) */
  hellaswag?: { msPerExample: number; examples: number };
  /** from starting the worker to the model being built */
  startupMs?: number;
}

/**
 * A StepTiming measured by the service's calibration (runs-calibrate). firstStepExtraMs holds what the first val
 * batch and the first step take beyond the others, as a run pays both before its second step.
 */
export interface Calibration extends StepTiming {
  /** B * T tokens over microStepMs */
  tokensPerSec: number;
  /** same as microStepMs (the name the calibration reports it under) */
  msPerMicroStep: number;
  /** timed micro-steps after the warm-up one */
  microSteps: number;
  /** the engine asked for (auto resolves to `engine`) */
  requestedEngine: string;
  /** the engine's own description, e.g. "native-cpu (OpenMP, 2 threads, BLAS)" */
  engineDetail: string;
  /** the model shape it was measured on */
  shapeKey: string;
  /** Unix ms */
  measuredAt: number;
  /** runs that were training while it measured (they share the machine, so the figures are slower than alone) */
  runningRuns: number;
}

export interface TimeEstimate {
  /** seconds: everything below added up */
  seconds: number;
  /** optimizer steps counted */
  steps: number;
  /** one optimizer step, ms */
  stepMs: number;
  /** seconds of each part */
  parts: { startup: number; steps: number } & Record<EventKind, number>;
  counts: EventCounts;
  costs: Record<EventKind, number>;
  sources: Record<EventKind, CostSource>;
}

// ---- small statistics ----------------------------------------------------------------------------------------

const usable = (v: number | null | undefined): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;

/** The median of the finite, non-negative values, or undefined when there are none. */
export function median(xs: readonly (number | null | undefined)[]): number | undefined {
  const s = xs.filter(usable).sort((a, b) => a - b);
  if (!s.length) return undefined;
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The last `n` usable (finite, positive) values. */
function lastUsable(xs: readonly (number | null | undefined)[], n: number): number[] {
  const out: number[] = [];
  for (let i = xs.length - 1; i >= 0 && out.length < n; i--) {
    const v = xs[i];
    if (usable(v) && v > 0) out.push(v);
  }
  return out;
}

/**
 * The step time to plan with (ms), undefined before the first step: the median dt of the last `window` steps,
 * the typical step now, plus the mean excess of those steps over it, each capped at 3x the median (which is the
 * mean of the capped steps). The median alone is robust but short: steps slowed by another program on the cores
 * or by the service writing its database still cost time (on this project's 2-core machine the mean dt of nano
 * runs was 2-7% above their median: `npm run bench -- --only eta` prints both); the cap keeps one stalled step
 * from counting as a trend. The first `warmup` entries (a run's slow first steps, which do not come back) are
 * left out once there are enough others.
 */
export function robustStepMs(
  dtMs: readonly (number | null | undefined)[],
  window = 20,
  warmup = 0,
): number | undefined {
  const all = lastUsable(dtMs, dtMs.length);
  const after = lastUsable(dtMs.slice(warmup), window);
  const tail = after.length >= Math.min(window, 5) ? after : all.slice(0, window);
  const typical = median(tail);
  if (typical === undefined) return undefined;
  const excess = tail.reduce((a, v) => a + Math.min(v, 3 * typical) - typical, 0) / tail.length;
  return typical + Math.max(0, excess);
}

// ---- the schedule ----------------------------------------------------------------------------------------------

/** Multiples of k in [lo, hi], for lo >= 0 (0 counts). */
function multiples(k: number, lo: number, hi: number): number {
  if (hi < lo) return 0;
  return Math.floor(hi / k) - Math.floor((lo - 1) / k);
}

/**
 * How many of each event the steps [from, maxSteps) still have, as runTraining schedules them: before step s an
 * evaluation when s % eval_interval == 0 or s is the last step, HellaSwag likewise, a sample when s > 0 and
 * s % sample_interval == 0 or s is the last step; after step s a checkpoint when (s + 1) % checkpoint_interval == 0
 * or s is the last step; and after step s a snapshot of the guard when (s + 1) % guard.snapshot_interval == 0.
 * An interval of 0 turns the event off.
 */
export function countEvents(c: TimedConfig, from: number, maxSteps = totalSteps(c as RunConfig)): EventCounts {
  const last = maxSteps - 1;
  const lo = Math.max(0, from);
  const everyAndLast = (k: number, start: number) => {
    if (k <= 0 || last < start) return 0;
    return multiples(k, start, last) + (last % k === 0 ? 0 : 1);
  };
  const ci = c.checkpoint_interval;
  const ckFrom = lo + 1;
  const checkpoint = ci <= 0 || maxSteps < ckFrom ? 0 : multiples(ci, ckFrom, maxSteps) + (maxSteps % ci === 0 ? 0 : 1);
  const si = snapshotInterval(c);
  return {
    snapshot: si > 0 ? multiples(si, ckFrom, maxSteps) : 0,
    eval: everyAndLast(c.eval_interval, lo),
    hellaswag: everyAndLast(c.hellaswag_interval, lo),
    sample:
      everyAndLast(c.sample_interval, Math.max(1, lo)) + (c.sample_interval > 0 && lo === 0 && last === 0 ? 1 : 0),
    checkpoint,
  };
}

/** The events between step s - 1 and step s (s in [0, maxSteps]): those before step s and the checkpoint after s - 1. */
export function eventsBefore(c: TimedConfig, s: number, maxSteps: number): EventKind[] {
  const out: EventKind[] = [];
  const last = maxSteps - 1;
  if (s <= last) {
    if (c.eval_interval > 0 && (s % c.eval_interval === 0 || s === last)) out.push('eval');
    if (c.hellaswag_interval > 0 && (s % c.hellaswag_interval === 0 || s === last)) out.push('hellaswag');
    if (c.sample_interval > 0 && ((s > 0 && s % c.sample_interval === 0) || s === last)) out.push('sample');
  }
  if (s >= 1 && c.checkpoint_interval > 0 && (s % c.checkpoint_interval === 0 || s === maxSteps))
    out.push('checkpoint');
  const si = snapshotInterval(c);
  if (s >= 1 && si > 0 && s % si === 0) out.push('snapshot');
  return out;
}

// ---- costs -------------------------------------------------------------------------------------------------------

/** Per-occurrence costs from the run's own time/* metrics: the median of each. */
export function costsFromMetrics(
  series: Partial<Record<EventKind, readonly (number | null | undefined)[]>>,
): EventCosts {
  const out: EventCosts = {};
  for (const k of EVENT_KINDS) {
    const m = median(series[k] ?? []);
    if (m !== undefined) out[k] = m;
  }
  return out;
}

/** A run's step series (train/dt_ms): steps in order, their dt (ms) and when each was recorded (Unix seconds). */
export interface StepSeries {
  steps: readonly number[];
  dtMs: readonly (number | null)[];
  wallSec: readonly number[];
}

/**
 * Per-occurrence costs read off the wall clock, for runs that do not record time/* metrics: between two
 * consecutive recorded steps, the time not spent in the later step's dt is what ran in between. The gap of a
 * boundary without events is the per-step overhead (the median of those is taken off every gap); a boundary
 * whose events are all known but one gives that one. Events that only ever come together (nano evaluates and
 * checkpoints every 50 steps) share their gap in proportion to `split` (rough costs; equal shares without).
 * `restartSec` (the run's latest start) drops the gap across a restart, which is a pause, not work.
 */
export function costsFromWallGaps(
  c: TimedConfig,
  s: StepSeries,
  known: EventCosts = {},
  restartSec?: number,
  split: EventCosts = {},
): EventCosts {
  const maxSteps = totalSteps(c as RunConfig);
  const gaps: { events: EventKind[]; gapMs: number }[] = [];
  for (let i = 1; i < s.steps.length; i++) {
    const step = s.steps[i]!;
    const dt = s.dtMs[i];
    if (step !== s.steps[i - 1]! + 1 || !usable(dt)) continue;
    if (restartSec !== undefined && s.wallSec[i - 1]! < restartSec && s.wallSec[i]! >= restartSec) continue;
    const gapMs = (s.wallSec[i]! - s.wallSec[i - 1]!) * 1000 - dt;
    if (!Number.isFinite(gapMs)) continue;
    gaps.push({ events: eventsBefore(c, step, maxSteps), gapMs });
  }
  const base = median(gaps.filter((g) => g.events.length === 0).map((g) => g.gapMs)) ?? 0;
  const costs: EventCosts = { ...known };
  // resolve one unknown kind at a time, from the boundaries where it is the only unknown one
  for (let round = 0; round < EVENT_KINDS.length; round++) {
    const found: EventCosts = {};
    for (const k of EVENT_KINDS) {
      if (costs[k] !== undefined) continue;
      const vals: number[] = [];
      for (const g of gaps) {
        if (!g.events.includes(k)) continue;
        const others = g.events.filter((e) => e !== k);
        if (others.some((e) => costs[e] === undefined)) continue;
        vals.push(Math.max(0, g.gapMs - base - others.reduce((a, e) => a + (costs[e] ?? 0), 0)));
      }
      const m = median(vals);
      if (m !== undefined) found[k] = m;
    }
    if (!Object.keys(found).length) break;
    Object.assign(costs, found);
  }
  // what is left unknown only ever comes with another unknown: share each such gap
  const shares: Partial<Record<EventKind, number[]>> = {};
  for (const g of gaps) {
    const unknown = g.events.filter((e) => costs[e] === undefined);
    if (!unknown.length) continue;
    const residual = Math.max(0, g.gapMs - base - g.events.reduce((a, e) => a + (costs[e] ?? 0), 0));
    const weights = unknown.map((e) => Math.max(0, split[e] ?? 0));
    const total = weights.reduce((a, b) => a + b, 0);
    unknown.forEach((e, i) =>
      (shares[e] ??= []).push(total > 0 ? (residual * weights[i]!) / total : residual / unknown.length),
    );
  }
  for (const k of EVENT_KINDS) {
    const m = median(shares[k] ?? []);
    if (costs[k] === undefined && m !== undefined) costs[k] = m;
  }
  for (const k of EVENT_KINDS) if (known[k] !== undefined) delete costs[k];
  return costs;
}

/** The per-occurrence costs a StepTiming gives for this config (its eval_iters, sample length, HellaSwag limit). */
export function costsFromTiming(c: TimedConfig, t: StepTiming): EventCosts {
  const out: EventCosts = {};
  if (t.evalIterMs !== undefined) out.eval = t.evalIterMs * c.eval_iters;
  if (t.sample)
    out.sample =
      (t.sample.ms * (c.sample.count * c.sample.max_tokens)) / Math.max(1, t.sample.count * t.sample.maxTokens);
  if (t.checkpointMs !== undefined) out.checkpoint = t.checkpointMs;
  if (t.snapshotMs !== undefined) out.snapshot = t.snapshotMs;
  if (t.hellaswag)
    out.hellaswag = t.hellaswag.msPerExample * Math.min(c.hellaswag_limit ?? Infinity, t.hellaswag.examples);
  return out;
}

/**
 * Rough costs from the step time alone, for what has not been measured yet: an evaluation is eval_iters forward
 * passes of (B, T), about a third of a forward + backward each; a sample decodes count x max_tokens tokens, taken
 * as a forward pass of one micro-batch per 32 tokens (decoding is far less efficient than training); a
 * checkpoint, 12 bytes per parameter (weights and AdamW m, v) at 200 MB/s; a snapshot, the same bytes copied at
 * 2 GB/s. HellaSwag has no prior.
 */
export function priorCosts(c: TimedConfig, stepMs: number, params?: number): EventCosts {
  const micro = stepMs / Math.max(1, gradAccumSteps(c as RunConfig));
  const out: EventCosts = {
    eval: (c.eval_iters * micro) / 3,
    sample: (micro / 3) * ((c.sample.count * c.sample.max_tokens) / 32),
  };
  if (params !== undefined) {
    out.checkpoint = ((params * 12) / 200e6) * 1000;
    out.snapshot = ((params * 12) / 2e9) * 1000;
  }
  return out;
}

/** One optimizer step of this config from a StepTiming: its micro-steps and one update. */
export function stepMsOf(c: TimedConfig, t: StepTiming): number {
  return gradAccumSteps(c as RunConfig) * t.microStepMs + t.updateMs;
}

// ---- the estimates ------------------------------------------------------------------------------------------------

function combine(layers: [CostSource, EventCosts][]): {
  costs: Record<EventKind, number>;
  sources: Record<EventKind, CostSource>;
} {
  const costs = {} as Record<EventKind, number>;
  const sources = {} as Record<EventKind, CostSource>;
  for (const k of EVENT_KINDS) {
    const hit = layers.find(([, l]) => l[k] !== undefined);
    costs[k] = hit ? hit[1][k]! : 0;
    sources[k] = hit ? hit[0] : 'none';
  }
  return { costs, sources };
}

function assemble(
  steps: number,
  stepMs: number,
  counts: EventCounts,
  layers: [CostSource, EventCosts][],
  startupMs: number,
): TimeEstimate {
  const { costs, sources } = combine(layers);
  const parts = { startup: startupMs / 1000, steps: (steps * stepMs) / 1000 } as TimeEstimate['parts'];
  let seconds = parts.startup + parts.steps;
  for (const k of EVENT_KINDS) {
    parts[k] = (counts[k] * costs[k]) / 1000;
    seconds += parts[k];
  }
  return { seconds, steps, stepMs, parts, counts, costs, sources };
}

/**
 * The whole run before it starts, from a StepTiming of the same shape and micro-batch (a calibration, or a
 * finished run): start-up, every step (the first one slower), and every evaluation, sample and checkpoint.
 */
export function estimateRunTime(c: TimedConfig, t: StepTiming, opts: { params?: number } = {}): TimeEstimate {
  const steps = totalSteps(c as RunConfig);
  const stepMs = stepMsOf(c, t);
  return assemble(
    steps,
    stepMs,
    countEvents(c, 0, steps),
    [
      ['timing', costsFromTiming(c, t)],
      ['prior', priorCosts(c, stepMs, opts.params)],
    ],
    // the guard takes its first snapshot before the first step
    (t.startupMs ?? 0) +
      (steps > 0 ? (t.firstStepExtraMs ?? 0) : 0) +
      (snapshotInterval(c) > 0 ? (t.snapshotMs ?? 0) : 0),
  );
}

/** Steps at the start of a run that are slower than the rest (allocation, cold caches), left out of its excess. */
const WARMUP_STEPS = 3;
const warmupEntries = (s: StepSeries) => {
  const i = s.steps.findIndex((st) => st >= WARMUP_STEPS);
  return i < 0 ? s.steps.length : i;
};

/** What the run page knows of a running run. */
export interface RunProgress {
  /** steps done: the next step to run is this one */
  stepsDone: number;
  /** the train/dt_ms series */
  series: StepSeries;
  /** the run's time/* metrics, per kind (absent for runs that do not record them) */
  eventMs?: Partial<Record<EventKind, readonly (number | null | undefined)[]>>;
  /** the run's latest start, Unix seconds */
  startedAtSec?: number;
}

/**
 * The time left of a running run: the steps left at the robust step time (robustStepMs), plus the evaluations,
 * samples and checkpoints left at their measured cost (see the module comment for the order of the sources).
 * `fallback` is a calibration of the same shape and micro-batch, for costs the run has not measured yet.
 * Undefined before the first step.
 */
export function estimateRemaining(
  c: TimedConfig,
  p: RunProgress,
  fallback?: StepTiming,
  opts: { window?: number; params?: number } = {},
): TimeEstimate | undefined {
  const stepMs = robustStepMs(p.series.dtMs, opts.window ?? 20, warmupEntries(p.series));
  if (stepMs === undefined) return undefined;
  const maxSteps = totalSteps(c as RunConfig);
  const from = Math.min(maxSteps, Math.max(0, p.stepsDone));
  const measured = costsFromMetrics(p.eventMs ?? {});
  const timed = fallback ? costsFromTiming(c, fallback) : {};
  const prior = priorCosts(c, stepMs, opts.params);
  const gaps = costsFromWallGaps(c, p.series, measured, p.startedAtSec, { ...prior, ...timed });
  return assemble(
    maxSteps - from,
    stepMs,
    countEvents(c, from, maxSteps),
    [
      ['measured', measured],
      ['wall-gap', gaps],
      ['timing', timed],
      ['prior', prior],
    ],
    0,
  );
}

/**
 * A StepTiming from a finished run (the planner's fallback when nothing was calibrated): its robust step time
 * spread over its micro-steps, and what its evaluations, samples and checkpoints cost (time/* metrics, else the
 * wall-clock gaps), per unit. Undefined when the run recorded no step.
 */
export function timingFromRun(
  c: TimedConfig,
  engine: string,
  p: RunProgress,
  opts: { params?: number } = {},
): StepTiming | undefined {
  const stepMs = robustStepMs(p.series.dtMs, 20, warmupEntries(p.series));
  if (stepMs === undefined) return undefined;
  const measured = costsFromMetrics(p.eventMs ?? {});
  const costs = {
    ...costsFromWallGaps(c, p.series, measured, p.startedAtSec, priorCosts(c, stepMs, opts.params)),
    ...measured,
  };
  const t: StepTiming = {
    engine,
    batchSize: c.batch_size,
    seqLen: c.seq_len,
    microStepMs: stepMs / Math.max(1, gradAccumSteps(c as RunConfig)),
    updateMs: 0,
  };
  if (costs.eval !== undefined && c.eval_iters > 0) t.evalIterMs = costs.eval / c.eval_iters;
  if (costs.sample !== undefined)
    t.sample = { ms: costs.sample, count: c.sample.count, maxTokens: c.sample.max_tokens };
  if (costs.checkpoint !== undefined) t.checkpointMs = costs.checkpoint;
  if (costs.snapshot !== undefined) t.snapshotMs = costs.snapshot;
  return t;
}
