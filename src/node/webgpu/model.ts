/**
 * GPT-2 on WebGPU: the Model interface of src/core/engine/types.ts over the WGSL kernels of kernels.ts. Parameters,
 * gradients and AdamW's m and v each live in one buffer (every tensor 256-byte aligned); activations are
 * preallocated per batch shape; the logits and cross-entropy run in chunks of rows, and the token embedding is bound
 * in slices of rows, so that no binding passes the adapter's maxStorageBufferBindingSize.
 */
import { ErrorCode, StudioError } from '../../shared/errors';
import { numel, paramSpecs, type GPTConfig, type ParamSpec } from '../../core/model/config';
import { checkParamTensor, type NamedTensors } from '../../core/tensors';
import type { AdamWHyper, Batch, KVCache, Model, OptimizerState } from '../../core/engine/types';
import { checkTokenBatch } from '../../core/engine/check';
import { GpuContext, type Binding } from './context';
import type { Gpu } from './gpu';
import * as K from './kernels';

/** "206 MiB", "120 KiB" */
const size = (bytes: number): string =>
  bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(0)} MiB` : `${(bytes / 1024).toFixed(0)} KiB`;

/** Floats per alignment unit: 64 floats = 256 bytes, the largest storage offset alignment adapters ask for. */
const ALIGN = 64;
const alignUp = (n: number, a = ALIGN): number => Math.ceil(n / a) * a;

/** How the classifier is cut so that no binding passes `maxBinding` bytes. */
export interface ClassifierPlan {
  /** rows of logits per chunk (chunk buffer: rows x V floats) */
  rows: number;
  /** token-embedding rows per binding (a multiple of 64) */
  vocabSlice: number;
  /** chunks for N rows, and slices of the vocabulary */
  chunks: number;
  slices: number;
}

export function classifierPlan(N: number, V: number, Vp: number, C: number, maxBinding: number): ClassifierPlan {
  const rows = Math.min(N, Math.floor(maxBinding / (V * 4)));
  let vocabSlice = Math.floor(maxBinding / (C * 4 * ALIGN)) * ALIGN;
  if (vocabSlice >= Vp) vocabSlice = Vp;
  if (rows < 1 || vocabSlice < 1) {
    throw new StudioError(
      ErrorCode.ENGINE_UNAVAILABLE,
      `native-webgpu: one row of ${V} logits (${V * 4} bytes) or 64 embedding rows pass this adapter's storage binding limit of ${maxBinding} bytes.`,
      'Use an adapter with larger limits, or --engine native-cpu.',
    );
  }
  return { rows, vocabSlice, chunks: Math.ceil(N / rows), slices: Math.ceil(V / vocabSlice) };
}

interface LayerActs {
  ln1: Gpu;
  ln1Mean: Gpu;
  ln1Rstd: Gpu;
  qkv: Gpu;
  atty: Gpu;
  lse: Gpu;
  attproj: Gpu;
  res2: Gpu;
  ln2: Gpu;
  ln2Mean: Gpu;
  ln2Rstd: Gpu;
  fch: Gpu;
  fchGelu: Gpu;
  fcproj: Gpu;
  res3: Gpu;
}

interface Grads {
  dres: Gpu;
  dtmp: Gpu;
  dqkv: Gpu;
  dfch: Gpu;
  dfchGelu: Gpu;
  D: Gpu;
}

/** Activations of one (B, T) shape. */
interface Acts {
  B: number;
  T: number;
  plan: ClassifierPlan;
  inputs: Gpu;
  targets: Gpu;
  weights: Gpu;
  encoded: Gpu;
  layers: LayerActs[];
  lnf: Gpu;
  lnfMean: Gpu;
  lnfRstd: Gpu;
  logits: Gpu;
  losses: Gpu;
  /** the last position's final layernorm of each row (decoding) */
  last: Gpu;
  grads: Grads | null;
  all: Gpu[];
}

interface WebGpuCache extends KVCache {
  owner: WebGpuModel;
  maxLength: number;
  buffer: Gpu;
  /** floats per layer (aligned) */
  layerStride: number;
  len: number;
  disposed: boolean;
}

export interface WebGpuModelOptions {
  /** a lower binding limit than the adapter's (tests of the chunked paths) */
  maxBindingBytes?: number;
  /** time every dispatch with timestamp queries (the bench) */
  profile?: boolean;
  /** for tests of a lost device: destroy the device after this many forward-backward passes */
  loseAfter?: number;
  /** matmul operands in fp32 (default) or f16 (shader-f16; fp32 accumulation and master weights) */
  precision?: 'fp32' | 'fp16';
}

