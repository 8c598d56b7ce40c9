/**
 * The native-cpu engine behind the Engine / Model interfaces of src/core/engine/types.ts. The numbers are
 * computed by the C++ engine (native/cpu); this file checks arguments with the same messages as the tfjs engine,
 * moves tensors in and out by GPT-2 name, and serializes the asynchronous calls (the addon runs one at a time).
 */
import { ErrorCode, StudioError } from '../../shared/errors';
import { numel, paramSpecs, type GPTConfig, type ParamSpec } from '../../core/model/config';
import { checkParamTensor, type NamedTensors } from '../../core/tensors';
import type {
  AdamWHyper,
  Batch,
  Collective,
  DataParallel,
  Engine,
  EngineInfo,
  KVCache,
  Model,
  OptimizerState,
} from '../../core/engine/types';
import {
  NativeBuffer,
  type GemmBackend,
  type Precision,
  type CommKind,
  type NativeAddon,
  type NativeCacheHandle,
  type NativeCommHandle,
  type NativeLibraryHandle,
  type NativeModelHandle,
} from './addon';
import { checkTokenBatch } from '../../core/engine/check';

export interface NativeOptions {
  /** matrix-multiply backend: BLAS when the build has one (default), or the built-in SGEMM */
  gemm?: GemmBackend;
  /** OpenMP threads (default: OMP_NUM_THREADS, else every core) */
  threads?: number;
  /** matmul precision (native-cuda: fp32, tf32 or bf16; native-cpu: fp32) */
  precision?: Precision;
}

/** Options from the environment: GPT2_STUDIO_NATIVE_GEMM=blas|builtin, GPT2_STUDIO_THREADS=N. */
export function nativeOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): NativeOptions {
  const o: NativeOptions = {};
  const g = env.GPT2_STUDIO_NATIVE_GEMM;
  if (g !== undefined && g !== '') {
    if (g !== 'blas' && g !== 'builtin') {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `GPT2_STUDIO_NATIVE_GEMM = "${g}" is not a GEMM backend.`,
        'Use "blas" or "builtin", or unset it.',
      );
    }
    o.gemm = g;
  }
  const t = env.GPT2_STUDIO_THREADS;
  if (t !== undefined && t !== '') {
    const n = Number(t);
    if (!Number.isInteger(n) || n < 1)
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `GPT2_STUDIO_THREADS = "${t}" is not a positive integer.`,
        'Set it to a thread count, or unset it.',
      );
    o.threads = n;
  }
  return o;
}

function nativeError(what: string, e: unknown, engine = 'native-cpu'): StudioError {
  const msg = e instanceof Error ? e.message : String(e);
  // the C API's status, which the addon puts on the Error (native/node/binding.cpp): PEER, NO_SPACE, MEMORY, ...
  const status = (e as { gpt2Status?: unknown } | null)?.gpt2Status;
  if (status === 'PEER' || status === 'NO_SPACE' || /data parallel/.test(msg)) {
    // another rank failed or never came, or shared memory ran out: say where to look
    const hint =
      status === 'NO_SPACE'
        ? 'Give /dev/shm more space, or train with fewer processes (world_size).'
        : /failed, so rank/.test(msg)
          ? "Another process of this run failed first; its own error is in the run's log. Resume the run from its last checkpoint once that is fixed."
          : "Check that every process of the run could start (the run's log says why one did not), then resume it from its last checkpoint.";
    const code =
      status === 'PEER'
        ? ErrorCode.PEER_FAILED
        : status === 'NO_SPACE' || status === 'MEMORY'
          ? ErrorCode.DISK_FULL
          : ErrorCode.INTERRUPTED;
    return new StudioError(code, `${engine} ${what}: ${msg}`, hint, { cause: e });
  }
  const code = /outside the vocabulary|exceeds the model|must be|holds \d+ values/.test(msg)
    ? ErrorCode.BAD_ARGUMENT
    : ErrorCode.INTERNAL;
  return new StudioError(
    code,
    `${engine} ${what}: ${msg}`,
    code === ErrorCode.INTERNAL
      ? 'Report this with the command that caused it; the tfjs engine (--engine tfjs) is the fallback.'
      : '',
    { cause: e },
  );
}

