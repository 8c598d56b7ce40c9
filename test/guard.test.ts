import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkRunConfig, type RunConfig } from '../src/shared/run-config';
import type { Batch, Model } from '../src/core/engine/types';
import { judgeStep, newGuardState, restoreGuardState, robustZ, type GuardOptions } from '../src/core/train/guard';
import { batchFromRows } from '../src/core/train/step';
import { runTraining, type BatchSource, type GuardEvent, type StepEvent } from '../src/core/train/trainer';
import { makeConfig } from '../src/core/model/config';
import { initWeights } from '../src/core/model/init';
import { Rng } from '../src/core/random';
import { encode } from '../src/core/tokenizer';
import { getEngine } from '../src/node/engines';
import { ErrorCode, StudioError } from '../src/shared/errors';
import { hasFixture, sharedPath } from './shared';

const OPTS: GuardOptions = {
  enabled: true,
  zThreshold: 6,
  warmup: 10,
  maxConsecutiveSkips: 3,
  maxRollbacks: 2,
  window: 50,
};

/** Losses around 5 with a little noise, as a healthy run's. */
function warm(n = 30, seed = 3): number[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => 5 + (rng.random() - 0.5) * 0.2);
}

describe('the guard decides on the loss, and a skip streak changes the state', () => {
  it('skips one bad batch and goes on', () => {
    const s = newGuardState();
    for (const l of warm()) expect(judgeStep(s, OPTS, l, 1.2, true).kind).toBe('apply');
    const v = judgeStep(s, OPTS, 9, 1.3, true);
    expect(v.kind).toBe('skip');
    expect(v.kind === 'skip' && v.reason).toMatch(
      /loss 9\.0000 is [\d.]+ robust standard deviations above the recent median [45]\.\d{4}/,
    );
    expect(judgeStep(s, OPTS, 5.01, 1.2, true).kind).toBe('apply');
    expect(s.consecutiveSkips).toBe(0);
    expect(s.skips).toBe(1);
  });

  it('never judges the gradient norm: a norm jump with a normal loss is applied (clipping bounds it)', () => {
    const s = newGuardState();
    for (const l of warm()) judgeStep(s, OPTS, l, 1.3, true);
    for (let i = 0; i < 10; i++) expect(judgeStep(s, OPTS, 5, 4.8, true).kind).toBe('apply');
  });

  it('a spike streak rolls back once; a loss that stays high after it becomes the new baseline, never a failure', () => {
    const s = newGuardState();
    for (const l of warm()) judgeStep(s, OPTS, l, 1, true);
    expect(judgeStep(s, OPTS, 8, 1, true).kind).toBe('skip');
    expect(judgeStep(s, OPTS, 8, 1, true).kind).toBe('skip');
    expect(judgeStep(s, OPTS, 8, 1, true).kind).toBe('rollback');
    expect(judgeStep(s, OPTS, 8, 1, true).kind).toBe('skip');
    expect(judgeStep(s, OPTS, 8, 1, true).kind).toBe('skip');
    expect(judgeStep(s, OPTS, 8, 1, true).kind).toBe('rebaseline');
    // the new level is the baseline now (after its warm-up)
    for (let i = 0; i < 50; i++) expect(judgeStep(s, OPTS, 8 + (i % 3) * 0.01, 1, true).kind).toBe('apply');
    expect(s.rollbacks).toBe(1);
  });

  it('with spike detection off, only a non-finite step is skipped; a NaN that survives two rollbacks fails and says what was tried', () => {
    const off = { ...OPTS, enabled: false };
    const s = newGuardState();
    for (const l of warm()) judgeStep(s, off, l, 1, true);
    expect(judgeStep(s, off, 50, 1, true).kind).toBe('apply');
    const kinds = Array.from({ length: 9 }, () => judgeStep(s, off, Number.NaN, Number.NaN, true).kind);
    expect(kinds).toEqual(['skip', 'skip', 'rollback', 'skip', 'skip', 'rollback', 'skip', 'skip', 'fail']);
    const again = newGuardState();
    judgeStep(again, off, Number.NaN, 1, true);
    judgeStep(again, off, Number.NaN, 1, true);
    const v = judgeStep(again, off, Number.NaN, 1, true);
    expect(v.kind).toBe('rollback');
    const noSnap = newGuardState();
    for (let i = 0; i < 2; i++) judgeStep(noSnap, off, Number.POSITIVE_INFINITY, 1, false);
    const f = judgeStep(noSnap, off, Number.POSITIVE_INFINITY, 1, false);
    expect(f.kind).toBe('fail');
    expect(f.kind === 'fail' && f.reason).toMatch(/no snapshot to roll back to \(guard\.snapshot_interval is 0\)/);
  });

  it('robust z ignores a few outliers in the window, and a state from an older checkpoint restores', () => {
    const xs = [...warm(40), 30, 31, 29];
    expect(robustZ(5.05, xs)).toBeLessThan(2);
    expect(robustZ(7, xs)).toBeGreaterThan(6);
    expect(restoreGuardState({ losses: [1, 2], norms: [3, 4], consecutiveSkips: 2 })).toEqual({
      losses: [1, 2],
      consecutiveSkips: 2,
      rollbacksInARow: 0,
      skips: 0,
      rollbacks: 0,
    });
  });
});

