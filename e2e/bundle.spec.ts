/**
 * The built app's workers (out/main/train-worker.js and out/main/tokenize-worker.mjs, bundled by
 * electron.vite.config.ts): they run without tsx or the TypeScript sources. Here under Node, through the same
 * Studio service the Electron main uses: a dataset is tokenized by the bundled tokenizer threads, then a short run
 * trains in the bundled worker process.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Studio } from '../src/node/studio';
import { forkWorkerFrom } from '../src/node/train/launcher';
import { expect, test } from './fixtures';

const outMain = fileURLToPath(new URL('../out/main/', import.meta.url));

test('the bundled tokenizer threads, training worker and model worker prepare a dataset, train a run and sample from it', async () => {
  test.setTimeout(120_000);
  const trainWorker = join(outMain, 'train-worker.js');
  const tokenizeWorker = join(outMain, 'tokenize-worker.mjs');
  const modelWorker = join(outMain, 'model-worker.mjs');
  expect(existsSync(trainWorker), `${trainWorker} (built by electron-vite build)`).toBe(true);
  expect(existsSync(tokenizeWorker)).toBe(true);
  const home = mkdtempSync(join(tmpdir(), 'gpt2-bundle-'));
  const studio = new Studio({
    home,
    workers: { train: forkWorkerFrom(trainWorker), tokenize: tokenizeWorker, model: modelWorker },
  });
  try {
    await studio.invoke('datasets-prepare', { source: 'builtin', sizeMb: 1, workers: 2 });
    let ready = false;
    for (let i = 0; i < 600 && !ready; i++) {
      ready = (await studio.invoke('datasets-list')).some((d) => d.id === 'builtin' && d.status === 'ready');
      if (!ready) await new Promise((r) => setTimeout(r, 100));
    }
    expect(ready).toBe(true);

    const config = {
      model: { preset: 'nano' },
      dataset: 'builtin',
      total_batch_size: 1024,
      batch_size: 8,
      seq_len: 128,
      max_steps: 4,
      warmup_steps: 1,
      eval_interval: 0,
      sample_interval: 0,
      checkpoint_interval: 4,
      eval_iters: 1,
    };
    const run = await studio.invoke('runs-create', { config, name: 'bundled worker' });
    const done = await studio.runs.wait(run.id);
    expect(done.error).toBeNull();
    expect(done.status).toBe('done');
    expect(done.stepsDone).toBe(4);
    const losses = (await studio.invoke('runs-metrics', { id: run.id, names: ['train/loss'] }))['train/loss']!.values;
    expect(losses).toHaveLength(4);
    expect(losses.every((l) => l !== null && Number.isFinite(l) && l > 0)).toBe(true);

    // the checkpoint, sampled in the bundled model worker
    const [sample] = await studio.invoke('generate-sample', {
      targets: [{ runId: run.id, step: 4 }],
      prompt: 'Once upon a time',
      seed: 1,
      maxTokens: 8,
      temperature: 0,
    });
    expect(sample!.error).toBeUndefined();
    expect(sample!.tokens).toBeGreaterThan(0);
  } finally {
    await studio.shutdown(5000);
    rmSync(home, { recursive: true, force: true });
  }
});