/** Which build of the C API a native engine runs: the addon's own (native-cpu) or a loaded library. */
export interface NativeBackend {
  /** the engine name models report, e.g. "native-cuda" */
  name: string;
  /** absent: the CPU engine linked into the addon */
  library?: NativeLibraryHandle;
}

const LINKED: NativeBackend = { name: 'native-cpu' };

interface NativeKVCache extends KVCache {
  handle: NativeCacheHandle;
  maxLength: number;
}

export class NativeModel implements Model {
  readonly engine: string;
  readonly config: GPTConfig;
  private readonly specs: ParamSpec[];
  /** element offset of each tensor in the native buffers (paramSpecs order) */
  private readonly offsets: number[];
  private handle: NativeModelHandle | null;
  private step = 0;
  /** the asynchronous call in flight, if any: calls are chained so that one runs at a time */
  private tail: Promise<unknown> = Promise.resolve();
  private pending = 0;

  constructor(
    addon: NativeAddon,
    config: GPTConfig,
    weights: NamedTensors,
    opts: NativeOptions = {},
    backend: NativeBackend = LINKED,
  ) {
    this.config = config;
    this.engine = backend.name;
    this.specs = paramSpecs(config);
    try {
      this.handle = new addon.Model(
        {
          numLayers: config.nLayer,
          numHeads: config.nHead,
          channels: config.nEmbd,
          maxSeqLen: config.blockSize,
          vocabSize: config.vocabSize,
          paddedVocabSize: config.paddedVocabSize,
          lnEps: config.layerNormEps,
        },
        backend.library,
      );
    } catch (e) {
      throw nativeError('could not create the model', e, backend.name);
    }
    // the native layout must be paramSpecs': same tensors, same order, same sizes
    const h = this.handle;
    if (h.numTensors() !== this.specs.length || this.specs.some((s, i) => h.tensorNumel(i) !== numel(s.shape))) {
      h.dispose();
      throw new StudioError(
        ErrorCode.INTERNAL,
        'The native engine lays out the parameters differently from paramSpecs().',
        'Rebuild the native engine (npm run build:native).',
      );
    }
    this.offsets = [];
    let o = 0;
    for (const s of this.specs) {
      this.offsets.push(o);
      o += numel(s.shape);
    }
    if (opts.threads !== undefined) h.setThreads(opts.threads);
    if (opts.gemm !== undefined) h.setGemm(opts.gemm);
    if (opts.precision !== undefined && opts.precision !== 'fp32') {
      try {
        h.setPrecision(opts.precision);
      } catch (e) {
        h.dispose();
        throw new StudioError(
          ErrorCode.ENGINE_UNAVAILABLE,
          `${this.engine} cannot compute in ${opts.precision}: ${e instanceof Error ? e.message : String(e)}`,
          'Set precision to fp32, or use the native-cuda engine.',
        );
      }
    }
    this.loadWeights(weights);
  }

  // ---- plumbing ------------------------------------------------------------------------------------------------

  private live(): NativeModelHandle {
    if (!this.handle) throw new StudioError(ErrorCode.INTERNAL, 'This model was disposed.', 'Create a new model.');
    return this.handle;
  }

  /** For synchronous calls: the handle, once no asynchronous call is in flight. */
  private idle(what: string): NativeModelHandle {
    const h = this.live();
    if (this.pending > 0) {
      throw new StudioError(
        ErrorCode.INTERNAL,
        `${this.engine} ${what} was called while another call is still running.`,
        'Await forwardBackward / logits / decodeStep before the next call.',
      );
    }
    return h;
  }

  /** Runs an asynchronous native call after the previous one. */
  private serial<T>(what: string, fn: (h: NativeModelHandle) => Promise<T>): Promise<T> {
    this.pending++;
    const run = this.tail.then(async () => {
      try {
        return await fn(this.live());
      } catch (e) {
        throw e instanceof StudioError ? e : nativeError(what, e, this.engine);
      } finally {
        this.pending--;
      }
    });
    this.tail = run.catch(() => undefined);
    return run;
  }

