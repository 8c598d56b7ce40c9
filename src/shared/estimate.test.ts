import { describe, expect, it } from 'vitest';
import {
  costsFromMetrics,
  costsFromTiming,
  costsFromWallGaps,
  countEvents,
  estimateRemaining,
  estimateRunTime,
  eventsBefore,
  EVENT_KINDS,
  median,
  robustStepMs,
  timingFromRun,
  type EventCounts,
  type StepSeries,
  type StepTiming,
} from './estimate';
import { checkRunConfig, type RunConfig, type RunConfigInput } from './run-config';

function config(patch: Partial<RunConfigInput> = {}): RunConfig {
  const r = checkRunConfig({
    model: { preset: 'nano' },
    dataset: 'builtin',
    total_batch_size: 1024,
    batch_size: 8,
    seq_len: 128,
    max_steps: 100,
    warmup_steps: 5,
    eval_interval: 10,
    eval_iters: 4,
    hellaswag_interval: 0,
    sample_interval: 25,
    sample: { count: 2, max_tokens: 32 },
    checkpoint_interval: 20,
    guard: { snapshot_interval: 0 },
    ...patch,
  });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.config;
}

/** The events of steps [from, maxSteps), one boundary at a time (eventsBefore is the trainer's schedule, step by step). */
function bruteCount(c: RunConfig, from: number, maxSteps: number): EventCounts {
  const n = Object.fromEntries(EVENT_KINDS.map((k) => [k, 0])) as EventCounts;
  for (let s = from; s <= maxSteps; s++) {
    for (const k of eventsBefore(c, s, maxSteps)) {
      // before step s: evaluations and samples of the steps still to run; the checkpoint and snapshot after step s - 1
      if (k === 'checkpoint' || k === 'snapshot' ? s >= from + 1 : s < maxSteps) n[k]++;
    }
  }
  return n;
}

/** A synthetic run: each step takes dt, each boundary `base` ms, plus its events' costs; recorded as the service does. */
function simulate(
  c: RunConfig,
  o: {
    steps: number;
    dt: (s: number) => number;
    base: number;
    cost: Partial<Record<string, number>>;
    startSec?: number;
  },
): StepSeries & { totalMs: number } {
  const maxSteps = c.max_steps!;
  let t = (o.startSec ?? 1_000_000) * 1000;
  const steps: number[] = [];
  const dtMs: number[] = [];
  const wallSec: number[] = [];
  for (let s = 0; s < o.steps; s++) {
    t += o.base;
    for (const k of eventsBefore(c, s, maxSteps)) t += o.cost[k] ?? 0;
    const dt = o.dt(s);
    t += dt;
    steps.push(s);
    dtMs.push(dt);
    wallSec.push(t / 1000);
  }
  // the run's end: the final checkpoint
  if (o.steps === maxSteps) for (const k of eventsBefore(c, maxSteps, maxSteps)) t += o.cost[k] ?? 0;
  return { steps, dtMs, wallSec, totalMs: t - (o.startSec ?? 1_000_000) * 1000 };
}

describe('robust step time', () => {
  it('is the median of the last steps, plus the capped excess of the slower ones; the first steps do not count', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([null, Number.NaN, -1])).toBeUndefined();
    expect(robustStepMs([])).toBeUndefined();
    // steady steps: the median itself
    const steady = Array.from({ length: 30 }, (_, i) => (i % 2 ? 200 : 210));
    expect(robustStepMs(steady)).toBe(205);
    // the window: only the last 20 usable steps are typical now
    expect(robustStepMs([...Array(50).fill(100), ...Array(20).fill(300)])).toBe(300);
    // the slow first steps (left out as warm-up), and one stall of 12x: it counts as 3x the median, once in 20
    const dt = [1590, 399, 430, 377, ...steady, 2500, Number.NaN];
    const tail = [...steady.slice(-19), 2500];
    expect(robustStepMs(dt, 20, 4)).toBeCloseTo(tail.reduce((a, v) => a + Math.min(v, 3 * 205), 0) / 20, 9);
    expect(robustStepMs(dt, 20, 4)).toBeLessThan(1.11 * 205);
    // the mean of the same steps would be pulled up by more than half
    expect(tail.reduce((a, b) => a + b, 0) / tail.length).toBeGreaterThan(1.5 * 205);
    // a tenth of the steps slowed down 2x by another program: those cost time, and are counted
    const shared = Array.from({ length: 100 }, (_, i) => (i % 10 === 0 ? 400 : 200));
    expect(robustStepMs(shared)).toBeCloseTo(200 + 20, 9);
    // before there are enough steps past the warm-up, the first steps are all there is
    expect(robustStepMs([1590, 399], 20, 4)).toBeCloseTo(994.5 + 0, 9);
  });
});

