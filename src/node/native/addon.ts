/**
 * Loads the native GPT-2 addon (native/build/Release/gpt2_native.node, built by scripts/build-native.mjs during
 * `npm ci`) and says why when it cannot: the build's own status file (native/build/status.json) records a skipped
 * or failed build, and a load error is reported with the file it tried.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The API version this TypeScript expects (GPT2_API_VERSION in native/include/gpt2.h). */
export const NATIVE_API_VERSION = 3;

export type GemmBackend = 'blas' | 'builtin';
/** Matmul precision (master weights stay fp32); the CPU engine has fp32 only. */
export type Precision = 'fp32' | 'tf32' | 'bf16';

/** Buffers of a native model, as gpt2_read / gpt2_write number them. */
export const NativeBuffer = { params: 0, grads: 1, m: 2, v: 3 } as const;
export type NativeBuffer = (typeof NativeBuffer)[keyof typeof NativeBuffer];

export interface NativeConfig {
  numLayers: number;
  numHeads: number;
  channels: number;
  maxSeqLen: number;
  vocabSize: number;
  paddedVocabSize: number;
  lnEps: number;
}

/** A KV cache of the addon (Cache in native/node/binding.cpp). */
export interface NativeCacheHandle {
  readonly length: number;
  dispose(): void;
}

/** A model of the addon (Model in native/node/binding.cpp). Long operations return Promises; one at a time. */
export interface NativeModelHandle {
  numTensors(): number;
  tensorNumel(i: number): number;
  setThreads(n: number): void;
  setGemm(g: GemmBackend): void;
  setPrecision(p: Precision): void;
  read(which: NativeBuffer, offset: number, out: Float32Array): void;
  write(which: NativeBuffer, offset: number, src: Float32Array): void;
  forwardBackward(
    inputs: Int32Array,
    targets: Int32Array,
    mask: Float32Array | null,
    B: number,
    T: number,
    lossScale: number,
  ): Promise<number>;
  zeroGrad(): void;
  gradNorm(): number;
  scaleGrads(factor: number): void;
  adamw(lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, t: number): void;
  logits(inputs: Int32Array, B: number, T: number, out: Float32Array): Promise<void>;
  tokenLosses(
    inputs: Int32Array,
    targets: Int32Array,
    mask: Float32Array | null,
    B: number,
    T: number,
    out: Float32Array,
  ): Promise<void>;
  createCache(batch: number, maxLen: number): NativeCacheHandle;
  decode(cache: NativeCacheHandle, tokens: Int32Array, S: number, out: Float32Array): Promise<void>;
  /** The gradients become their mean over the communicator's ranks. */
  allReduceGrads(comm: NativeCommHandle): Promise<void>;
  dispose(): void;
}

/** One GPU's memory as the CUDA build reports it (gpt2_device_info in native/include/gpt2.h). */
export interface NativeDeviceMemory {
  /** the CUDA device index (CUDA_VISIBLE_DEVICES applied) */
  device: number;
  /** e.g. "NVIDIA H100 80GB HBM3"; "CPU emulation of sm_90" under the test emulation */
  name: string;
  /** cudaMemGetInfo: free now, whatever other processes hold */
  freeBytes: number;
  totalBytes: number;
}

/** Another build of the C API loaded at run time (Library in native/node/binding.cpp), e.g. libgpt2_cuda.so. */
export interface NativeLibraryHandle {
  readonly path: string;
  buildInfo(): string;
  /**
   * Each visible GPU's free and total memory, without building a model; [] without a GPU, null when the library
   * cannot tell (a CPU build). Absent on an addon built before it existed.
   */
  deviceMemory?(): Promise<NativeDeviceMemory[] | null>;
}

/** A data-parallel communicator (Comm in native/node/binding.cpp). */
export interface NativeCommHandle {
  readonly rank: number;
  readonly world: number;
  /** values become their element-wise mean over the ranks */
  allReduceMean(values: Float64Array): Promise<void>;
  /** data becomes rank 0's data on every rank (every rank passes the same length) */
  broadcast(data: Float32Array): Promise<void>;
  abort(): void;
  dispose(): void;
}

/** The communicator kinds of newCommId. */
export type CommKind = 'shm' | 'nccl' | 'mpi';

/** mpiInfo(): the MPI that the CPU engine was built with. */
export interface NativeMpiInfo {
  available: boolean;
  /** the first line of MPI_Get_library_version; null without MPI */
  version: string | null;
}

export type LayerName = 'encoder' | 'layernorm' | 'matmul' | 'attention' | 'gelu' | 'crossentropy';

export interface NativeAddon {
  apiVersion: number;
  buildInfo(): string;
  hasBlas(): boolean;
  /** the OpenMP threads a model uses unless told otherwise (OMP_NUM_THREADS, else every core) */
  defaultThreads(): number;
  Model: new (config: NativeConfig, library?: NativeLibraryHandle) => NativeModelHandle;
  /** Loads a shared library with the same C API (throws with the reason). */
  loadLibrary(path: string): NativeLibraryHandle;
  /**
   * A new communicator id: "shm:..." (one machine), "nccl:..." (a CUDA build with NCCL) or "mpi:port:..." (the CPU
   * build with MPI; it opens an MPI port in this process, where rank 0 must then join). null: the build's best.
   */
  newCommId(kind: CommKind | null, library?: NativeLibraryHandle): string;
  /**
   * Whether the linked CPU engine was built with MPI, and the first line of MPI_Get_library_version (e.g. "Open MPI
   * v4.1.4, package: ..."). Asking does not initialize MPI.
   */
  mpiInfo(): NativeMpiInfo;
  /**
   * Joins a communicator; resolves once all `world` ranks have joined (rejects after timeoutMs; over MPI there is no
   * limit). Ids: those of newCommId, and "mpi:world" (the MPI_COMM_WORLD of the mpirun / srun job; rank and world
   * must be MPI's).
   */
  joinComm(
    id: string,
    rank: number,
    world: number,
    timeoutMs: number,
    library?: NativeLibraryHandle,
  ): Promise<NativeCommHandle>;
  /** One layer's forward and backward on the given arrays (see LayerCheck in native/node/binding.cpp); for tests. */
  layerCheck(
    name: LayerName,
    arrays: Record<string, Float32Array | Int32Array>,
    dims: Record<string, number>,
    gemm: GemmBackend,
    threads?: number,
  ): Record<string, Float32Array>;
}

