/**
 * The estimator counts evaluations, HellaSwag, samples and checkpoints from a config's intervals
 * (src/shared/estimate.ts); this holds that count to what runTraining actually does, with a tiny model.
 */
import { describe, expect, it } from 'vitest';
import type { Batch } from '../src/core/engine/types';
import { makeConfig } from '../src/core/model/config';
import { initWeights } from '../src/core/model/init';
import { Rng } from '../src/core/random';
import { newGuardState } from '../src/core/train/guard';
import { batchFromRows } from '../src/core/train/step';
import { runTraining, type BatchSource } from '../src/core/train/trainer';
import { getEngine } from '../src/node/engines';
import { addon } from '../src/node/native/testing';
import { countEvents, eventsBefore, type EventKind } from '../src/shared/estimate';
import { checkRunConfig } from '../src/shared/run-config';

function source(seed: number, B: number, T: number): BatchSource {
  const rng = new Rng(seed);
  const batches: Batch[] = Array.from({ length: 4 }, () =>
    batchFromRows(
      Array.from({ length: B }, () => Array.from({ length: T + 1 }, () => rng.int(50257))),
      T,
    ),
  );
  let i = 0;
  return {
    next: () => batches[i++ % batches.length]!,
    getState: () => i,
    setState: (s) => void (i = s as number),
    reset: () => void (i = 0),
  };
}

describe("the estimator's schedule", () => {
  it('matches the events runTraining runs, before which step, from the start and from a resume', async () => {
    const r = checkRunConfig({
      model: { n_layer: 1, n_head: 1, n_embd: 8, block_size: 16 },
      dataset: 'x',
      total_batch_size: 16,
      batch_size: 2,
      seq_len: 8,
      max_steps: 13,
      warmup_steps: 1,
      eval_interval: 4,
      eval_iters: 1,
      hellaswag_interval: 5,
      sample_interval: 3,
      sample: { prompt: 'Once', count: 1, max_tokens: 2 },
      checkpoint_interval: 6,
      guard: { snapshot_interval: 0 },
    });
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    const c = r.config;
    const engine = await getEngine(addon ? 'native-cpu' : 'tfjs');
    const mc = makeConfig({ nLayer: 1, nHead: 1, nEmbd: 8, blockSize: 16 });
    const model = await engine.createModel(mc, initWeights(mc, 1));
    try {
      for (const from of [0, 6]) {
        // the boundary each event happened at: before step s, or (a checkpoint) after step s - 1
        const seen: { kind: EventKind; at: number }[] = [];
        let step = from;
        await runTraining({
          config: c,
          model,
          train: source(1, 2, 8),
          val: source(2, 2, 8),
          resume: from ? { step: from, tokensSeen: from * 16, data: 0, guard: newGuardState() } : undefined,
          hooks: {
            onStep: (e) => void (step = e.step + 1),
            onEval: (e) => void seen.push({ kind: 'eval', at: e.step }),
            onSample: (e) => void seen.push({ kind: 'sample', at: e.step }),
            hellaswag: async (_m, s) => {
              seen.push({ kind: 'hellaswag', at: s });
              return null;
            },
            saveCheckpoint: async (state) => void seen.push({ kind: 'checkpoint', at: state.step }),
          },
        });
        expect(step).toBe(13);
        const expected: { kind: EventKind; at: number }[] = [];
        for (let s = from; s <= 13; s++) {
          for (const kind of eventsBefore(c, s, 13))
            if (kind === 'checkpoint' ? s > from : s < 13) expected.push({ kind, at: s });
        }
        const key = (e: { kind: string; at: number }) => `${e.at}:${e.kind}`;
        expect(seen.map(key).sort(), `from step ${from}`).toEqual(expected.map(key).sort());
        const counts = countEvents(c, from, 13);
        for (const kind of ['eval', 'hellaswag', 'sample', 'checkpoint'] as const)
          expect(seen.filter((e) => e.kind === kind).length, `${kind} from ${from}`).toBe(counts[kind]);
      }
    } finally {
      model.dispose();
    }
  });
});
