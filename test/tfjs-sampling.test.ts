import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { makeConfig } from '../src/core/model/config';
import { initWeights } from '../src/core/model/init';
import { sampleToken } from '../src/core/sampling';
import { Rng } from '../src/core/random';
import { batchFromRows, trainStep } from '../src/core/train/step';
import { getEngine } from '../src/node/engines';

describe('sampleToken', () => {
  it('never leaves the top-k and respects top-p', () => {
    const logits = Float32Array.from([0, 5, 4, 1, 3, -2]);
    const rng = new Rng(3);
    for (let i = 0; i < 200; i++)
      expect([1, 2]).toContain(sampleToken(logits, { temperature: 1, topK: 2, topP: 1 }, rng));
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
        const micro = [0, 1].map(() =>
          batchFromRows(
            [0, 1].map(() => Array.from({ length: 17 }, () => rng.int(512))),
            16,
          ),
        );
        const r = await trainStep(model, micro, {
          gradClip: 1,
          adamw: { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 },
        });
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
