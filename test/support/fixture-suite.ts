/**
 * The fixture suite shared by every engine's tests (test/tfjs-fixture.test.ts, test/native-fixture.test.ts).
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine, Model } from '../../src/core/engine/types';
import { learningRate } from '../../src/core/schedule';
import { generate } from '../../src/core/sampling';
import { sumOfSquares } from '../../src/core/tensors';
import { batchFromRows, trainStep } from '../../src/core/train/step';
import { loadGpt2Weights } from '../../src/node/models/weights';
import { hasFixture, sharedPath } from '../shared';

interface Expected {
  forward: {
    input_ids: number[][];
    targets: number[][];
    loss: number;
    logits_first_64_vocab: number[][][];
    last_position_logits_row0: number[];
    argmax: number[][];
    per_token_loss: number[][];
  };
  train: {
    hyper: {
      max_lr: number;
      min_lr_ratio: number;
      warmup_steps: number;
      max_steps: number;
      weight_decay: number;
      betas: [number, number];
      eps: number;
      grad_clip: number;
      seq_len: number;
    };
    batches: number[][][][];
    losses: number[];
    grad_norms: number[];
    lrs: number[];
    final_sum_of_squares: Record<string, number>;
  };
}

const FIXTURE = 'fixtures/gpt2-tiny';
export const fixturePresent = hasFixture(FIXTURE + '/expected.json');
const flat = (rows: number[][]) => Int32Array.from(rows.flat());

/**
 * The checks every engine must pass against the PyTorch fixture (../shared/fixtures/gpt2-tiny), with the
 * tolerances of its README: logits, per-token losses and masks, the six-step trajectory, the KV cache against
 * full recomputation, and seeded sampling. `open` gives the engine under test; `skip` says why it cannot run.
 */
