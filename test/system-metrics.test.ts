/**
 * A run's system metrics: the worker's samples of CPU, memory, threads and disk recorded beside the training
 * metrics, and the GPU readings through NVML, checked against a stand-in library (test/fixtures/fake-nvml.c) with
 * fixed readings for two GPUs.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main';
import { tryLoadNativeAddon } from '../src/node/native/addon';
import { Studio } from '../src/node/studio';
import { SystemSampler, nvmlSource, threadCount } from '../src/node/train/system-metrics';
import { repoRoot } from './shared';

const quiet = { out: () => {}, err: () => {} };
const GiB = 1024 ** 3;

const native = tryLoadNativeAddon();
const hasCompiler = spawnSync('cc', ['--version']).status === 0;

/** Builds the fake NVML into `dir`; the path of the library. */
function buildFakeNvml(dir: string): string {
  const lib = path.join(dir, 'libfake-nvml.so');
  const r = spawnSync('cc', ['-shared', '-fPIC', '-o', lib, path.join(repoRoot, 'test', 'fixtures', 'fake-nvml.c')], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`cc could not build test/fixtures/fake-nvml.c: ${r.stderr}`);
  return lib;
}

const config = {
  model: { n_layer: 1, n_head: 2, n_embd: 32, block_size: 64 },
  dataset: 'builtin',
  engine: 'native-cpu',
  total_batch_size: 128,
  batch_size: 4,
  seq_len: 32,
  max_steps: 1_000_000,
  warmup_steps: 1,
  eval_interval: 0,
  hellaswag_interval: 0,
  sample_interval: 0,
  checkpoint_interval: 0,
};

