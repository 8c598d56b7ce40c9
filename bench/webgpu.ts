/**
 * The native-webgpu engine on this machine's adapter (lavapipe, a CPU renderer, where there is no GPU) against
 * native-cpu with 2 threads, measured in the same run on the same machine. On stderr: the adapter, and a table of each
 * kernel's share of one training step (timestamp queries, one per dispatch). On stdout, one JSON line per figure:
 *   train-c1-native-webgpu     training tokens/s (forward + backward + clipping + AdamW), the median step over
 *                              blocks of each engine in turn, after warm-up steps; peer: native-cpu, same model
 *   step-profile-native-webgpu the kernels' summed time in one profiled training step; config holds each kernel's
 *                              share (%)
 *   matmul-native-webgpu       GFLOP/s of the forward matmul kernel (A x B^T) on (512 x 768) x (2304 x 768)^T;
 *                              peer: native-cpu's matmul layer (the forward product and both backward ones) on the
 *                              same shape; config also holds the three WebGPU kernels of that layer timed together
 *   matmul-native-webgpu-fp16  the same product with f16 operands (precision fp16), where the adapter has
 *                              shader-f16; peer: the fp32 kernel
 * and a last line that says whether the matmul is within 10x of native-cpu's: a software renderer on the same cores
 * should be, and a larger gap points at the kernel.
 *
 *   node bin/run-ts.mjs bench/webgpu.ts [--only train|profile|matmul] [--iters N]
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import type { Model } from '../src/core/engine/types';
import { makeConfig, type GPTConfig } from '../src/core/model/config';
import { initWeights } from '../src/core/model/init';
import { Rng } from '../src/core/random';
import { batchFromRows, trainStep } from '../src/core/train/step';
import { getEngine } from '../src/node/engines';
import { loadNativeAddon, type GemmBackend, type NativeAddon } from '../src/node/native/addon';
import { GpuContext, type KernelTime } from '../src/node/webgpu/context';
import { requestDevice, webgpuRuntime, type Gpu } from '../src/node/webgpu/gpu';
import { webgpuEngine } from '../src/node/webgpu/engine';
import * as K from '../src/node/webgpu/kernels';
import type { WebGpuModel } from '../src/node/webgpu/model';
import { median, printResult, timeIt } from './lib';

const THREADS = 2;
const VOCAB = 50257;
const PADDED_VOCAB = 50304;
const TRAIN = { id: 'c1', nLayer: 4, nHead: 4, nEmbd: 128, T: 128, B: 4 } as const;
/** rows x inner x outer of the matmul: GPT-2 small's qkv projection over 512 positions */
const MM = { M: 512, K: 768, N: 2304 } as const;
const HYPER = { gradClip: 1, adamw: { lr: 6e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 } };

const log = (s: string) => process.stderr.write(`[bench webgpu] ${s}\n`);
const loadAvg = () => Number(os.loadavg()[0]!.toFixed(2));
const round = (x: number, digits = 1) => Number(x.toFixed(digits));

function trainConfig(): GPTConfig {
  return makeConfig({
    nLayer: TRAIN.nLayer,
    nHead: TRAIN.nHead,
    nEmbd: TRAIN.nEmbd,
    blockSize: TRAIN.T,
    vocabSize: VOCAB,
    paddedVocabSize: PADDED_VOCAB,
  });
}

/** A training step on a model, over a fixed cycle of random batches drawn up front (so drawing is not timed). */
function stepper(model: Model): () => Promise<void> {
  const rng = new Rng(1);
  const batches = Array.from({ length: 4 }, () =>
    batchFromRows(
      Array.from({ length: TRAIN.B }, () => Array.from({ length: TRAIN.T + 1 }, () => rng.int(VOCAB))),
      TRAIN.T,
    ),
  );
  let i = 0;
  return async () => {
    await trainStep(model, [batches[i++ % batches.length]!], HYPER);
  };
}

