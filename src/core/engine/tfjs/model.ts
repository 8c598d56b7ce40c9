import * as tf from '@tensorflow/tfjs';
import { ErrorCode, StudioError } from '../../../shared/errors';
import { paramSpecs, type GPTConfig, type ParamSpec } from '../../model/config';
import { checkParamTensor, type NamedTensors } from '../../tensors';
import type { AdamWHyper, Batch, KVCache, Model, OptimizerState } from '../types';
import { checkTokenBatch } from '../check';

/** Index of every parameter in the fixed order of paramSpecs. */
interface LayerParams {
  ln1w: tf.Tensor1D;
  ln1b: tf.Tensor1D;
  attnW: tf.Tensor2D;
  attnB: tf.Tensor1D; // (3C, C), (3C)
  projW: tf.Tensor2D;
  projB: tf.Tensor1D; // (C, C), (C)
  ln2w: tf.Tensor1D;
  ln2b: tf.Tensor1D;
  fcW: tf.Tensor2D;
  fcB: tf.Tensor1D; // (4C, C), (4C)
  fcProjW: tf.Tensor2D;
  fcProjB: tf.Tensor1D; // (C, 4C), (C)
}

interface Params {
  wte: tf.Tensor2D; // (Vp, C)
  wpe: tf.Tensor2D; // (maxT, C)
  layers: LayerParams[];
  lnfw: tf.Tensor1D;
  lnfb: tf.Tensor1D;
}

const PER_LAYER = 12;

/** Views a flat list of tensors (paramSpecs order) as named parameters. */
function structure(ps: tf.Tensor[], nLayer: number): Params {
  const layers: LayerParams[] = [];
  for (let l = 0; l < nLayer; l++) {
    const o = 2 + l * PER_LAYER;
    layers.push({
      ln1w: ps[o] as tf.Tensor1D,
      ln1b: ps[o + 1] as tf.Tensor1D,
      attnW: ps[o + 2] as tf.Tensor2D,
      attnB: ps[o + 3] as tf.Tensor1D,
      projW: ps[o + 4] as tf.Tensor2D,
      projB: ps[o + 5] as tf.Tensor1D,
      ln2w: ps[o + 6] as tf.Tensor1D,
      ln2b: ps[o + 7] as tf.Tensor1D,
      fcW: ps[o + 8] as tf.Tensor2D,
      fcB: ps[o + 9] as tf.Tensor1D,
      fcProjW: ps[o + 10] as tf.Tensor2D,
      fcProjB: ps[o + 11] as tf.Tensor1D,
    });
  }
  const f = 2 + nLayer * PER_LAYER;
  return {
    wte: ps[0] as tf.Tensor2D,
    wpe: ps[1] as tf.Tensor2D,
    layers,
    lnfw: ps[f] as tf.Tensor1D,
    lnfb: ps[f + 1] as tf.Tensor1D,
  };
}

/**
 * Embedding lookup whose gradient is a scatter-add into the table. TF.js's own gather gradient needs
 * UnsortedSegmentSum, which the wasm backend lacks; ScatterNd sums duplicate rows on every backend.
 */
function embed(table: tf.Tensor2D, ids: tf.Tensor1D): tf.Tensor2D {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const w = args[0] as tf.Tensor;
    return {
      value: tf.gather(w, ids),
      gradFunc: (dy: tf.Tensor | tf.Tensor[]) => tf.scatterND(tf.expandDims(ids, 1), dy as tf.Tensor, w.shape),
    };
  });
  return f(table) as tf.Tensor2D;
}

/** Row i's target logit position in the flattened (N*V) logits. */
function flatTargetIndex(N: number, V: number, targets: tf.Tensor1D): tf.Tensor1D {
  return tf.add(tf.mul(tf.range(0, N, 1, 'int32'), tf.scalar(V, 'int32')), targets);
}

/**
 * log-sum-exp of each row, from the softmax: lse = max - log(softmax at the max). The softmax at the max is
 * at least 1/V, so this never underflows, and it avoids a separate exp pass (slow on the wasm backend).
 * Returns the softmax too. logits (N, V) -> probs (N, V), lse (N).
 */
function softmaxLse(logits: tf.Tensor2D): { probs: tf.Tensor2D; lse: tf.Tensor1D } {
  const probs = tf.softmax(logits, -1) as tf.Tensor2D;
  const lse = tf.sub(tf.max(logits, 1), tf.log(tf.max(probs, 1))) as tf.Tensor1D;
  return { probs, lse };
}

