/**
 * The Studio service's run handlers: the checks that only the workspace can make, and a run started through the
 * service, recorded in SQLite and relayed as events.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main';
import { Studio } from '../src/node/studio';
import type { StudioEvents } from '../src/shared/contract';
import { hasFixture, sharedPath } from './shared';

const quiet = { out: () => {}, err: () => {} };
const base = {
  model: { n_layer: 1, n_head: 2, n_embd: 32, block_size: 128 },
  dataset: 'builtin',
  total_batch_size: 128,
  batch_size: 4,
  seq_len: 32,
  max_steps: 6,
  warmup_steps: 1,
  eval_interval: 3,
  eval_iters: 2,
  hellaswag_interval: 3,
  hellaswag_limit: 4,
  sample_interval: 5,
  sample: { prompt: 'Once', count: 1, max_tokens: 4 },
  checkpoint_interval: 3,
  keep_last: 1,
};

describe.skipIf(!hasFixture('data/hellaswag_val_1000.jsonl'))('runs through the Studio service', () => {
  let home: string;
  let studio: Studio;
  beforeAll(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-svc-'));
    expect(await main(['prepare', 'builtin', '--size-mb', '1', '--home', home], quiet)).toBe(0);
    // HellaSwag data where `prepare hellaswag` puts it, so that the run evaluates it in training
    fs.mkdirSync(path.join(home, 'datasets', 'hellaswag'), { recursive: true });
    fs.copyFileSync(
      sharedPath('data/hellaswag_val_1000.jsonl'),
      path.join(home, 'datasets', 'hellaswag', 'hellaswag_val.jsonl'),
    );
    studio = new Studio({ home });
  });
  afterAll(async () => {
    await studio.shutdown(5000);
    fs.rmSync(home, { recursive: true, force: true });
  });

  const reject = async (patch: Record<string, unknown>, field: string, msg: RegExp) => {
    const errors = await studio.invoke('config-validate', { config: { ...base, ...patch } });
    const e = errors.find((x) => x.field === field);
    expect(e, JSON.stringify(errors)).toBeDefined();
    expect(e!.message).toMatch(msg);
    await expect(studio.invoke('runs-create', { config: { ...base, ...patch } })).rejects.toThrow(
      new RegExp(field.replace('.', '\\.')),
    );
  };

  it('runs-check-memory answers what runs-create would refuse for memory, creating nothing', async () => {
    const before = (await studio.invoke('runs-list')).length;
    expect(await studio.invoke('runs-check-memory', { config: base })).toBeNull();
    // a 48-layer, 1600-wide model with a 64 x 1024 micro-batch needs far more RAM than any test machine has
    const huge = {
      ...base,
      engine: 'native-cpu',
      model: { n_layer: 48, n_head: 25, n_embd: 1600, block_size: 1024 },
      batch_size: 64,
      seq_len: 1024,
      total_batch_size: 65536,
    };
    const problem = await studio.invoke('runs-check-memory', { config: huge });
    expect(problem?.code).toBe('OUT_OF_MEMORY');
    expect(problem?.message).toMatch(/needs about [\d.]+ GiB/);
    await expect(studio.invoke('runs-check-memory', { config: { ...base, dataset: 'nope' } })).rejects.toThrow(
      /dataset/,
    );
    expect((await studio.invoke('runs-list')).length).toBe(before);
  });

  it('rejects an unknown dataset, a missing weights file and a corrupt checkpoint, naming the field', async () => {
    await reject({ dataset: 'nope' }, 'dataset', /no dataset "nope" in the workspace/);
    await reject(
      { init_from: 'weights', init_path: path.join(home, 'missing.safetensors') },
      'init_path',
      /missing\.safetensors does not exist/,
    );
    const bad = path.join(home, 'bad-ckpt');
    fs.mkdirSync(bad);
    fs.writeFileSync(path.join(bad, 'state.json'), '{"format": "something else"}');
    await reject({ init_from: 'checkpoint', init_path: bad }, 'init_path', /format is "something else"/);
    await reject(
      { world_size: 2, total_batch_size: 256, engine: 'tfjs' },
      'world_size',
      /data parallel, which the tfjs engine/,
    );
    // a schema error and the workspace's answer come together, so that one try shows both
    const both = await studio.invoke('config-validate', {
      config: { ...base, dataset: 'tinyshakespeare', warmup_steps: 99 },
    });
    expect(both.map((e) => e.field).sort()).toEqual(['dataset', 'warmup_steps']);
    expect(both.find((e) => e.field === 'dataset')!.message).toContain(
      'prepare it on the Datasets page or with "gpt2-studio prepare tinyshakespeare"',
    );
    expect(await studio.invoke('config-validate', { config: base })).toEqual([]);
    expect(studio.store.listRuns()).toHaveLength(0);
  });

  it('trains a run, writing every event to SQLite before relaying it', async () => {
    const seen: { name: keyof StudioEvents; inDb: boolean }[] = [];
    const un = studio.onAny((name, payload) => {
      if (name === 'run-step') {
        const p = payload as StudioEvents['run-step'];
        const m = studio.store.getMetrics(p.runId, ['train/loss']);
        seen.push({ name, inDb: m['train/loss']?.steps.includes(p.step) ?? false });
      }
    });
    const run = await studio.invoke('runs-create', { config: base, name: 'svc' });
    expect(run.status).toBe('running');
    const end = await studio.runs.wait(run.id);
    un();
    expect(end.status).toBe('done');
    expect(seen.length).toBe(6);
    expect(seen.every((s) => s.inDb)).toBe(true);
    const metrics = await studio.invoke('runs-metrics', { id: run.id });
    expect(metrics['val/loss']!.steps).toEqual([0, 3, 5]);
    expect(metrics['hellaswag/acc_norm']!.steps).toEqual([0, 3, 5]);
    // the CLI evaluates the run's last checkpoint by id
    let hs = '';
    expect(
      await main(['hellaswag', '--run', run.id, '--limit', '4', '--home', home], {
        out: (x) => (hs += x),
        err: () => {},
      }),
    ).toBe(0);
    expect(hs).toMatch(/^acc: \d\/4=/);
    expect((await studio.invoke('runs-samples', { id: run.id })).map((s) => s.step)).toEqual([5]);
    // keep_last 1: only the final checkpoint is left, on disk and in the index
    expect((await studio.invoke('runs-checkpoints', { id: run.id })).map((c) => c.step)).toEqual([6]);
    expect(fs.readdirSync(path.join(home, 'runs', run.id, 'checkpoints'))).toEqual(['step_000006']);
    const logs = await studio.invoke('runs-logs', { id: run.id });
    expect(logs.some((l) => l.message.startsWith('num decayed parameter tensors'))).toBe(true);
    await expect(studio.invoke('runs-resume', { id: run.id })).rejects.toThrow(/already finished its 6 steps/);
    await studio.invoke('runs-delete', { id: run.id });
    expect(fs.existsSync(path.join(home, 'runs', run.id))).toBe(false);
    expect(studio.store.getRun(run.id)).toBeUndefined();
  });

  it('records what ran: the engine that trained (never "auto"), its backend, the model shape and the host, per attempt', async () => {
    const small = { ...base, hellaswag_interval: 0, sample_interval: 0 };
    const native = await studio.runs.wait((await studio.invoke('runs-create', { config: small, name: 'native' })).id);
    const tfjs = await studio.runs.wait(
      (await studio.invoke('runs-create', { config: { ...small, engine: 'tfjs' }, name: 'tfjs' })).id,
    );
    expect(native.status).toBe('done');
    expect(tfjs.status).toBe('done');
    expect(native.engine).toMatch(/^native-(cpu|cuda)$/);
    expect(native.attempts).toHaveLength(1);
    expect(native.attempts[0]).toMatchObject({
      engine: native.engine,
      fromStep: 0,
      precision: 'fp32',
      worldSize: 1,
      initFrom: 'scratch',
    });
    expect(['blas', 'builtin']).toContain(native.attempts[0]!.backend);
    expect(native.attempts[0]!.threads).toBeGreaterThan(0);
    expect(native.attempts[0]!.model).toEqual({
      n_layer: 1,
      n_head: 2,
      n_embd: 32,
      block_size: 128,
      vocab_size: 50257,
      params: native.attempts[0]!.model.params,
    });
    expect(native.attempts[0]!.host.cores).toBeGreaterThan(0);
    expect(native.attempts[0]!.studioVersion).toMatch(/^\d+\.\d+\.\d+/);
    expect(tfjs.engine).toBe('tfjs');
    expect(tfjs.attempts[0]).toMatchObject({ engine: 'tfjs', precision: 'fp32' });
    // the time outside the steps is measured, for estimates: evaluations and checkpoints
    const m = await studio.invoke('runs-metrics', { id: native.id });
    expect(m['time/eval_ms']!.steps).toEqual([0, 3, 5]);
    expect(m['time/checkpoint_ms']!.steps).toEqual([2, 5]);
    expect(native.stepsDone).toBe(6);
  });

  it('a checkpoint written on stop carries the step its val loss was measured at', async () => {
    const long = {
      ...base,
      max_steps: 400,
      warmup_steps: 1,
      eval_interval: 2,
      hellaswag_interval: 0,
      sample_interval: 0,
      checkpoint_interval: 0,
    };
    const run = await studio.invoke('runs-create', { config: long, name: 'stopped' });
    // stop once a step after an evaluated one has been recorded
    await new Promise<void>((resolve) => {
      const un = studio.on('run-step', (p) => {
        if (p.runId === run.id && p.step === 3) {
          un();
          void studio.invoke('runs-stop', { id: run.id }).then(() => resolve());
        }
      });
    });
    const end = await studio.runs.wait(run.id);
    expect(end.status).toBe('stopped');
    const ck = (await studio.invoke('runs-checkpoints', { id: run.id }))[0]!;
    expect(ck.valLoss).not.toBeNull();
    expect(ck.valLossStep).not.toBeNull();
    // evaluations happen at even steps; a stop checkpoint at an odd step carries the last even one
    expect(ck.valLossStep! % 2).toBe(0);
    if (ck.step % 2 === 1) expect(ck.valLossStep).toBeLessThan(ck.step);
  });
});