/** Waits for the work a model has queued (AdamW is recorded, not awaited): reading the gradient norm does. */
async function drain(model: Model): Promise<void> {
  await model.gradNorm();
}

// ---- training throughput ----------------------------------------------------------------------------------------

async function benchTraining(iters: number, cpuAvailable: boolean): Promise<void> {
  const cfg = trainConfig();
  const weights = initWeights(cfg, 1337);
  const tokens = TRAIN.B * TRAIN.T;
  const load0 = loadAvg();
  const gpu = await (await webgpuEngine()).createModel(cfg, weights);
  const cpu = cpuAvailable
    ? await (await getEngine('native-cpu', { threads: THREADS })).createModel(cfg, weights)
    : null;
  try {
    const runs: { model: Model; step: () => Promise<void>; times: number[]; name: string }[] = [
      { model: gpu, step: stepper(gpu), times: [], name: 'native-webgpu' },
    ];
    if (cpu) runs.push({ model: cpu, step: stepper(cpu), times: [], name: 'native-cpu' });
    // blocks of each engine in turn, so that the machine's other work hits both; the first block warms up (pipelines
    // compile on their first dispatch, activations are allocated on the first step)
    const ROUNDS = 2;
    for (let r = 0; r < ROUNDS; r++) {
      for (const run of runs) {
        log(`training: ${run.name}, block ${r + 1} of ${ROUNDS} (${iters} timed steps)`);
        run.times.push(...(await timeIt(run.step, { warmup: r === 0 ? 1 : 0, iters })));
        await drain(run.model);
      }
    }
    const tps = runs.map((run) => tokens / median(run.times));
    const [ours, peer = null] = tps;
    printResult({
      name: `train-${TRAIN.id}-native-webgpu`,
      figure: round(ours!),
      unit: 'tokens/s',
      peer: cpu ? `native-cpu-${THREADS}threads` : null,
      peerFigure: peer === null ? null : round(peer),
      ratio: peer === null ? null : round(ours! / peer, 4),
      config: {
        n_layer: TRAIN.nLayer,
        n_head: TRAIN.nHead,
        n_embd: TRAIN.nEmbd,
        B: TRAIN.B,
        T: TRAIN.T,
        vocab: PADDED_VOCAB,
        timed_steps: runs[0]!.times.length,
        step_ms: Object.fromEntries(runs.map((run) => [run.name, round(median(run.times) * 1000)])),
        load_avg: [load0, loadAvg()],
      },
    });
  } finally {
    gpu.dispose();
    cpu?.dispose();
  }
}

// ---- kernel shares of one step ------------------------------------------------------------------------------------

async function benchProfile(): Promise<void> {
  const engine = await webgpuEngine({ profile: true });
  if (!engine.adapter.timestampQuery) {
    log('profile: skipped, the adapter has no timestamp queries');
    return;
  }
  const cfg = trainConfig();
  const model = (await engine.createModel(cfg, initWeights(cfg, 1337))) as WebGpuModel;
  try {
    const step = stepper(model);
    log('profile: one warm-up step, then one profiled step');
    await step();
    const before = (await model.gpu.profiled()).length;
    const t0 = performance.now();
    await step();
    const times = (await model.gpu.profiled()).slice(before);
    const wallMs = performance.now() - t0;
    const rows = kernelShares(times);
    const total = rows.reduce((s, r) => s + r.ms, 0);
    const width = Math.max(...rows.map((r) => r.name.length), 'kernel'.length);
    const line = (name: string, count: string, ms: string, share: string) =>
      `${name.padEnd(width)}  ${count.padStart(6)}  ${ms.padStart(10)}  ${share.padStart(7)}`;
    log(`profile of one training step (${TRAIN.nLayer} layers, C ${TRAIN.nEmbd}, B ${TRAIN.B} x T ${TRAIN.T}):`);
    log(line('kernel', 'calls', 'ms', 'share'));
    for (const r of rows) log(line(r.name, String(r.count), r.ms.toFixed(2), `${r.share.toFixed(1)}%`));
    log(line('sum', String(times.length), total.toFixed(2), '100.0%'));
    log(`the profiled step took ${wallMs.toFixed(0)} ms of wall time (each dispatch in a pass of its own)`);
    printResult({
      name: 'step-profile-native-webgpu',
      figure: round(total, 2),
      unit: 'ms (kernels, summed)',
      peer: null,
      peerFigure: null,
      ratio: null,
      config: {
        dispatches: times.length,
        wall_ms: round(wallMs),
        share_pct: Object.fromEntries(rows.map((r) => [r.name, round(r.share, 2)])),
      },
    });
  } finally {
    model.dispose();
  }
}

