/**
 * native-cpu as the studio sees it: registration and the default choice, its parity self-check against tfjs,
 * argument errors, memory that stays flat over 100 training steps, and the loader's reasons when the addon is
 * missing. Every model test runs with BLAS and with the built-in SGEMM.
 */
import { describe, expect, it } from 'vitest';
import type { Model } from '../src/core/engine/types';
import { makeConfig } from '../src/core/model/config';
import { initWeights } from '../src/core/model/init';
import { Rng } from '../src/core/random';
import { generate } from '../src/core/sampling';
import { batchFromRows, trainStep } from '../src/core/train/step';
import { StudioError } from '../src/shared/errors';
import { describeEngines, getEngine } from '../src/node/engines';
import { tryLoadNativeAddon } from '../src/node/native/addon';
import { checkParity } from '../src/node/native/parity';
import { GEMM_CASES, addon, maxAbsDiff, nativeSkipReason } from '../src/node/native/testing';
import { hasFixture } from './shared';

const cfg = makeConfig({ nLayer: 2, nHead: 4, nEmbd: 64, blockSize: 64, vocabSize: 2000, paddedVocabSize: 2048 });
const hyper = { gradClip: 1, adamw: { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 } };

function randomBatch(rng: Rng, B: number, T: number) {
  return batchFromRows(
    Array.from({ length: B }, () => Array.from({ length: T + 1 }, () => rng.int(cfg.vocabSize))),
    T,
  );
}

/** Resident set size in MB, after a GC when exposed. */
function rssMb(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().rss / 2 ** 20;
}

