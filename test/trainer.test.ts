import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkRunConfig, type RunConfig } from '../src/shared/run-config';
import type { Batch } from '../src/core/engine/types';
import { batchFromRows } from '../src/core/train/step';
import { formatStep, runTraining, type BatchSource, type StepEvent } from '../src/core/train/trainer';
import { makeConfig } from '../src/core/model/config';
import { initWeights } from '../src/core/model/init';
import { Rng } from '../src/core/random';
import { getEngine } from '../src/node/engines';
import { loadGpt2Weights } from '../src/node/models/weights';
import { hasFixture, sharedPath } from './shared';

/** A BatchSource over a fixed list of batches. */
function listSource(batches: Batch[]): BatchSource {
  let i = 0;
  return {
    next: () => batches[i++ % batches.length]!,
    getState: () => i,
    setState: (s) => {
      i = s as number;
    },
    reset: () => {
      i = 0;
    },
  };
}

function parse(input: unknown): RunConfig {
  const r = checkRunConfig(input);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.config;
}

const present = hasFixture('fixtures/gpt2-tiny/expected.json');

describe.skipIf(!present)('the trainer reproduces the fixture trajectory', () => {
  it('losses, norms and learning rates of the six steps, through runTraining', async () => {
    const exp = JSON.parse(readFileSync(sharedPath('fixtures/gpt2-tiny/expected.json'), 'utf8')).train;
    const h = exp.hyper;
    const config = parse({
      model: { n_layer: 2, n_head: 2, n_embd: 32, block_size: 128, vocab_size: 50257, padded_vocab_size: 50257 },
      dataset: 'fixture',
      total_batch_size: h.grad_accum_steps * h.micro_batch * h.seq_len,
      batch_size: h.micro_batch,
      seq_len: h.seq_len,
      max_steps: h.max_steps,
      warmup_steps: h.warmup_steps,
      max_lr: h.max_lr,
      min_lr_ratio: h.min_lr_ratio,
      weight_decay: h.weight_decay,
      beta1: h.betas[0],
      beta2: h.betas[1],
      eps: h.eps,
      grad_clip: h.grad_clip,
      eval_interval: 0,
      hellaswag_interval: 0,
      sample_interval: 0,
      checkpoint_interval: 0,
    });
    const batches: Batch[] = (exp.batches as number[][][][]).flatMap((step) =>
      step.map((rows) => batchFromRows(rows, h.seq_len)),
    );
    const w = loadGpt2Weights(sharedPath('fixtures/gpt2-tiny'));
    const model = await (await getEngine('tfjs')).createModel(w.config, w.tensors);
    const steps: StepEvent[] = [];
    const logs: string[] = [];
    try {
      const out = await runTraining({
        config,
        model,
        train: listSource(batches),
        hooks: {
          onStep: (e) => {
            steps.push(e);
          },
          onLog: (_l, m) => {
            logs.push(m);
          },
        },
      });
      expect(out).toEqual({ status: 'done', step: 6 });
    } finally {
      model.dispose();
    }
    expect(logs[0]).toBe('num decayed parameter tensors: 10, with 1,636,896 parameters');
    expect(logs[1]).toBe('num non-decayed parameter tensors: 18, with 896 parameters');
    steps.forEach((s, i) => {
      expect(Math.abs(s.loss - exp.losses[i]) / exp.losses[i]).toBeLessThan(1e-5);
      expect(Math.abs(s.norm - exp.grad_norms[i]) / exp.grad_norms[i]).toBeLessThan(1e-3);
      expect(Math.abs(s.lr - exp.lrs[i])).toBeLessThan(1e-12);
      expect(s.skipped).toBe(false);
    });
    expect(formatStep(steps[0]!)).toMatch(
      /^step {5}0 \| loss 10\.83\d+ \| lr 1\.5000e-3 \| norm 1\.02\d+ \| dt [\d.]+ ms \| tok\/sec [\d.]+$/,
    );
  });
});