  private checkBatch(B: number, T: number, ids: Int32Array, what: 'inputs' | 'targets' = 'inputs'): void {
    checkTokenBatch(this.config, B, T, ids, what);
  }

  private checkMask(batch: Batch): Float32Array | null {
    if (!batch.mask) return null;
    if (batch.mask.length !== batch.B * batch.T) {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `Batch mask holds ${batch.mask.length} values, expected B*T = ${batch.B * batch.T}.`,
      );
    }
    return batch.mask;
  }

  // ---- training ------------------------------------------------------------------------------------------------

  async forwardBackward(batch: Batch, lossScale: number): Promise<number> {
    this.live();
    const { B, T } = batch;
    this.checkBatch(B, T, batch.inputs);
    this.checkBatch(B, T, batch.targets, 'targets');
    const mask = this.checkMask(batch);
    return this.serial('forwardBackward', (h) => h.forwardBackward(batch.inputs, batch.targets, mask, B, T, lossScale));
  }

  zeroGrad(): void {
    this.idle('zeroGrad').zeroGrad();
  }

  async gradNorm(): Promise<number> {
    await this.tail;
    return this.idle('gradNorm').gradNorm();
  }

  scaleGrads(factor: number): void {
    this.idle('scaleGrads').scaleGrads(factor);
  }

  /** The gradients become their mean over the ranks of `comm` (data parallel). */
  allReduceGrads(comm: NativeCommHandle): Promise<void> {
    this.live();
    return this.serial('allReduceGrads', (h) => h.allReduceGrads(comm));
  }

  adamwStep(h: AdamWHyper): void {
    const handle = this.idle('adamwStep');
    this.step++;
    handle.adamw(h.lr, h.beta1, h.beta2, h.eps, h.weightDecay, this.step);
  }

  // ---- evaluation ----------------------------------------------------------------------------------------------

  async logits(inputs: Int32Array, B: number, T: number): Promise<Float32Array> {
    this.live();
    this.checkBatch(B, T, inputs);
    const out = new Float32Array(B * T * this.config.vocabSize);
    return this.serial('logits', async (h) => {
      await h.logits(inputs, B, T, out);
      return out;
    });
  }

  async tokenLosses(batch: Batch): Promise<Float32Array> {
    this.live();
    const { B, T } = batch;
    this.checkBatch(B, T, batch.inputs);
    this.checkBatch(B, T, batch.targets, 'targets');
    const mask = this.checkMask(batch);
    const out = new Float32Array(B * T);
    return this.serial('tokenLosses', async (h) => {
      await h.tokenLosses(batch.inputs, batch.targets, mask, B, T, out);
      return out;
    });
  }

  // ---- sampling ------------------------------------------------------------------------------------------------

  createCache(batchSize: number, maxLength = this.config.blockSize): KVCache {
    const h = this.live();
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `A KV cache needs a positive integer batch size, got ${batchSize}.`,
      );
    }
    const len = Math.min(maxLength, this.config.blockSize);
    let handle: NativeCacheHandle;
    try {
      handle = h.createCache(batchSize, len);
    } catch (e) {
      throw nativeError('createCache', e, this.engine);
    }
    const cache: NativeKVCache = {
      batchSize,
      maxLength: len,
      handle,
      get length() {
        return handle.length;
      },
      dispose() {
        handle.dispose();
      },
    };
    return cache;
  }

  async decodeStep(cacheIn: KVCache, tokens: Int32Array, S = 1): Promise<Float32Array> {
    this.live();
    const cache = cacheIn as NativeKVCache;
    if (!cache.handle)
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        'This KV cache was not made by a native-cpu model.',
        'Use model.createCache() of the same model.',
      );
    const B = cache.batchSize;
    if (cache.length + S > cache.maxLength) {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `The KV cache holds ${cache.maxLength} positions; ${cache.length} are used and ${S} more were fed.`,
        'Start a new cache, or generate fewer tokens (the model context is the limit).',
      );
    }
    this.checkBatch(B, S, tokens);
    const out = new Float32Array(B * this.config.vocabSize);
    return this.serial('decodeStep', async (h) => {
      await h.decode(cache.handle, tokens, S, out);
      return out;
    });
  }

  // ---- state ---------------------------------------------------------------------------------------------------

  private readAll(which: NativeBuffer): NamedTensors {
    const h = this.idle('export');
    const out: NamedTensors = new Map();
    this.specs.forEach((s, i) => {
      const data = new Float32Array(numel(s.shape));
      h.read(which, this.offsets[i]!, data);
      out.set(s.name, { shape: [...s.shape], data });
    });
    return out;
  }

  private writeAll(which: NativeBuffer, w: NamedTensors, what: string): void {
    const h = this.idle('load');
    const tensors = this.specs.map((s) => checkParamTensor(w, s, what)); // all checked before anything is written
    tensors.forEach((t, i) => h.write(which, this.offsets[i]!, t.data));
  }

  async exportWeights(): Promise<NamedTensors> {
    await this.tail;
    return this.readAll(NativeBuffer.params);
  }

  loadWeights(w: NamedTensors): void {
    this.writeAll(NativeBuffer.params, w, 'weights');
  }

  async exportOptimizerState(): Promise<OptimizerState> {
    await this.tail;
    return { step: this.step, m: this.readAll(NativeBuffer.m), v: this.readAll(NativeBuffer.v) };
  }

  loadOptimizerState(s: OptimizerState): void {
    for (const sp of this.specs) {
      checkParamTensor(s.m, sp, 'optimizer m');
      checkParamTensor(s.v, sp, 'optimizer v');
    }
    this.writeAll(NativeBuffer.m, s.m, 'optimizer m');
    this.writeAll(NativeBuffer.v, s.v, 'optimizer v');
    this.step = s.step;
  }

  dispose(): void {
    // the addon frees the memory once a call in flight has finished
    this.handle?.dispose();
    this.handle = null;
  }
}

