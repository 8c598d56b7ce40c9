/**
 * The parity self-check behind the default engine choice and the Settings / `gpt2-studio engines` report: a small
 * random GPT-2 (2 layers, padded vocabulary, random biases and LayerNorm weights) run on a candidate engine and on
 * the tfjs reference engine, compared on logits, per-token losses, two training steps with gradient accumulation,
 * clipping and AdamW, and a KV-cache decode. The fixture tests (test/native-fixture.test.ts) hold the engines to
 * PyTorch itself; this check runs anywhere, in well under a second.
 */
import type { Engine } from '../../core/engine/types';
import { makeConfig } from '../../core/model/config';
import { initWeights } from '../../core/model/init';
import { Rng } from '../../core/random';
import { batchFromRows, trainStep } from '../../core/train/step';

export interface ParityResult {
  pass: boolean;
  /** one line for people, e.g. "pass: logits 2.1e-7, losses 1.0e-6, ..." */
  summary: string;
  maxLogitDiff: number;
  maxLossDiff: number;
  /** relative difference of the training losses and gradient norms */
  trainLossRel: number;
  gradNormRel: number;
  decodeDiff: number;
}

/** Tolerances of the check (float32 engines agree far more tightly than this; a wrong layer is far off). */
export const PARITY_TOLERANCE = {
  logits: 1e-4,
  losses: 1e-4,
  trainLossRel: 1e-5,
  gradNormRel: 1e-4,
  decode: 1e-4,
} as const;

const maxAbsDiff = (a: Float32Array, b: Float32Array): number => {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? (Number.isNaN(a[i]) && Number.isNaN(b[i]) ? m : Infinity) : d;
  }
  return m;
};

const rel = (a: number, b: number): number => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);

export async function checkParity(candidate: Engine, reference: Engine): Promise<ParityResult> {
  const cfg = makeConfig({ nLayer: 2, nHead: 2, nEmbd: 32, blockSize: 16, vocabSize: 100, paddedVocabSize: 128 });
  const w = initWeights(cfg, 11);
  // random biases and LayerNorm gains, so that every parameter matters
  const rng = new Rng(12);
  for (const [name, t] of w) {
    if (t.shape.length === 1)
      for (let i = 0; i < t.data.length; i++) t.data[i] = (name.endsWith('.weight') ? 1 : 0) + 0.1 * rng.normal();
  }
  const [a, b] = [await candidate.createModel(cfg, w), await reference.createModel(cfg, w)];
  try {
    const B = 2;
    const T = 12;
    const rows = () => Array.from({ length: B }, () => Array.from({ length: T + 1 }, () => rng.int(cfg.vocabSize)));
    const batch = batchFromRows(rows(), T);
    batch.targets[3] = -1;
    batch.mask = Float32Array.from({ length: B * T }, (_, i) => (i % 5 === 4 ? 0 : 1));
    const maxLogitDiff = maxAbsDiff(await a.logits(batch.inputs, B, T), await b.logits(batch.inputs, B, T));
    const maxLossDiff = maxAbsDiff(await a.tokenLosses(batch), await b.tokenLosses(batch));
    let trainLossRel = 0;
    let gradNormRel = 0;
    const hyper = { gradClip: 1, adamw: { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 } };
    for (let s = 0; s < 2; s++) {
      const micro = [batchFromRows(rows(), T), batchFromRows(rows(), T)];
      const [ra, rb] = [await trainStep(a, micro, hyper), await trainStep(b, micro, hyper)];
      trainLossRel = Math.max(trainLossRel, rel(ra.loss, rb.loss));
      gradNormRel = Math.max(gradNormRel, rel(ra.norm, rb.norm));
    }
    // the KV cache after training: a prefill of 5 positions and 3 single steps against the full logits
    const seq = batch.inputs.subarray(0, 8);
    const full = await a.logits(seq, 1, 8);
    const cache = a.createCache(1, 8);
    let decodeDiff = 0;
    try {
      const V = cfg.vocabSize;
      let last = await a.decodeStep(cache, seq.subarray(0, 5), 5);
      decodeDiff = maxAbsDiff(last, full.subarray(4 * V, 5 * V));
      for (let t = 5; t < 8; t++) {
        last = await a.decodeStep(cache, seq.subarray(t, t + 1), 1);
        decodeDiff = Math.max(decodeDiff, maxAbsDiff(last, full.subarray(t * V, (t + 1) * V)));
      }
    } finally {
      cache.dispose();
    }
    const tol = PARITY_TOLERANCE;
    const pass =
      maxLogitDiff < tol.logits &&
      maxLossDiff < tol.losses &&
      trainLossRel < tol.trainLossRel &&
      gradNormRel < tol.gradNormRel &&
      decodeDiff < tol.decode;
    const f = (x: number) => x.toExponential(1);
    const summary =
      `${pass ? 'pass' : 'FAIL'} against tfjs on a 2-layer check model: logits ${f(maxLogitDiff)}, token losses ${f(maxLossDiff)}, ` +
      `train loss ${f(trainLossRel)} rel, grad norm ${f(gradNormRel)} rel, KV cache vs full ${f(decodeDiff)}`;
    return { pass, summary, maxLogitDiff, maxLossDiff, trainLossRel, gradNormRel, decodeDiff };
  } finally {
    a.dispose();
    b.dispose();
  }
}
