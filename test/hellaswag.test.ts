import fs, { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Studio } from '../src/node/studio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main';
import type { Model } from '../src/core/engine/types';
import { parseHellaswag, runHellaswag } from '../src/core/evals/hellaswag';
import { makeConfig } from '../src/core/model/config';
import { initWeights } from '../src/core/model/init';
import { getEngine } from '../src/node/engines';
import { hasFixture, sharedPath } from './shared';

interface ExpectedExample {
  ind: number;
  label: number;
  sum_loss: number[];
  avg_loss: number[];
  pred: number;
  pred_norm: number;
}

const present = hasFixture('fixtures/gpt2-tiny/expected.json') && hasFixture('data/hellaswag_val_1000.jsonl');

describe.skipIf(!present)('HellaSwag scoring against the fixture (40 real examples)', () => {
  const expected = present
    ? (JSON.parse(readFileSync(sharedPath('fixtures/gpt2-tiny/expected.json'), 'utf8')).hellaswag as {
        examples: ExpectedExample[];
        acc: number;
        acc_norm: number;
      })
    : null;

  function check(got: ExpectedExample[]) {
    expect(got.length).toBe(40);
    got.forEach((g, i) => {
      const e = expected!.examples[i]!;
      expect(g.ind).toBe(e.ind);
      expect(g.label).toBe(e.label);
      expect(g.pred).toBe(e.pred);
      expect(g.pred_norm).toBe(e.pred_norm);
      for (let k = 0; k < 4; k++) {
        expect(Math.abs(g.sum_loss[k]! - e.sum_loss[k]!)).toBeLessThan(1e-3);
        expect(Math.abs(g.avg_loss[k]! - e.avg_loss[k]!)).toBeLessThan(1e-3);
      }
    });
  }

  it('reproduces sums, means, predictions and accuracy through the CLI', async () => {
    let out = '';
    const code = await main(
      [
        'hellaswag',
        '--weights',
        sharedPath('fixtures/gpt2-tiny'),
        '--data',
        sharedPath('data/hellaswag_val_1000.jsonl'),
        '--limit',
        '40',
        '--json',
      ],
      { out: (s) => (out += s), err: () => {} },
    );
    expect(code).toBe(0);
    const r = JSON.parse(out);
    check(r.examples);
    expect(r.summary.acc).toBeCloseTo(expected!.acc, 10);
    expect(r.summary.accNorm).toBeCloseTo(expected!.acc_norm, 10);
  });

  it('reproduces them through the service, stores each example, and filters the wrong ones', async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-hs-'));
    const studio = new Studio({ home });
    try {
      const progress: number[] = [];
      const un = studio.on('eval-progress', (p) => {
        progress.push(p.done);
      });
      const ev = await studio.invoke('evals-hellaswag', {
        target: { weightsPath: sharedPath('fixtures/gpt2-tiny') },
        data: sharedPath('data/hellaswag_val_1000.jsonl'),
        limit: 40,
      });
      // a second job waits in the queue and can be cancelled there
      const second = await studio.invoke('evals-hellaswag', {
        target: { weightsPath: sharedPath('fixtures/gpt2-tiny') },
        data: sharedPath('data/hellaswag_val_1000.jsonl'),
      });
      expect(await studio.invoke('evals-cancel', { id: second.id })).toEqual({ cancelled: true });
      const done = await studio.waitEval(ev.id);
      un();
      expect(done.status).toBe('done');
      expect(progress.at(-1)).toBe(40);
      expect(done.summary).toMatchObject({ n: 40, acc: expected!.acc, accNorm: expected!.acc_norm });
      const rows = await studio.invoke('evals-examples', { evalId: ev.id });
      const byInd = new Map(rows.map((r) => [r.ind, r]));
      check(expected!.examples.map((e) => byInd.get(e.ind)!));
      const wrong = await studio.invoke('evals-examples', { evalId: ev.id, wrongOnly: true });
      expect(wrong.length).toBe(28);
      expect((await studio.invoke('evals-get', { id: second.id })).status).toBe('cancelled');
    } finally {
      await studio.shutdown(1000);
      fs.rmSync(home, { recursive: true, force: true });
    }
  });

  it('prints "acc: a/n=x acc_norm: b/n=y"', async () => {
    let out = '';
    await main(
      [
        'hellaswag',
        '--weights',
        sharedPath('fixtures/gpt2-tiny'),
        '--data',
        sharedPath('data/hellaswag_val_1000.jsonl'),
        '--limit',
        '40',
      ],
      { out: (s) => (out += s), err: () => {} },
    );
    expect(out).toContain('acc: 14/40=0.3500 acc_norm: 12/40=0.3000');
  });
});

