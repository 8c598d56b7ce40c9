/**
 * Runs on the native-webgpu engine through the Studio service: training with evaluations, samples and HellaSwag,
 * and a device lost in the middle of a run (GPT2_STUDIO_WEBGPU_LOSE_AFTER), which ends the run interrupted with the
 * reason and resumes from its checkpoint.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main';
import { Studio } from '../src/node/studio';
import { hasFixture, sharedPath } from './shared';
import { webgpuSkip } from './support/webgpu';

const skip = (await webgpuSkip()) ?? (hasFixture('data/hellaswag_val_1000.jsonl') ? undefined : 'no HellaSwag data');
const quiet = { out: () => {}, err: () => {} };
const config = {
  model: { n_layer: 1, n_head: 2, n_embd: 32, block_size: 64 },
  dataset: 'builtin',
  engine: 'native-webgpu',
  total_batch_size: 128,
  batch_size: 4,
  seq_len: 32,
  max_steps: 8,
  warmup_steps: 1,
  eval_interval: 4,
  eval_iters: 1,
  hellaswag_interval: 4,
  hellaswag_limit: 4,
  sample_interval: 4,
  sample: { prompt: 'Once', count: 1, max_tokens: 4 },
  checkpoint_interval: 3,
  keep_last: 2,
};

describe.skipIf(skip !== undefined)(`native-webgpu runs${skip ? ` [skipped: ${skip}]` : ''}`, () => {
  let home: string;
  let studio: Studio;
  beforeAll(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-webgpu-'));
    expect(await main(['prepare', 'builtin', '--size-mb', '1', '--home', home], quiet)).toBe(0);
    fs.mkdirSync(path.join(home, 'datasets', 'hellaswag'), { recursive: true });
    fs.copyFileSync(
      sharedPath('data/hellaswag_val_1000.jsonl'),
      path.join(home, 'datasets', 'hellaswag', 'hellaswag_val.jsonl'),
    );
    studio = new Studio({ home });
  });
  afterAll(async () => {
    await studio?.shutdown(5000);
    if (home) fs.rmSync(home, { recursive: true, force: true });
  });

  it('a lost device ends the run interrupted with the reason; it resumes from its checkpoint to the end', async () => {
    // the worker reads the variable when it starts: the device is destroyed after the 5th forward-backward (step 4)
    process.env.GPT2_STUDIO_WEBGPU_LOSE_AFTER = '5';
    let run;
    try {
      run = await studio.invoke('runs-create', { config, name: 'webgpu-lost' });
    } finally {
      delete process.env.GPT2_STUDIO_WEBGPU_LOSE_AFTER;
    }
    const lost = await studio.runs.wait(run.id);
    expect(lost.status).toBe('interrupted');
    expect(lost.error?.code).toBe('DEVICE_LOST');
    expect(lost.error?.message).toMatch(/WebGPU device was lost \(destroyed: a device loss was simulated/);
    expect(lost.error?.hint).toMatch(/Resume the run from its last checkpoint/);
    expect(lost.engine).toBe('native-webgpu');
    expect((await studio.invoke('runs-checkpoints', { id: run.id })).map((c) => c.step)).toEqual([3]);

    await studio.invoke('runs-resume', { id: run.id });
    const end = await studio.runs.wait(run.id);
    expect(end.status, JSON.stringify(end.error)).toBe('done');
    expect(end.attempts).toHaveLength(2);
    const m = await studio.invoke('runs-metrics', { id: run.id });
    const loss = m['train/loss']!;
    expect(loss.steps.at(-1)).toBe(7);
    expect(loss.values.every((x) => Number.isFinite(x))).toBe(true);
    // it evaluated, sampled and scored HellaSwag on the same engine
    expect(m['val/loss']!.steps).toContain(7);
    expect(m['hellaswag/acc_norm']!.steps).toContain(7);
    expect((await studio.invoke('runs-samples', { id: run.id })).map((s) => s.step)).toContain(7);
  }, 240_000);
});