/** What scripts/build-native.mjs wrote into native/build/status.json. */
export interface NativeBuildStatus {
  ok: boolean;
  reason: string | null;
  when?: string;
  compiler?: string | null;
  openmp?: boolean;
  march?: string | null;
  blas?: string | null;
  /** the MPI the CPU engine was built with (the first line of its version), or null; mpiReason says why not */
  mpi?: string | null;
  mpiReason?: string;
  buildInfo?: string;
  /** the CUDA probe: nvcc and cuBLAS found or not, and the CUDA library (native/cuda) when it was built */
  cuda?: { available: boolean; reason?: string; nvcc?: string; library?: string; nccl?: boolean };
}

export type AddonLoad =
  | { ok: true; addon: NativeAddon; file: string; status: NativeBuildStatus | null }
  | { ok: false; reason: string; hint: string; status: NativeBuildStatus | null };

/** The folder holding native/binding.gyp: found by walking up from this file (source tree or bundled out/). */
export function nativeRoot(start = path.dirname(fileURLToPath(import.meta.url))): string | null {
  let dir = start;
  for (;;) {
    if (existsSync(path.join(dir, 'native', 'binding.gyp'))) return path.join(dir, 'native');
    const up = path.dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

export function readBuildStatus(nativeDir: string | null): NativeBuildStatus | null {
  if (!nativeDir) return null;
  try {
    return JSON.parse(readFileSync(path.join(nativeDir, 'build', 'status.json'), 'utf8')) as NativeBuildStatus;
  } catch {
    return null;
  }
}

/** The OpenMP wait policy the loader sets when the environment sets none (see tryLoadNativeAddon). */
export const OMP_WAIT_POLICY = 'PASSIVE';

const REBUILD_HINT =
  'Build it with "npm run build:native" (needs a C++ compiler; libopenblas-dev makes it faster), then restart.';

let cached: AddonLoad | null = null;

/**
 * Loads the addon once per process. GPT2_STUDIO_NATIVE_ADDON overrides the file; GPT2_STUDIO_NATIVE=0 turns the
 * native engines off.
 */
export function loadNativeAddon(env: NodeJS.ProcessEnv = process.env): AddonLoad {
  if (cached) return cached;
  cached = tryLoadNativeAddon(env);
  return cached;
}

/** loadNativeAddon without the cache (what the tests use to see each reason). */
export function tryLoadNativeAddon(env: NodeJS.ProcessEnv = process.env): AddonLoad {
  if (env.GPT2_STUDIO_NATIVE === '0') {
    return {
      ok: false,
      reason: 'turned off by GPT2_STUDIO_NATIVE=0',
      hint: 'Unset GPT2_STUDIO_NATIVE to use the native engine.',
      status: null,
    };
  }
  const dir = nativeRoot();
  const status = readBuildStatus(dir);
  const file = env.GPT2_STUDIO_NATIVE_ADDON ?? (dir ? path.join(dir, 'build', 'Release', 'gpt2_native.node') : null);
  if (!file || !existsSync(file)) {
    if (status && !status.ok)
      return { ok: false, reason: `the native build did not succeed: ${status.reason}`, hint: REBUILD_HINT, status };
    const where = file ?? 'native/build/Release/gpt2_native.node';
    return { ok: false, reason: `the native engine is not built (${where} is missing)`, hint: REBUILD_HINT, status };
  }
  // Idle OpenMP threads spin before they sleep, by default for a long while (libgomp: 300,000 spins; LLVM libomp:
  // 200 ms). That suits a machine with nothing else to run. In the studio, beside the JS thread and other
  // processes, the spinning threads take the cores that the next operation needs: measured on 2 cores, C2 training
  // ran at half speed with a spin count of 10,000 and the KV-cache decode 3-30x slower with the default, while
  // passive waiting cost at most ~10%. The runtime reads the setting when it initializes, which defaultThreads()
  // forces; the variable is then removed again, so that child processes (a PyTorch peer, say) keep their own
  // defaults. Set OMP_WAIT_POLICY or GOMP_SPINCOUNT to override.
  const setPolicy = process.env.OMP_WAIT_POLICY === undefined && process.env.GOMP_SPINCOUNT === undefined;
  if (setPolicy) process.env.OMP_WAIT_POLICY = OMP_WAIT_POLICY;
  let addon: NativeAddon;
  try {
    addon = createRequire(import.meta.url)(file) as NativeAddon;
    addon.defaultThreads?.();
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0];
    return { ok: false, reason: `${file} does not load: ${msg}`, hint: REBUILD_HINT, status };
  } finally {
    if (setPolicy) delete process.env.OMP_WAIT_POLICY;
  }
  if (addon.apiVersion !== NATIVE_API_VERSION) {
    return {
      ok: false,
      reason: `${file} has API version ${addon.apiVersion}, this studio expects ${NATIVE_API_VERSION}`,
      hint: 'The addon is from another version of the studio. ' + REBUILD_HINT,
      status,
    };
  }
  return { ok: true, addon, file, status };
}
