/**
 * The tfjs engine against the PyTorch fixture on its wasm and cpu backends (test/support/fixture-suite.ts), plus
 * what is particular to TF.js: the decay groups and a bounded tensor count after training.
 */
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { decayGroups } from '../src/core/model/config';
import { learningRate } from '../src/core/schedule';
import { batchFromRows, trainStep } from '../src/core/train/step';
import { getEngine } from '../src/node/engines';
import { loadGpt2Weights } from '../src/node/models/weights';
import { sharedPath } from './shared';
import { fixturePresent, fixtureSuite } from './support/fixture-suite';

for (const backend of ['wasm', 'cpu']) {
  fixtureSuite(`tfjs engine (${backend} backend) against the PyTorch fixture (gpt2-tiny)`, async () => {
    const engine = await getEngine('tfjs', { backend });
    expect(tf.getBackend()).toBe(backend);
    return engine;
  });
}

describe.skipIf(!fixturePresent)('tfjs engine specifics on the fixture', () => {
  it('counts the decay groups as the reference does, and keeps its tensors bounded while training', async () => {
    const tr = JSON.parse(readFileSync(sharedPath('fixtures/gpt2-tiny/expected.json'), 'utf8')).train;
    const w = loadGpt2Weights(sharedPath('fixtures/gpt2-tiny'));
    expect(decayGroups(w.config)).toEqual({
      decayTensors: tr.num_decay_tensors,
      decayParams: tr.num_decay_params,
      noDecayTensors: tr.num_nodecay_tensors,
      noDecayParams: tr.num_nodecay_params,
    });
    const h = tr.hyper;
    const m = await (await getEngine('tfjs')).createModel(w.config, w.tensors);
    const before = tf.memory().numTensors;
    const sched = { maxLr: h.max_lr, minLrRatio: h.min_lr_ratio, warmupSteps: h.warmup_steps, maxSteps: h.max_steps };
    try {
      for (let s = 0; s < 2; s++) {
        const micro = (tr.batches[s] as number[][][]).map((rows) => batchFromRows(rows, h.seq_len));
        await trainStep(m, micro, {
          gradClip: h.grad_clip,
          adamw: {
            lr: learningRate(sched, s),
            beta1: h.betas[0],
            beta2: h.betas[1],
            eps: h.eps,
            weightDecay: h.weight_decay,
          },
        });
      }
      // parameters, gradients, m and v (28 each) and a few cached masks
      expect(tf.memory().numTensors - before).toBeLessThanOrEqual(3 * 28 + 8);
    } finally {
      m.dispose();
    }
  });
});
