/**
 * The Checkpoints page's service (CheckpointService through the Studio): list, delete, export to an HF folder and
 * "resume from here", on the checkpoints of a real short run on the builtin dataset; and the store's
 * copyRunHistory on its own.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main';
import { Studio } from '../src/node/studio';
import { openStore, type Run } from '../src/node/store';
import { loadGpt2Weights } from '../src/node/models/weights';
import { readCheckpoint, readCheckpointState } from '../src/node/checkpoints/files';
import type { StudioEvents } from '../src/shared/contract';
import { readFolderEncoder } from './support/gpt2-bpe-reader';

const quiet = { out: () => {}, err: () => {} };
/** 8 steps, a checkpoint (with a val loss) every 2, all kept */
const config = {
  model: { n_layer: 1, n_head: 2, n_embd: 32, block_size: 64 },
  dataset: 'builtin',
  total_batch_size: 128,
  batch_size: 4,
  seq_len: 32,
  max_steps: 8,
  warmup_steps: 1,
  eval_interval: 2,
  eval_iters: 1,
  hellaswag_interval: 0,
  sample_interval: 3,
  sample: { prompt: 'Once', count: 1, max_tokens: 3 },
  checkpoint_interval: 2,
  keep_last: 0,
};

/** Losses of a resumed run against the uninterrupted one: same engine, same data position; stated tolerance. */
const TOL = 1e-5;