export function fixtureSuite(title: string, open: () => Promise<Engine>, skip?: string): void {
  const reason = skip ?? (fixturePresent ? undefined : `${FIXTURE} is absent`);
  describe(reason ? `${title} [skipped: ${reason}]` : title, () => {
    const run = !reason;
    let exp: Expected;
    let model: Model;

    beforeAll(async () => {
      if (!run) return;
      exp = JSON.parse(readFileSync(sharedPath(FIXTURE + '/expected.json'), 'utf8'));
      const w = loadGpt2Weights(sharedPath(FIXTURE));
      model = await (await open()).createModel(w.config, w.tensors);
    });
    afterAll(() => model?.dispose());

    it.skipIf(!run)('computes the logits within 1e-4, with the same argmax everywhere', async () => {
      const f = exp.forward;
      const B = f.input_ids.length;
      const T = f.input_ids[0]!.length;
      const V = model.config.vocabSize;
      const logits = await model.logits(flat(f.input_ids), B, T);
      expect(logits.length).toBe(B * T * V);
      let maxErr = 0;
      for (let b = 0; b < B; b++) {
        for (let t = 0; t < T; t++) {
          const row = (b * T + t) * V;
          for (let j = 0; j < 64; j++)
            maxErr = Math.max(maxErr, Math.abs(logits[row + j]! - f.logits_first_64_vocab[b]![t]![j]!));
          let am = 0;
          for (let j = 1; j < V; j++) if (logits[row + j]! > logits[row + am]!) am = j;
          expect(am).toBe(f.argmax[b]![t]);
        }
      }
      const last = (T - 1) * V;
      for (let j = 0; j < V; j++)
        maxErr = Math.max(maxErr, Math.abs(logits[last + j]! - f.last_position_logits_row0[j]!));
      expect(maxErr).toBeLessThan(1e-4);
    });

    it.skipIf(!run)(
      'computes the per-token losses and the mean loss within 1e-4; uncounted positions are NaN',
      async () => {
        const f = exp.forward;
        const B = f.input_ids.length;
        const T = f.input_ids[0]!.length;
        const batch = { B, T, inputs: flat(f.input_ids), targets: flat(f.targets) };
        const losses = await model.tokenLosses(batch);
        let maxErr = 0;
        let mean = 0;
        for (let i = 0; i < B * T; i++) {
          maxErr = Math.max(maxErr, Math.abs(losses[i]! - f.per_token_loss[Math.floor(i / T)]![i % T]!));
          mean += losses[i]! / (B * T);
        }
        expect(maxErr).toBeLessThan(1e-4);
        expect(Math.abs(mean - f.loss)).toBeLessThan(1e-4);
        // a mask and an ignored target leave their positions out (NaN) and change nothing else
        const mask = new Float32Array(B * T).fill(1);
        mask[5] = 0;
        const targets = flat(f.targets);
        targets[9] = -1;
        const masked = await model.tokenLosses({ ...batch, targets, mask });
        expect(Number.isNaN(masked[5]) && Number.isNaN(masked[9])).toBe(true);
        for (let i = 0; i < B * T; i++) if (i !== 5 && i !== 9) expect(masked[i]).toBe(losses[i]);
      },
    );

    it.skipIf(!run)(
      'follows the six-step training trajectory (losses 1e-5, norms 1e-3, sums of squares 1e-4)',
      async () => {
        const tr = exp.train;
        const h = tr.hyper;
        const w = loadGpt2Weights(sharedPath(FIXTURE));
        const m = await (await open()).createModel(w.config, w.tensors);
        const sched = {
          maxLr: h.max_lr,
          minLrRatio: h.min_lr_ratio,
          warmupSteps: h.warmup_steps,
          maxSteps: h.max_steps,
        };
        try {
          for (let s = 0; s < tr.batches.length; s++) {
            const lr = learningRate(sched, s);
            expect(Math.abs(lr - tr.lrs[s]!)).toBeLessThan(1e-12);
            const micro = tr.batches[s]!.map((rows) => batchFromRows(rows, h.seq_len));
            const r = await trainStep(m, micro, {
              gradClip: h.grad_clip,
              adamw: { lr, beta1: h.betas[0], beta2: h.betas[1], eps: h.eps, weightDecay: h.weight_decay },
            });
            expect(Math.abs(r.loss - tr.losses[s]!) / tr.losses[s]!).toBeLessThan(1e-5);
            expect(Math.abs(r.norm - tr.grad_norms[s]!) / tr.grad_norms[s]!).toBeLessThan(1e-3);
          }
          const fin = await m.exportWeights();
          for (const [name, want] of Object.entries(tr.final_sum_of_squares)) {
            const got = sumOfSquares(fin.get(name)!);
            expect(Math.abs(got - want) / want, name).toBeLessThan(1e-4);
          }
          const opt = await m.exportOptimizerState();
          expect(opt.step).toBe(tr.batches.length);
          expect(opt.m.size).toBe(fin.size);
          expect(sumOfSquares(opt.v.get('wte.weight')!)).toBeGreaterThan(0);
        } finally {
          m.dispose();
        }
      },
    );

    it.skipIf(!run)('greedy decoding with the KV cache equals full recomputation for 50 tokens', async () => {
      const prompt = [15496, 11, 314, 1101, 257, 3303, 2746, 11]; // "Hello, I'm a language model,"
      const cached = (
        await generate(model, prompt, { temperature: 0, topK: 0, topP: 1, maxNewTokens: 50, numSequences: 1, seed: 1 })
      )[0]!;
      expect(cached.length).toBe(50);
      const seq = [...prompt];
      const V = model.config.vocabSize;
      for (let i = 0; i < 50; i++) {
        const T = seq.length;
        const logits = await model.logits(Int32Array.from(seq), 1, T);
        const row = logits.subarray((T - 1) * V, T * V);
        let best = 0;
        for (let j = 1; j < V; j++) if (row[j]! > row[best]!) best = j;
        seq.push(best);
      }
      expect(cached).toEqual(seq.slice(prompt.length));
    });

    it.skipIf(!run)('samples reproducibly for a seed, and several rows differ', async () => {
      const o = { temperature: 1, topK: 50, topP: 1, maxNewTokens: 10, numSequences: 3, seed: 42 };
      const a = await generate(model, [50256], o);
      const b = await generate(model, [50256], o);
      expect(a).toEqual(b);
      expect(new Set(a.map((r) => r.join(','))).size).toBeGreaterThan(1);
    });
  });
}