/** Per-position cross-entropy of `targets` (no gradient). logits (N, V), targets (N) -> (N). */
function tokenCrossEntropy(logits: tf.Tensor2D, targets: tf.Tensor1D): tf.Tensor1D {
  const [N, V] = logits.shape;
  const { lse } = softmaxLse(logits);
  return tf.sub(lse, tf.gather(tf.reshape(logits, [N * V]), flatTargetIndex(N, V, targets))) as tf.Tensor1D;
}

/**
 * Mean cross-entropy over counted positions, fused: the gradient is (softmax - onehot) * w, computed directly
 * (a softmax scaled per row, then the target entries patched in place) instead of by autodiff through a
 * logsumexp, a gather and a one-hot.
 * logits (N, V); targets (N) int32 (0 where not counted); weights (N) = mask / count.
 */
function crossEntropy(logits: tf.Tensor2D, targets: tf.Tensor1D, weights: tf.Tensor1D): tf.Scalar {
  const [N, V] = logits.shape;
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const lg = args[0] as tf.Tensor2D;
    const { probs, lse } = softmaxLse(lg);
    (args[1] as tf.GradSaveFunc)([probs]);
    const flatIdx = flatTargetIndex(N, V, targets);
    const value = tf.sum(tf.mul(tf.sub(lse, tf.gather(tf.reshape(lg, [N * V]), flatIdx)), weights));
    return {
      value,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const w = tf.mul(weights, dy as tf.Tensor); // (N)
        const g = tf.mul(saved[0]!, tf.reshape(w, [N, 1])); // (N, V): softmax * w
        // tensors made in the forward function are gone by now (only `saved` survives): rebuild the indices
        const at = tf.stack([tf.range(0, N, 1, 'int32'), targets], 1); // (N, 2)
        const patched = tf.sub(tf.gather(tf.reshape(g, [N * V]), flatTargetIndex(N, V, targets)), w); // (softmax_t - 1) * w
        return tf.tensorScatterUpdate(g, at, patched);
      },
    };
  });
  return f(logits) as tf.Scalar;
}

/**
 * a (N, K) @ b (K, M) whose gradients use explicit transposes and plain matmuls: the wasm backend's
 * transposed-operand matmul is about 10x slower than transposing first.
 */
function mm(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const x = args[0] as tf.Tensor2D;
    const y = args[1] as tf.Tensor2D;
    // intermediate inputs are released after the forward pass unless saved
    (args[2] as tf.GradSaveFunc)([x, y]);
    return {
      value: tf.matMul(x, y),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const d = dy as tf.Tensor2D;
        return [tf.matMul(d, tf.transpose(saved[1]!)), tf.matMul(tf.transpose(saved[0]!), d)];
      },
    };
  });
  return f(a, b) as tf.Tensor2D;
}

function layerNorm(x: tf.Tensor2D, w: tf.Tensor1D, b: tf.Tensor1D, eps: number): tf.Tensor2D {
  const { mean, variance } = tf.moments(x, -1, true); // (N, 1) each, biased variance as PyTorch
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), w), b);
}

/** y = x W^T + b with W in (out, in) layout. x (N, in) -> (N, out). */
function linear(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D): tf.Tensor2D {
  return tf.add(mm(x, tf.transpose(w)), b);
}

const GELU_K = Math.sqrt(2 / Math.PI);
/** GELU with the tanh approximation (GPT-2's "gelu_new"). */
function gelu(x: tf.Tensor2D): tf.Tensor2D {
  const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), GELU_K);
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
}

/** A (B, nh, S, hs) view of (B*S, C). */
function heads(x: tf.Tensor2D, B: number, S: number, nh: number, hs: number): tf.Tensor4D {
  return tf.transpose(tf.reshape(x, [B, S, nh, hs]), [0, 2, 1, 3]);
}

interface TfjsCache extends KVCache {
  /** per layer: keys and values (B, nh, length, hs) */
  k: (tf.Tensor4D | null)[];
  v: (tf.Tensor4D | null)[];
  maxLength: number;
  length: number;
}

export class TfjsModel implements Model {
  readonly engine = 'tfjs';
  readonly config: GPTConfig;
  private readonly specs: ParamSpec[];
  private params: tf.Tensor[];
  private grads: tf.Tensor[] | null = null;
  private m: tf.Tensor[] | null = null;
  private v: tf.Tensor[] | null = null;
  private step = 0;
  /** additive causal masks (S, L) by key, 0 where visible and -1e9 where not */
  private masks = new Map<string, tf.Tensor2D>();
  private disposed = false;

  constructor(config: GPTConfig, weights: NamedTensors) {
    this.config = config;
    this.specs = paramSpecs(config);
    this.params = this.specs.map((s) => tf.tensor(checkParamTensor(weights, s).data, s.shape, 'float32'));
  }