describe('checkpoints through the Studio service', () => {
  let home: string;
  let studio: Studio;
  let run: Run;
  const ckptDir = (runId: string, step: number) =>
    path.join(home, 'runs', runId, 'checkpoints', `step_${String(step).padStart(6, '0')}`);

  beforeAll(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-ckpt-'));
    expect(await main(['prepare', 'builtin', '--size-mb', '1', '--home', home], quiet)).toBe(0);
    studio = new Studio({ home });
    run = await studio.invoke('runs-create', { config, name: 'ckpt source' });
    const end = await studio.runs.wait(run.id);
    expect(end.status, JSON.stringify(end.error)).toBe('done');
  });
  afterAll(async () => {
    await studio.shutdown(5000);
    fs.rmSync(home, { recursive: true, force: true });
  });

  it('lists the checkpoints with their run, val loss, size, keep_last and which is the newest', async () => {
    const list = await studio.invoke('checkpoints-list', { runId: run.id });
    expect(list.map((c) => c.step)).toEqual([8, 6, 4, 2]);
    for (const c of list) {
      expect(c.runName).toBe('ckpt source');
      expect(c.runStatus).toBe('done');
      expect(c.keepLast).toBe(0);
      expect(c.sft).toBe(false);
      expect(c.valLoss).toEqual(expect.any(Number));
      expect(c.sizeBytes).toBeGreaterThan(1000);
      expect(c.path).toBe(ckptDir(run.id, c.step));
    }
    expect(list.filter((c) => c.latest).map((c) => c.step)).toEqual([8]);
    // every run's, too
    expect((await studio.invoke('checkpoints-list')).map((c) => `${c.runId}:${c.step}`)).toEqual(
      list.map((c) => `${run.id}:${c.step}`),
    );
    await expect(studio.invoke('checkpoints-list', { runId: 'run-nope' })).rejects.toThrow(/No run "run-nope"/);
  });

  it('the CLI export to a folder writes the same HF folder, tokenizer files included', async () => {
    const dest = path.join(home, 'cli-export');
    const lines: string[] = [];
    const io = { out: (t: string) => lines.push(t), err: () => {} };
    expect(await main(['export', run.id, '--step', '4', '--out', dest, '--home', home, '--json'], io)).toBe(0);
    const res = JSON.parse(lines.join('')) as { tokenizer: string[] };
    expect(res.tokenizer).toContain('vocab.json');
    expect(readFolderEncoder(dest).encode('Hello world')).toEqual([15496, 995]);
    expect(fs.existsSync(path.join(dest, 'model.safetensors'))).toBe(true);
  });

  it('exports a checkpoint as an HF folder whose tensors load back equal, refusing a non-empty folder unless overwrite', async () => {
    const dest = path.join(home, 'exports', 'step4');
    const out = await studio.invoke('checkpoints-export', { runId: run.id, step: 4, dest });
    expect(out).toEqual({
      dir: dest,
      modelFile: path.join(dest, 'model.safetensors'),
      configFile: path.join(dest, 'config.json'),
    });
    const hfFiles = [
      'config.json',
      'generation_config.json',
      'merges.txt',
      'model.safetensors',
      'special_tokens_map.json',
      'tokenizer.json',
      'tokenizer_config.json',
      'vocab.json',
    ];
    expect(fs.readdirSync(dest).sort()).toEqual(hfFiles);
    // the tokenizer files encode as GPT-2 does, read by an encoder that sees only vocab.json and merges.txt
    const reader = readFolderEncoder(dest);
    expect(reader.encode('Hello world')).toEqual([15496, 995]);
    expect(Object.keys(reader.vocab)).toHaveLength(50257);
    expect(reader.mergeCount).toBe(50000);
    const tokJson = JSON.parse(fs.readFileSync(path.join(dest, 'tokenizer.json'), 'utf8'));
    expect(Object.keys(tokJson.model.vocab)).toHaveLength(50257);
    expect(JSON.parse(fs.readFileSync(path.join(dest, 'tokenizer_config.json'), 'utf8')).model_max_length).toBe(64);
    expect(JSON.parse(fs.readFileSync(path.join(dest, 'generation_config.json'), 'utf8'))).toEqual({
      bos_token_id: 50256,
      eos_token_id: 50256,
    });
    // nothing temporary left beside it
    expect(fs.readdirSync(path.dirname(dest))).toEqual(['step4']);
    const hf = JSON.parse(fs.readFileSync(out.configFile, 'utf8'));
    expect(hf).toMatchObject({
      model_type: 'gpt2',
      n_layer: 1,
      n_head: 2,
      n_embd: 32,
      n_positions: 64,
      vocab_size: 50257,
    });

    const ck = readCheckpoint(ckptDir(run.id, 4));
    const back = loadGpt2Weights(dest, { paddedVocabSize: ck.state.modelConfig.paddedVocabSize });
    expect([...back.tensors.keys()].sort()).toEqual([...ck.weights.keys()].sort());
    for (const [name, t] of ck.weights) {
      const b = back.tensors.get(name)!;
      expect(b.shape, name).toEqual(t.shape);
      expect(
        Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength).equals(
          Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength),
        ),
        name,
      ).toBe(true);
    }
    // the step-4 weights differ from the step-8 ones (the export is of the asked step)
    const last = readCheckpoint(ckptDir(run.id, 8)).weights.get('h.0.attn.c_attn.weight')!;
    expect(
      Buffer.from(last.data.buffer).equals(Buffer.from(back.tensors.get('h.0.attn.c_attn.weight')!.data.buffer)),
    ).toBe(false);

    // a non-empty folder: refused, and left as it was
    fs.writeFileSync(path.join(dest, 'README.md'), 'mine');
    await expect(studio.invoke('checkpoints-export', { runId: run.id, step: 8, dest })).rejects.toThrow(
      /is not empty \(9 items/,
    );
    const before = fs.readFileSync(out.modelFile);
    // with overwrite: the exported files are replaced, other files kept
    fs.writeFileSync(path.join(dest, 'vocab.json'), '{}');
    await studio.invoke('checkpoints-export', { runId: run.id, step: 8, dest, overwrite: true });
    expect(fs.readdirSync(dest).sort()).toEqual(['README.md', ...hfFiles].sort());
    expect(Object.keys(readFolderEncoder(dest).vocab)).toHaveLength(50257);
    expect(fs.readFileSync(out.modelFile).equals(before)).toBe(false);
    expect(
      fs.readFileSync(out.modelFile).equals(fs.readFileSync(path.join(ckptDir(run.id, 8), 'model.safetensors'))),
    ).toBe(true);
    // an empty folder is fine; a file is not; a relative path is resolved
    const empty = path.join(home, 'exports', 'empty');
    fs.mkdirSync(empty);
    await studio.invoke('checkpoints-export', { runId: run.id, step: 2, dest: empty });
    expect(fs.existsSync(path.join(empty, 'model.safetensors'))).toBe(true);
    await expect(
      studio.invoke('checkpoints-export', { runId: run.id, step: 2, dest: path.join(dest, 'README.md') }),
    ).rejects.toThrow(/is a file, not a folder/);
    const rel = path.relative(process.cwd(), path.join(home, 'exports', 'rel'));
    expect((await studio.invoke('checkpoints-export', { runId: run.id, step: 2, dest: rel })).dir).toBe(
      path.join(home, 'exports', 'rel'),
    );
    await expect(
      studio.invoke('checkpoints-export', { runId: run.id, step: 5, dest: path.join(home, 'x') }),
    ).rejects.toThrow(/no checkpoint at step 5.*/);
  });

  it('resumes from a checkpoint in a new run: history up to it copied, then the same losses as the original', async () => {
    const firstSteps = new Map<string, number>();
    const un = studio.on('run-step', (p: StudioEvents['run-step']) => {
      if (!firstSteps.has(p.runId)) firstSteps.set(p.runId, p.step);
    });
    const origMetrics = await studio.invoke('runs-metrics', { id: run.id });
    const origCkpts = fs.readdirSync(path.join(home, 'runs', run.id, 'checkpoints')).sort();

    const branched = await studio.invoke('checkpoints-branch', { runId: run.id, step: 4 });
    expect(branched.id).not.toBe(run.id);
    expect(branched.name).toBe('ckpt source from step 4');
    expect(branched.status).toBe('running');
    expect(branched.config).toEqual(run.config);
    // the checkpoint is shared by hard links; its state.json names the new run
    const mine = ckptDir(branched.id, 4);
    expect(fs.statSync(path.join(mine, 'model.safetensors')).ino).toBe(
      fs.statSync(path.join(ckptDir(run.id, 4), 'model.safetensors')).ino,
    );
    expect(fs.statSync(path.join(mine, 'optimizer.safetensors')).ino).toBe(
      fs.statSync(path.join(ckptDir(run.id, 4), 'optimizer.safetensors')).ino,
    );
    expect(readCheckpointState(mine).runId).toBe(branched.id);
    expect(readCheckpointState(ckptDir(run.id, 4)).runId).toBe(run.id);

    const end = await studio.runs.wait(branched.id);
    un();
    expect(end.status, JSON.stringify(end.error)).toBe('done');
    // the first step it trained is the one after the checkpoint (steps count from 0: step 4 is the 5th)
    expect(firstSteps.get(branched.id)).toBe(4);
    expect((await studio.invoke('runs-logs', { id: branched.id })).map((l) => l.message)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^branched from run .* at checkpoint step 4/),
        'resuming from checkpoint step 4',
      ]),
    );
    const m = await studio.invoke('runs-metrics', { id: branched.id });
    const o = origMetrics['train/loss']!;
    const b = m['train/loss']!;
    expect(b.steps).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    // steps before 4: the original's values, copied (with their wall times); from 4 on: trained again, the same
    expect(b.values.slice(0, 4)).toEqual(o.values.slice(0, 4));
    expect(b.wallTimes.slice(0, 4)).toEqual(o.wallTimes.slice(0, 4));
    expect(b.wallTimes[4]!).toBeGreaterThan(o.wallTimes[7]!);
    for (let i = 4; i < 8; i++)
      expect(Math.abs(b.values[i]! - o.values[i]!), `train/loss at step ${i}`).toBeLessThanOrEqual(
        TOL * Math.max(1, Math.abs(o.values[i]!)),
      );
    expect(m['val/loss']!.steps).toEqual(origMetrics['val/loss']!.steps);
    expect(end.stepsDone).toBe(8);
    expect((await studio.invoke('checkpoints-list', { runId: branched.id })).map((c) => c.step)).toEqual([8, 6, 4]);
    // the original is as it was
    expect(fs.readdirSync(path.join(home, 'runs', run.id, 'checkpoints')).sort()).toEqual(origCkpts);
    expect((await studio.invoke('runs-metrics', { id: run.id }))['train/loss']).toEqual(o);
    expect(studio.store.getRun(run.id)!.status).toBe('done');

    // a given name and start: false; the end of the run has nothing left to train
    const idle = await studio.invoke('checkpoints-branch', {
      runId: run.id,
      step: 2,
      name: 'idle branch',
      start: false,
    });
    expect(idle).toMatchObject({ name: 'idle branch', status: 'created', stepsDone: 2, lastCheckpointStep: 2 });
    expect((await studio.invoke('runs-metrics', { id: idle.id, names: ['train/loss'] }))['train/loss']!.steps).toEqual([
      0, 1,
    ]);
    await studio.invoke('runs-delete', { id: idle.id });
    expect(fs.existsSync(ckptDir(run.id, 2))).toBe(true);
    const runsBefore = studio.store.listRuns().length;
    await expect(studio.invoke('checkpoints-branch', { runId: run.id, step: 8 })).rejects.toThrow(
      /nothing left to train/,
    );
    await expect(studio.invoke('checkpoints-branch', { runId: run.id, step: 3 })).rejects.toThrow(
      /no checkpoint at step 3/,
    );
    expect(studio.store.listRuns().length).toBe(runsBefore);
  });

  it('deletes a checkpoint (folder and row), saying what keep_last does; refuses the newest of a running run', async () => {
    const res = await studio.invoke('checkpoints-delete', { runId: run.id, step: 2 });
    expect(res.deleted).toBe(true);
    expect((res as { note?: string }).note).toMatch(/keep_last is 0 .* keeps every checkpoint/);
    expect(fs.existsSync(ckptDir(run.id, 2))).toBe(false);
    expect(fs.readdirSync(path.join(home, 'runs', run.id, 'checkpoints')).filter((n) => n.startsWith('.'))).toEqual([]);
    expect(studio.store.listCheckpoints(run.id).map((c) => c.step)).toEqual([4, 6, 8]);
    await expect(studio.invoke('checkpoints-delete', { runId: run.id, step: 2 })).rejects.toThrow(
      /no checkpoint at step 2.*/,
    );

    // the newest checkpoint of a running run is refused, an older one is not
    studio.store.updateRun(run.id, { status: 'running' });
    try {
      await expect(studio.invoke('checkpoints-delete', { runId: run.id, step: 8 })).rejects.toThrow(
        /newest checkpoint .* which is running/,
      );
      expect(fs.existsSync(ckptDir(run.id, 8))).toBe(true);
      const older = await studio.invoke('checkpoints-delete', { runId: run.id, step: 4 });
      expect(older.deleted).toBe(true);
    } finally {
      studio.store.updateRun(run.id, { status: 'done' });
    }

    // a row whose folder is gone is not listed
    fs.rmSync(ckptDir(run.id, 6), { recursive: true });
    expect((await studio.invoke('checkpoints-list', { runId: run.id })).map((c) => c.step)).toEqual([8]);
    // and keep_last > 0 is described
    const r2 = studio.store.createRun({ name: 'kept', config: { ...config, keep_last: 2 } });
    fs.mkdirSync(ckptDir(r2.id, 8), { recursive: true });
    fs.cpSync(ckptDir(run.id, 8), ckptDir(r2.id, 8), { recursive: true });
    studio.store.addCheckpoint(r2.id, { step: 8, path: ckptDir(r2.id, 8), sizeBytes: 1 });
    expect(((await studio.invoke('checkpoints-delete', { runId: r2.id, step: 8 })) as { note?: string }).note).toMatch(
      /keep_last is 2 .* when it is resumed, it keeps its newest 2 checkpoints/,
    );
  });
});