/** A Collective over the addon's communicator (shared memory on one machine, NCCL in a CUDA build, MPI). */
class NativeCollective implements Collective {
  constructor(
    private readonly comm: NativeCommHandle,
    private readonly engineName: string,
  ) {}
  get rank(): number {
    return this.comm.rank;
  }
  get world(): number {
    return this.comm.world;
  }
  async allReduceGrads(model: Model): Promise<void> {
    if (!(model instanceof NativeModel) || model.engine !== this.engineName) {
      throw new StudioError(
        ErrorCode.INTERNAL,
        `A ${this.engineName} communicator cannot reduce the gradients of a ${model.engine} model.`,
        'Train every rank on the same engine.',
      );
    }
    await model.allReduceGrads(this.comm);
  }
  async allReduceMean(values: number[]): Promise<number[]> {
    const buf = Float64Array.from(values);
    try {
      await this.comm.allReduceMean(buf);
    } catch (e) {
      throw nativeError('allReduceMean', e, this.engineName);
    }
    return Array.from(buf);
  }
  async broadcast(data: Float32Array): Promise<void> {
    try {
      await this.comm.broadcast(data);
    } catch (e) {
      throw nativeError('broadcast', e, this.engineName);
    }
  }
  abort(): void {
    this.comm.abort();
  }
  dispose(): void {
    this.comm.dispose();
  }
}

const COMM_KINDS: readonly CommKind[] = ['shm', 'nccl', 'mpi'];

/** What the engine says about MPI when the build has none. */
export const MPI_ABSENT = 'absent: install libopenmpi-dev and rebuild (npm run build:native)';

/**
 * The MPI of the linked CPU engine, short: "Open MPI 4.1.4", "MPICH 4.0", ...; null without MPI. The version line is
 * MPI_Get_library_version's first ("Open MPI v4.1.4, package: Debian OpenMPI, ...", "MPICH Version: 4.0").
 */
export function mpiName(addon: NativeAddon): string | null {
  const info = addon.mpiInfo();
  if (!info.available) return null;
  const line = (info.version ?? '').trim();
  const ompi = /^Open MPI v?([\d.]+\w*)/.exec(line);
  if (ompi) return `Open MPI ${ompi[1]}`;
  const mpich = /^MPICH Version:\s*(\S+)/.exec(line);
  if (mpich) return `MPICH ${mpich[1]}`;
  return line.split(',')[0] || 'MPI (unknown version)';
}