describe('gradient accumulation', () => {
  it('B=8 with accumulation 1 equals B=2 with accumulation 4 within 1e-5', async () => {
    const cfg = makeConfig({ nLayer: 2, nHead: 2, nEmbd: 32, blockSize: 16, vocabSize: 256, paddedVocabSize: 256 });
    const rng = new Rng(11);
    const rows = Array.from({ length: 8 * 3 }, () => Array.from({ length: 17 }, () => rng.int(256)));
    const big = [0, 1, 2].map((s) => batchFromRows(rows.slice(s * 8, s * 8 + 8), 16));
    const small = [0, 1, 2].flatMap((s) =>
      [0, 1, 2, 3].map((k) => batchFromRows(rows.slice(s * 8 + k * 2, s * 8 + k * 2 + 2), 16)),
    );
    const base = {
      model: { n_layer: 2, n_head: 2, n_embd: 32, block_size: 16, vocab_size: 256, padded_vocab_size: 256 },
      dataset: 'x',
      seq_len: 16,
      total_batch_size: 128,
      max_steps: 3,
      warmup_steps: 1,
      max_lr: 1e-3,
      eval_interval: 0,
      hellaswag_interval: 0,
      sample_interval: 0,
      checkpoint_interval: 0,
    };
    const engine = await getEngine('tfjs');
    const run = async (B: number, src: Batch[]) => {
      const model = await engine.createModel(cfg, initWeights(cfg, 5));
      const losses: number[] = [];
      try {
        await runTraining({
          config: parse({ ...base, batch_size: B }),
          model,
          train: listSource(src),
          hooks: {
            onStep: (e) => {
              losses.push(e.loss);
            },
          },
        });
        return { losses, w: await model.exportWeights() };
      } finally {
        model.dispose();
      }
    };
    const a = await run(8, big);
    const b = await run(2, small);
    a.losses.forEach((l, i) => expect(Math.abs(l - b.losses[i]!)).toBeLessThan(1e-5));
    for (const [name, t] of a.w) {
      const u = b.w.get(name)!;
      let m = 0;
      for (let i = 0; i < t.data.length; i++) m = Math.max(m, Math.abs(t.data[i]! - u.data[i]!));
      expect(m, name).toBeLessThan(1e-5);
    }
  });
});

describe('checkpoints and evaluations', () => {
  it('a checkpoint at a step that evaluates records that evaluation (of its own weights), made before it is saved', async () => {
    const cfg = makeConfig({ nLayer: 1, nHead: 2, nEmbd: 16, blockSize: 8, vocabSize: 64, paddedVocabSize: 64 });
    const rng = new Rng(3);
    const batches = Array.from({ length: 4 }, () =>
      batchFromRows(
        Array.from({ length: 2 }, () => Array.from({ length: 9 }, () => rng.int(64))),
        8,
      ),
    );
    const config = parse({
      model: { n_layer: 1, n_head: 2, n_embd: 16, block_size: 8, vocab_size: 64, padded_vocab_size: 64 },
      dataset: 'x',
      seq_len: 8,
      batch_size: 2,
      total_batch_size: 16,
      max_steps: 6,
      warmup_steps: 1,
      max_lr: 1e-2,
      eval_interval: 2,
      eval_iters: 1,
      hellaswag_interval: 0,
      sample_interval: 0,
      checkpoint_interval: 2,
    });
    const model = await (await getEngine('tfjs')).createModel(cfg, initWeights(cfg, 1));
    const order: string[] = [];
    const evals = new Map<number, number>();
    const saved: { step: number; valLoss: number | undefined }[] = [];
    try {
      await runTraining({
        config,
        model,
        train: listSource(batches),
        val: listSource(batches.slice(0, 1)),
        hooks: {
          onStep: () => {},
          onEval: (e) => {
            evals.set(e.step, e.valLoss);
            order.push(`eval ${e.step}`);
          },
          saveCheckpoint: async (state, metrics) => {
            saved.push({ step: state.step, valLoss: metrics['val/loss'] });
            order.push(`checkpoint ${state.step}`);
          },
        },
      });
    } finally {
      model.dispose();
    }
    // evaluations at 0, 2, 4 and the last step (5); checkpoints at 2, 4 and 6
    expect(order).toEqual(['eval 0', 'eval 2', 'checkpoint 2', 'eval 4', 'checkpoint 4', 'eval 5', 'checkpoint 6']);
    expect(saved[0]).toEqual({ step: 2, valLoss: evals.get(2) });
    expect(saved[1]).toEqual({ step: 4, valLoss: evals.get(4) });
    expect(saved[2]).toEqual({ step: 6, valLoss: evals.get(5) });

    // a stop does not evaluate the step it stops before (that step has not trained): its checkpoint keeps the last one
    const again = await (await getEngine('tfjs')).createModel(cfg, initWeights(cfg, 1));
    const order2: string[] = [];
    const saved2: { step: number; valLoss: number | undefined }[] = [];
    let steps = 0;
    try {
      const out = await runTraining({
        config,
        model: again,
        train: listSource(batches),
        val: listSource(batches.slice(0, 1)),
        hooks: {
          onStep: () => {
            steps++;
          },
          control: () => (steps === 4 ? 'stop' : 'run'),
          onEval: (e) => {
            order2.push(`eval ${e.step}`);
          },
          saveCheckpoint: async (state, metrics) => {
            saved2.push({ step: state.step, valLoss: metrics['val/loss'] });
            order2.push(`checkpoint ${state.step}`);
          },
        },
      });
      expect(out).toEqual({ status: 'stopped', step: 4 });
    } finally {
      again.dispose();
    }
    expect(order2).toEqual(['eval 0', 'eval 2', 'checkpoint 2', 'checkpoint 4']);
    expect(saved2[1]!.valLoss).toBe(saved2[0]!.valLoss);
  });
});