describe('the system sampler', () => {
  it('measures the process: CPU percent, RSS, threads and the free disk', () => {
    const logs: string[] = [];
    const s = new SystemSampler({
      dir: os.tmpdir(),
      log: (_, m) => logs.push(m),
      gpus: () => ({ reason: 'no GPUs here' }),
    });
    const end = Date.now() + 200;
    let x = 0;
    while (Date.now() < end) x += Math.sqrt(x + 1); // busy: the next sample sees CPU use
    const a = s.sample();
    const b = s.sample();
    expect(x).toBeGreaterThan(0);
    for (const v of [a, b]) {
      expect(v['sys/cpu_pct']).toBeGreaterThanOrEqual(0);
      expect(v['sys/rss_bytes']).toBeGreaterThan(10 * 1024 * 1024);
      expect(v['sys/disk_free_bytes']).toBeGreaterThan(0);
      if (threadCount() !== null) expect(v['sys/threads']).toBeGreaterThanOrEqual(1);
      expect(Object.keys(v).some((k) => k.startsWith('sys/gpu'))).toBe(false);
    }
    expect(logs).toEqual(['GPU metrics: no GPUs here; only CPU, memory and disk are recorded']);
  });

  it.skipIf(!native.ok || !hasCompiler)(
    `reads two GPUs through a fake NVML${!hasCompiler ? ' (skipped: no C compiler "cc")' : !native.ok ? ' (skipped: no native addon)' : ''}`,
    () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-nvml-'));
      try {
        const lib = buildFakeNvml(dir);
        const logs: string[] = [];
        const s = new SystemSampler({
          dir,
          log: (_, m) => logs.push(m),
          gpus: () => nvmlSource({ ...process.env, GPT2_STUDIO_NVML_LIB: lib }),
        });
        for (let i = 0; i < 2; i++) {
          const v = s.sample();
          expect(v['sys/gpu0/util_pct']).toBe(37);
          expect(v['sys/gpu0/mem_used_bytes']).toBe(1 * GiB);
          expect(v['sys/gpu0/mem_total_bytes']).toBe(80 * GiB);
          expect(v['sys/gpu0/power_w']).toBeCloseTo(123.456, 6);
          expect(v['sys/gpu0/temp_c']).toBe(55);
          expect(v['sys/gpu1/util_pct']).toBe(81);
          expect(v['sys/gpu1/mem_used_bytes']).toBe(3 * GiB);
          expect(v['sys/gpu1/mem_total_bytes']).toBe(140 * GiB);
          expect(v['sys/gpu1/power_w']).toBeUndefined(); // the fake's device 1 has no power sensor
          expect(v['sys/gpu1/temp_c']).toBe(66);
        }
        expect(logs).toEqual([]);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it.skipIf(!native.ok)('says once, in the log, that NVML is missing', () => {
    const logs: string[] = [];
    const s = new SystemSampler({
      dir: os.tmpdir(),
      log: (level, m) => logs.push(`${level}: ${m}`),
      gpus: () => nvmlSource({ ...process.env, GPT2_STUDIO_NVML_LIB: '/nonexistent/libnvidia-ml.so.1' }),
    });
    s.sample();
    s.sample();
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatch(
      /^info: GPU metrics: NVML not found \(.*\/nonexistent\/libnvidia-ml\.so\.1.*\); only CPU, memory and disk are recorded$/,
    );
  });
});

describe.skipIf(!native.ok)('system metrics of a native-cpu run', () => {
  let home: string;
  let studio: Studio;
  let fakeDir: string;
  beforeAll(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-sys-'));
    fakeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-nvml-'));
    expect(await main(['prepare', 'builtin', '--size-mb', '1', '--home', home], quiet)).toBe(0);
    studio = new Studio({ home });
  });
  afterAll(async () => {
    await studio.shutdown(5000);
    fs.rmSync(home, { recursive: true, force: true });
    fs.rmSync(fakeDir, { recursive: true, force: true });
  });

  /** Starts a run with `env` in the worker's environment, stops it after `ms`, and waits for its end. */
  const runFor = async (ms: number, env: Record<string, string>) => {
    const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
    Object.assign(process.env, env);
    try {
      const run = await studio.invoke('runs-create', { config });
      await new Promise((r) => setTimeout(r, ms));
      await studio.invoke('runs-stop', { id: run.id });
      return { run: await studio.runs.wait(run.id), metrics: await studio.invoke('runs-metrics', { id: run.id }) };
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  };

  it('records CPU and memory at least once per 10 s, and says once that there is no NVML', async () => {
    const { run, metrics } = await runFor(11_000, { GPT2_STUDIO_NVML_LIB: path.join(fakeDir, 'missing-nvml.so') });
    expect(run.status).toBe('stopped');
    const seconds = (run.endedAt! - run.startedAt!) / 1000;
    expect(seconds).toBeGreaterThanOrEqual(10);
    const cpu = metrics['sys/cpu_pct']!;
    const rss = metrics['sys/rss_bytes']!;
    expect(cpu.steps.length).toBeGreaterThanOrEqual(Math.floor(seconds / 10));
    expect(rss.steps.length).toBeGreaterThanOrEqual(Math.floor(seconds / 10));
    // sampled every 3 s: about 4 over 11 s (two samples in the same step keep the later one)
    expect(cpu.steps.length).toBeGreaterThanOrEqual(2);
    expect(cpu.values.every((v) => v >= 0)).toBe(true);
    expect(rss.values.every((v) => v > 10 * 1024 * 1024)).toBe(true);
    expect(metrics['sys/disk_free_bytes']!.values.every((v) => v > 0)).toBe(true);
    // at the steps of training, with wall times as the training metrics have
    const last = metrics['train/loss']!.steps.at(-1)!;
    expect(cpu.steps.every((s) => s >= 0 && s <= last)).toBe(true);
    expect(cpu.wallTimes.every((t) => t >= run.startedAt! - 1000 && t <= run.endedAt! + 1000)).toBe(true);
    // system samples leave the run's progress as its steps say
    expect(run.stepsDone).toBe(last + 1);
    expect(Object.keys(metrics).some((k) => k.startsWith('sys/gpu'))).toBe(false);
    const logs = await studio.invoke('runs-logs', { id: run.id });
    const gpuLines = logs.filter((l) => l.message.startsWith('GPU metrics:'));
    expect(gpuLines).toHaveLength(1);
    expect(gpuLines[0]!.level).toBe('info');
    expect(gpuLines[0]!.message).toMatch(/NVML not found .*only CPU, memory and disk are recorded$/);
  }, 60_000);

  it.skipIf(!hasCompiler)(
    `records each GPU of a fake NVML${hasCompiler ? '' : ' (skipped: no C compiler "cc")'}`,
    async () => {
      const lib = buildFakeNvml(fakeDir);
      const { metrics } = await runFor(2500, { GPT2_STUDIO_NVML_LIB: lib, GPT2_STUDIO_SYSTEM_METRICS_MS: '400' });
      expect(metrics['sys/gpu0/util_pct']!.values.every((v) => v === 37)).toBe(true);
      expect(metrics['sys/gpu0/mem_used_bytes']!.values[0]).toBe(1 * GiB);
      expect(metrics['sys/gpu0/mem_total_bytes']!.values[0]).toBe(80 * GiB);
      expect(metrics['sys/gpu0/power_w']!.values[0]).toBeCloseTo(123.456, 6);
      expect(metrics['sys/gpu0/temp_c']!.values[0]).toBe(55);
      expect(metrics['sys/gpu1/util_pct']!.values[0]).toBe(81);
      expect(metrics['sys/gpu1/temp_c']!.values[0]).toBe(66);
      expect(metrics['sys/gpu1/power_w']).toBeUndefined();
      expect(metrics['sys/cpu_pct']!.steps.length).toBeGreaterThanOrEqual(1);
    },
    60_000,
  );
});
