/**
 * The evaluation service with a real model: the tiny GPT-2 fixture imported through the Studio (models-import),
 * scored on the first 20 real HellaSwag examples, as a checkpoint and as an imported model; the per-example
 * browser's text; the missing-data error; deleting a running eval; and the token-loss view's cut to the context.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EventName, StudioEvents } from '../src/shared/contract';
import { ErrorCode, StudioError } from '../src/shared/errors';
import { parseHellaswag } from '../src/core/evals/hellaswag';
import { encode } from '../src/core/tokenizer';
import { writeCheckpoint } from '../src/node/checkpoints/files';
import { Workspace } from '../src/node/workspace';
import { Studio } from '../src/node/studio';
import { EvalService, type HellaswagParams } from '../src/node/evals/service';
import { runDirOf } from '../src/node/train/paths';
import { loadGpt2Weights } from '../src/node/models/weights';
import { hasFixture, sharedPath } from './shared';

interface ExpectedExample {
  ind: number;
  label: number;
  sum_loss: number[];
  avg_loss: number[];
  pred: number;
  pred_norm: number;
}

const present = hasFixture('fixtures/gpt2-tiny/model.safetensors') && hasFixture('data/hellaswag_val_1000.jsonl');
const N = 20;

describe.skipIf(!present)('EvalService with the tiny GPT-2 fixture', () => {
  const tiny = sharedPath('fixtures/gpt2-tiny');
  const data = sharedPath('data/hellaswag_val_1000.jsonl');
  const expected = present
    ? (
        JSON.parse(fs.readFileSync(sharedPath('fixtures/gpt2-tiny/expected.json'), 'utf8')).hellaswag
          .examples as ExpectedExample[]
      ).slice(0, N)
    : [];
  const correctNorm = expected.filter((e) => e.pred_norm === e.label).length;
  const correct = expected.filter((e) => e.pred === e.label).length;

  let home: string;
  let studio: Studio;
  let evals: EvalService;
  const events: Array<{ name: EventName; payload: unknown }> = [];

  beforeEach(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-evals-'));
    studio = new Studio({ home });
    events.length = 0;
    evals = new EvalService(
      home,
      () => studio.store,
      (name, payload) => events.push({ name, payload }),
    );
  });

  afterEach(async () => {
    evals.close();
    await studio.shutdown(1000);
    fs.rmSync(home, { recursive: true, force: true });
  });

  const eventsOf = <K extends EventName>(name: K) =>
    events.filter((e) => e.name === name).map((e) => e.payload as StudioEvents[K]);

  /** A run in the store with one checkpoint (the tiny weights) at `step`. */
  function checkpointRun(step: number): string {
    const run = studio.store.createRun({ name: 'tiny run', config: { model: 'tiny' } });
    const w = loadGpt2Weights(tiny);
    const { dir, sizeBytes } = writeCheckpoint(runDirOf(home, run.id), {
      state: {
        step,
        runId: run.id,
        runConfig: {} as never,
        modelConfig: w.config,
        engine: 'tfjs',
        metrics: {},
        trainer: { step, tokensSeen: 0, data: null, guard: {} as never },
      },
      weights: w.tensors,
      optimizer: { step, m: new Map(), v: new Map() },
    });
    studio.store.addCheckpoint(run.id, { step, path: dir, sizeBytes });
    return run.id;
  }

  it("scores an imported model: labelled with its name, its modelId kept, the fixture's losses and accuracy", async () => {
    const model = await studio.invoke('models-import', { path: tiny, name: 'gpt2-tiny' });
    expect(model.target).toEqual({ modelId: 'gpt2-tiny' });
    const ev = evals.hellaswag({ target: { modelId: 'gpt2-tiny' }, data, limit: N });
    const params = ev.params as unknown as HellaswagParams;
    expect(params).toMatchObject({
      modelId: 'gpt2-tiny',
      modelKey: 'model:gpt2-tiny',
      model: 'gpt2-tiny',
      limit: N,
      data,
    });
    expect(ev.target).toEqual({ weightsPath: path.join(home, 'models', 'gpt2-tiny') });

    const done = await evals.wait(ev.id);
    expect(done.error).toBeNull();
    expect(done.status).toBe('done');
    expect(done.summary).toMatchObject({
      n: N,
      correct,
      correctNorm,
      acc: correct / N,
      accNorm: correctNorm / N,
      model: 'gpt2-tiny',
      modelKey: 'model:gpt2-tiny',
    });
    expect(studio.store.getEval(ev.id)?.params).toMatchObject({ modelId: 'gpt2-tiny' });

    const progress = eventsOf('eval-progress');
    expect(progress.at(-1)).toEqual({ evalId: ev.id, done: N, total: N, accNorm: correctNorm / N });
    expect(eventsOf('eval-status').map((s) => s.status)).toEqual(['queued', 'running', 'done']);

    // every example, with the scores of the reference and its text from the data file
    const lines = new Map(parseHellaswag(fs.readFileSync(data, 'utf8')).examples.map((x) => [x.ind, x]));
    const byInd = [...expected].sort((a, b) => a.ind - b.ind);
    const all = evals.examples({ evalId: ev.id });
    expect(all.map((x) => x.ind)).toEqual(byInd.map((e) => e.ind));
    all.forEach((x, i) => {
      const e = byInd[i]!;
      expect([x.label, x.pred, x.pred_norm]).toEqual([e.label, e.pred, e.pred_norm]);
      for (let k = 0; k < 4; k++) expect(Math.abs(x.sum_loss[k]! - e.sum_loss[k]!)).toBeLessThan(1e-3);
      expect(x.ctx).toBe(lines.get(x.ind)!.ctx);
      expect(x.endings).toEqual(lines.get(x.ind)!.endings);
    });

    // the wrong ones (in ind order), a page at a time
    const wrongInds = byInd.filter((e) => e.pred_norm !== e.label).map((e) => e.ind);
    expect(wrongInds.length).toBe(N - correctNorm);
    expect(wrongInds.length).toBeGreaterThan(3);
    expect(evals.examples({ evalId: ev.id, wrongOnly: true }).map((x) => x.ind)).toEqual(wrongInds);
    expect(evals.examples({ evalId: ev.id, wrongOnly: true, offset: 2, limit: 2 }).map((x) => x.ind)).toEqual(
      wrongInds.slice(2, 4),
    );
  });

  it("records acc_norm on the checkpoint it measured (a whole data file only), and labels it with the run's name and step", async () => {
    const runId = checkpointRun(40);
    expect(studio.store.listCheckpoints(runId)[0]!.hellaswag).toBeNull();
    // a data file of the first N examples, evaluated whole
    const firstN = path.join(home, `hellaswag-first-${N}.jsonl`);
    fs.writeFileSync(firstN, fs.readFileSync(data, 'utf8').split('\n').slice(0, N).join('\n') + '\n');
    const ev = evals.hellaswag({ target: { runId }, data: firstN });
    expect(ev.target).toEqual({ runId, step: 40 });
    expect(ev.params).toMatchObject({ modelKey: `ckpt:${runId}:40`, model: 'tiny run · step 40' });
    const done = await evals.wait(ev.id);
    expect(done.status).toBe('done');
    expect(studio.store.listCheckpoints(runId)[0]!.hellaswag).toBeCloseTo(correctNorm / N, 12);
    // a quick run on the first few examples does not replace it
    const quick = await evals.wait(evals.hellaswag({ target: { runId }, data: firstN, limit: 3 }).id);
    expect(quick.status).toBe('done');
    expect(studio.store.listCheckpoints(runId)[0]!.hellaswag).toBeCloseTo(correctNorm / N, 12);
    // what every model picker shows
    const entry = (await studio.invoke('models-list')).find((m) => m.key === `ckpt:${runId}:40`);
    expect(entry?.hellaswag).toBeCloseTo(correctNorm / N, 12);
  });

  it('says how to get the HellaSwag data when the workspace has none', () => {
    let err: unknown;
    try {
      evals.hellaswag({ target: { weightsPath: tiny }, limit: N });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StudioError);
    const se = err as StudioError;
    expect(se.code).toBe(ErrorCode.FILE_NOT_FOUND);
    expect(se.message).toContain(new Workspace(home).hellaswagData);
    expect(se.hint).toContain('gpt2-studio prepare hellaswag');
    expect(se.hint).toContain('Datasets page');
    expect(studio.store.listEvals()).toEqual([]);
    // an explicit file that is not there names that file
    expect(() => evals.hellaswag({ target: { weightsPath: tiny }, data: path.join(home, 'nope.jsonl') })).toThrow(
      /No HellaSwag data at .*nope\.jsonl/,
    );
    // the workspace's copy is used once it is there
    fs.mkdirSync(path.dirname(new Workspace(home).hellaswagData), { recursive: true });
    fs.copyFileSync(data, new Workspace(home).hellaswagData);
    const ev = evals.hellaswag({ target: { weightsPath: tiny }, limit: 2 });
    expect(ev.params).toMatchObject({
      data: new Workspace(home).hellaswagData,
      modelKey: `path:${path.resolve(tiny)}`,
    });
    evals.cancel(ev.id);
  });

  it('keeps the scores when the data file is gone, without the text', async () => {
    const copy = path.join(home, 'hs.jsonl');
    fs.copyFileSync(data, copy);
    const ev = evals.hellaswag({ target: { weightsPath: tiny }, data: copy, limit: 3 });
    expect((await evals.wait(ev.id)).status).toBe('done');
    const first = evals.examples({ evalId: ev.id })[0]!;
    expect(first.ctx).toBe(
      parseHellaswag(fs.readFileSync(data, 'utf8')).examples.find((x) => x.ind === first.ind)!.ctx,
    );
    fs.rmSync(copy);
    const rows = evals.examples({ evalId: ev.id });
    expect(rows.length).toBe(3);
    expect(rows.every((r) => r.ctx === null && r.endings === null && r.sum_loss.length === 4)).toBe(true);
    expect(() => evals.examples({ evalId: 'eval-nope' })).toThrow(/No evaluation "eval-nope"/);
  });

  it('deletes a running eval: it is cancelled, and its end is not recorded', async () => {
    const ev = evals.hellaswag({ target: { weightsPath: tiny }, data });
    const queued = evals.hellaswag({ target: { weightsPath: tiny }, data, limit: 2 });
    expect(evals.remove(queued.id)).toEqual({ deleted: true });
    expect(evals.remove(ev.id)).toEqual({ deleted: true });
    const end = await evals.wait(ev.id);
    expect(end.status).toBe('cancelled');
    expect(studio.store.getEval(ev.id)).toBeUndefined();
    expect(studio.store.listEvals()).toEqual([]);
    expect(
      eventsOf('eval-status')
        .filter((s) => s.evalId === ev.id)
        .at(-1)?.status,
    ).toBe('cancelled');
  });

  it("scores each token of a text; the ending's losses sum to the HellaSwag reference; a long text is cut to the context", async () => {
    await studio.invoke('models-import', { path: tiny, name: 'gpt2-tiny' });
    const ex = parseHellaswag(fs.readFileSync(data, 'utf8')).examples[0]!;
    const e = expected[0]!;
    const ending = ' ' + ex.endings[e.label];
    const ctxTokens = encode(ex.ctx);
    // the text tokenizes as HellaSwag's rows do: context tokens, then the ending's
    expect(encode(ex.ctx + ending)).toEqual([...ctxTokens, ...encode(ending)]);
    const r = await evals.score({ target: { modelId: 'gpt2-tiny' }, text: ex.ctx + ending });
    expect(r.model).toBe('gpt2-tiny');
    expect(r.truncated).toBe(false);
    expect(r.totalTokens).toBe(r.tokens.length);
    expect(r.losses.length).toBe(r.tokens.length - 1);
    expect(r.pieces.join('')).toBe(ex.ctx + ending);
    const endingLoss = r.losses.slice(ctxTokens.length - 1).reduce((a, b) => a + b, 0);
    expect(Math.abs(endingLoss - e.sum_loss[e.label]!)).toBeLessThan(1e-3);
    expect(r.meanLoss).toBeCloseTo(r.losses.reduce((a, b) => a + b, 0) / r.losses.length, 10);

    const long = Array.from({ length: 60 }, (_, i) => `Sentence number ${i} is here.`).join(' ');
    const total = encode(long).length;
    expect(total).toBeGreaterThan(129);
    const cut = await evals.score({ target: { modelId: 'gpt2-tiny' }, text: long });
    expect(cut).toMatchObject({ truncated: true, totalTokens: total, contextLength: 128 });
    expect(cut.tokens.length).toBe(129);
    expect(cut.losses.length).toBe(128);
  });
});
