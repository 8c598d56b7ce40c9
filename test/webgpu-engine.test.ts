/**
 * native-webgpu against native-cpu on small random GPT-2s (random biases and LayerNorm gains, so that every
 * parameter matters): the classifier cut into row chunks and vocabulary slices under a lowered binding limit, the
 * attention kernels of each head size on sequence lengths that are not multiples of the tiles, and the errors for
 * what the engine refuses. Both engines compute in float32, so they agree far more tightly than a wrong kernel would.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AdamWHyper, Batch, Engine, Model } from '../src/core/engine/types';
import { makeConfig, type GPTConfig } from '../src/core/model/config';
import { initWeights } from '../src/core/model/init';
import { Rng } from '../src/core/random';
import type { NamedTensors } from '../src/core/tensors';
import { batchFromRows } from '../src/core/train/step';
import { ErrorCode, StudioError } from '../src/shared/errors';
import { getEngine } from '../src/node/engines';
import { nativeSkipReason } from '../src/node/native/testing';
import { webgpuEngine } from '../src/node/webgpu/engine';
import { classifierPlan, WebGpuModel } from '../src/node/webgpu/model';
import { webgpuSkip } from './support/webgpu';

// lavapipe compiles each kernel on its first dispatch: over a minute for some with a cold shader cache
vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

const skip = (await webgpuSkip()) ?? (nativeSkipReason || undefined);
const titled = (title: string): string => (skip ? `${title} [skipped: ${skip}]` : title);

/**
 * AdamW as the trainer sets it, but for eps: with 1e-8, a gradient near 1e-8 (which two float32 engines sum in
 * different orders, to within ~1e-10) moves its weight by lr * g / (|g| + eps), which is ill-conditioned there and
 * would say nothing about the kernels. 1e-6 keeps every other gradient's update at lr * sign(g), as 1e-8 does.
 */
const HYPER: AdamWHyper = { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-6, weightDecay: 0.1 };

/** initWeights, with random biases and LayerNorm gains. */
function randomWeights(cfg: GPTConfig, seed: number): NamedTensors {
  const w = initWeights(cfg, seed);
  const rng = new Rng(seed + 1);
  for (const [name, t] of w) {
    if (t.shape.length === 1)
      for (let i = 0; i < t.data.length; i++) t.data[i] = (name.endsWith('.weight') ? 1 : 0) + 0.1 * rng.normal();
  }
  return w;
}

function randomBatch(rng: Rng, cfg: GPTConfig, B: number, T: number): Batch {
  return batchFromRows(
    Array.from({ length: B }, () => Array.from({ length: T + 1 }, () => rng.int(cfg.vocabSize))),
    T,
  );
}

/** The largest |a - b|; a NaN on both sides (a position left out of the loss) counts as equal. */
function maxDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]) && Number.isNaN(b[i])) continue;
    const d = Math.abs(a[i]! - b[i]!);
    m = Number.isNaN(d) ? Infinity : Math.max(m, d);
  }
  return m;
}

function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const x of a) m = Math.max(m, Math.abs(x));
  return m;
}

const rel = (a: number, b: number): number => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);

/**
 * Compares two sets of tensors by name: the largest absolute difference, or with `relative`, each tensor's largest
 * difference over its largest reference value. Returns the worst and the tensor it is in.
 */
function compareTensors(got: NamedTensors, want: NamedTensors, relative = false): { diff: number; name: string } {
  expect([...got.keys()]).toEqual([...want.keys()]);
  let worst = { diff: 0, name: '' };
  for (const [name, w] of want) {
    const g = got.get(name)!;
    expect(g.shape, name).toEqual(w.shape);
    let d = maxDiff(g.data, w.data);
    if (relative) d /= Math.max(maxAbs(w.data), 1e-30);
    if (d > worst.diff) worst = { diff: d, name };
  }
  return worst;
}

/** The same tokens fed to both models: a prefill of 5 positions, then 3 single steps; the largest difference. */
async function decodeDiff(a: Model, b: Model, inputs: Int32Array, B: number, T: number): Promise<number> {
  const ca = a.createCache(B, 8);
  const cb = b.createCache(B, 8);
  try {
    const cols = (t0: number, S: number): Int32Array => {
      const out = new Int32Array(B * S);
      for (let r = 0; r < B; r++) out.set(inputs.subarray(r * T + t0, r * T + t0 + S), r * S);
      return out;
    };
    let d = maxDiff(await a.decodeStep(ca, cols(0, 5), 5), await b.decodeStep(cb, cols(0, 5), 5));
    for (let t = 5; t < 8; t++)
      d = Math.max(d, maxDiff(await a.decodeStep(ca, cols(t, 1)), await b.decodeStep(cb, cols(t, 1))));
    expect(ca.length).toBe(8);
    return d;
  } finally {
    ca.dispose();
    cb.dispose();
  }
}