interface KernelShare {
  name: string;
  count: number;
  ms: number;
  /** percent of the summed time */
  share: number;
}

/** Dispatch times grouped by kernel, largest share first. */
function kernelShares(times: readonly KernelTime[]): KernelShare[] {
  const by = new Map<string, { count: number; ms: number }>();
  for (const t of times) {
    const e = by.get(t.name) ?? { count: 0, ms: 0 };
    e.count++;
    e.ms += t.ms;
    by.set(t.name, e);
  }
  const total = times.reduce((s, t) => s + t.ms, 0);
  return [...by]
    .map(([name, e]) => ({ name, ...e, share: total > 0 ? (100 * e.ms) / total : 0 }))
    .sort((a, b) => b.share - a.share);
}

// ---- matmul throughput ------------------------------------------------------------------------------------------

/** The three products of a linear layer, in fp32 or with f16 operands (precision fp16). */
const matmuls = (f16: boolean) => ({
  nt: K.matmul({ transA: false, transB: true, accumulate: false, bias: false, f16 }),
  nn: K.matmul({ transA: false, transB: false, accumulate: false, bias: false, f16 }),
  tnAcc: K.matmul({ transA: true, transB: false, accumulate: true, bias: false, f16 }),
});
const MM_NT = matmuls(false).nt;

const randn = (rng: Rng, n: number): Float32Array => Float32Array.from({ length: n }, () => rng.normal());

interface MatmulOperands {
  /** (M, K): the layer's input */
  x: Float32Array;
  /** (N, K): a Linear weight */
  w: Float32Array;
  /** (M, N): the gradient of the layer's output */
  dout: Float32Array;
}

interface WebGpuMatmul {
  /** the forward kernel alone: wall-clock over several dispatches and a read, and from its timestamps */
  gflops: number;
  kernelGflops: number | null;
  /** forward, input gradient and weight gradient dispatched together (the work of native-cpu's matmul layer) */
  layerGflops: number;
  /** the largest relative error of sampled outputs against a float64 dot product */
  maxRelErr: number;
}