describe('the schedule', () => {
  it("counts each event as the trainer's loop meets it, from any step", () => {
    const cases: Partial<RunConfigInput>[] = [
      {},
      { max_steps: 300, eval_interval: 50, sample_interval: 100, checkpoint_interval: 50 },
      {
        max_steps: 7,
        eval_interval: 3,
        sample_interval: 5,
        checkpoint_interval: 4,
        hellaswag_interval: 2,
        warmup_steps: 1,
      },
      {
        max_steps: 1,
        warmup_steps: 0,
        eval_interval: 5,
        sample_interval: 5,
        checkpoint_interval: 5,
        hellaswag_interval: 5,
      },
      {
        max_steps: 40,
        eval_interval: 0,
        sample_interval: 0,
        checkpoint_interval: 0,
        warmup_steps: 1,
        guard: { snapshot_interval: 7 },
      },
      {
        max_steps: 2000,
        eval_interval: 100,
        sample_interval: 250,
        checkpoint_interval: 250,
        guard: { snapshot_interval: 100 },
      },
    ];
    for (const patch of cases) {
      const c = config(patch);
      const max = c.max_steps!;
      for (const from of [0, 1, 2, Math.floor(max / 3), max - 1, max]) {
        if (from < 0 || from > max) continue;
        expect(countEvents(c, from, max), `${JSON.stringify(patch)} from ${from}`).toEqual(bruteCount(c, from, max));
      }
    }
  });

  it('gives the nano preset its evaluations, samples and checkpoints', () => {
    // nano: 300 steps; val loss at 0, 50, ..., 250 and the last step 299; samples at 100, 200 and 299;
    // checkpoints after steps 50, 100, ..., 300; guard snapshots after 100, 200, 300
    const c = config({
      max_steps: 300,
      eval_interval: 50,
      sample_interval: 100,
      checkpoint_interval: 50,
      guard: { snapshot_interval: 100 },
    });
    expect(countEvents(c, 0)).toEqual({ eval: 7, hellaswag: 0, sample: 3, checkpoint: 6, snapshot: 3 });
    expect(countEvents(c, 250)).toEqual({ eval: 2, hellaswag: 0, sample: 1, checkpoint: 1, snapshot: 1 });
    expect(countEvents(c, 300)).toEqual({ eval: 0, hellaswag: 0, sample: 0, checkpoint: 0, snapshot: 0 });
  });
});