const cpuEngine = (): Promise<Engine> => getEngine('native-cpu', { threads: 2 });

// ---- a. the classifier in chunks ------------------------------------------------------------------------------

/** A binding limit far below the logits (80 x 5000 floats) and the token embedding (5056 x 64 floats). */
const LIMIT = 96 * 1024;
const CHUNKED = makeConfig({ nLayer: 2, nHead: 2, nEmbd: 64, blockSize: 40, vocabSize: 5000 });
const [CB, CT] = [2, 40];

describe(titled('native-webgpu: the classifier in chunks under a lowered binding limit'), () => {
  let gpu: WebGpuModel;
  let cpu: Model;
  const rng = new Rng(21);
  const batch = randomBatch(rng, CHUNKED, CB, CT);
  batch.targets[7] = -1;
  batch.mask = Float32Array.from({ length: CB * CT }, (_, i) => (i % 9 === 4 ? 0 : 1));

  beforeAll(async () => {
    if (skip) return;
    const w = randomWeights(CHUNKED, 20);
    gpu = (await (await webgpuEngine({ maxBindingBytes: LIMIT })).createModel(CHUNKED, w)) as WebGpuModel;
    cpu = await (await cpuEngine()).createModel(CHUNKED, w);
  });
  afterAll(() => {
    gpu?.dispose();
    cpu?.dispose();
  });

  it.skipIf(!!skip)('cuts the logits into several row chunks and the embedding into several slices', () => {
    const { vocabSize: V, paddedVocabSize: Vp, nEmbd: C } = CHUNKED;
    expect(Vp).toBe(5056);
    const plan = classifierPlan(CB * CT, V, Vp, C, LIMIT);
    expect(CB * CT * V * 4).toBeGreaterThan(LIMIT);
    expect(Vp * C * 4).toBeGreaterThan(LIMIT);
    expect(plan.chunks).toBeGreaterThan(1);
    expect(plan.slices).toBeGreaterThan(1);
    expect(gpu.gpu.maxBinding).toBe(LIMIT);
  });

  it.skipIf(!!skip)('computes the logits and the per-token losses as native-cpu does (1e-4)', async () => {
    const lg = await gpu.logits(batch.inputs, CB, CT);
    expect(lg.length).toBe(CB * CT * CHUNKED.vocabSize);
    expect(maxDiff(lg, await cpu.logits(batch.inputs, CB, CT))).toBeLessThan(1e-4);
    const lossG = await gpu.tokenLosses(batch);
    const lossC = await cpu.tokenLosses(batch);
    expect(Number.isNaN(lossG[7]) && Number.isNaN(lossG[4])).toBe(true);
    expect(maxDiff(lossG, lossC)).toBeLessThan(1e-4);
  });

  it.skipIf(!!skip)('trains one step as native-cpu does: loss, gradient norm, weights after AdamW', async () => {
    gpu.zeroGrad();
    cpu.zeroGrad();
    const lossG = await gpu.forwardBackward(batch, 1);
    const lossC = await cpu.forwardBackward(batch, 1);
    expect(Math.abs(lossG - lossC)).toBeLessThan(1e-4);
    const normG = await gpu.gradNorm();
    const normC = await cpu.gradNorm();
    expect(normC).toBeGreaterThan(0);
    expect(rel(normG, normC)).toBeLessThan(1e-4);
    gpu.adamwStep(HYPER);
    cpu.adamwStep(HYPER);
    const w = compareTensors(await gpu.exportWeights(), await cpu.exportWeights());
    expect(w.diff, `weights differ most in ${w.name}`).toBeLessThan(1e-5);
  });

  it.skipIf(!!skip)('decodes with the KV cache as native-cpu does (1e-4)', async () => {
    expect(await decodeDiff(gpu, cpu, batch.inputs, CB, CT)).toBeLessThan(1e-4);
  });

  it.skipIf(!!skip)('refuses a micro-batch whose MLP activation passes the limit, naming batch_size', async () => {
    // 3 x 40 positions x 4 * 64 floats = 120 KiB > 96 KiB; 2 x 40 fits
    const big = randomBatch(rng, CHUNKED, 3, CT);
    const err = await gpu.forwardBackward(big, 1).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StudioError);
    expect((err as StudioError).code).toBe(ErrorCode.BAD_ARGUMENT);
    expect((err as StudioError).message).toMatch(/micro-batch of 3 x 40 positions needs 120 KiB .* \(96 KiB\)/);
    expect((err as StudioError).hint).toMatch(/batch_size 2 or less/);
    // the model goes on working after the refusal
    expect(Number.isFinite(await gpu.forwardBackward(batch, 1))).toBe(true);
  });

  it.skipIf(!!skip)('never bound more than the lowered limit', () => {
    expect(gpu.gpu.maxBoundBytes).toBeGreaterThan(0);
    expect(gpu.gpu.maxBoundBytes).toBeLessThanOrEqual(LIMIT);
  });
});