async function webgpuMatmul(ops: MatmulOperands, f16 = false): Promise<WebGpuMatmul> {
  const { M, K: KD, N } = MM;
  const mm = matmuls(f16);
  const rt = await webgpuRuntime();
  const device = await requestDevice(rt, { timestamps: true, f16 });
  const gpu = new GpuContext(device, rt.facts.limits.maxStorageBufferBindingSize, rt.facts.timestampQuery);
  try {
    const upload = (data: Float32Array, what: string): Gpu => {
      const b = gpu.buffer(data.length * 4, what);
      gpu.write(b, 0, data);
      return b;
    };
    const x = upload(ops.x, 'x');
    const w = upload(ops.w, 'w');
    const dout = upload(ops.dout, 'dout');
    const out = gpu.buffer(M * N * 4, 'out');
    const dx = gpu.buffer(M * KD * 4, 'dx');
    const dw = gpu.buffer(N * KD * 4, 'dw');
    gpu.clear(dw);
    const offsets = { offA: 0, offB: 0, offC: 0, offBias: 0 };
    const forward = () =>
      gpu.dispatch(
        mm.nt,
        { M, N, K: KD, lda: KD, ldb: KD, ldc: N, ...offsets },
        [{ buffer: out }, { buffer: x }, { buffer: w }],
        [Math.ceil(N / 64), Math.ceil(M / 64)],
      );
    const layer = () => {
      forward();
      // dx = dout @ w; dw += dout^T @ x
      gpu.dispatch(
        mm.nn,
        { M, N: KD, K: N, lda: N, ldb: KD, ldc: KD, ...offsets },
        [{ buffer: dx }, { buffer: dout }, { buffer: w }],
        [Math.ceil(KD / 64), Math.ceil(M / 64)],
      );
      gpu.dispatch(
        mm.tnAcc,
        { M: N, N: KD, K: M, lda: N, ldb: KD, ldc: KD, ...offsets },
        [{ buffer: dw }, { buffer: dout }, { buffer: x }],
        [Math.ceil(KD / 64), Math.ceil(N / 64)],
      );
    };
    const sync = async () => {
      await gpu.read(out, 0, 4);
    };
    const flops = 2 * M * N * KD;

    // warm-up: the pipelines compile on their first dispatch
    layer();
    await sync();
    const REPS = 4;
    const before = (await gpu.profiled()).length;
    const fwd = await timeIt(
      async () => {
        for (let r = 0; r < REPS; r++) forward();
        await sync();
      },
      { warmup: 0, iters: 3 },
    );
    const stamps = (await gpu.profiled()).slice(before).filter((t) => t.name === mm.nt.name);
    const lay = await timeIt(
      async () => {
        layer();
        await sync();
      },
      { warmup: 0, iters: 3 },
    );

    // a few outputs against a float64 dot product, so that a broken kernel is not timed as a fast one
    const result = await gpu.readF32(out, 0, M * N);
    const rng = new Rng(7);
    let maxRelErr = 0;
    for (let s = 0; s < 32; s++) {
      const m = rng.int(M);
      const n = rng.int(N);
      let want = 0;
      let scale = 0;
      for (let k = 0; k < KD; k++) {
        want += ops.x[m * KD + k]! * ops.w[n * KD + k]!;
        scale += Math.abs(ops.x[m * KD + k]! * ops.w[n * KD + k]!);
      }
      maxRelErr = Math.max(maxRelErr, Math.abs(result[m * N + n]! - want) / scale);
    }
    return {
      gflops: flops / (median(fwd) / REPS) / 1e9,
      kernelGflops: stamps.length ? flops / (median(stamps.map((t) => t.ms)) / 1000) / 1e9 : null,
      layerGflops: (3 * flops) / median(lay) / 1e9,
      maxRelErr,
    };
  } finally {
    gpu.destroy();
  }
}

/** native-cpu's matmul layer (forward, input and weight gradients: 3 products of 2MNK flops) in GFLOP/s. */
function nativeMatmul(addon: NativeAddon, gemm: GemmBackend, ops: MatmulOperands): number {
  const { M, K: KD, N } = MM;
  const arrays = { x: ops.x, W: ops.w, bias: new Float32Array(N), dout: ops.dout };
  const dims = { N: M, IC: KD, OC: N };
  addon.layerCheck('matmul', arrays, dims, gemm, THREADS); // warm-up
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    addon.layerCheck('matmul', arrays, dims, gemm, THREADS);
    times.push((performance.now() - t0) / 1000);
  }
  return (3 * 2 * M * N * KD) / median(times) / 1e9;
}