describe.each(GEMM_CASES)('native-cpu model, $title', ({ gemm, skip }) => {
  const make = async (c = cfg, seed = 1): Promise<Model> =>
    (await getEngine('native-cpu', { gemm, threads: 2 })).createModel(c, initWeights(c, seed));

  it.skipIf(!!skip)('keeps its memory flat over 100 training steps (RSS grows < 8 MB after warm-up)', async () => {
    const model = await make();
    const rng = new Rng(2);
    const losses: number[] = [];
    let after10 = 0;
    try {
      for (let s = 0; s < 100; s++) {
        const r = await trainStep(model, [randomBatch(rng, 4, 64), randomBatch(rng, 4, 64)], hyper);
        losses.push(r.loss);
        if (s === 9) after10 = rssMb();
      }
      // one step holds ~3 MB of logits alone: a per-step leak would add hundreds of MB
      expect(rssMb() - after10).toBeLessThan(8);
    } finally {
      model.dispose();
    }
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses[99]).toBeLessThan(losses[0]!); // it learns (the unigram statistics, at least)
  });

  it.skipIf(!!skip)('frees its memory on dispose, and KV caches on theirs', async () => {
    const big = makeConfig({
      nLayer: 2,
      nHead: 4,
      nEmbd: 256,
      blockSize: 64,
      vocabSize: 20000,
      paddedVocabSize: 20032,
    }); // ~26 MB of weights
    const rng = new Rng(3);
    const weights = initWeights(big, 1); // one set of host tensors, so that JS garbage does not blur the figure
    const start = rssMb();
    for (let i = 0; i < 6; i++) {
      const m = await (await getEngine('native-cpu', { gemm, threads: 2 })).createModel(big, weights);
      await trainStep(m, [randomBatch(rng, 2, 32)], hyper); // grads, m, v and activations too: ~150 MB a model
      const cache = m.createCache(2, 64);
      await m.decodeStep(cache, new Int32Array([1, 2]), 1);
      cache.dispose();
      m.dispose();
    }
    expect(rssMb() - start).toBeLessThan(100); // six models that were not freed would hold ~900 MB
  });

  it.skipIf(!!skip)(
    "evaluates in one layer's activations, not the training buffers of every layer, with the same results",
    async () => {
      // 8 layers of (4 x 256) positions: training keeps ~100 MB of activations; an evaluation needs ~13 MB
      const deep = makeConfig({
        nLayer: 8,
        nHead: 4,
        nEmbd: 128,
        blockSize: 256,
        vocabSize: 2000,
        paddedVocabSize: 2048,
      });
      const rng = new Rng(9);
      const batch = randomBatch(rng, 4, 256);
      const weights = initWeights(deep, 1);
      const engine = await getEngine('native-cpu', { gemm, threads: 2 });
      const evalOnly = await engine.createModel(deep, weights);
      const start = rssMb();
      const a = await evalOnly.tokenLosses(batch);
      const evalGrowth = rssMb() - start;
      evalOnly.dispose();
      const trained = await engine.createModel(deep, weights);
      const before = rssMb();
      await trained.forwardBackward(batch, 1);
      const trainGrowth = rssMb() - before;
      const b = await trained.tokenLosses(batch); // through the training buffers, now that they exist
      trained.dispose();
      if (process.env.GPT2_STUDIO_MEM_REPORT)
        console.log(
          `RSS growth: evaluation ${evalGrowth.toFixed(1)} MB, training forward ${trainGrowth.toFixed(1)} MB`,
        );
      expect(maxAbsDiff(a, b)).toBe(0);
      expect(trainGrowth).toBeGreaterThan(80);
      expect(evalGrowth).toBeLessThan(trainGrowth / 3);
    },
  );

  it.skipIf(!!skip)(
    'gives the same losses for the same seed and data (deterministic), and accumulates micro-steps',
    async () => {
      const [a, b] = [await make(), await make()];
      try {
        const rng = new Rng(4);
        const data = Array.from({ length: 3 }, () => [randomBatch(rng, 2, 32), randomBatch(rng, 2, 32)]);
        const ra = [];
        const rb = [];
        for (const micro of data) {
          ra.push(await trainStep(a, micro, hyper));
          // the same step as one batch of 4 rows: the mean over both micro-batches is the mean over all rows
          const joined = {
            B: 4,
            T: 32,
            inputs: Int32Array.from([...micro[0]!.inputs, ...micro[1]!.inputs]),
            targets: Int32Array.from([...micro[0]!.targets, ...micro[1]!.targets]),
          };
          rb.push(await trainStep(b, [joined], hyper));
        }
        for (let i = 0; i < 3; i++) {
          expect(Math.abs(ra[i]!.loss - rb[i]!.loss) / rb[i]!.loss).toBeLessThan(1e-5);
          expect(Math.abs(ra[i]!.norm - rb[i]!.norm) / rb[i]!.norm).toBeLessThan(1e-4);
        }
        const c = await make();
        try {
          for (const micro of data) expect((await trainStep(c, micro, hyper)).loss).toBe(ra[data.indexOf(micro)]!.loss);
        } finally {
          c.dispose();
        }
      } finally {
        a.dispose();
        b.dispose();
      }
    },
  );

  it.skipIf(!!skip)('resumes exactly from exported weights and optimizer state', async () => {
    const rng = new Rng(5);
    const data = Array.from({ length: 4 }, () => [randomBatch(rng, 2, 32)]);
    const a = await make();
    const b = await make();
    try {
      for (const micro of data.slice(0, 2)) await trainStep(a, micro, hyper);
      b.loadWeights(await a.exportWeights());
      b.loadOptimizerState(await a.exportOptimizerState());
      for (const micro of data.slice(2)) {
        const [ra, rb] = [await trainStep(a, micro, hyper), await trainStep(b, micro, hyper)];
        expect(rb.loss).toBe(ra.loss);
        expect(rb.norm).toBe(ra.norm);
      }
    } finally {
      a.dispose();
      b.dispose();
    }
  });

  it.skipIf(!!skip)(
    'decodes several rows with the KV cache as full recomputation does, prefill and steps',
    async () => {
      const m = await make();
      try {
        const rng = new Rng(6);
        const B = 3;
        const L = 20;
        const seqs = Int32Array.from({ length: B * L }, () => rng.int(cfg.vocabSize));
        const full = await m.logits(seqs, B, L); // (B, L, V)
        const V = cfg.vocabSize;
        const cache = m.createCache(B, L);
        const P = 7;
        const prompt = new Int32Array(B * P);
        for (let b = 0; b < B; b++) prompt.set(seqs.subarray(b * L, b * L + P), b * P);
        let out = await m.decodeStep(cache, prompt, P);
        const at = (t: number) =>
          Float32Array.from({ length: B * V }, (_, i) => full[(Math.floor(i / V) * L + t) * V + (i % V)]!);
        expect(maxAbsDiff(out, at(P - 1))).toBeLessThan(1e-4);
        for (let t = P; t < L; t++) {
          out = await m.decodeStep(
            cache,
            Int32Array.from({ length: B }, (_, b) => seqs[b * L + t]!),
            1,
          );
          expect(maxAbsDiff(out, at(t))).toBeLessThan(1e-4);
        }
        expect(cache.length).toBe(L);
        await expect(m.decodeStep(cache, new Int32Array(B), 1)).rejects.toThrow(
          /KV cache holds 20 positions; 20 are used/,
        );
        cache.dispose();
        const texts = await generate(m, [1, 2, 3], {
          temperature: 0.8,
          topK: 20,
          topP: 0.9,
          maxNewTokens: 8,
          numSequences: 2,
          seed: 3,
        });
        expect(texts.map((t) => t.length)).toEqual([8, 8]);
      } finally {
        m.dispose();
      }
    },
  );

  it.skipIf(!!skip)('rejects bad input with a clear StudioError and never crashes', async () => {
    const m = await make();
    try {
      const bad = (p: Promise<unknown>, msg: RegExp) => expect(p).rejects.toThrow(msg);
      await bad(
        m.forwardBackward({ B: 1, T: 65, inputs: new Int32Array(65), targets: new Int32Array(65) }, 1),
        /exceeds the model's context of 64/,
      );
      await bad(
        m.forwardBackward({ B: 1, T: 2, inputs: Int32Array.from([1, 2000]), targets: new Int32Array(2) }, 1),
        /Token id 2000 at inputs\[1\]/,
      );
      await bad(
        m.forwardBackward({ B: 2, T: 2, inputs: new Int32Array(3), targets: new Int32Array(4) }, 1),
        /hold 3 ids, expected B\*T = 2\*2 = 4/,
      );
      await expect(m.logits(new Int32Array(2), 1, 2).catch((e) => e)).resolves.toBeInstanceOf(Float32Array);
      expect(
        await m.tokenLosses({ B: 1, T: 1, inputs: new Int32Array(1), targets: Int32Array.from([-5]) }).catch((e) => e),
      ).toBeInstanceOf(Float32Array);
      expect(await m.logits(new Int32Array(1), 1, 2).catch((e) => e)).toBeInstanceOf(StudioError);
      const w = initWeights(cfg, 1);
      w.delete('h.1.mlp.c_fc.bias');
      expect(() => m.loadWeights(w)).toThrow(/no tensor "h.1.mlp.c_fc.bias"/);
      // a call while another runs is refused, not raced
      const p = m.forwardBackward(randomBatch(new Rng(1), 2, 16), 1);
      expect(() => m.adamwStep(hyper.adamw)).toThrow(/still running/);
      await p;
      // every target ignored: loss 0 and no gradient
      m.zeroGrad();
      expect(
        await m.forwardBackward({ B: 1, T: 2, inputs: Int32Array.from([1, 2]), targets: Int32Array.from([-1, -1]) }, 1),
      ).toBe(0);
      expect(await m.gradNorm()).toBe(0);
    } finally {
      m.dispose();
    }
    await expect(m.logits(new Int32Array(1), 1, 1)).rejects.toThrow(/disposed/);
  });
});

