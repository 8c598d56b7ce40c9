import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Model } from '../src/core/engine/types';
import { makeConfig } from '../src/core/model/config';
import { initWeights } from '../src/core/model/init';
import { generate, sampleToken } from '../src/core/sampling';
import { Rng } from '../src/core/random';
import { batchFromRows, trainStep } from '../src/core/train/step';
import { getEngine } from '../src/node/engines';
import { loadGpt2Weights } from '../src/node/weights';
import { hasFixture, sharedPath } from './shared';

describe.skipIf(!hasFixture('fixtures/gpt2-tiny/model.safetensors'))('sampling with the KV cache (fixture model)', () => {
  let model: Model;
  beforeAll(async () => {
    const w = loadGpt2Weights(sharedPath('fixtures/gpt2-tiny'));
    model = await (await getEngine('tfjs')).createModel(w.config, w.tensors);
  });
  afterAll(() => model?.dispose());

  it('greedy decoding with the cache equals full recomputation for 50 tokens', async () => {
    const prompt = [15496, 11, 314, 1101, 257, 3303, 2746, 11]; // "Hello, I'm a language model,"
    const cached = (await generate(model, prompt, { temperature: 0, topK: 0, topP: 1, maxNewTokens: 50, numSequences: 1, seed: 1 }))[0];
    expect(cached.length).toBe(50);
    const seq = [...prompt];
    const V = model.config.vocabSize;
    for (let i = 0; i < 50; i++) {
      const T = seq.length;
      const logits = await model.logits(Int32Array.from(seq), 1, T);
      const row = logits.subarray((T - 1) * V, T * V);
      let best = 0;
      for (let j = 1; j < V; j++) if (row[j] > row[best]) best = j;
      seq.push(best);
    }
    expect(cached).toEqual(seq.slice(prompt.length));
  });

  it('is reproducible for a seed, and several rows differ', async () => {
    const o = { temperature: 1, topK: 50, topP: 1, maxNewTokens: 10, numSequences: 3, seed: 42 };
    const a = await generate(model, [50256], o);
    const b = await generate(model, [50256], o);
    expect(a).toEqual(b);
    expect(new Set(a.map((r) => r.join(','))).size).toBeGreaterThan(1);
  });
});

describe('sampleToken', () => {
  it('never leaves the top-k and respects top-p', () => {
    const logits = Float32Array.from([0, 5, 4, 1, 3, -2]);
    const rng = new Rng(3);
    for (let i = 0; i < 200; i++) expect([1, 2]).toContain(sampleToken(logits, { temperature: 1, topK: 2, topP: 1 }, rng));
    for (let i = 0; i < 200; i++) expect(sampleToken(logits, { temperature: 1, topK: 0, topP: 0.5 }, rng)).toBe(1);
    expect(sampleToken(logits, { temperature: 0, topK: 0, topP: 1 }, rng)).toBe(1);
  });
});

describe('TF.js memory', () => {
  it('keeps tf.memory().numTensors flat over 10 training steps', async () => {
    await getEngine('tfjs');
    const cfg = makeConfig({ nLayer: 2, nHead: 2, nEmbd: 32, blockSize: 32, vocabSize: 512 });
    const model = await (await getEngine('tfjs')).createModel(cfg, initWeights(cfg, 7));
    const rng = new Rng(5);
    const counts: number[] = [];
    const losses: number[] = [];
    try {
      for (let s = 0; s < 10; s++) {
        const micro = [0, 1].map(() => batchFromRows([0, 1].map(() => Array.from({ length: 17 }, () => rng.int(512))), 16));
        const r = await trainStep(model, micro, { gradClip: 1, adamw: { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 } });
        losses.push(r.loss);
        counts.push(tf.memory().numTensors);
      }
    } finally {
      model.dispose();
    }
    expect(losses.every(Number.isFinite)).toBe(true);
    // after the first step has created m and v, the count never moves
    expect(new Set(counts.slice(1)).size).toBe(1);
  });
});