async function benchMatmul(addon: NativeAddon | null): Promise<void> {
  const { M, K: KD, N } = MM;
  const load0 = loadAvg();
  const rng = new Rng(3);
  const ops: MatmulOperands = { x: randn(rng, M * KD), w: randn(rng, N * KD), dout: randn(rng, M * N) };
  log(`matmul: (${M} x ${KD}) x (${N} x ${KD})^T on WebGPU`);
  const ours = await webgpuMatmul(ops);
  const cpu: Partial<Record<GemmBackend, number>> = {};
  let gemm: GemmBackend | null = null;
  if (addon) {
    // the backend native-cpu uses by default: BLAS when the build has it
    gemm = addon.hasBlas() ? 'blas' : 'builtin';
    for (const g of addon.hasBlas() ? (['blas', 'builtin'] as const) : (['builtin'] as const)) {
      log(`matmul: native-cpu's matmul layer, ${g} GEMM, ${THREADS} threads`);
      cpu[g] = nativeMatmul(addon, g, ops);
    }
  }
  const peer = gemm ? cpu[gemm]! : null;
  const ratio = peer ? ours.gflops / peer : null;
  printResult({
    name: 'matmul-native-webgpu',
    figure: round(ours.gflops, 2),
    unit: 'GFLOP/s',
    peer: gemm ? `native-cpu-${gemm}-${THREADS}threads` : null,
    peerFigure: peer === null ? null : round(peer, 2),
    ratio: ratio === null ? null : round(ratio, 4),
    config: {
      M,
      K: KD,
      N,
      kernel: MM_NT.name,
      kernel_gflops_by_timestamps: ours.kernelGflops === null ? null : round(ours.kernelGflops, 2),
      layer_gflops: round(ours.layerGflops, 2),
      layer_ratio: peer ? round(ours.layerGflops / peer, 4) : null,
      native_cpu_gflops: Object.fromEntries(Object.entries(cpu).map(([g, v]) => [g, round(v, 2)])),
      max_rel_err: Number(ours.maxRelErr.toExponential(2)),
      load_avg: [load0, loadAvg()],
    },
    notes: 'peer: native-cpu matmul_forward + matmul_backward (3 products); ratio = ours / peer',
  });
  if ((await webgpuRuntime()).facts.shaderF16) {
    log('matmul: the same with f16 operands (precision fp16)');
    const half = await webgpuMatmul(ops, true);
    printResult({
      name: 'matmul-native-webgpu-fp16',
      figure: round(half.gflops, 2),
      unit: 'GFLOP/s',
      peer: 'matmul-native-webgpu (fp32)',
      peerFigure: round(ours.gflops, 2),
      ratio: round(half.gflops / ours.gflops, 4),
      config: { M, K: KD, N, kernel: matmuls(true).nt.name, max_rel_err: Number(half.maxRelErr.toExponential(2)) },
      notes:
        'f16 operands in workgroup memory, fp32 sums; max_rel_err against a float64 dot product of the fp32 inputs',
    });
  }
  if (ratio === null) log('matmul sanity: no native-cpu peer (the native addon is not built)');
  else if (ratio >= 0.1)
    log(`matmul sanity: ok, within 10x of native-cpu (${ratio.toFixed(3)}x: ${(1 / ratio).toFixed(1)} times slower)`);
  else
    log(
      `matmul sanity: NOT within 10x of native-cpu (${ratio.toFixed(3)}x: ${(1 / ratio).toFixed(1)} times slower): a gap this large suggests a problem in the kernel`,
    );
}

// ---- main ---------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { only: { type: 'string' }, iters: { type: 'string', default: '3' } },
    strict: false,
  });
  const only = typeof values.only === 'string' ? values.only : undefined;
  const iters = Number(values.iters);
  if (!Number.isInteger(iters) || iters < 1) throw new Error(`--iters ${String(values.iters)}: use a positive integer`);
  if (only && !['train', 'profile', 'matmul'].includes(only))
    throw new Error(`--only ${only}: use train, profile or matmul`);

  let engine;
  try {
    engine = await webgpuEngine();
  } catch (e) {
    log(`skipped: ${e instanceof Error ? e.message : String(e)}`);
    return;
  }
  const info = engine.info();
  log(`adapter: ${info.detail}`);
  for (const note of info.notes) log(`  ${note}`);
  const load = loadNativeAddon();
  if (!load.ok) log(`no native-cpu peer: ${load.reason}. ${load.hint}`);
  const addon = load.ok ? load.addon : null;

  if (!only || only === 'train') await benchTraining(iters, addon !== null);
  if (!only || only === 'profile') await benchProfile();
  if (!only || only === 'matmul') await benchMatmul(addon);
}

await main();
