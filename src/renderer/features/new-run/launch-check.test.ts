import { describe, expect, it } from 'vitest';
import { checkRunConfig, type RunConfig } from '../../../shared/run-config';
import {
  FASTEST_CPU_FLOPS,
  FASTEST_GPU_FLOPS,
  LONG_RUN_SECONDS,
  longRun,
  planOf,
  runDuration,
  trainsOnGpu,
} from './launch-check';

const parse = (raw: unknown): RunConfig => {
  const r = checkRunConfig(raw);
  if (!r.ok) throw new Error(`test config does not parse: ${JSON.stringify(r.errors)}`);
  return r.config;
};

const nano = parse({
  model: { preset: 'nano' },
  dataset: 'builtin',
  total_batch_size: 1024,
  batch_size: 8,
  seq_len: 128,
  max_steps: 300,
  warmup_steps: 20,
});
const gpt2 = parse({
  model: { preset: 'gpt2' },
  dataset: 'fineweb-edu-10bt',
  total_batch_size: 524288,
  batch_size: 64,
  seq_len: 1024,
  max_steps: 19073,
  warmup_steps: 715,
});
const idle = { status: 'idle' as const, measure: () => undefined };
const fromConfig = { loading: false };

describe('starting a run from New run', () => {
  it('plans without any timing: the least time its compute can take, on the fastest device of its kind', () => {
    const plan = planOf(gpt2, fromConfig, idle, {});
    expect(plan.seconds).toBeUndefined();
    const cpu = runDuration(plan, gpt2, { onGpu: false });
    expect(cpu).toEqual({ seconds: plan.totalFlops / FASTEST_CPU_FLOPS, basis: 'bound' });
    const gpu = runDuration(plan, gpt2, { onGpu: true });
    expect(gpu.seconds).toBeCloseTo(plan.totalFlops / FASTEST_GPU_FLOPS);
    // build-nanogpt's 10B tokens take hours even on the fastest GPU: the run asks first
    expect(gpu.seconds).toBeGreaterThan(3600);
    expect(longRun(gpu)).toBe(gpu);
    // data parallel divides it
    const dp = { ...gpt2, world_size: 8 };
    expect(runDuration(planOf(dp, fromConfig, idle, {}), dp, { onGpu: true }).seconds).toBeCloseTo(gpu.seconds / 8);
  });

  it('uses the measured time when there is one, and the engine speed scaled to the steps before a bound', () => {
    const plan = planOf(nano, fromConfig, idle, {});
    // 300 steps of one micro-step each at 5 s: 25 min
    expect(runDuration(plan, nano, { estimateMs: 5000, onGpu: false })).toEqual({ seconds: 1500, basis: 'engine' });
    expect(longRun({ seconds: 1500, basis: 'engine' })).not.toBeNull();
    const measured = { ...plan, seconds: 120 };
    expect(runDuration(measured, nano, { estimateMs: 5000, onGpu: false })).toEqual({
      seconds: 120,
      basis: 'measured',
    });
    expect(longRun({ seconds: 120, basis: 'measured' })).toBeNull();
    expect(longRun({ seconds: LONG_RUN_SECONDS, basis: 'measured' })).toBeNull();
    // nano's 300 steps are far below the bound's 10 minutes: it starts at once
    expect(longRun(runDuration(plan, nano, { onGpu: false }))).toBeNull();
  });

  it('tells a GPU run by its engine and the engines available', () => {
    const engines = [
      { name: 'native-cpu', available: true },
      { name: 'native-cuda', available: false },
    ];
    expect(trainsOnGpu('auto', engines)).toBe(false);
    expect(trainsOnGpu('native-cuda', engines)).toBe(true);
    expect(trainsOnGpu('auto', [{ name: 'native-cuda', available: true }])).toBe(true);
    expect(trainsOnGpu('native-cpu', [{ name: 'native-cuda', available: true }])).toBe(false);
  });
});