describe.skipIf(!hasFixture('fixtures/bad-inputs/hellaswag_bad_lines.jsonl'))('malformed HellaSwag lines', () => {
  const file = sharedPath('fixtures/bad-inputs/hellaswag_bad_lines.jsonl');
  const text = readFileSync(file, 'utf8');

  it('skips and reports lines 2 to 5 with their numbers, and accepts the label "2" of line 6', () => {
    const p = parseHellaswag(text, { source: file });
    expect(p.examples.map((e) => e.line)).toEqual([1, 6]);
    expect(p.examples[1]!.label).toBe(2);
    expect(p.skipped.map((s) => s.line)).toEqual([2, 3, 4, 5]);
    expect(p.skipped[0]!.message).toContain('not valid JSON');
    expect(p.skipped[1]!.message).toBe('"endings" must hold 4 strings; found 3');
    expect(p.skipped[2]!.message).toContain('found 7');
    expect(p.skipped[3]!.message).toContain('ctx');
  });

  it('stops at the first broken line in strict mode, naming the file and line', async () => {
    expect(() => parseHellaswag(text, { strict: true, source: file })).toThrow(
      /hellaswag_bad_lines\.jsonl, line 2: not valid JSON/,
    );
    let err = '';
    const code = await main(['hellaswag', '--weights', 'unused', '--data', file, '--strict'], {
      out: () => {},
      err: (s) => (err += s),
    });
    expect(code).toBe(1);
    expect(err).toContain('line 2');
  });
});

describe('HellaSwag data with nothing to score', () => {
  it('a file of only malformed lines, or an empty one, is an error (never acc 0/0); a folder for --data is named', async () => {
    expect(() => parseHellaswag('{"ctx": 1}\nnot json\n', { source: 'x.jsonl' })).toThrow(
      /x\.jsonl holds no valid HellaSwag example: all 2 lines are malformed \(line 1: /,
    );
    expect(() => parseHellaswag('\n\n', { source: 'empty.jsonl' })).toThrow(
      /empty\.jsonl holds no HellaSwag example: it is empty/,
    );
    expect(() =>
      parseHellaswag(
        '{"ctx": "a", "endings": ["a", "b", 3, "d"], "label": 0}\n{"ctx": "a", "endings": ["a", "b", "c", "d"], "label": 0}',
        { strict: true },
      ),
    ).toThrow(/"endings" must hold 4 strings; ending 3 is 3/);
    let err = '';
    const code = await main(['hellaswag', '--weights', 'unused', '--data', os.tmpdir()], {
      out: () => {},
      err: (s) => (err += s),
    });
    expect(code).not.toBe(0);
    expect(err).toMatch(/is a folder, not a file/);
    expect(err).not.toMatch(/EISDIR| {4}at /);
  });
});

describe('HellaSwag examples longer than the context', () => {
  let model: Model;
  beforeAll(async () => {
    const cfg = makeConfig({ nLayer: 1, nHead: 1, nEmbd: 8, blockSize: 8, vocabSize: 50257, paddedVocabSize: 50257 });
    model = await (await getEngine('tfjs')).createModel(cfg, initWeights(cfg, 3));
  });
  afterAll(() => model?.dispose());

  it('are reported and skipped, never truncated', async () => {
    const mk = (ctx: string, line: number) => ({
      ind: line,
      ctx,
      endings: ['a', 'b', 'c', 'd'] as [string, string, string, string],
      label: 0,
      line,
    });
    const r = await runHellaswag(model, [mk('One two', 1), mk('one two three four five six seven eight nine ten', 2)]);
    expect(r.summary.n).toBe(1);
    expect(r.summary.skipped).toHaveLength(1);
    expect(r.summary.skipped[0]!.line).toBe(2);
    expect(r.summary.skipped[0]!.message).toMatch(/needs 11 tokens, more than the model's context of 8/);
  });

  it('shards by rank and honours the limit', async () => {
    const exs = Array.from({ length: 6 }, (_, i) => ({
      ind: i,
      ctx: 'Hi',
      endings: ['a', 'b', 'c', 'd'] as [string, string, string, string],
      label: 1,
      line: i + 1,
    }));
    const r0 = await runHellaswag(model, exs, { rank: 0, world: 2 });
    const r1 = await runHellaswag(model, exs, { rank: 1, world: 2, limit: 5 });
    expect(r0.examples.map((e) => e.ind)).toEqual([0, 2, 4]);
    expect(r1.examples.map((e) => e.ind)).toEqual([1, 3]);
  });
});
