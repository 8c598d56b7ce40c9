import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, afterAll, describe, expect, it } from 'vitest';
import type { Model } from '../src/core/engine/types';
import { decayGroups } from '../src/core/model/config';
import { learningRate } from '../src/core/schedule';
import { sumOfSquares } from '../src/core/tensors';
import { batchFromRows, trainStep } from '../src/core/train/step';
import { getEngine } from '../src/node/engines';
import { loadGpt2Weights } from '../src/node/weights';
import { hasFixture, sharedPath } from './shared';

interface Expected {
  forward: {
    input_ids: number[][]; targets: number[][]; loss: number; logits_first_64_vocab: number[][][];
    last_position_logits_row0: number[]; logsumexp: number[][]; argmax: number[][]; per_token_loss: number[][];
  };
  train: {
    hyper: {
      max_lr: number; min_lr_ratio: number; warmup_steps: number; max_steps: number; weight_decay: number;
      betas: [number, number]; eps: number; grad_clip: number; micro_batch: number; seq_len: number; grad_accum_steps: number;
    };
    batches: number[][][][];
    num_decay_tensors: number; num_decay_params: number; num_nodecay_tensors: number; num_nodecay_params: number;
    losses: number[]; grad_norms: number[]; lrs: number[]; final_sum_of_squares: Record<string, number>;
  };
}

const FIXTURE = 'fixtures/gpt2-tiny';
const present = hasFixture(FIXTURE + '/expected.json');

describe.skipIf(!present).each(['wasm', 'cpu'])('tfjs engine (%s backend) against the PyTorch fixture (gpt2-tiny)', (backend) => {
  let exp: Expected;
  let model: Model;

  beforeAll(async () => {
    exp = JSON.parse(readFileSync(sharedPath(FIXTURE + '/expected.json'), 'utf8'));
    const w = loadGpt2Weights(sharedPath(FIXTURE));
    const engine = await getEngine('tfjs', { backend });
    expect(tf.getBackend()).toBe(backend);
    model = await engine.createModel(w.config, w.tensors);
  });
  afterAll(() => model?.dispose());

  const flat = (rows: number[][]) => Int32Array.from(rows.flat());

  it('computes the logits within 1e-4', async () => {
    const f = exp.forward;
    const B = f.input_ids.length;
    const T = f.input_ids[0].length;
    const V = model.config.vocabSize;
    const logits = await model.logits(flat(f.input_ids), B, T);
    expect(logits.length).toBe(B * T * V);
    let maxErr = 0;
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        const row = (b * T + t) * V;
        for (let j = 0; j < 64; j++) maxErr = Math.max(maxErr, Math.abs(logits[row + j] - f.logits_first_64_vocab[b][t][j]));
        let am = 0;
        for (let j = 1; j < V; j++) if (logits[row + j] > logits[row + am]) am = j;
        expect(am).toBe(f.argmax[b][t]);
      }
    }
    const last = (0 * T + T - 1) * V;
    for (let j = 0; j < V; j++) maxErr = Math.max(maxErr, Math.abs(logits[last + j] - f.last_position_logits_row0[j]));
    expect(maxErr).toBeLessThan(1e-4);
  });

  it('computes the per-token losses and the mean loss within 1e-4', async () => {
    const f = exp.forward;
    const B = f.input_ids.length;
    const T = f.input_ids[0].length;
    const batch = { B, T, inputs: flat(f.input_ids), targets: flat(f.targets) };
    const losses = await model.tokenLosses(batch);
    let maxErr = 0;
    let mean = 0;
    for (let i = 0; i < B * T; i++) {
      maxErr = Math.max(maxErr, Math.abs(losses[i] - f.per_token_loss[Math.floor(i / T)][i % T]));
      mean += losses[i] / (B * T);
    }
    expect(maxErr).toBeLessThan(1e-4);
    expect(Math.abs(mean - f.loss)).toBeLessThan(1e-4);
  });

  it('counts the decay groups as the reference does', () => {
    const g = decayGroups(model.config);
    expect(g).toEqual({
      decayTensors: exp.train.num_decay_tensors, decayParams: exp.train.num_decay_params,
      noDecayTensors: exp.train.num_nodecay_tensors, noDecayParams: exp.train.num_nodecay_params,
    });
  });

  it('follows the six-step training trajectory (losses 1e-5, norms 1e-3, lrs, sums of squares 1e-4)', async () => {
    const tr = exp.train;
    const h = tr.hyper;
    const w = loadGpt2Weights(sharedPath(FIXTURE));
    const engine = await getEngine('tfjs', { backend });
    const m = await engine.createModel(w.config, w.tensors);
    const tensorsBefore = tf.memory().numTensors;
    const sched = { maxLr: h.max_lr, minLrRatio: h.min_lr_ratio, warmupSteps: h.warmup_steps, maxSteps: h.max_steps };
    try {
      for (let s = 0; s < tr.batches.length; s++) {
        const lr = learningRate(sched, s);
        expect(Math.abs(lr - tr.lrs[s])).toBeLessThan(1e-12);
        const micro = tr.batches[s].map((rows) => batchFromRows(rows, h.seq_len));
        const r = await trainStep(m, micro, {
          gradClip: h.grad_clip,
          adamw: { lr, beta1: h.betas[0], beta2: h.betas[1], eps: h.eps, weightDecay: h.weight_decay },
        });
        expect(Math.abs(r.loss - tr.losses[s]) / tr.losses[s]).toBeLessThan(1e-5);
        expect(Math.abs(r.norm - tr.grad_norms[s]) / tr.grad_norms[s]).toBeLessThan(1e-3);
      }
      const fin = await m.exportWeights();
      for (const [name, want] of Object.entries(tr.final_sum_of_squares)) {
        const got = sumOfSquares(fin.get(name)!);
        expect(Math.abs(got - want) / want, name).toBeLessThan(1e-4);
      }
      // m and v exist for every parameter after training; tensors stay bounded by the model's own state
      const opt = await m.exportOptimizerState();
      expect(opt.step).toBe(tr.batches.length);
      expect(tf.memory().numTensors - tensorsBefore).toBeLessThanOrEqual(4 * 28 + 8);
    } finally {
      m.dispose();
    }
  });
});
