import { describe, expect, it } from 'vitest';
import { flopsPerToken as coreFlops, makeConfig, paramCount as coreParams } from '../core/model/config';
import { MODEL_PRESETS, MODEL_PRESET_NAMES } from './model-presets';
import { activationFloats, flopsPerToken, paramCount, planRun, shapeKey, type PlanShape } from './planner';
import { checkRunConfig } from './run-config';

const shapeOf = (name: keyof typeof MODEL_PRESETS, vocab = 50257): PlanShape => {
  const p = MODEL_PRESETS[name];
  return {
    nLayer: p.nLayer,
    nHead: p.nHead,
    nEmbd: p.nEmbd,
    blockSize: p.blockSize,
    vocabSize: vocab,
    paddedVocabSize: Math.ceil(vocab / 64) * 64,
  };
};

describe('planner', () => {
  it('counts the parameters and FLOPs exactly as src/core does, for every preset', () => {
    for (const name of MODEL_PRESET_NAMES) {
      const s = shapeOf(name);
      const core = makeConfig({ nLayer: s.nLayer, nHead: s.nHead, nEmbd: s.nEmbd, blockSize: s.blockSize });
      expect(paramCount(s), name).toBe(coreParams(core));
      for (const T of [64, s.blockSize]) expect(flopsPerToken(s, T), `${name} T=${T}`).toBe(coreFlops(core, T));
    }
  });

  it("gives GPT-2 124M's well-known figures", () => {
    // 124,439,808 with the real vocabulary; 48 * 768 = 36,864 more with the padded 50,304 rows
    expect(paramCount({ ...shapeOf('gpt2'), paddedVocabSize: 50257 })).toBe(124_439_808);
    expect(paramCount(shapeOf('gpt2'))).toBe(124_439_808 + 47 * 768);
    // 6N + 12LCT with N without wpe (1024 * 768)
    const n = paramCount(shapeOf('gpt2')) - 1024 * 768;
    expect(flopsPerToken(shapeOf('gpt2'), 1024)).toBe(6 * n + 12 * 12 * 768 * 1024);
  });

  it('plans the 124M reproduction: 2**19 tokens per step, 8 micro-steps of 64 x 1024, 10B tokens', () => {
    const r = checkRunConfig({ model: { preset: 'gpt2' }, dataset: 'fineweb-edu-10bt', max_steps: 19073 });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    // a timing without evaluations, samples or checkpoints: the time is the steps' alone (8 micro-steps each)
    const timing = { engine: 'native-cuda', batchSize: 64, seqLen: 1024, microStepMs: 65.536, updateMs: 0 };
    const plan = planRun(r.config, { timing: { kind: 'run', timing, runId: 'r', runName: 'r' } });
    expect(plan.tokensPerStep).toBe(524_288);
    expect(plan.gradAccumSteps).toBe(8);
    expect(plan.totalTokens).toBe(19073 * 524_288);
    expect(plan.totalFlops).toBe(plan.flopsPerToken * plan.totalTokens);
    expect(plan.memory.params).toBe(plan.params * 4);
    expect(plan.memory.total).toBe(16 * plan.params + plan.memory.activations);
    expect(plan.memory.activations).toBe(2 * 4 * activationFloats(plan.shape, 64, 1024));
    expect(plan.time!.parts.steps).toBeCloseTo((19073 * 524_288) / 1_000_000, 6);
    // with the preset's evaluations (HellaSwag has no prior, so it counts 0 until measured)
    expect(plan.time!.counts).toMatchObject({ eval: 78, hellaswag: 78, sample: 77, checkpoint: 4 });
    expect(plan.seconds).toBeGreaterThan(plan.time!.parts.steps);
  });

  it('has no time without a measured throughput, and keys shapes by layers, heads, width, context and vocab', () => {
    const r = checkRunConfig({
      model: { preset: 'nano' },
      dataset: 'builtin',
      max_steps: 10,
      total_batch_size: 1024,
      batch_size: 8,
      seq_len: 128,
      warmup_steps: 2,
    });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(planRun(r.config).seconds).toBeUndefined();
    const none = { engine: 'tfjs', batchSize: 8, seqLen: 128, microStepMs: 0, updateMs: 0 };
    expect(
      planRun(r.config, { timing: { kind: 'run', timing: none, runId: 'r', runName: 'r' } }).seconds,
    ).toBeUndefined();
    expect(shapeKey(planRun(r.config).shape)).toBe(shapeKey(shapeOf('nano')));
    expect(shapeKey(shapeOf('nano'))).not.toBe(shapeKey(shapeOf('micro')));
  });

  it('plans the shape the run trains: init weights of another shape replace the preset', () => {
    const r = checkRunConfig({
      model: { preset: 'nano' },
      init_from: 'weights',
      init_path: 'models/tiny',
      dataset: 'builtin',
      max_steps: 10,
      total_batch_size: 1024,
      batch_size: 8,
      seq_len: 128,
      warmup_steps: 2,
    });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    // the 2-layer fixture (../shared/fixtures/gpt2-tiny) with the run's padded vocabulary
    const tiny: PlanShape = {
      nLayer: 2,
      nHead: 2,
      nEmbd: 32,
      blockSize: 128,
      vocabSize: 50257,
      paddedVocabSize: 50304,
    };
    const plan = planRun(r.config, { shape: tiny });
    expect(plan.params).toBe(1_639_296);
    expect(plan.shape.nLayer).toBe(2);
    expect(plan.memory.params).toBe(1_639_296 * 4);
    expect(planRun(r.config).params).toBe(paramCount(shapeOf('nano')));
  });
});