export class WebGpuModel implements Model {
  readonly engine = 'native-webgpu';
  readonly config: GPTConfig;
  readonly gpu: GpuContext;
  private readonly specs: ParamSpec[];
  /** float offset of each tensor in the parameter-shaped buffers */
  private readonly offsets: number[];
  private readonly total: number;
  private readonly index = new Map<string, number>();
  private readonly params: Gpu;
  private grads: Gpu | null = null;
  private m: Gpu | null = null;
  private v: Gpu | null = null;
  private partial: Gpu | null = null;
  private readonly acts = new Map<string, Acts>();
  private step = 0;
  private passes = 0;
  private tail: Promise<unknown> = Promise.resolve();
  private disposed = false;
  private readonly mm: ReturnType<typeof matmulKernels>;

  constructor(
    device: Gpu,
    config: GPTConfig,
    weights: NamedTensors,
    maxBinding: number,
    private readonly opts: WebGpuModelOptions = {},
  ) {
    this.config = config;
    const hs = config.nEmbd / config.nHead;
    if (!Number.isInteger(hs) || hs > 128) {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `native-webgpu: a head size of ${hs} (n_embd ${config.nEmbd} / n_head ${config.nHead}) is not supported; it takes head sizes up to 128.`,
        'Choose n_head so that n_embd / n_head is a whole number of at most 128.',
      );
    }
    this.gpu = new GpuContext(device, Math.min(maxBinding, opts.maxBindingBytes ?? Infinity), opts.profile);
    this.mm = MATMULS[opts.precision ?? 'fp32'];
    this.specs = paramSpecs(config);
    this.offsets = [];
    let o = 0;
    this.specs.forEach((s, i) => {
      this.index.set(s.name, i);
      this.offsets.push(o);
      o = alignUp(o + numel(s.shape));
    });
    this.total = o;
    const maxBuffer = Number(device.limits?.maxBufferSize ?? Infinity);
    if (this.total * 4 > maxBuffer) {
      throw new StudioError(
        ErrorCode.OUT_OF_MEMORY,
        `native-webgpu: the parameters take ${(this.total * 4) / 2 ** 20} MiB, more than this adapter's largest buffer (${maxBuffer / 2 ** 20} MiB).`,
        'Use a smaller model, or --engine native-cpu.',
      );
    }
    // every tensor but the token embedding (bound in slices) must fit one binding
    for (const s of this.specs) {
      if (s.name !== 'wte.weight' && numel(s.shape) * 4 > this.gpu.maxBinding) {
        throw new StudioError(
          ErrorCode.ENGINE_UNAVAILABLE,
          `native-webgpu: ${s.name} (${numel(s.shape) * 4} bytes) passes this adapter's storage binding limit of ${this.gpu.maxBinding} bytes.`,
          'Use a smaller model, or --engine native-cpu.',
        );
      }
    }
    this.params = this.gpu.buffer(this.total * 4, 'the parameters');
    this.loadWeights(weights);
  }

  // ---- plumbing --------------------------------------------------------------------------------------------------

  private live(): void {
    if (this.disposed) throw new StudioError(ErrorCode.INTERNAL, 'This model was disposed.', 'Create a new model.');
    this.gpu.check();
  }

  /** Runs asynchronous calls one after another, as the other engines do. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(() => {
      this.live();
      return fn();
    });
    this.tail = run.catch(() => undefined);
    return run;
  }

  private t(name: string): number {
    return this.index.get(name)!;
  }

  /** A tensor's range of a parameter-shaped buffer. */
  private bind(buf: Gpu, name: string): Binding {
    const i = this.t(name);
    return { buffer: buf, offset: this.offsets[i]! * 4, size: numel(this.specs[i]!.shape) * 4 };
  }

  /** Slices of the token embedding's rows: [v0, count, binding] for each, every binding within the limit. */
  private wteSlices(buf: Gpu, plan: ClassifierPlan, rowsTotal: number): [number, number, Binding][] {
    const C = this.config.nEmbd;
    const off = this.offsets[this.t('wte.weight')]! * 4;
    const out: [number, number, Binding][] = [];
    for (let v0 = 0; v0 < rowsTotal; v0 += plan.vocabSlice) {
      const n = Math.min(plan.vocabSlice, rowsTotal - v0);
      out.push([v0, n, { buffer: buf, offset: off + v0 * C * 4, size: n * C * 4 }]);
    }
    return out;
  }

  private ensure(which: 'grads' | 'm' | 'v'): Gpu {
    let b = this[which];
    if (!b) {
      b = this.gpu.buffer(this.total * 4, which === 'grads' ? 'the gradients' : `AdamW ${which}`);
      this.gpu.clear(b);
      this[which] = b;
    }
    return b;
  }

  private actsFor(B: number, T: number, training: boolean): Acts {
    const key = `${B}x${T}`;
    let a = this.acts.get(key);
    if (!a) {
      // keep at most two shapes: the training one (with gradients) stays while another shape is needed
      if (this.acts.size >= 2) {
        const entries = [...this.acts];
        const [k, old] = entries.find(([, x]) => !x.grads) ?? entries[0]!;
        old.all.forEach((x) => x.destroy());
        this.acts.delete(k);
      }
      a = this.allocActs(B, T);
      this.acts.set(key, a);
    }
    if (training && !a.grads) a.grads = this.allocGrads(a);
    return a;
  }

  private allocActs(B: number, T: number): Acts {
    const { nEmbd: C, nLayer: L, nHead: NH, vocabSize: V, paddedVocabSize: Vp } = this.config;
    const N = B * T;
    const largest = N * 4 * C * 4;
    if (largest > this.gpu.maxBinding) {
      const fit = Math.floor(this.gpu.maxBinding / (T * 4 * C * 4));
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `native-webgpu: a micro-batch of ${B} x ${T} positions needs ${size(largest)} for one MLP activation, more than this adapter binds at once (${size(this.gpu.maxBinding)}).`,
        fit >= 1
          ? `Use batch_size ${fit} or less (total_batch_size stays: gradient accumulation makes up the rest).`
          : 'Use a shorter seq_len or a smaller model.',
      );
    }
    const all: Gpu[] = [];
    const f = (n: number, what: string): Gpu => {
      const b = this.gpu.buffer(n * 4, what);
      all.push(b);
      return b;
    };
    const plan = classifierPlan(N, V, Vp, C, this.gpu.maxBinding);
    const layers: LayerActs[] = [];
    for (let l = 0; l < L; l++) {
      layers.push({
        ln1: f(N * C, 'activations'),
        ln1Mean: f(N, 'activations'),
        ln1Rstd: f(N, 'activations'),
        qkv: f(N * 3 * C, 'activations'),
        atty: f(N * C, 'activations'),
        lse: f(B * NH * T, 'activations'),
        attproj: f(N * C, 'activations'),
        res2: f(N * C, 'activations'),
        ln2: f(N * C, 'activations'),
        ln2Mean: f(N, 'activations'),
        ln2Rstd: f(N, 'activations'),
        fch: f(N * 4 * C, 'activations'),
        fchGelu: f(N * 4 * C, 'activations'),
        fcproj: f(N * C, 'activations'),
        res3: f(N * C, 'activations'),
      });
    }
    return {
      B,
      T,
      plan,
      inputs: f(N, 'inputs'),
      targets: f(N, 'targets'),
      weights: f(N, 'loss weights'),
      encoded: f(N * C, 'activations'),
      layers,
      lnf: f(N * C, 'activations'),
      lnfMean: f(N, 'activations'),
      lnfRstd: f(N, 'activations'),
      logits: f(plan.rows * V, 'the logits'),
      losses: f(N, 'losses'),
      last: f(B * C, 'activations'),
      grads: null,
      all,
    };
  }

  private allocGrads(a: Acts): Grads {
    const { nEmbd: C, nHead: NH } = this.config;
    const N = a.B * a.T;
    const f = (n: number): Gpu => {
      const b = this.gpu.buffer(n * 4, 'activation gradients');
      a.all.push(b);
      return b;
    };
    return {
      dres: f(N * C),
      dtmp: f(N * C),
      dqkv: f(N * 3 * C),
      dfch: f(N * 4 * C),
      dfchGelu: f(N * 4 * C),
      D: f(a.B * NH * a.T),
    };
  }

  /** Uploads token ids, and the targets with their loss weights (1/count where counted, as the CPU engine). */
  private upload(a: Acts, inputs: Int32Array, targets?: Int32Array, mask?: Float32Array): Float32Array {
    this.gpu.write(a.inputs, 0, inputs);
    const N = inputs.length;
    if (!targets) return new Float32Array(N);
    const tg = new Int32Array(N);
    const w = new Float32Array(N);
    let count = 0;
    for (let i = 0; i < N; i++) {
      const on = targets[i]! >= 0 && (!mask || mask[i] !== 0);
      tg[i] = on ? targets[i]! : -1;
      w[i] = on ? 1 : 0;
      if (on) count++;
    }
    if (count > 0) for (let i = 0; i < N; i++) w[i]! /= count;
    this.gpu.write(a.targets, 0, tg);
    this.gpu.write(a.weights, 0, w);
    return w;
  }

  // ---- layers ----------------------------------------------------------------------------------------------------

  private matmulForward(out: Gpu, inp: Gpu, w: string, b: string, N: number, IC: number, OC: number): void {
    this.gpu.dispatch(
      this.mm.fwd,
      { M: N, N: OC, K: IC, lda: IC, ldb: IC, ldc: OC, offA: 0, offB: 0, offC: 0, offBias: 0 },
      [{ buffer: out }, { buffer: inp }, this.bind(this.params, w), this.bind(this.params, b)],
      [Math.ceil(OC / 64), Math.ceil(N / 64)],
    );
  }

  /** dinp = dout @ W; dW += dout^T @ inp; db += column sums of dout. */
  private matmulBackward(
    dinp: Gpu,
    dout: Gpu,
    inp: Gpu,
    w: string,
    b: string,
    N: number,
    IC: number,
    OC: number,
  ): void {
    const g = this.grads!;
    this.gpu.dispatch(
      this.mm.nn,
      { M: N, N: IC, K: OC, lda: OC, ldb: IC, ldc: IC, offA: 0, offB: 0, offC: 0, offBias: 0 },
      [{ buffer: dinp }, { buffer: dout }, this.bind(this.params, w)],
      [Math.ceil(IC / 64), Math.ceil(N / 64)],
    );
    this.gpu.dispatch(
      this.mm.tnAcc,
      { M: OC, N: IC, K: N, lda: OC, ldb: IC, ldc: IC, offA: 0, offB: 0, offC: 0, offBias: 0 },
      [this.bind(g, w), { buffer: dout }, { buffer: inp }],
      [Math.ceil(IC / 64), Math.ceil(OC / 64)],
    );
    this.gpu.dispatchFlat(K.biasBackward, { N, C: OC }, [this.bind(g, b), { buffer: dout }], OC);
  }

  private layernorm(out: Gpu, mean: Gpu, rstd: Gpu, inp: Gpu, prefix: string, N: number): void {
    const C = this.config.nEmbd;
    const gx = Math.min(N, K_GRID);
    this.gpu.dispatch(
      K.layernormForward,
      { N, C, eps: this.config.layerNormEps },
      [
        { buffer: out },
        { buffer: mean },
        { buffer: rstd },
        { buffer: inp },
        this.bind(this.params, prefix + '.weight'),
        this.bind(this.params, prefix + '.bias'),
      ],
      [gx, Math.ceil(N / gx)],
    );
  }

  private layernormBackward(dinp: Gpu, dout: Gpu, inp: Gpu, mean: Gpu, rstd: Gpu, prefix: string, N: number): void {
    const C = this.config.nEmbd;
    const gx = Math.min(N, K_GRID);
    const g = this.grads!;
    this.gpu.dispatch(
      K.layernormBackwardInput,
      { N, C },
      [
        { buffer: dinp },
        { buffer: dout },
        { buffer: inp },
        this.bind(this.params, prefix + '.weight'),
        { buffer: mean },
        { buffer: rstd },
      ],
      [gx, Math.ceil(N / gx)],
    );
    this.gpu.dispatchFlat(
      K.layernormBackwardParams,
      { N, C },
      [
        this.bind(g, prefix + '.weight'),
        this.bind(g, prefix + '.bias'),
        { buffer: dout },
        { buffer: inp },
        { buffer: mean },
        { buffer: rstd },
      ],
      C,
    );
  }

  /**
   * The transformer up to the final layernorm, over B x S positions starting at pos0. With a cache, each layer's
   * keys and values are appended to it and attention reads every cached position.
   */
  private forwardHidden(a: Acts, B: number, S: number, cache?: WebGpuCache): void {
    const { nEmbd: C, nLayer: L, nHead: NH, paddedVocabSize: Vp } = this.config;
    const HS = C / NH;
    const N = B * S;
    const pos0 = cache ? cache.len : 0;
    this.wteSlices(this.params, a.plan, Vp).forEach(([v0, n, wte], i) => {
      this.gpu.dispatchFlat(
        K.encoderForward,
        { N, T: S, C, pos0, v0, vCount: n, first: i === 0 ? 1 : 0 },
        [{ buffer: a.encoded }, { buffer: a.inputs }, wte, this.bind(this.params, 'wpe.weight')],
        N * C,
      );
    });
    const attn = attentionKernels(HS);
    for (let l = 0; l < L; l++) {
      const x = a.layers[l]!;
      const p = `h.${l}.`;
      const residual = l === 0 ? a.encoded : a.layers[l - 1]!.res3;
      this.layernorm(x.ln1, x.ln1Mean, x.ln1Rstd, residual, p + 'ln_1', N);
      this.matmulForward(x.qkv, x.ln1, p + 'attn.c_attn.weight', p + 'attn.c_attn.bias', N, C, 3 * C);
      let kv: Binding = { buffer: x.qkv };
      let kvShape = { kvRows: S, kvStride: 3 * C, kOff: C, vOff: 2 * C };
      if (cache) {
        kv = { buffer: cache.buffer, offset: l * cache.layerStride * 4, size: B * cache.maxLength * 2 * C * 4 };
        this.gpu.dispatchFlat(
          K.cacheAppend,
          { B, S, C, maxLen: cache.maxLength, pos0 },
          [kv, { buffer: x.qkv }],
          N * 2 * C,
        );
        kvShape = { kvRows: cache.maxLength, kvStride: 2 * C, kOff: 0, vOff: C };
      }
      this.gpu.dispatch(
        attn.forward,
        { B, S, NH, C, pos0, ...kvShape, scale: 1 / Math.sqrt(HS) },
        [{ buffer: x.atty }, { buffer: x.lse }, { buffer: x.qkv }, kv],
        [Math.ceil(S / K.ATTN_ROWS), NH, B],
      );
      this.matmulForward(x.attproj, x.atty, p + 'attn.c_proj.weight', p + 'attn.c_proj.bias', N, C, C);
      this.gpu.dispatchFlat(
        K.residualForward,
        { n: N * C },
        [{ buffer: x.res2 }, { buffer: residual }, { buffer: x.attproj }],
        N * C,
      );
      this.layernorm(x.ln2, x.ln2Mean, x.ln2Rstd, x.res2, p + 'ln_2', N);
      this.matmulForward(x.fch, x.ln2, p + 'mlp.c_fc.weight', p + 'mlp.c_fc.bias', N, C, 4 * C);
      this.gpu.dispatchFlat(K.geluForward, { n: N * 4 * C }, [{ buffer: x.fchGelu }, { buffer: x.fch }], N * 4 * C);
      this.matmulForward(x.fcproj, x.fchGelu, p + 'mlp.c_proj.weight', p + 'mlp.c_proj.bias', N, 4 * C, C);
      this.gpu.dispatchFlat(
        K.residualForward,
        { n: N * C },
        [{ buffer: x.res3 }, { buffer: x.res2 }, { buffer: x.fcproj }],
        N * C,
      );
    }
    this.layernorm(a.lnf, a.lnfMean, a.lnfRstd, a.layers[L - 1]!.res3, 'ln_f', N);
  }

  /** logits[0:rows, :] = src[off rows] @ wte[:V]^T, one vocabulary slice at a time. */
  private classifierChunk(a: Acts, src: Gpu, n0: number, rows: number): void {
    const { nEmbd: C, vocabSize: V } = this.config;
    for (const [v0, n, wte] of this.wteSlices(this.params, a.plan, V)) {
      this.gpu.dispatch(
        this.mm.nt,
        { M: rows, N: n, K: C, lda: C, ldb: C, ldc: V, offA: n0 * C, offB: 0, offC: v0, offBias: 0 },
        [{ buffer: a.logits }, { buffer: src }, wte],
        [Math.ceil(n / 64), Math.ceil(rows / 64)],
      );
    }
  }

  /** The logits of the first `n` rows of `src`, a chunk of rows at a time. */
  private async readLogits(a: Acts, src: Gpu, n: number): Promise<Float32Array> {
    const V = this.config.vocabSize;
    const out = new Float32Array(n * V);
    for (let n0 = 0; n0 < n; n0 += a.plan.rows) {
      const rows = Math.min(a.plan.rows, n - n0);
      this.classifierChunk(a, src, n0, rows);
      out.set(await this.gpu.readF32(a.logits, 0, rows * V), n0 * V);
    }
    return out;
  }

  private crossEntropy(a: Acts, n0: number, rows: number, grad: boolean, scale: number): void {
    const gx = Math.min(rows, K_GRID);
    this.gpu.dispatch(
      K.crossEntropy,
      { rows, V: this.config.vocabSize, n0, grad: grad ? 1 : 0, scale },
      [{ buffer: a.logits }, { buffer: a.losses }, { buffer: a.targets }, { buffer: a.weights }],
      [gx, Math.ceil(rows / gx)],
    );
  }

  /** Backward of the classifier chunk: dlnf rows = dlogits @ wte; dwte += dlogits^T @ lnf rows. */
  private classifierBackward(a: Acts, dlnf: Gpu, n0: number, rows: number): void {
    const { nEmbd: C, vocabSize: V } = this.config;
    const wtes = this.wteSlices(this.params, a.plan, V);
    const dwtes = this.wteSlices(this.grads!, a.plan, V);
    wtes.forEach(([v0, n, wte], i) => {
      this.gpu.dispatch(
        i === 0 ? this.mm.nn : this.mm.nnAcc,
        { M: rows, N: C, K: n, lda: V, ldb: C, ldc: C, offA: v0, offB: 0, offC: n0 * C, offBias: 0 },
        [{ buffer: dlnf }, { buffer: a.logits }, wte],
        [Math.ceil(C / 64), Math.ceil(rows / 64)],
      );
      this.gpu.dispatch(
        this.mm.tnAcc,
        { M: n, N: C, K: rows, lda: V, ldb: C, ldc: C, offA: v0, offB: n0 * C, offC: 0, offBias: 0 },
        [dwtes[i]![2], { buffer: a.logits }, { buffer: a.lnf }],
        [Math.ceil(C / 64), Math.ceil(n / 64)],
      );
    });
  }

  private backward(a: Acts): void {
    const { nEmbd: C, nLayer: L, nHead: NH, paddedVocabSize: Vp } = this.config;
    const HS = C / NH;
    const { B, T } = a;
    const N = B * T;
    const g = a.grads!;
    const grads = this.grads!;
    const attn = attentionKernels(HS);
    // dtmp holds dlnf (written by the classifier's backward); dres is the residual stream's gradient
    this.gpu.clear(g.dres);
    this.layernormBackward(g.dres, g.dtmp, a.layers[L - 1]!.res3, a.lnfMean, a.lnfRstd, 'ln_f', N);
    for (let l = L - 1; l >= 0; l--) {
      const x = a.layers[l]!;
      const p = `h.${l}.`;
      const residual = l === 0 ? a.encoded : a.layers[l - 1]!.res3;
      this.matmulBackward(g.dfchGelu, g.dres, x.fchGelu, p + 'mlp.c_proj.weight', p + 'mlp.c_proj.bias', N, 4 * C, C);
      this.gpu.dispatchFlat(
        K.geluBackward,
        { n: N * 4 * C },
        [{ buffer: g.dfch }, { buffer: x.fch }, { buffer: g.dfchGelu }],
        N * 4 * C,
      );
      this.matmulBackward(g.dtmp, g.dfch, x.ln2, p + 'mlp.c_fc.weight', p + 'mlp.c_fc.bias', N, C, 4 * C);
      this.layernormBackward(g.dres, g.dtmp, x.res2, x.ln2Mean, x.ln2Rstd, p + 'ln_2', N);
      this.matmulBackward(g.dtmp, g.dres, x.atty, p + 'attn.c_proj.weight', p + 'attn.c_proj.bias', N, C, C);
      const shape = { B, T, NH, C, scale: 1 / Math.sqrt(HS) };
      this.gpu.dispatchFlat(
        K.attentionBackwardD,
        shape,
        [{ buffer: g.D }, { buffer: x.atty }, { buffer: g.dtmp }],
        B * NH * T,
      );
      const grid: [number, number, number] = [Math.ceil(T / K.ATTN_ROWS), NH, B];
      const bindings = [{ buffer: g.dqkv }, { buffer: x.qkv }, { buffer: g.dtmp }, { buffer: x.lse }, { buffer: g.D }];
      this.gpu.dispatch(attn.backwardQ, shape, bindings, grid);
      this.gpu.dispatch(attn.backwardKV, shape, bindings, grid);
      this.matmulBackward(g.dtmp, g.dqkv, x.ln1, p + 'attn.c_attn.weight', p + 'attn.c_attn.bias', N, C, 3 * C);
      this.layernormBackward(g.dres, g.dtmp, residual, x.ln1Mean, x.ln1Rstd, p + 'ln_1', N);
    }
    this.gpu.dispatchFlat(
      K.encoderBackwardPos,
      { B, T, C },
      [this.bind(grads, 'wpe.weight'), { buffer: g.dres }],
      T * C,
    );
    for (const [v0, n, dwte] of this.wteSlices(grads, a.plan, Vp)) {
      this.gpu.dispatchFlat(
        K.encoderBackwardTok,
        { N, C, v0, vCount: n },
        [dwte, { buffer: g.dres }, { buffer: a.inputs }],
        C,
      );
    }
  }

  // ---- training --------------------------------------------------------------------------------------------------

  private checkBatch(batch: Batch): void {
    checkTokenBatch(this.config, batch.B, batch.T, batch.inputs);
    checkTokenBatch(this.config, batch.B, batch.T, batch.targets, 'targets');
    if (batch.mask && batch.mask.length !== batch.B * batch.T) {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `Batch mask holds ${batch.mask.length} values, expected B*T = ${batch.B * batch.T}.`,
      );
    }
  }

  forwardBackward(batch: Batch, lossScale: number): Promise<number> {
    this.live();
    this.checkBatch(batch);
    return this.serial(async () => {
      const { B, T } = batch;
      const N = B * T;
      this.ensure('grads');
      const a = this.actsFor(B, T, true);
      const w = this.upload(a, batch.inputs, batch.targets, batch.mask);
      if (!w.some((x) => x > 0)) return 0;
      this.forwardHidden(a, B, T);
      for (let n0 = 0; n0 < N; n0 += a.plan.rows) {
        const rows = Math.min(a.plan.rows, N - n0);
        this.classifierChunk(a, a.lnf, n0, rows);
        this.crossEntropy(a, n0, rows, true, lossScale);
        this.classifierBackward(a, a.grads!.dtmp, n0, rows);
      }
      this.backward(a);
      const losses = await this.gpu.readF32(a.losses, 0, N);
      let total = 0;
      for (let i = 0; i < N; i++) total += losses[i]! * w[i]!;
      this.passes++;
      if (this.opts.loseAfter !== undefined && this.passes >= this.opts.loseAfter) this.gpu.simulateLoss();
      return total;
    });
  }

  zeroGrad(): void {
    this.live();
    if (this.grads) this.gpu.clear(this.grads);
  }

  /** Chunks of a parameter-shaped buffer, each within the binding limit: [float offset, count]. */
  private chunks(total = this.total): [number, number][] {
    const per = Math.floor(this.gpu.maxBinding / 4 / ALIGN) * ALIGN;
    const out: [number, number][] = [];
    for (let o = 0; o < total; o += per) out.push([o, Math.min(per, total - o)]);
    return out;
  }

  gradNorm(): Promise<number> {
    return this.serial(async () => {
      const g = this.grads;
      if (!g) return 0;
      const parts = this.chunks().map(([, n]) => Math.ceil(n / 4096));
      const count = parts.reduce((x, y) => x + y, 0);
      if (!this.partial || this.partial.size < count * 4) {
        this.partial?.destroy();
        this.partial = this.gpu.buffer(count * 4, 'the norm partials');
      }
      let outOff = 0;
      this.chunks().forEach(([o, n], i) => {
        this.gpu.dispatchFlat(
          K.sumSquares,
          { n, outOff },
          [{ buffer: this.partial }, { buffer: g, offset: o * 4, size: n * 4 }],
          n,
          4096,
        );
        outOff += parts[i]!;
      });
      const p = await this.gpu.readF32(this.partial, 0, count);
      let s = 0;
      for (const x of p) s += x;
      return Math.sqrt(s);
    });
  }

  scaleGrads(factor: number): void {
    this.live();
    const g = this.grads;
    if (!g) return;
    for (const [o, n] of this.chunks())
      this.gpu.dispatchFlat(K.scale, { n, factor }, [{ buffer: g, offset: o * 4, size: n * 4 }], n);
  }

  adamwStep(h: AdamWHyper): void {
    this.live();
    const g = this.ensure('grads');
    const m = this.ensure('m');
    const v = this.ensure('v');
    this.step++;
    const t = this.step;
    const common = {
      stepSize: h.lr / (1 - Math.pow(h.beta1, t)),
      bc2Sqrt: Math.sqrt(1 - Math.pow(h.beta2, t)),
      beta1: h.beta1,
      beta2: h.beta2,
      oneMinusBeta1: 1 - h.beta1,
      oneMinusBeta2: 1 - h.beta2,
      eps: h.eps,
    };
    const per = Math.floor(this.gpu.maxBinding / 4 / ALIGN) * ALIGN;
    this.specs.forEach((s, i) => {
      const decay = s.decay && h.weightDecay !== 0 ? 1 - h.lr * h.weightDecay : 1;
      const size = numel(s.shape);
      for (let o = 0; o < size; o += per) {
        const n = Math.min(per, size - o);
        const r = (buffer: Gpu): Binding => ({ buffer, offset: (this.offsets[i]! + o) * 4, size: n * 4 });
        this.gpu.dispatchFlat(K.adamw, { n, decay, ...common }, [r(this.params), r(m), r(v), r(g)], n);
      }
    });
    this.gpu.flush();
  }

  // ---- evaluation ------------------------------------------------------------------------------------------------

  logits(inputs: Int32Array, B: number, T: number): Promise<Float32Array> {
    this.live();
    checkTokenBatch(this.config, B, T, inputs);
    return this.serial(async () => {
      const N = B * T;
      const a = this.actsFor(B, T, false);
      this.upload(a, inputs);
      this.forwardHidden(a, B, T);
      return this.readLogits(a, a.lnf, N);
    });
  }

  tokenLosses(batch: Batch): Promise<Float32Array> {
    this.live();
    this.checkBatch(batch);
    return this.serial(async () => {
      const { B, T } = batch;
      const N = B * T;
      const a = this.actsFor(B, T, false);
      const w = this.upload(a, batch.inputs, batch.targets, batch.mask);
      this.forwardHidden(a, B, T);
      for (let n0 = 0; n0 < N; n0 += a.plan.rows) {
        const rows = Math.min(a.plan.rows, N - n0);
        this.classifierChunk(a, a.lnf, n0, rows);
        this.crossEntropy(a, n0, rows, false, 0);
      }
      const out = await this.gpu.readF32(a.losses, 0, N);
      for (let i = 0; i < N; i++) if (!(w[i]! > 0)) out[i] = NaN;
      return out;
    });
  }

  // ---- sampling --------------------------------------------------------------------------------------------------

  createCache(batchSize: number, maxLength = this.config.blockSize): KVCache {
    this.live();
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `A KV cache needs a positive integer batch size, got ${batchSize}.`,
      );
    }
    const len = Math.min(maxLength, this.config.blockSize);
    const C = this.config.nEmbd;
    const layer = batchSize * len * 2 * C;
    if (layer * 4 > this.gpu.maxBinding) {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `native-webgpu: a KV cache of ${batchSize} rows x ${len} positions takes ${layer * 4} bytes per layer, more than this adapter binds at once (${this.gpu.maxBinding}).`,
        'Sample fewer rows at once.',
      );
    }
    const layerStride = alignUp(layer);
    const buffer = this.gpu.buffer(layerStride * this.config.nLayer * 4, 'the KV cache');
    const cache: WebGpuCache = {
      owner: this,
      batchSize,
      maxLength: len,
      buffer,
      layerStride,
      len: 0,
      disposed: false,
      get length() {
        return cache.len;
      },
      dispose() {
        if (!cache.disposed) buffer.destroy();
        cache.disposed = true;
      },
    };
    return cache;
  }

  decodeStep(cacheIn: KVCache, tokens: Int32Array, S = 1): Promise<Float32Array> {
    this.live();
    const cache = cacheIn as WebGpuCache;
    if (cache.owner !== this || cache.disposed) {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        'This KV cache was not made by this native-webgpu model, or was disposed.',
        'Use model.createCache() of the same model.',
      );
    }
    const B = cache.batchSize;
    if (cache.len + S > cache.maxLength) {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `The KV cache holds ${cache.maxLength} positions; ${cache.len} are used and ${S} more were fed.`,
        'Start a new cache, or generate fewer tokens (the model context is the limit).',
      );
    }
    checkTokenBatch(this.config, B, S, tokens);
    return this.serial(async () => {
      const C = this.config.nEmbd;
      const a = this.actsFor(B, S, false);
      this.upload(a, tokens);
      this.forwardHidden(a, B, S, cache);
      cache.len += S;
      this.gpu.dispatchFlat(
        K.gatherRows,
        { rows: B, C, stride: S, last: S - 1 },
        [{ buffer: a.last }, { buffer: a.lnf }],
        B * C,
      );
      return this.readLogits(a, a.last, B);
    });
  }

  // ---- state -----------------------------------------------------------------------------------------------------

  private async readAll(buf: Gpu | null): Promise<NamedTensors> {
    const out: NamedTensors = new Map();
    for (let i = 0; i < this.specs.length; i++) {
      const s = this.specs[i]!;
      const n = numel(s.shape);
      const data = buf ? await this.gpu.readF32(buf, this.offsets[i]!, n) : new Float32Array(n);
      out.set(s.name, { shape: [...s.shape], data });
    }
    return out;
  }

  private writeAll(buf: Gpu, w: NamedTensors, what: string): void {
    const tensors = this.specs.map((s) => checkParamTensor(w, s, what)); // all checked before anything is written
    tensors.forEach((t, i) => this.gpu.write(buf, this.offsets[i]! * 4, t.data));
  }

  exportWeights(): Promise<NamedTensors> {
    return this.serial(() => this.readAll(this.params));
  }

  loadWeights(w: NamedTensors): void {
    this.live();
    this.writeAll(this.params, w, 'weights');
  }

  exportOptimizerState(): Promise<OptimizerState> {
    return this.serial(async () => ({ step: this.step, m: await this.readAll(this.m), v: await this.readAll(this.v) }));
  }

  loadOptimizerState(s: OptimizerState): void {
    this.live();
    for (const sp of this.specs) {
      checkParamTensor(s.m, sp, 'optimizer m');
      checkParamTensor(s.v, sp, 'optimizer v');
    }
    this.writeAll(this.ensure('m'), s.m, 'optimizer m');
    this.writeAll(this.ensure('v'), s.v, 'optimizer v');
    this.step = s.step;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    // after the call in flight, if any
    void this.tail.then(() => this.gpu.destroy());
  }
}

const K_GRID = 65535;

/** The matmuls a model dispatches, in fp32 or with f16 operands. */
function matmulKernels(f16: boolean) {
  return {
    fwd: K.matmul({ transA: false, transB: true, accumulate: false, bias: true, f16 }),
    nt: K.matmul({ transA: false, transB: true, accumulate: false, bias: false, f16 }),
    nn: K.matmul({ transA: false, transB: false, accumulate: false, bias: false, f16 }),
    nnAcc: K.matmul({ transA: false, transB: false, accumulate: true, bias: false, f16 }),
    tnAcc: K.matmul({ transA: true, transB: false, accumulate: true, bias: false, f16 }),
  };
}
const MATMULS = { fp32: matmulKernels(false), fp16: matmulKernels(true) };

const attnCache = new Map<number, { forward: K.KernelSource; backwardQ: K.KernelSource; backwardKV: K.KernelSource }>();
function attentionKernels(hs: number) {
  let k = attnCache.get(hs);
  if (!k) {
    k = { forward: K.attentionForward(hs), backwardQ: K.attentionBackwardQ(hs), backwardKV: K.attentionBackwardKV(hs) };
    attnCache.set(hs, k);
  }
  return k;
}
