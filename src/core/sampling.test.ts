/**
 * Why a generation ends, on the real sampler and a real TF.js model: a small GPT-2 whose weights are set so that
 * it always writes one chosen token (ln_f maps every position to the same vector, and only that token's row of
 * wte points along it), so each end reason is reached on purpose rather than by luck.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, StudioError } from '../shared/errors';
import { TfjsEngine } from './engine/tfjs';
import type { Model } from './engine/types';
import { makeConfig } from './model/config';
import { initWeights } from './model/init';
import { checkMaxTokens, generate, generateRows, type GenerateOptions } from './sampling';
import { EOT } from './tokenizer';

const cfg = makeConfig({ nLayer: 1, nHead: 1, nEmbd: 8, blockSize: 16 });

/** A model whose greedy (and, by a margin of e^20, sampled) next token is always `token`. */
async function alwaysWrites(token: number): Promise<Model> {
  const w = initWeights(cfg, 3);
  const C = cfg.nEmbd;
  w.get('ln_f.weight')!.data.fill(0);
  const bias = w.get('ln_f.bias')!.data;
  bias.fill(0);
  bias[0] = 1; // every position's final hidden state is e0
  w.get('wte.weight')!.data[token * C] = 20; // so this token's logit is 20, every other one's about 0
  return new TfjsEngine().createModel(cfg, w);
}

const greedy = (o: Partial<GenerateOptions> = {}): GenerateOptions => ({
  temperature: 0,
  topK: 0,
  topP: 1,
  maxNewTokens: 5,
  numSequences: 1,
  seed: 1,
  ...o,
});

/** Runs fn and returns the StudioError it throws (failing the test if it throws anything else or nothing). */
async function studioError(fn: () => unknown): Promise<StudioError> {
  try {
    await fn();
  } catch (e) {
    expect(e).toBeInstanceOf(StudioError);
    return e as StudioError;
  }
  throw new Error('expected a StudioError, but nothing was thrown');
}

describe('generateRows: why each row ended', () => {
  it("a model that writes <|endoftext|> ends with 'eot' (the end-of-text token is not in the output)", async () => {
    const m = await alwaysWrites(EOT);
    try {
      const rows = await generateRows(m, [1, 2, 3], greedy({ numSequences: 2, maxNewTokens: 8, stopTokens: [EOT] }));
      expect(rows).toEqual([
        { tokens: [], reason: 'eot' },
        { tokens: [], reason: 'eot' },
      ]);
      // sampled too (temperature 1, top-k 50): the same
      expect(await generateRows(m, [1, 2, 3], greedy({ temperature: 1, topK: 50, stopTokens: [EOT] }))).toEqual([
        { tokens: [], reason: 'eot' },
      ]);
    } finally {
      m.dispose();
    }
  });

  it("max tokens ends with 'length'; the context filling first ends with 'context', not 'length'", async () => {
    const m = await alwaysWrites(42);
    try {
      // 3 prompt tokens in a context of 16: 13 new tokens fit
      expect(await generateRows(m, [1, 2, 3], greedy({ maxNewTokens: 5, stopTokens: [EOT] }))).toEqual([
        { tokens: [42, 42, 42, 42, 42], reason: 'length' },
      ]);
      expect(await generateRows(m, [1, 2, 3], greedy({ maxNewTokens: 13 }))).toEqual([
        { tokens: new Array(13).fill(42), reason: 'length' },
      ]);
      const full = await generateRows(m, [1, 2, 3], greedy({ maxNewTokens: 16, numSequences: 2 }));
      expect(full).toEqual([
        { tokens: new Array(13).fill(42), reason: 'context' },
        { tokens: new Array(13).fill(42), reason: 'context' },
      ]);
      // generate() gives the same tokens, without the reasons (what the trainer's samples use)
      expect(await generate(m, [1, 2, 3], greedy({ maxNewTokens: 16, numSequences: 2 }))).toEqual(
        full.map((r) => r.tokens),
      );
    } finally {
      m.dispose();
    }
  });

  it("a caller that stops ends every row that was still going with 'stop'", async () => {
    const m = await alwaysWrites(42);
    try {
      let seen = 0;
      const rows = await generateRows(m, [1], greedy({ maxNewTokens: 10, onToken: () => ++seen < 2 }));
      expect(rows).toEqual([{ tokens: [42, 42], reason: 'stop' }]);
    } finally {
      m.dispose();
    }
  });

  it('a prompt that fills the context is refused with its length, the context and the fix', async () => {
    const m = await alwaysWrites(42);
    try {
      const e = await studioError(() => generateRows(m, new Array(16).fill(1), greedy()));
      expect(e.code).toBe(ErrorCode.BAD_ARGUMENT);
      expect(e.message).toBe(
        "The prompt has 16 tokens, which fills the model's context of 16 tokens: no room is left to generate.",
      );
      expect(e.hint).toBe('Shorten the prompt to 15 tokens or less.');
      // one token short of the context: exactly one new token, and the context is what ended it
      expect(await generateRows(m, new Array(15).fill(1), greedy({ maxNewTokens: 4 }))).toEqual([
        { tokens: [42], reason: 'context' },
      ]);
    } finally {
      m.dispose();
    }
  });
});

describe('checkMaxTokens', () => {
  it("refuses max tokens above the model's context, naming the value, the context and the fix", async () => {
    const e = await studioError(() => checkMaxTokens(5000, 256));
    expect(e.code).toBe(ErrorCode.BAD_ARGUMENT);
    expect(e.message).toBe("max tokens 5000 is more than the model's context of 256 tokens; lower it to 256 or less.");
    expect((await studioError(() => checkMaxTokens(300, 256, '--max-new-tokens'))).message).toMatch(
      /^--max-new-tokens 300 is more than/,
    );
    expect((await studioError(() => checkMaxTokens(0, 256))).message).toBe('max tokens 0 must be a whole number >= 1.');
    expect(() => checkMaxTokens(256, 256)).not.toThrow();
    expect(() => checkMaxTokens(1, 256)).not.toThrow();
  });
});