const present = hasFixture('data/tinyshakespeare.txt');

function parse(input: unknown): RunConfig {
  const r = checkRunConfig(input);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.config;
}

describe.skipIf(!present)('the guard inside a real run (Tiny Shakespeare, a 2-layer GPT-2)', () => {
  const T = 32;
  const B = 4;
  const tokens = present ? encode(readFileSync(sharedPath('data/tinyshakespeare.txt'), 'utf8').slice(0, 60_000)) : [];
  const cfg = makeConfig({ nLayer: 2, nHead: 2, nEmbd: 64, blockSize: T, vocabSize: 50257 });
  const config = parse({
    model: { n_layer: 2, n_head: 2, n_embd: 64, block_size: T },
    dataset: 'tinyshakespeare',
    total_batch_size: B * T,
    batch_size: B,
    seq_len: T,
    max_steps: 40,
    warmup_steps: 5,
    max_lr: 3e-3,
    eval_interval: 0,
    hellaswag_interval: 0,
    sample_interval: 0,
    checkpoint_interval: 0,
    guard: { enabled: true, warmup: 10, window: 10, snapshot_interval: 10 },
  });

  /** Consecutive rows of the text; at the steps in `garbage`, a batch of random token ids instead (a real spike). */
  function source(garbage: Set<number>): BatchSource {
    let i = 0;
    const rng = new Rng(7);
    return {
      next: (): Batch => {
        const step = i++;
        const rows = Array.from({ length: B }, (_, b) => {
          if (garbage.has(step)) return Array.from({ length: T + 1 }, () => rng.int(50257));
          const at = ((step * B + b) * T) % (tokens.length - T - 1);
          return tokens.slice(at, at + T + 1);
        });
        return batchFromRows(rows, T);
      },
      getState: () => i,
      setState: (s) => {
        i = s as number;
      },
      reset: () => {
        i = 0;
      },
    };
  }

  async function train(garbage: number[], wrap?: (m: Model) => Model) {
    const model = await (await getEngine('auto')).createModel(cfg, initWeights(cfg, 1));
    const steps: StepEvent[] = [];
    const guard: GuardEvent[] = [];
    const logs: string[] = [];
    try {
      const out = await runTraining({
        config,
        model: wrap ? wrap(model) : model,
        train: source(new Set(garbage)),
        hooks: {
          onStep: (e) => {
            steps.push(e);
          },
          onGuard: (e) => {
            guard.push(e);
          },
          onLog: (_l, m) => {
            logs.push(m);
          },
        },
      }).catch((e: unknown) => e);
      return { out, steps, guard, logs };
    } finally {
      model.dispose();
    }
  }

  it('a clean run takes no guard action', async () => {
    const r = await train([]);
    expect(r.out).toEqual({ status: 'done', step: 40 });
    expect(r.guard).toEqual([]);
    expect(r.steps.every((s) => !s.skipped)).toBe(true);
  }, 120_000);

  it('a spike of three garbage batches is skipped, rolled back to the snapshot at step 20, and the run recovers', async () => {
    const clean = await train([]);
    const r = await train([25, 26, 27]);
    expect(r.out).toEqual({ status: 'done', step: 40 });
    expect(r.guard.map((g) => [g.step, g.action, g.toStep])).toEqual([
      [25, 'skip', undefined],
      [26, 'skip', undefined],
      [27, 'rollback', 20],
    ]);
    expect(
      r.logs.some((l) =>
        /step 27: guard: 3 loss spikes in a row .* rolled back the weights and optimizer state to step 20 and skipped the 8 batches since/.test(
          l,
        ),
      ),
    ).toBe(true);
    // the garbage losses were spikes, and the run after them is back at the clean run's level
    expect(r.steps[25]!.loss).toBeGreaterThan(r.steps[24]!.loss + 2);
    expect(r.steps.slice(25, 28).every((s) => s.skipped)).toBe(true);
    const tail = (xs: StepEvent[]) => xs.slice(-5).reduce((a, s) => a + s.loss, 0) / 5;
    expect(Math.abs(tail(r.steps) - tail(clean.steps))).toBeLessThan(0.3);
  }, 120_000);

  it('a NaN loss that never goes away fails the run after two rollbacks, saying what was tried', async () => {
    const poisoned = (m: Model): Model => {
      let calls = 0;
      return new Proxy(m, {
        get(target, prop, recv) {
          if (prop === 'forwardBackward') {
            return async (b: Batch, scale: number) => {
              const l = await target.forwardBackward(b, scale);
              return ++calls > 15 ? Number.NaN : l;
            };
          }
          const v = Reflect.get(target, prop, recv) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
    };
    const r = await train([], poisoned);
    expect(r.out).toBeInstanceOf(StudioError);
    const e = r.out as StudioError;
    expect(e.code).toBe(ErrorCode.NUMERIC);
    expect(e.message).toMatch(
      /Training stopped at step 23: loss NaN .* is not finite; tried: .*rolled back 2 times in a row to its last good weights/,
    );
    expect(r.guard.filter((g) => g.action === 'rollback').map((g) => g.toStep)).toEqual([10, 10]);
  }, 120_000);
});
