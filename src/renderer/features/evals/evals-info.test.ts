import { describe, expect, it } from 'vitest';
import {
  accPercent,
  accPointsDiff,
  browsableCount,
  evalModelKey,
  evalModelLabel,
  lossClass,
  lossClassLabels,
  mostSurprising,
  parseLimit,
  progressRate,
  scoredTokens,
  showPiece,
  stdErr,
  summaryOf,
  type Eval,
  type TokenScores,
} from './evals-info';

const base: Eval = {
  id: 'eval-1',
  kind: 'hellaswag',
  target: { weightsPath: '/ws/models/gpt2' },
  status: 'done',
  params: {},
  summary: null,
  error: null,
  pid: null,
  createdAt: 1,
  finishedAt: 2,
};

describe('evals-info', () => {
  it("names an eval's model from its params, else from its target", () => {
    expect(evalModelLabel({ ...base, params: { model: 'gpt2', modelKey: 'model:gpt2', modelId: 'gpt2' } })).toBe(
      'gpt2',
    );
    expect(evalModelKey({ ...base, params: { model: 'gpt2', modelKey: 'model:gpt2' } })).toBe('model:gpt2');
    expect(evalModelKey({ ...base, params: { modelId: 'tiny' } })).toBe('model:tiny');
    const ck: Eval = { ...base, target: { runId: 'run-1', step: 200 } };
    expect(evalModelLabel(ck)).toBe('run-1 · step 200');
    expect(evalModelKey(ck)).toBe('ckpt:run-1:200');
    expect(evalModelLabel(base)).toBe('/ws/models/gpt2');
    expect(evalModelKey(base)).toBe('path:/ws/models/gpt2');
  });

  it('reads a summary only when it has the counts, and counts the browsable examples', () => {
    expect(summaryOf(base)).toBeNull();
    const s = summaryOf({ ...base, summary: { n: 20, correct: 7, correctNorm: 6, acc: 0.35, accNorm: 0.3 } })!;
    expect(browsableCount(s, false)).toBe(20);
    expect(browsableCount(s, true)).toBe(14);
    expect(stdErr(0.3, 20)).toBeCloseTo(Math.sqrt(0.21 / 20), 12);
    expect(stdErr(0.3, 0)).toBeNaN();
  });

  it('parses the example limit', () => {
    expect(parseLimit('')).toEqual({ limit: null });
    expect(parseLimit(' 50 ')).toEqual({ limit: 50 });
    expect(parseLimit('0')).toHaveProperty('error');
    expect(parseLimit('1.5')).toHaveProperty('error');
    expect(parseLimit('-3')).toHaveProperty('error');
  });

  it('derives the rate and time left from the first and latest progress', () => {
    expect(progressRate({ done: 10, total: 100, accNorm: 0.3, t0: 1000, done0: 10, t: 1000 })).toEqual({
      perSec: null,
      etaSec: null,
    });
    expect(progressRate({ done: 30, total: 100, accNorm: 0.3, t0: 1000, done0: 10, t: 3000 })).toEqual({
      perSec: 10,
      etaSec: 7,
    });
  });

  it('classes losses by their edges and labels the legend', () => {
    expect([0, 0.99, 1, 3.9, 4, 7.9, 8, 20, Number.NaN].map(lossClass)).toEqual([0, 0, 1, 2, 3, 4, 5, 5, 5]);
    expect(lossClassLabels()).toEqual(['< 1', '1–2', '2–4', '4–6', '6–8', '≥ 8']);
  });

  it('lines the losses up with the tokens they score, and finds the most surprising', () => {
    const r: TokenScores = {
      tokens: [10, 11, 12, 13],
      pieces: ['A', ' b', '\n', ' d'],
      losses: [2, 9, 2],
      meanLoss: 13 / 3,
      totalTokens: 4,
      truncated: false,
      contextLength: 128,
      model: 'm',
    };
    const t = scoredTokens(r);
    expect(t.map((x) => x.loss)).toEqual([null, 2, 9, 2]);
    expect(mostSurprising(t, 2).map((x) => x.pos)).toEqual([2, 1]);
    expect(mostSurprising(t).length).toBe(3);
    expect(showPiece(' a\n')).toBe('“␣a↵”');
  });
});

describe('accPercent', () => {
  it('shows an accuracy as a percent with one decimal, rounded as the decimal reads', () => {
    expect(accPercent(0.28)).toBe('28.0%');
    expect(accPercent(0.2955)).toBe('29.6%');
    expect(accPercent(0.337)).toBe('33.7%');
    expect(accPercent(0.25)).toBe('25.0%');
    expect(accPercent(1)).toBe('100.0%');
    expect(accPercent(0)).toBe('0.0%');
    expect(accPercent(null)).toBe('—');
    expect(accPercent(undefined)).toBe('—');
    expect(accPercent(Number.NaN)).toBe('—');
  });
  it('shows a difference of accuracies in signed percentage points', () => {
    expect(accPointsDiff(0.012)).toBe('+1.2 pts');
    expect(accPointsDiff(0.25 - 0.3)).toBe('−5.0 pts');
    expect(accPointsDiff(0)).toBe('+0.0 pts');
    expect(accPointsDiff(Number.NaN)).toBe('—');
  });
});
