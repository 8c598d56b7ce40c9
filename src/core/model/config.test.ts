import { describe, expect, it } from 'vitest';
import { decayGroups, flopsPerToken, makeConfig, paramCount, presetConfig, MODEL_PRESETS } from './config';
import { StudioError } from '../../shared/errors';
import { initWeights } from './init';

describe('model config', () => {
  it('gpt2 with vocab padded to 50304 has 124,475,904 parameters in the documented decay groups', () => {
    const c = presetConfig('gpt2');
    expect(c.paddedVocabSize).toBe(50304);
    expect(paramCount(c)).toBe(124_475_904);
    expect(decayGroups(c)).toEqual({
      decayTensors: 50,
      decayParams: 124_354_560,
      noDecayTensors: 98,
      noDecayParams: 121_344,
    });
  });

  it('gpt2 without padding has 124,439,808 parameters', () => {
    expect(paramCount(presetConfig('gpt2', { paddedVocabSize: 50257 }))).toBe(124_439_808);
  });

  it('has the released shapes and the CPU presets', () => {
    expect(MODEL_PRESETS['gpt2-xl']).toEqual({ nLayer: 48, nHead: 25, nEmbd: 1600, blockSize: 1024 });
    expect(presetConfig('nano')).toMatchObject({ nLayer: 4, nHead: 4, nEmbd: 128, blockSize: 256 });
    expect(presetConfig('micro')).toMatchObject({ nLayer: 6, nHead: 6, nEmbd: 384, blockSize: 256 });
    // the released sizes, rounded as OpenAI names them
    const m = (n: string) => paramCount(presetConfig(n, { paddedVocabSize: 50257 })) / 1e6;
    expect(Math.round(m('gpt2-medium'))).toBe(355);
    expect(Math.round(m('gpt2-large'))).toBe(774);
    expect(Math.round(m('gpt2-xl'))).toBe(1558);
  });

  it('pads a custom vocabulary to a multiple of 64 by default', () => {
    expect(makeConfig({ nLayer: 1, nHead: 1, nEmbd: 8, blockSize: 8, vocabSize: 1000 }).paddedVocabSize).toBe(1024);
  });

  it('counts FLOPs per token as 6N + 12 L C T (N without wpe)', () => {
    const c = presetConfig('gpt2');
    const n = paramCount(c) - 1024 * 768;
    expect(flopsPerToken(c)).toBe(6 * n + 12 * 12 * 768 * 1024);
    expect(flopsPerToken(c) / 1e9).toBeCloseTo(0.855, 3);
  });

  it('rejects a bad config with a message naming the value', () => {
    expect(() => makeConfig({ nLayer: 2, nHead: 3, nEmbd: 32, blockSize: 8 })).toThrow(
      /n_embd = 32 is not divisible by n_head = 3/,
    );
    expect(() => presetConfig('gpt5')).toThrow(StudioError);
    expect(() => makeConfig({ nLayer: 0, nHead: 1, nEmbd: 8, blockSize: 8 })).toThrow(/nLayer = 0/);
  });

  it('initializes as GPT-2: std 0.02, scaled residual projections, zero biases, unit LayerNorm', () => {
    const c = makeConfig({ nLayer: 2, nHead: 2, nEmbd: 64, blockSize: 64, vocabSize: 1000 });
    const w = initWeights(c, 1);
    const std = (a: Float32Array) => Math.sqrt(a.reduce((s, x) => s + x * x, 0) / a.length);
    expect(std(w.get('wte.weight')!.data)).toBeCloseTo(0.02, 3);
    expect(std(w.get('h.0.mlp.c_fc.weight')!.data)).toBeCloseTo(0.02, 3);
    expect(std(w.get('h.1.attn.c_proj.weight')!.data)).toBeCloseTo(0.02 / 2, 3);
    expect(w.get('h.0.attn.c_attn.bias')!.data.every((x) => x === 0)).toBe(true);
    expect(w.get('ln_f.weight')!.data.every((x) => x === 1)).toBe(true);
    expect(initWeights(c, 1).get('wpe.weight')!.data).toEqual(w.get('wpe.weight')!.data);
  });
});