// ---- a'. GPT-2's vocabulary at the adapter's own limit -----------------------------------------------------------

describe(titled("native-webgpu: GPT-2's vocabulary over 1024 positions, chunked at the adapter's own limit"), () => {
  // 1024 x 50257 logits are 196 MiB: past lavapipe's 128 MiB binding limit (and the 128 MiB most GPUs default to)
  const cfg = makeConfig({ nLayer: 1, nHead: 2, nEmbd: 64, blockSize: 256, vocabSize: 50257 });
  const [B, T] = [4, 256];
  let gpu: WebGpuModel;
  let cpu: Model;

  beforeAll(async () => {
    if (skip) return;
    const w = randomWeights(cfg, 30);
    gpu = (await (await webgpuEngine()).createModel(cfg, w)) as WebGpuModel;
    cpu = await (await cpuEngine()).createModel(cfg, w);
  });
  afterAll(() => {
    gpu?.dispose();
    cpu?.dispose();
  });

  it.skipIf(!!skip)(
    'takes the loss and the gradients of native-cpu, never binding past the limit',
    async () => {
      const limit = gpu.gpu.maxBinding;
      const logitsBytes = B * T * cfg.vocabSize * 4;
      if (logitsBytes <= limit) return; // an adapter that binds it all at once: nothing to chunk
      expect(classifierPlan(B * T, cfg.vocabSize, cfg.paddedVocabSize, cfg.nEmbd, limit).chunks).toBeGreaterThan(1);
      const batch = randomBatch(new Rng(31), cfg, B, T);
      gpu.zeroGrad();
      cpu.zeroGrad();
      const lossG = await gpu.forwardBackward(batch, 1);
      const lossC = await cpu.forwardBackward(batch, 1);
      expect(Math.abs(lossG - lossC)).toBeLessThan(1e-4);
      expect(rel(await gpu.gradNorm(), await cpu.gradNorm())).toBeLessThan(1e-4);
      expect(gpu.gpu.maxBoundBytes).toBeLessThanOrEqual(limit);
    },
    300_000,
  );
});

// ---- b. parity on shapes that are not multiples of the tiles -----------------------------------------------------

const SHAPES = [
  { hs: 32, nEmbd: 64, nHead: 2, T: 37, blockSize: 40 },
  { hs: 64, nEmbd: 128, nHead: 2, T: 45, blockSize: 48 },
  { hs: 128, nEmbd: 128, nHead: 1, T: 45, blockSize: 45 },
];

describe.each(SHAPES)(titled('native-webgpu against native-cpu, head size $hs, T = $T'), (s) => {
  const B = 2;
  const cfg = makeConfig({ nLayer: 2, nHead: s.nHead, nEmbd: s.nEmbd, blockSize: s.blockSize, vocabSize: 300 });
  let gpu: Model;
  let cpu: Model;
  const rng = new Rng(100 + s.hs);
  /** some positions masked out, some targets -1 */
  const masked = (): Batch => {
    const b = randomBatch(rng, cfg, B, s.T);
    b.targets[3] = -1;
    b.targets[s.T + 11] = -1;
    b.mask = Float32Array.from({ length: B * s.T }, (_, i) => (i % 7 === 5 ? 0 : 1));
    return b;
  };

  beforeAll(async () => {
    if (skip) return;
    const w = randomWeights(cfg, s.hs);
    gpu = await (await webgpuEngine()).createModel(cfg, w);
    cpu = await (await cpuEngine()).createModel(cfg, w);
  });
  afterAll(() => {
    gpu?.dispose();
    cpu?.dispose();
  });

  it.skipIf(!!skip)('logits, two accumulated micro-steps, AdamW state, KV cache (vocab 300)', async () => {
    expect(cfg.paddedVocabSize).toBe(320);
    const first = masked();
    const lg = await gpu.logits(first.inputs, B, s.T);
    expect(maxDiff(lg, await cpu.logits(first.inputs, B, s.T)), 'logits').toBeLessThan(1e-4);

    gpu.zeroGrad();
    cpu.zeroGrad();
    for (const [i, batch] of [first, masked()].entries()) {
      const lossG = await gpu.forwardBackward(batch, 0.5);
      const lossC = await cpu.forwardBackward(batch, 0.5);
      expect(rel(lossG, lossC), `loss of micro-step ${i + 1}`).toBeLessThan(1e-5);
      expect(rel(await gpu.gradNorm(), await cpu.gradNorm()), `grad norm after micro-step ${i + 1}`).toBeLessThan(1e-4);
    }
    gpu.scaleGrads(0.5);
    cpu.scaleGrads(0.5);
    const normC = await cpu.gradNorm();
    expect(normC).toBeGreaterThan(0);
    expect(rel(await gpu.gradNorm(), normC), 'grad norm after scaleGrads').toBeLessThan(1e-4);
    gpu.adamwStep(HYPER);
    cpu.adamwStep(HYPER);

    const w = compareTensors(await gpu.exportWeights(), await cpu.exportWeights());
    expect(w.diff, `weights differ most in ${w.name}`).toBeLessThan(1e-5);
    const optG = await gpu.exportOptimizerState();
    const optC = await cpu.exportOptimizerState();
    expect(optG.step).toBe(1);
    expect(optC.step).toBe(1);
    // m is 0.1 g and v 0.05 g^2: each tensor within 1e-4 of its own largest value
    const m = compareTensors(optG.m, optC.m, true);
    expect(m.diff, `AdamW m differs most in ${m.name}`).toBeLessThan(1e-4);
    const v = compareTensors(optG.v, optC.v, true);
    expect(v.diff, `AdamW v differs most in ${v.name}`).toBeLessThan(1e-4);

    expect(await decodeDiff(gpu, cpu, first.inputs, B, s.T), 'decoding').toBeLessThan(1e-4);
  });
});