  // ---- forward -------------------------------------------------------------------------------------------

  private mask(S: number, L: number): tf.Tensor2D {
    const key = `${S}x${L}`;
    let m = this.masks.get(key);
    if (!m) {
      // query i sits at absolute position L - S + i and may see keys 0..L-S+i
      const data = new Float32Array(S * L);
      for (let i = 0; i < S; i++) for (let j = 0; j < L; j++) data[i * L + j] = j <= L - S + i ? 0 : -1e9;
      m = tf.keep(tf.tensor2d(data, [S, L]));
      this.masks.set(key, m);
    }
    return m;
  }

  /**
   * The transformer over S new positions per row, starting at position `pos`. x (B*S, C) in, (B*S, C) out
   * after ln_f. With a cache, keys and values of earlier positions come from it and the new ones are appended.
   */
  private hidden(p: Params, ids: tf.Tensor1D, B: number, S: number, pos: number, cache?: TfjsCache): tf.Tensor2D {
    const { nHead: nh, nEmbd: C, layerNormEps: eps } = this.config;
    const hs = C / nh;
    const N = B * S;
    const tok = embed(p.wte, ids); // (B*S, C)
    const posEmb = tf.slice(p.wpe, [pos, 0], [S, C]); // (S, C)
    let x = tf.reshape(tf.add(tf.reshape(tok, [B, S, C]), posEmb), [N, C]) as tf.Tensor2D; // (B*S, C)
    const L = pos + S;
    const scale = 1 / Math.sqrt(hs);
    for (let l = 0; l < p.layers.length; l++) {
      const w = p.layers[l]!;
      // attention
      const h = layerNorm(x, w.ln1w, w.ln1b, eps);
      const qkv = linear(h, w.attnW, w.attnB); // (B*S, 3C)
      const [q2, k2, v2] = tf.split(qkv, 3, 1) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D]; // (B*S, C) each
      const q = heads(q2, B, S, nh, hs); // (B, nh, S, hs)
      let k = heads(k2, B, S, nh, hs);
      let v = heads(v2, B, S, nh, hs);
      if (cache) {
        const pk = cache.k[l];
        const pv = cache.v[l];
        if (pk && pv) {
          k = tf.concat([pk, k], 2); // (B, nh, L, hs)
          v = tf.concat([pv, v], 2);
        }
        cache.k[l] = tf.keep(k);
        cache.v[l] = tf.keep(v);
        if (pk) pk.dispose();
        if (pv) pv.dispose();
      }
      let att = tf.mul(tf.matMul(q, k, false, true), scale); // (B, nh, S, L)
      if (S > 1) att = tf.add(att, this.mask(S, L));
      att = tf.softmax(att, -1);
      const y = tf.matMul(att, v); // (B, nh, S, hs)
      const yc = tf.reshape(tf.transpose(y, [0, 2, 1, 3]), [N, C]) as tf.Tensor2D; // (B*S, C)
      x = tf.add(x, linear(yc, w.projW, w.projB));
      // MLP
      const h2 = layerNorm(x, w.ln2w, w.ln2b, eps);
      const f = gelu(linear(h2, w.fcW, w.fcB)); // (B*S, 4C)
      x = tf.add(x, linear(f, w.fcProjW, w.fcProjB));
    }
    return layerNorm(x, p.lnfw, p.lnfb, eps);
  }

  /** Logits over the real vocabulary only: padded rows of wte never become logits. (N, C) -> (N, V) */
  private head(p: Params, x: tf.Tensor2D): tf.Tensor2D {
    const { vocabSize: V, paddedVocabSize: Vp, nEmbd: C } = this.config;
    const w = Vp === V ? p.wte : tf.slice(p.wte, [0, 0], [V, C]);
    return mm(x, tf.transpose(w));
  }

  private checkBatch(B: number, T: number, ids: Int32Array, what: 'inputs' | 'targets' = 'inputs'): void {
    checkTokenBatch(this.config, B, T, ids, what);
  }

  /** Targets with ignored positions set to 0, and weights mask/count. */
  private lossWeights(batch: Batch): { targets: Int32Array; weights: Float32Array; count: number } {
    const n = batch.B * batch.T;
    const targets = new Int32Array(n);
    const weights = new Float32Array(n);
    let count = 0;
    for (let i = 0; i < n; i++) {
      const t = batch.targets[i]!;
      const on = t >= 0 && (!batch.mask || batch.mask[i] !== 0);
      if (on) {
        targets[i] = t;
        weights[i] = 1;
        count++;
      }
    }
    if (count > 0) for (let i = 0; i < n; i++) weights[i]! /= count;
    return { targets, weights, count };
  }

  // ---- training ------------------------------------------------------------------------------------------

  async forwardBackward(batch: Batch, lossScale: number): Promise<number> {
    this.assertLive();
    const { B, T } = batch;
    this.checkBatch(B, T, batch.inputs);
    this.checkBatch(B, T, batch.targets, 'targets');
    const { targets, weights, count } = this.lossWeights(batch);
    if (count === 0) return 0;
    const nl = this.config.nLayer;
    const out = tf.tidy(() => {
      const ids = tf.tensor1d(batch.inputs, 'int32');
      const tgt = tf.tensor1d(targets, 'int32');
      const w = tf.tensor1d(weights, 'float32');
      const lossFn = (...ps: tf.Tensor[]): tf.Scalar => {
        const p = structure(ps, nl);
        return crossEntropy(this.head(p, this.hidden(p, ids, B, T, 0)), tgt, w);
      };
      const { value, grads } = tf.valueAndGrads(lossFn)(this.params, tf.scalar(lossScale));
      if (!this.grads) return { value, grads };
      return { value, grads: grads.map((g, i) => tf.add(this.grads![i]!, g)) };
    });
    if (this.grads) for (const g of this.grads) g.dispose();
    this.grads = out.grads;
    const loss = (await out.value.data())[0]!;
    out.value.dispose();
    return loss;
  }

  zeroGrad(): void {
    if (this.grads) for (const g of this.grads) g.dispose();
    this.grads = null;
  }

  async gradNorm(): Promise<number> {
    this.assertLive();
    if (!this.grads) return 0;
    const grads = this.grads;
    const sq = tf.tidy(() => tf.addN(grads.map((g) => tf.sum(tf.square(g)))));
    const v = (await sq.data())[0]!;
    sq.dispose();
    return Math.sqrt(v);
  }

  scaleGrads(factor: number): void {
    if (!this.grads) return;
    const old = this.grads;
    this.grads = tf.tidy(() => old.map((g) => tf.mul(g, factor)));
    for (const g of old) g.dispose();
  }

  adamwStep(h: AdamWHyper): void {
    this.assertLive();
    if (!this.grads) this.grads = this.params.map((p) => tf.zerosLike(p));
    if (!this.m || !this.v) {
      this.m = this.params.map((p) => tf.zerosLike(p));
      this.v = this.params.map((p) => tf.zerosLike(p));
    }
    this.step++;
    const bc1 = 1 - h.beta1 ** this.step;
    const bc2 = 1 - h.beta2 ** this.step;
    const stepSize = h.lr / bc1;
    const bc2Sqrt = Math.sqrt(bc2);
    const m = this.m;
    const v = this.v;
    const grads = this.grads;
    const next = tf.tidy(() =>
      this.params.map((p, i): [tf.Tensor, tf.Tensor, tf.Tensor] => {
        const g = grads[i]!;
        // torch.optim.AdamW: decoupled decay first, then the Adam moments and the bias-corrected update
        const decayed = this.specs[i]!.decay && h.weightDecay !== 0 ? tf.mul(p, 1 - h.lr * h.weightDecay) : p;
        const m1 = tf.add(tf.mul(m[i]!, h.beta1), tf.mul(g, 1 - h.beta1));
        const v1 = tf.add(tf.mul(v[i]!, h.beta2), tf.mul(tf.square(g), 1 - h.beta2));
        const denom = tf.add(tf.div(tf.sqrt(v1), bc2Sqrt), h.eps);
        const p1 = tf.sub(decayed, tf.mul(tf.div(m1, denom), stepSize));
        return [p1, m1, v1];
      }),
    );
    for (let i = 0; i < this.params.length; i++) {
      this.params[i]!.dispose();
      m[i]!.dispose();
      v[i]!.dispose();
      [this.params[i], m[i], v[i]] = next[i]!;
    }
  }

  // ---- evaluation ----------------------------------------------------------------------------------------

  async logits(inputs: Int32Array, B: number, T: number): Promise<Float32Array> {
    this.assertLive();
    this.checkBatch(B, T, inputs);
    const out = tf.tidy(() => {
      const p = structure(this.params, this.config.nLayer);
      return this.head(p, this.hidden(p, tf.tensor1d(inputs, 'int32'), B, T, 0));
    });
    const data = (await out.data()) as Float32Array;
    out.dispose();
    return data;
  }

  async tokenLosses(batch: Batch): Promise<Float32Array> {
    this.assertLive();
    const { B, T } = batch;
    this.checkBatch(B, T, batch.inputs);
    this.checkBatch(B, T, batch.targets, 'targets');
    const { targets, weights } = this.lossWeights(batch);
    const N = B * T;
    const out = tf.tidy(() => {
      const p = structure(this.params, this.config.nLayer);
      const lg = this.head(p, this.hidden(p, tf.tensor1d(batch.inputs, 'int32'), B, T, 0));
      return tokenCrossEntropy(lg, tf.tensor1d(targets, 'int32'));
    });
    const data = (await out.data()) as Float32Array;
    out.dispose();
    const res = new Float32Array(data);
    for (let i = 0; i < N; i++) if (weights[i] === 0) res[i] = NaN;
    return res;
  }

  // ---- sampling ------------------------------------------------------------------------------------------

  createCache(batchSize: number, maxLength = this.config.blockSize): KVCache {
    const n = this.config.nLayer;
    const cache: TfjsCache = {
      batchSize,
      length: 0,
      maxLength: Math.min(maxLength, this.config.blockSize),
      k: new Array(n).fill(null),
      v: new Array(n).fill(null),
      dispose() {
        for (const t of [...cache.k, ...cache.v]) t?.dispose();
        cache.k.fill(null);
        cache.v.fill(null);
      },
    };
    return cache;
  }

  async decodeStep(cacheIn: KVCache, tokens: Int32Array, S = 1): Promise<Float32Array> {
    this.assertLive();
    const cache = cacheIn as TfjsCache;
    const B = cache.batchSize;
    if (cache.length + S > cache.maxLength) {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `The KV cache holds ${cache.maxLength} positions; ${cache.length} are used and ${S} more were fed.`,
        'Start a new cache, or generate fewer tokens (the model context is the limit).',
      );
    }
    this.checkBatch(B, S, tokens);
    const pos = cache.length;
    const { nEmbd: C, vocabSize: V } = this.config;
    const out = tf.tidy(() => {
      const p = structure(this.params, this.config.nLayer);
      const x = this.hidden(p, tf.tensor1d(tokens, 'int32'), B, S, pos, cache); // (B*S, C)
      const last = S === 1 ? x : tf.reshape(tf.slice(tf.reshape(x, [B, S, C]), [0, S - 1, 0], [B, 1, C]), [B, C]);
      return this.head(p, last as tf.Tensor2D); // (B, V)
    });
    cache.length += S;
    const data = (await out.data()) as Float32Array;
    out.dispose();
    if (data.length !== B * V)
      throw new StudioError(ErrorCode.INTERNAL, `decode produced ${data.length} logits, expected ${B * V}.`);
    return data;
  }

  // ---- state ---------------------------------------------------------------------------------------------

  private toHost(ts: tf.Tensor[]): NamedTensors {
    const out: NamedTensors = new Map();
    this.specs.forEach((s, i) => out.set(s.name, { shape: [...s.shape], data: ts[i]!.dataSync() as Float32Array }));
    return out;
  }

  async exportWeights(): Promise<NamedTensors> {
    this.assertLive();
    return this.toHost(this.params);
  }

  loadWeights(w: NamedTensors): void {
    this.assertLive();
    const next = this.specs.map((s) => tf.tensor(checkParamTensor(w, s).data, s.shape, 'float32'));
    for (const p of this.params) p.dispose();
    this.params = next;
  }

  async exportOptimizerState(): Promise<OptimizerState> {
    this.assertLive();
    const zeros = () => this.toHost(this.params.map((p) => tf.zerosLike(p)));
    return {
      step: this.step,
      m: this.m ? this.toHost(this.m) : zeros(),
      v: this.v ? this.toHost(this.v) : zeros(),
    };
  }

  loadOptimizerState(s: OptimizerState): void {
    this.assertLive();
    const m = this.specs.map((sp) => tf.tensor(checkParamTensor(s.m, sp, 'optimizer m').data, sp.shape, 'float32'));
    const v = this.specs.map((sp) => tf.tensor(checkParamTensor(s.v, sp, 'optimizer v').data, sp.shape, 'float32'));
    for (const t of [...(this.m ?? []), ...(this.v ?? [])]) t.dispose();
    this.m = m;
    this.v = v;
    this.step = s.step;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const t of [
      ...this.params,
      ...(this.grads ?? []),
      ...(this.m ?? []),
      ...(this.v ?? []),
      ...this.masks.values(),
    ])
      t.dispose();
    this.masks.clear();
  }

  private assertLive(): void {
    if (this.disposed) throw new StudioError(ErrorCode.INTERNAL, 'This model was disposed.', 'Create a new model.');
  }
}