describe('native-cpu with the built-in SGEMM', () => {
  it.skipIf(!addon)(
    'computes the same bits with 1 and 3 threads (a resumed run may use another thread count)',
    async () => {
      const results: number[][] = [];
      for (const threads of [1, 3]) {
        const m = await (
          await getEngine('native-cpu', { gemm: 'builtin', threads })
        ).createModel(cfg, initWeights(cfg, 9));
        const rng = new Rng(10);
        const out: number[] = [];
        try {
          for (let s = 0; s < 3; s++) {
            const r = await trainStep(m, [randomBatch(rng, 3, 40)], hyper);
            out.push(r.loss, r.norm);
          }
        } finally {
          m.dispose();
        }
        results.push(out);
      }
      expect(results[1]).toEqual(results[0]);
    },
  );
});

describe('native-cpu engine registration', () => {
  it.skipIf(!addon)('is listed as available with a passing parity check, and is the default engine', async () => {
    const list = await describeEngines();
    const native = list.find((e) => e.name === 'native-cpu')!;
    expect(native.available).toBe(true);
    expect(native.notes[0]).toMatch(/^parity: pass against tfjs/);
    if (hasFixture('fixtures/gpt2-tiny/expected.json'))
      expect(native.notes[1]).toMatch(/^fixture parity: pass against the PyTorch fixture/);
    else expect(native.notes[1]).toMatch(/^fixture parity: not checked/);
    const cuda = list.find((e) => e.name === 'native-cuda')!;
    expect(cuda.available).toBe(false);
    // here the build found no cuBLAS (or no nvcc); the note is the build probe's reason
    expect(cuda.notes[0]).toMatch(/^The native-cuda engine is not available: (nvcc|the native build|the CUDA)/);
    expect((await getEngine()).name).toBe('native-cpu');
    expect((await getEngine('auto', { backend: 'cpu' })).name).toBe('tfjs');
  });

  it.skipIf(!addon)('passes the parity check with the built-in SGEMM too', async () => {
    const p = await checkParity(await getEngine('native-cpu', { gemm: 'builtin' }), await getEngine('tfjs'));
    expect(p.pass, p.summary).toBe(true);
  });

  it('says why when the addon is missing, and the studio falls back to tfjs', () => {
    const r = tryLoadNativeAddon({ GPT2_STUDIO_NATIVE_ADDON: '/nonexistent/gpt2_native.node' });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.reason).toMatch(/not built|did not succeed/);
      expect(r.hint).toMatch(/npm run build:native/);
    }
    const off = tryLoadNativeAddon({ GPT2_STUDIO_NATIVE: '0' });
    expect(off.ok ? '' : off.reason).toMatch(/GPT2_STUDIO_NATIVE=0/);
  });

  it.skipIf(!!addon)(`reports the reason it is unavailable (${nativeSkipReason})`, async () => {
    const native = (await describeEngines()).find((e) => e.name === 'native-cpu')!;
    expect(native.available).toBe(false);
    expect(native.notes.join(' ')).toMatch(/native/);
    expect((await getEngine()).name).toBe('tfjs');
  });
});
