/**
 * Data parallel on the native-cpu engine: processes that average their gradients through the shared-memory
 * communicator. Two ranks, each with one micro-batch, get the gradients one process gets from both micro-batches
 * (to float rounding) and identical parameters after AdamW; a rank that gives up makes the other fail instead of
 * hang; and a run with world_size 2 takes the same steps as the same run in one process.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeConfig, paramCount } from '../src/core/model/config';
import { initWeights } from '../src/core/model/init';
import { getEngine } from '../src/node/engines';
import { NativeBuffer, loadNativeAddon } from '../src/node/native/addon';
import { main } from '../src/cli/main';
import { listCheckpointSteps, readCheckpoint } from '../src/node/checkpoints/files';
import { Studio } from '../src/node/studio';
import { forkWorker, type WorkerHandle } from '../src/node/train/launcher';
import { dpBatch, DP_CONFIG } from './support/dp-common';
import { hasFixture, repoRoot, sharedPath } from './shared';

const native = loadNativeAddon();
const RUN_TS = path.join(repoRoot, 'bin/run-ts.mjs');
const RANK = path.join(repoRoot, 'test/support/dp-rank.ts');

interface RankOut {
  ok: boolean;
  error?: string;
  loss?: number;
  norm?: number;
  grads?: string;
  params?: string;
}

function runRank(dir: string, job: Record<string, unknown>): Promise<RankOut> {
  const file = path.join(dir, `job-${job.rank}-${job.mode}.json`);
  const out = path.join(dir, `out-${job.rank}-${job.mode}.json`);
  fs.writeFileSync(file, JSON.stringify({ ...job, out }));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RUN_TS, RANK, file], { stdio: ['ignore', 'inherit', 'inherit'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal) return reject(new Error(`rank ${job.rank} was killed by ${signal} (it hung)`));
      try {
        resolve(JSON.parse(fs.readFileSync(out, 'utf8')) as RankOut);
      } catch {
        reject(new Error(`rank ${job.rank} exited with ${code} and wrote nothing`));
      }
    });
  });
}

const floats = (b64: string) => {
  const b = Buffer.from(b64, 'base64');
  return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
};

describe.skipIf(!native.ok)('data parallel (native-cpu, shared memory)', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-dp-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const newId = async () => (await getEngine('native-cpu')).dataParallel!.newId();
  const segments = () =>
    fs.existsSync('/dev/shm') ? fs.readdirSync('/dev/shm').filter((f) => f.startsWith('gpt2-studio-')) : [];

  it('two ranks get the mean gradient of both micro-batches, and the same parameters after AdamW', async () => {
    const id = await newId();
    const [r0, r1] = (await Promise.all([0, 1].map((rank) => runRank(dir, { id, rank, world: 2, mode: 'step' })))) as [
      RankOut,
      RankOut,
    ];
    expect(r0.ok, r0.error).toBe(true);
    expect(r1.ok, r1.error).toBe(true);
    // the same bits on both ranks
    expect(r0.grads).toBe(r1.grads);
    expect(r0.params).toBe(r1.params);
    expect(r0.norm).toBe(r1.norm);
    expect(r0.loss).toBe(r1.loss);

    // one process, both micro-batches with gradient accumulation (each loss / 2)
    const engine = await getEngine('native-cpu', { threads: 1 });
    const cfg = makeConfig(DP_CONFIG);
    const model = await engine.createModel(cfg, initWeights(cfg, 5));
    model.zeroGrad();
    const l0 = await model.forwardBackward(dpBatch(0), 0.5);
    const l1 = await model.forwardBackward(dpBatch(1), 0.5);
    const n = paramCount(cfg);
    const handle = (model as unknown as { handle: { read(w: number, o: number, out: Float32Array): void } }).handle;
    const grads = new Float32Array(n);
    handle.read(NativeBuffer.grads, 0, grads);
    model.adamwStep({ lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 });
    const params = new Float32Array(n);
    handle.read(NativeBuffer.params, 0, params);
    const norm = await model.gradNorm();
    model.dispose();

    const g = floats(r0.grads!);
    let maxErr = 0;
    let maxAbs = 0;
    for (let i = 0; i < n; i++) {
      maxErr = Math.max(maxErr, Math.abs(g[i]! - grads[i]!));
      maxAbs = Math.max(maxAbs, Math.abs(grads[i]!));
    }
    expect(maxAbs).toBeGreaterThan(1e-3); // real gradients
    expect(maxErr).toBeLessThan(1e-6 * Math.max(1, maxAbs));
    expect(r0.loss!).toBeCloseTo((l0 + l1) / 2, 6);
    const p = floats(r0.params!);
    let maxP = 0;
    for (let i = 0; i < n; i++) maxP = Math.max(maxP, Math.abs(p[i]! - params[i]!));
    expect(maxP).toBeLessThan(1e-6);
    expect(norm).toBeGreaterThan(0);
    // the segment's name is removed once every rank has joined: nothing is left behind (other test files may have
    // segments of their own at the same time, so only this one is looked for)
    expect(segments()).not.toContain(id.slice('shm:/'.length));
  }, 120_000);

  it('a rank that gives up makes the other fail with the reason instead of waiting forever', async () => {
    const id = await newId();
    const [waiting, failing] = await Promise.all([
      runRank(dir, { id, rank: 0, world: 2, mode: 'wait' }),
      runRank(dir, { id, rank: 1, world: 2, mode: 'fail' }),
    ]);
    expect(failing.ok).toBe(true);
    expect(waiting.ok).toBe(false);
    expect(waiting.error).toMatch(/data parallel: rank 1 failed, so rank 0 stops/);
  }, 120_000);

  it('ranks with different models fail with the reason instead of mixing their gradients', async () => {
    const id = await newId();
    const [r0, r1] = await Promise.all([
      runRank(dir, { id, rank: 0, world: 2, mode: 'step' }),
      runRank(dir, { id, rank: 1, world: 2, mode: 'step', nLayer: 1 }),
    ]);
    expect(r0.ok).toBe(false);
    expect(r1.ok).toBe(false);
    expect(r0.error).toMatch(/rank 0 reduces \d+ values but rank 1 reduces \d+ \(different models\?\)/);
  }, 120_000);

  it('a rank whose peers never come gives up after its timeout, saying how many arrived', async () => {
    const id = await newId();
    const r = await runRank(dir, { id, rank: 0, world: 3, mode: 'step', timeoutMs: 1500 });
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/rank 0 could not join the other 2 processes: .*waited 1500 ms .*1 of 3 arrived/);
    expect(segments()).not.toContain(id.slice('shm:/'.length));
  }, 60_000);

  it('refuses a communicator id that is not one, and a rank outside the world', async () => {
    const dp = (await getEngine('native-cpu')).dataParallel!;
    await expect(dp.join('tcp:1.2.3.4', 0, 2, 100)).rejects.toThrow(
      /"tcp:1\.2\.3\.4" is not a shared-memory communicator id/,
    );
    await expect(dp.join('shm:/gpt2-studio-none', 0, 2, 100)).rejects.toThrow(
      /cannot open shared memory \/gpt2-studio-none/,
    );
    const id = dp.newId();
    await expect(dp.join(id, 2, 2, 100)).rejects.toThrow(/rank 2 is outside \[0, 2\)/);
    fs.rmSync(path.join('/dev/shm', id.slice('shm:/'.length)), { force: true });
  });
});

describe.skipIf(!native.ok || !hasFixture('data/tinyshakespeare.txt'))(
  'runs with world_size 2 (two worker processes)',
  () => {
    let home: string;
    let studio: Studio;
    const config = (world: number, patch: Record<string, unknown> = {}) => ({
      model: { n_layer: 2, n_head: 2, n_embd: 64, block_size: 64 },
      dataset: 'tinyshakespeare',
      engine: 'native-cpu',
      total_batch_size: 1024,
      batch_size: 8,
      seq_len: 64,
      max_steps: 6,
      warmup_steps: 2,
      max_lr: 3e-3,
      world_size: world,
      eval_interval: 3,
      eval_iters: 2,
      hellaswag_interval: 0,
      sample_interval: 0,
      checkpoint_interval: 3,
      keep_last: 0,
      seed: 7,
      ...patch,
    });
    // every rank process the group started, so that a test can kill one
    const spawned: WorkerHandle[] = [];
    beforeAll(async () => {
      home = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-dp-run-'));
      expect(
        await main(['prepare', 'tinyshakespeare', '--file', sharedPath('data/tinyshakespeare.txt'), '--home', home], {
          out: () => {},
          err: () => {},
        }),
      ).toBe(0);
      studio = new Studio({
        home,
        workers: {
          train: () => {
            const h = forkWorker();
            spawned.push(h);
            return h;
          },
        },
      });
    });
    afterAll(async () => {
      await studio.shutdown(5000);
      fs.rmSync(home, { recursive: true, force: true });
    });

    const trainToEnd = async (world: number) => {
      const run = await studio.invoke('runs-create', { config: config(world) });
      const done = await studio.runs.wait(run.id);
      expect(done.status, JSON.stringify(done.error)).toBe('done');
      const m = await studio.invoke('runs-metrics', { id: run.id, names: ['train/loss', 'train/norm', 'val/loss'] });
      return { run: done, m };
    };

    it('takes the same steps as one process with the same total batch: losses, norms, val loss and weights', async () => {
      const one = await trainToEnd(1);
      const two = await trainToEnd(2);
      for (const name of ['train/loss', 'train/norm', 'val/loss']) {
        const a = one.m[name]!;
        const b = two.m[name]!;
        expect(b.steps).toEqual(a.steps);
        a.values.forEach((v, i) =>
          expect(Math.abs(b.values[i]! - v), `${name} at step ${a.steps[i]}`).toBeLessThan(1e-4),
        );
      }
      expect(one.m['train/loss']!.steps).toHaveLength(6);
      expect(one.m['val/loss']!.steps).toHaveLength(3);
      const w1 = readCheckpoint(path.join(home, 'runs', one.run.id, 'checkpoints', 'step_000006')).weights;
      const w2 = readCheckpoint(path.join(home, 'runs', two.run.id, 'checkpoints', 'step_000006')).weights;
      let maxDiff = 0;
      for (const [name, t] of w1) {
        const u = w2.get(name)!.data;
        for (let i = 0; i < t.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(t.data[i]! - u[i]!));
      }
      if (process.env.GPT2_STUDIO_DP_REPORT) console.log(`max weight difference after 6 steps: ${maxDiff}`);
      expect(maxDiff).toBeLessThan(1e-4);
      const logs = await studio.invoke('runs-logs', { id: two.run.id });
      expect(logs.map((l) => l.message).join('\n')).toMatch(
        /data parallel: 2 processes, each 1 micro-step of 8 x 64 tokens per step/,
      );
    }, 180_000);

    it('stops both ranks on a stop request, and resumes from the checkpoint to the end', async () => {
      const run = await studio.invoke('runs-create', {
        config: config(2, { max_steps: 12, checkpoint_interval: 0, eval_interval: 0 }),
      });
      await new Promise<void>((resolve) => {
        const un = studio.on('run-step', (e) => {
          if (e.runId === run.id && e.step >= 1) {
            un();
            void studio.invoke('runs-stop', { id: run.id });
            resolve();
          }
        });
      });
      const done = await studio.runs.wait(run.id);
      expect(done.status).toBe('stopped');
      const [stoppedAt] = listCheckpointSteps(path.join(home, 'runs', run.id));
      expect(stoppedAt).toBeGreaterThanOrEqual(2);
      expect(stoppedAt).toBeLessThan(12);
      await studio.invoke('runs-resume', { id: run.id });
      const resumed = await studio.runs.wait(run.id);
      expect(resumed.status, JSON.stringify(resumed.error)).toBe('done');
      const m = await studio.invoke('runs-metrics', { id: run.id, names: ['train/loss'] });
      expect(m['train/loss']!.steps).toEqual([...Array(12).keys()]);
    }, 120_000);

    it('a killed rank interrupts the run and takes the other rank down with it', async () => {
      spawned.length = 0;
      const run = await studio.invoke('runs-create', { config: config(2, { max_steps: 200, checkpoint_interval: 0 }) });
      await new Promise<void>((resolve) => {
        const un = studio.on('run-step', (e) => {
          if (e.runId === run.id && e.step >= 1) {
            un();
            resolve();
          }
        });
      });
      expect(spawned).toHaveLength(2);
      spawned[1]!.kill('SIGKILL');
      const done = await studio.runs.wait(run.id);
      expect(done.status).toBe('interrupted');
      const alive = (pid: number | undefined) => {
        try {
          process.kill(pid!, 0);
          return true;
        } catch {
          return false;
        }
      };
      expect(alive(spawned[0]!.pid)).toBe(false);
    }, 120_000);
  },
);