// ---- fp16: f16 matmul operands, fp32 sums and master weights, where the adapter has shader-f16 --------------------

// one shape: lavapipe compiles the f16 kernels slowly (over a minute with a cold shader cache)
describe.each(SHAPES.slice(1, 2))(
  titled('native-webgpu in fp16 against native-cpu in fp32, head size $hs, T = $T'),
  (s) => {
    const B = 2;
    const cfg = makeConfig({ nLayer: 2, nHead: s.nHead, nEmbd: s.nEmbd, blockSize: s.blockSize, vocabSize: 300 });
    let gpu: Model | null = null;
    let cpu: Model;
    let noF16 = false;
    const rng = new Rng(200 + s.hs);

    beforeAll(async () => {
      if (skip) return;
      const engine = await webgpuEngine({ precision: 'fp16' });
      noF16 = !engine.adapter.shaderF16;
      const w = randomWeights(cfg, s.hs);
      if (!noF16) gpu = await engine.createModel(cfg, w);
      cpu = await (await cpuEngine()).createModel(cfg, w);
    });
    afterAll(() => {
      gpu?.dispose();
      cpu?.dispose();
    });

    it.skipIf(!!skip)('logits, the loss, the gradient norm and a step within f16 rounding of fp32', async (ctx) => {
      if (noF16 || !gpu) return ctx.skip();
      const batch = randomBatch(rng, cfg, B, s.T);
      const lg = await gpu.logits(batch.inputs, B, s.T);
      const lc = await cpu.logits(batch.inputs, B, s.T);
      // operands carry 11 significant bits: logits of about 1 move by a few 1e-3, never by 1e-1
      const d = maxDiff(lg, lc);
      expect(d, 'logits').toBeLessThan(2e-2);
      expect(d, 'fp16 is really in use').toBeGreaterThan(1e-6);
      gpu.zeroGrad();
      cpu.zeroGrad();
      const lossG = await gpu.forwardBackward(batch, 1);
      const lossC = await cpu.forwardBackward(batch, 1);
      expect(rel(lossG, lossC), 'loss').toBeLessThan(2e-3);
      expect(rel(await gpu.gradNorm(), await cpu.gradNorm()), 'grad norm').toBeLessThan(2e-2);
      gpu.adamwStep(HYPER);
      cpu.adamwStep(HYPER);
      const after = randomBatch(rng, cfg, B, s.T);
      expect(
        rel(await gpu.forwardBackward(after, 1), await cpu.forwardBackward(after, 1)),
        'loss after a step',
      ).toBeLessThan(5e-3);
    });
  },
);

// ---- c. what the engine refuses ----------------------------------------------------------------------------------

describe(titled('native-webgpu refusals'), () => {
  it.skipIf(!!skip)('refuses a head size of 256, saying which sizes it takes', async () => {
    const cfg = makeConfig({ nLayer: 1, nHead: 1, nEmbd: 256, blockSize: 8, vocabSize: 64 });
    const err = await (await webgpuEngine()).createModel(cfg, initWeights(cfg, 1)).then(
      (m) => {
        m.dispose();
        return null;
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StudioError);
    expect((err as StudioError).code).toBe(ErrorCode.BAD_ARGUMENT);
    expect((err as StudioError).message).toMatch(/head size of 256 .*up to 128/);
  });
});