describe('event costs', () => {
  it('take the median of what the run recorded', () => {
    expect(costsFromMetrics({ eval: [1579, 244, 259], checkpoint: [504, 287], sample: [] })).toEqual({
      eval: 259,
      checkpoint: 395.5,
    });
  });

  it('are read off the wall clock when a run recorded none, and a restart is not counted as work', () => {
    const c = config({ max_steps: 200, eval_interval: 10, checkpoint_interval: 20, sample_interval: 50 });
    const cost = { eval: 300, checkpoint: 500, sample: 120 };
    const run = simulate(c, { steps: 120, dt: (s) => 100 + (s % 3), base: 5, cost });
    const got = costsFromWallGaps(c, run);
    expect(got.eval).toBeCloseTo(300, 6);
    // every checkpoint comes with an evaluation (multiples of 20): known once the evaluation is
    expect(got.checkpoint).toBeCloseTo(500, 6);
    expect(got.sample).toBeCloseTo(120, 6);
    expect(got.hellaswag).toBeUndefined();
    // a cost already measured is not guessed again
    expect(costsFromWallGaps(c, run, { eval: 300 })).not.toHaveProperty('eval');
    // checkpoints every 50 steps; the run was stopped after its checkpoint at step 100, and resumed an hour later
    const c50 = config({ max_steps: 200, eval_interval: 10, checkpoint_interval: 50, sample_interval: 0 });
    const run50 = simulate(c50, { steps: 120, dt: () => 100, base: 5, cost });
    const wall = run50.wallSec.map((w, i) => (run50.steps[i]! >= 100 ? w + 3600 : w));
    const restart = run50.wallSec[99]! + 1800;
    expect(costsFromWallGaps(c50, { ...run50, wallSec: wall }, {}, restart).checkpoint).toBeCloseTo(500, 6);
    expect(costsFromWallGaps(c50, { ...run50, wallSec: wall }).checkpoint).toBeGreaterThan(1000);
  });

  it('carry over from a timing to another eval_iters, sample length and HellaSwag limit', () => {
    const t: StepTiming = {
      engine: 'native-cpu',
      batchSize: 8,
      seqLen: 128,
      microStepMs: 200,
      updateMs: 4,
      evalIterMs: 60,
      sample: { ms: 64, count: 2, maxTokens: 16 },
      checkpointMs: 580,
      snapshotMs: 200,
      hellaswag: { msPerExample: 30, examples: 1000 },
    };
    const c = config({
      eval_iters: 10,
      sample: { count: 4, max_tokens: 32 },
      hellaswag_interval: 50,
      hellaswag_limit: 100,
    });
    expect(costsFromTiming(c, t)).toEqual({ eval: 600, sample: 256, checkpoint: 580, snapshot: 200, hellaswag: 3000 });
    expect(
      costsFromTiming(config({ hellaswag_interval: 50 }), { ...t, hellaswag: { msPerExample: 30, examples: 0 } })
        .hellaswag,
    ).toBe(0);
  });
});