/** The llm.c-style C++ engine: on the CPU (OpenMP; BLAS or the built-in SGEMM), or a loaded build of the same C API. */
export class NativeEngine implements Engine {
  readonly name: string;
  readonly dataParallel: DataParallel;

  constructor(
    private readonly addon: NativeAddon,
    private readonly opts: NativeOptions = {},
    private readonly notes: string[] = [],
    private readonly backend: NativeBackend = LINKED,
  ) {
    this.name = backend.name;
    const lib = backend.library;
    this.dataParallel = {
      newId: (asked?: CommKind) => {
        try {
          // the caller's kind, else GPT2_STUDIO_COMM (e.g. shm: the shared-memory communicator even where NCCL is
          // built, for more ranks than GPUs), else the build's best
          const kind = asked ?? (process.env.GPT2_STUDIO_COMM || null);
          if (kind !== null && !COMM_KINDS.includes(kind as CommKind)) {
            throw new StudioError(
              ErrorCode.BAD_ARGUMENT,
              `GPT2_STUDIO_COMM = "${kind}" is not a communicator kind.`,
              `Use ${COMM_KINDS.map((k) => `"${k}"`).join(', ')}, or unset it.`,
            );
          }
          return addon.newCommId(kind as CommKind | null, lib);
        } catch (e) {
          if (e instanceof StudioError) throw e;
          throw nativeError('could not make a communicator', e, this.name);
        }
      },
      join: async (id, rank, world, timeoutMs = 120_000) => {
        try {
          return new NativeCollective(await addon.joinComm(id, rank, world, timeoutMs, lib), this.name);
        } catch (e) {
          throw nativeError(
            `rank ${rank} could not join the other ${world - 1} process${world === 2 ? '' : 'es'}`,
            e,
            this.name,
          );
        }
      },
    };
  }

  /** The GEMM backend models get: the one asked for, else BLAS when linked, else the built-in one. */
  get gemm(): GemmBackend {
    if (this.backend.library) return 'blas';
    return this.opts.gemm ?? (this.addon.hasBlas() ? 'blas' : 'builtin');
  }

  info(): EngineInfo {
    if (this.backend.library) {
      const precision = this.opts.precision ?? 'fp32';
      const build = this.backend.library.buildInfo();
      return {
        name: this.name,
        available: true,
        detail: `${precision} matmuls; ${build} (${this.backend.library.path})`,
        notes: [...this.notes],
        facts: { engine: this.name, backend: 'cublas', build, precision },
      };
    }
    const n = this.opts.threads ?? this.addon.defaultThreads();
    const threads = `${n} thread${n === 1 ? '' : 's'}`;
    const notes = [...this.notes];
    if (!this.addon.hasBlas())
      notes.push(
        'no BLAS was found when the engine was built; it uses the built-in SGEMM (install libopenblas-dev and run npm run build:native for BLAS)',
      );
    // data parallel across machines: the build's MPI (the build line says it too)
    const mpi = mpiName(this.addon);
    notes.push(
      mpi
        ? `MPI: ${mpi} (data parallel across machines: "mpi:world" under mpirun or srun, or an "mpi:port:" id)`
        : `MPI: ${MPI_ABSENT}`,
    );
    return {
      name: this.name,
      available: true,
      detail: `C++ engine, GEMM: ${this.gemm}, ${threads} (${this.addon.buildInfo()})`,
      notes,
      facts: {
        engine: this.name,
        backend: this.gemm,
        build: this.addon.buildInfo(),
        threads: n,
        precision: this.opts.precision ?? 'fp32',
      },
    };
  }

  async createModel(config: GPTConfig, weights: NamedTensors): Promise<Model> {
    if (!this.backend.library && this.opts.gemm === 'blas' && !this.addon.hasBlas()) {
      throw new StudioError(
        ErrorCode.ENGINE_UNAVAILABLE,
        'The native engine was built without BLAS, so GEMM "blas" is not available.',
        'Use GEMM "builtin", or install libopenblas-dev and run npm run build:native.',
      );
    }
    const opts = this.backend.library ? { precision: this.opts.precision } : this.opts;
    return new NativeModel(this.addon, config, weights, opts, this.backend);
  }
}
