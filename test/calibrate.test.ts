/**
 * Planning through the Studio service: runs-calibrate times a real training step of a config's shape and
 * micro-batch on native-cpu in a child process (the service's event loop stays free meanwhile), keeps it per
 * (shape, B, T, engine), and runs-shape gives the shape a fine-tune from weights actually trains.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HandlerResult } from '../src/shared/contract';
import { Studio } from '../src/node/studio';
import { addon } from '../src/node/native/testing';
import { estimateRunTime } from '../src/shared/estimate';
import { planRun } from '../src/shared/planner';
import { checkRunConfig } from '../src/shared/run-config';
import { hasFixture, sharedPath } from './shared';

const tiny = {
  model: { n_layer: 2, n_head: 2, n_embd: 64, block_size: 64 },
  dataset: 'builtin',
  total_batch_size: 256,
  batch_size: 4,
  seq_len: 64,
  max_steps: 50,
  warmup_steps: 2,
  eval_interval: 10,
  eval_iters: 2,
  hellaswag_interval: 0,
  sample_interval: 25,
  sample: { prompt: 'Once', count: 1, max_tokens: 8 },
  checkpoint_interval: 25,
  engine: 'native-cpu',
};

describe('planning a run through the Studio service', () => {
  let home: string;
  let studio: Studio;
  beforeAll(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-calibrate-'));
    studio = new Studio({ home });
  });
  afterAll(() => {
    studio.close();
    fs.rmSync(home, { recursive: true, force: true });
  });

  it.skipIf(!addon)(
    'times a native-cpu training step in a child process, keeps the event loop free, and caches it by shape, batch and engine',
    async () => {
      // nothing is measured without being asked
      expect(await studio.invoke('runs-calibrate', { config: tiny })).toBeNull();
      let maxLagMs = 0;
      let last = performance.now();
      const ticker = setInterval(() => {
        const now = performance.now();
        maxLagMs = Math.max(maxLagMs, now - last - 5);
        last = now;
      }, 5);
      let reply;
      try {
        reply = await studio.request('runs-calibrate', { config: tiny, measure: true });
      } finally {
        clearInterval(ticker);
      }
      expect(reply.ok, JSON.stringify(reply)).toBe(true);
      if (!reply.ok) return;
      const cal = reply.value as NonNullable<HandlerResult<'runs-calibrate'>>;
      expect(cal.engine).toBe('native-cpu');
      expect(cal.requestedEngine).toBe('native-cpu');
      expect(cal.shapeKey).toBe('2L-2H-64C-64T-50304V');
      expect([cal.batchSize, cal.seqLen]).toEqual([4, 64]);
      expect(cal.msPerMicroStep).toBeGreaterThan(0);
      expect(cal.tokensPerSec).toBeCloseTo((4 * 64) / (cal.msPerMicroStep / 1000), 6);
      expect(cal.microSteps).toBeGreaterThanOrEqual(3);
      for (const k of ['updateMs', 'evalIterMs', 'checkpointMs', 'snapshotMs', 'startupMs'] as const)
        expect(cal[k], k).toBeGreaterThan(0);
      expect(cal.sample).toMatchObject({ count: 1, maxTokens: 8 });
      // the model was built and stepped in the child: this process only waited (a step here would block for its length)
      expect(maxLagMs).toBeLessThan(250);
      // the calibration's scratch checkpoint is gone
      expect(fs.readdirSync(home).filter((f) => f.startsWith('.calibrate-'))).toEqual([]);

      // the same shape and micro-batch, another schedule: the cached one; another micro-batch: none yet
      const again = await studio.invoke('runs-calibrate', {
        config: { ...tiny, max_steps: 500, total_batch_size: 512 },
      });
      expect(again).toEqual(cal);
      expect(
        await studio.invoke('runs-calibrate', { config: { ...tiny, batch_size: 8, total_batch_size: 512 } }),
      ).toBeNull();

      // the plan of 500 steps of 2 micro-steps at the measured speed
      const c = checkRunConfig({ ...tiny, max_steps: 500, total_batch_size: 512 });
      if (!c.ok) throw new Error(JSON.stringify(c.errors));
      const e = estimateRunTime(c.config, cal);
      expect(e.stepMs).toBeCloseTo(2 * cal.microStepMs + cal.updateMs, 9);
      expect(e.parts.steps).toBeCloseTo((500 * e.stepMs) / 1000, 9);
    },
  );

  it('refuses an invalid config, naming the field', async () => {
    await expect(
      studio.invoke('runs-calibrate', { config: { ...tiny, batch_size: 3 }, measure: true }),
    ).rejects.toThrow(/total_batch_size = 256 is not divisible by batch_size \* seq_len \* world_size/);
    const r = await studio.request('runs-calibrate', { config: tiny, measure: 'yes' });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.message).toMatch(/Bad argument for "runs-calibrate"/);
  });

  it.skipIf(!hasFixture('fixtures/gpt2-tiny/model.safetensors'))(
    'plans a fine-tune from weights with their shape: 2 layers and 1,639,296 parameters, not the preset',
    async () => {
      const config = {
        ...tiny,
        model: { preset: 'nano' },
        init_from: 'weights',
        init_path: sharedPath('fixtures/gpt2-tiny'),
        batch_size: 8,
        seq_len: 128,
        total_batch_size: 1024,
      };
      const trained = await studio.invoke('runs-shape', { config });
      expect(trained.source).toBe('weights');
      expect(trained.shape).toMatchObject({ nLayer: 2, nHead: 2, nEmbd: 32, blockSize: 128 });
      expect(trained.params).toBe(1_639_296);
      const c = checkRunConfig(config);
      if (!c.ok) throw new Error(JSON.stringify(c.errors));
      const plan = planRun(c.config, { shape: trained.shape });
      expect(plan.params).toBe(1_639_296);
      expect(plan.shape.nLayer).toBe(2);
      // the nano preset the config names would be 7.3M parameters
      expect(planRun(c.config).params).toBeGreaterThan(7_000_000);
      // a relative init_path is taken in the workspace, as the run takes it
      fs.mkdirSync(path.join(home, 'models'), { recursive: true });
      fs.cpSync(sharedPath('fixtures/gpt2-tiny'), path.join(home, 'models', 'tiny'), { recursive: true });
      expect((await studio.invoke('runs-shape', { config: { ...config, init_path: 'models/tiny' } })).params).toBe(
        1_639_296,
      );
      await expect(studio.invoke('runs-shape', { config: { ...config, init_path: 'models/none' } })).rejects.toThrow(
        /models\/none/,
      );
    },
  );
});