describe('Store.copyRunHistory', () => {
  it('copies metrics and samples before a step in one transaction and sets the totals', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-copy-'));
    const store = openStore(dir);
    try {
      const a = store.createRun({ name: 'a', config: {} });
      const b = store.createRun({ name: 'b', config: {} });
      for (let s = 0; s < 6; s++)
        store.recordStep(a.id, {
          step: s,
          metrics: { 'train/loss': 10 - s, ...(s % 2 === 0 ? { 'val/loss': 11 - s } : {}) },
          wallTime: 1000 + s,
          tokensSeen: (s + 1) * 100,
        });
      store.recordStep(a.id, { step: 1, metrics: { 'train/loss': Number.NaN }, wallTime: 1001, tokensSeen: 200 });
      store.addSample(a.id, { step: 2, idx: 0, prompt: 'p', text: 'two' });
      store.addSample(a.id, { step: 4, idx: 0, prompt: 'p', text: 'four' });
      // b has a point at a copied step already: replaced
      store.recordStep(b.id, { step: 0, metrics: { 'train/loss': 99 }, wallTime: 5, tokensSeen: 1 });

      expect(store.copyRunHistory(a.id, b.id, 4)).toEqual({ metrics: 6, samples: 1 });
      const m = store.getMetrics(b.id);
      expect(m['train/loss']!.steps).toEqual([0, 1, 2, 3]);
      expect(m['train/loss']!.values[0]).toBe(10);
      expect(m['train/loss']!.values[1]).toBeNaN();
      expect(m['val/loss']!.steps).toEqual([0, 2]);
      expect(store.listSamples(b.id).map((s) => s.text)).toEqual(['two']);
      expect(store.getRun(b.id)).toMatchObject({ stepsDone: 4, tokensSeen: 400, bestValLoss: 9 });
      // the source is unchanged
      expect(store.getMetrics(a.id)['train/loss']!.steps).toEqual([0, 1, 2, 3, 4, 5]);
      expect(() => store.copyRunHistory(a.id, 'run-missing', 2)).toThrow(/No run "run-missing"/);
      expect(() => store.copyRunHistory(a.id, a.id, 2)).toThrow(/same run/);
      expect(store.getMetrics(b.id)['train/loss']!.steps).toEqual([0, 1, 2, 3]);
    } finally {
      store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