describe('time estimates', () => {
  const timing: StepTiming = {
    engine: 'native-cpu',
    batchSize: 8,
    seqLen: 128,
    microStepMs: 100,
    updateMs: 10,
    firstStepExtraMs: 500,
    evalIterMs: 50,
    sample: { ms: 80, count: 2, maxTokens: 16 },
    checkpointMs: 400,
    snapshotMs: 100,
    startupMs: 3000,
  };

  it('plan a whole run from a calibration: start-up, steps at the accumulation of the config, and every event', () => {
    // 2 micro-steps per step
    const c = config({
      total_batch_size: 2048,
      max_steps: 300,
      eval_interval: 50,
      eval_iters: 4,
      sample_interval: 100,
      checkpoint_interval: 50,
      guard: { snapshot_interval: 100 },
    });
    const e = estimateRunTime(c, timing);
    expect(e.stepMs).toBe(210);
    expect(e.counts).toEqual({ eval: 7, hellaswag: 0, sample: 3, checkpoint: 6, snapshot: 3 });
    expect(e.parts.startup).toBeCloseTo(3 + 0.5 + 0.1, 9);
    expect(e.parts.steps).toBeCloseTo(300 * 0.21, 9);
    expect(e.parts.eval).toBeCloseTo(7 * 0.2, 9);
    expect(e.parts.sample).toBeCloseTo(3 * 0.16, 9);
    expect(e.parts.checkpoint).toBeCloseTo(6 * 0.4, 9);
    expect(e.parts.snapshot).toBeCloseTo(3 * 0.1, 9);
    expect(e.seconds).toBeCloseTo(3.6 + 63 + 1.4 + 0.48 + 2.4 + 0.3, 9);
    expect(e.sources).toEqual({
      eval: 'timing',
      hellaswag: 'none',
      sample: 'timing',
      checkpoint: 'timing',
      snapshot: 'timing',
    });
  });

  it('give the time left of a running run from its own steps and events, and hold when one step is slow', () => {
    const c = config({ max_steps: 400, eval_interval: 50, sample_interval: 100, checkpoint_interval: 100 });
    const cost = { eval: 900, sample: 300, checkpoint: 1500 };
    const all = simulate(c, { steps: 400, dt: (s) => (s === 0 ? 1500 : 200 + (s % 5)), base: 3, cost });
    const at = 150;
    const seen: StepSeries = {
      steps: all.steps.slice(0, at),
      dtMs: all.dtMs.slice(0, at),
      wallSec: all.wallSec.slice(0, at),
    };
    const actualLeftSec = (all.totalMs - (all.wallSec[at - 1]! * 1000 - 1_000_000_000)) / 1000;
    // without time/* metrics: the wall-clock gaps give the costs
    const e = estimateRemaining(c, { stepsDone: at, series: seen })!;
    expect(e.sources.eval).toBe('wall-gap');
    expect(e.sources.checkpoint).toBe('wall-gap');
    // the run's overhead of 3 ms a step is not in the estimate: within 2%
    expect(Math.abs(e.seconds - actualLeftSec) / actualLeftSec).toBeLessThan(0.02);
    // with them, the recorded values win
    const m = estimateRemaining(c, {
      stepsDone: at,
      series: seen,
      eventMs: { eval: [900, 900], checkpoint: [], sample: [] },
    })!;
    expect(m.sources.eval).toBe('measured');
    expect(m.costs.eval).toBe(900);
    // a step slowed tenfold (another program) counts as 3x the median, once in the last 20
    const slowed = { ...seen, dtMs: seen.dtMs.map((v, i) => (i === at - 1 ? 2000 : v)) };
    expect(estimateRemaining(c, { stepsDone: at, series: slowed })!.stepMs - e.stepMs).toBeLessThan((2 * 204) / 20 + 1);
    expect(estimateRemaining(c, { stepsDone: 0, series: { steps: [], dtMs: [], wallSec: [] } })).toBeUndefined();
  });

  it('fall back to a calibration, then to a prior, for events the run has not met yet', () => {
    const c = config({ max_steps: 1000, eval_interval: 500, sample_interval: 500, checkpoint_interval: 500 });
    const seen = simulate(c, { steps: 30, dt: () => 200, base: 2, cost: { eval: 700 } });
    const withCal = estimateRemaining(c, { stepsDone: 30, series: seen }, timing)!;
    expect(withCal.sources).toMatchObject({ eval: 'timing', sample: 'timing', checkpoint: 'timing' });
    expect(withCal.costs.eval).toBe(4 * 50);
    const alone = estimateRemaining(c, { stepsDone: 30, series: seen }, undefined, { params: 7_000_000 })!;
    expect(alone.sources).toMatchObject({ eval: 'prior', sample: 'prior', checkpoint: 'prior' });
    expect(alone.costs.eval).toBeCloseTo((4 * 200) / 3, 9);
    expect(alone.costs.checkpoint).toBeCloseTo(((7e6 * 12) / 200e6) * 1000, 9);
  });

  it('learn a timing from a finished run that plans the same config back to its own length', () => {
    const c = config({ max_steps: 300, eval_interval: 50, sample_interval: 100, checkpoint_interval: 50 });
    const cost = { eval: 250, sample: 100, checkpoint: 400 };
    const run = simulate(c, { steps: 300, dt: (s) => (s < 1 ? 600 : 205), base: 1, cost });
    const t = timingFromRun(c, 'native-cpu', { stepsDone: 300, series: run })!;
    expect(t.microStepMs).toBe(205);
    // every evaluation after step 0 comes with a checkpoint (or a sample): their gaps are shared, so each is
    // off on its own, but together they are right
    const e = estimateRunTime(c, t);
    expect(e.parts.eval + e.parts.checkpoint + e.parts.sample).toBeCloseTo((7 * 250 + 6 * 400 + 3 * 100) / 1000, 0);
    const planned = estimateRunTime(c, t).seconds;
    // the first step's extra and the 1 ms a step between steps are not in the timing: within 2%
    expect(Math.abs(planned - run.totalMs / 1000) / (run.totalMs / 1000)).toBeLessThan(0.02);
  });
});
