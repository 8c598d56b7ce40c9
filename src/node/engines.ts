import * as tf from '@tensorflow/tfjs';
import { ErrorCode, StudioError } from '../shared/errors';
import type { Engine, EngineInfo } from '../core/engine/types';
import { TfjsEngine } from '../core/engine/tfjs';
import { checkParity, nativeCpuEngine, nativeCudaEngine, type NativeEngine, type ParityResult } from './native';
import type { Precision } from './native/addon';
import { makeConfig } from '../core/model/config';
import { initWeights } from '../core/model/init';
import { checkFixtureParity, findFixture, type FixtureParity } from './native/fixture-parity';
import { webgpuEngine, type WebGpuEngine } from './webgpu/engine';

/** TF.js backends, fastest first. The two native ones are optional dependencies that need libtensorflow. */
export const TFJS_BACKENDS = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type TfjsBackendName = (typeof TFJS_BACKENDS)[number];

const BACKEND_PACKAGE: Record<TfjsBackendName, string> = {
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
  tensorflow: '@tensorflow/tfjs-node',
  wasm: '@tensorflow/tfjs-backend-wasm',
  cpu: '@tensorflow/tfjs-backend-cpu',
};

export interface BackendChoice {
  backend: TfjsBackendName;
  /** for every backend above the chosen one: why it was not used */
  notes: string[];
}

let chosen: BackendChoice | null = null;

function reason(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  const line = msg.split('\n')[0]!;
  if (line.length <= 500) return line;
  const cut = line.lastIndexOf(' ', 500);
  return `${line.slice(0, cut > 400 ? cut : 500)}…`;
}

async function tryBackend(name: TfjsBackendName): Promise<string | null> {
  try {
    if (name === 'tensorflow-gpu' || name === 'tensorflow') {
      const pkg = BACKEND_PACKAGE[name];
      try {
        await import(pkg);
      } catch (e) {
        const code = (e as { code?: string }).code;
        return code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND'
          ? `${pkg} is not installed (an optional dependency: it needs libtensorflow, which its install step downloads)`
          : `${pkg} failed to load: ${reason(e)}`;
      }
    } else if (name === 'wasm') {
      await import('@tensorflow/tfjs-backend-wasm');
    }
    const ok = await tf.setBackend(name);
    if (!ok) return `TF.js could not initialize the ${name} backend`;
    await tf.ready();
    return null;
  } catch (e) {
    return `${BACKEND_PACKAGE[name]}: ${reason(e)}`;
  }
}

/**
 * Picks the TF.js backend: the one asked for (flag, else GPT2_STUDIO_TFJS_BACKEND), else the fastest that loads,
 * in the order tensorflow-gpu, tensorflow, wasm, cpu. Says why each faster one was passed over.
 */
export async function selectTfjsBackend(pref?: string, env: NodeJS.ProcessEnv = process.env): Promise<BackendChoice> {
  const want = pref ?? env.GPT2_STUDIO_TFJS_BACKEND;
  if (chosen && (!want || want === chosen.backend)) return chosen;
  tf.enableProdMode();
  if (want) {
    if (!(TFJS_BACKENDS as readonly string[]).includes(want)) {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `Unknown TF.js backend "${want}".`,
        `Use one of: ${TFJS_BACKENDS.join(', ')}.`,
      );
    }
    const why = await tryBackend(want as TfjsBackendName);
    if (why)
      throw new StudioError(
        ErrorCode.ENGINE_UNAVAILABLE,
        `The TF.js backend "${want}" is not available: ${why}.`,
        `Leave the backend unset to pick the fastest available one.`,
      );
    chosen = { backend: want as TfjsBackendName, notes: [`backend ${want} was requested`] };
    return chosen;
  }
  const notes: string[] = [];
  for (const b of TFJS_BACKENDS) {
    const why = await tryBackend(b);
    if (!why) {
      chosen = { backend: b, notes };
      return chosen;
    }
    notes.push(`${b}: ${why}`);
  }
  throw new StudioError(
    ErrorCode.ENGINE_UNAVAILABLE,
    `No TF.js backend could start: ${notes.join('; ')}.`,
    'Reinstall the project dependencies (npm ci).',
  );
}

export const ENGINE_NAMES = ['tfjs', 'native-cpu', 'native-cuda', 'native-webgpu'] as const;

export interface EngineOptions {
  /** TF.js backend (tfjs only); asking for one makes "auto" mean tfjs */
  backend?: string;
  /** native-cpu matrix-multiply backend (default: BLAS when the build has one, else the built-in SGEMM) */
  gemm?: 'blas' | 'builtin';
  /** native-cpu OpenMP threads (default: OMP_NUM_THREADS, else every core) */
  threads?: number;
  /** matmul precision (default fp32); "auto" is bf16 on native-cuda and fp32 on the other engines; fp16 is
   * native-webgpu's (shader-f16) */
  precision?: Precision | 'fp16' | 'auto';
}

/** The precision an engine computes in for a requested one: "auto" is bf16 on native-cuda, fp32 elsewhere. */
export function resolvePrecision(
  engine: string,
  precision: Precision | 'fp16' | 'auto' | undefined,
): Precision | undefined {
  if (precision === 'fp16') {
    throw new StudioError(
      ErrorCode.BAD_CONFIG,
      `precision = fp16 is the native-webgpu engine's; ${engine} computes in fp32${engine === 'native-cuda' ? ', tf32 or bf16' : ''}.`,
      'Set engine to native-webgpu, or precision to auto.',
    );
  }
  if (precision !== 'auto') return precision;
  return engine === 'native-cuda' ? 'bf16' : undefined;
}

/** The engines the parity checks run on: a native build (by GEMM backend) or the WebGPU engine. */
type CheckedEngine = NativeEngine | WebGpuEngine;
const checkKey = (engine: CheckedEngine): string =>
  'gemm' in engine ? `${engine.name}:${engine.gemm}` : `${engine.name}:${engine.adapter.name}`;

/** Parity of an engine with tfjs, checked once per process and GEMM backend (see src/node/native/parity.ts). */
const parityRuns = new Map<string, Promise<ParityResult>>();

function nativeParity(engine: CheckedEngine): Promise<ParityResult> {
  const key = checkKey(engine);
  let p = parityRuns.get(key);
  if (!p) {
    p = (async () => {
      const reference = await getEngine('tfjs');
      return checkParity(engine, reference);
    })();
    parityRuns.set(key, p);
  }
  return p;
}

/** Parity with the PyTorch fixture, when it is reachable (a development checkout), once per process and GEMM. */
const fixtureRuns = new Map<string, Promise<FixtureParity>>();

function nativeFixtureParity(engine: CheckedEngine, dir: string): Promise<FixtureParity> {
  const key = checkKey(engine);
  let p = fixtureRuns.get(key);
  if (!p) {
    p = checkFixtureParity(engine, dir);
    fixtureRuns.set(key, p);
  }
  return p;
}

/** Whether the native-cuda engine can build a model here (it needs a GPU): null if so, else why not. */
const cudaProbes = new Map<string, Promise<string | null>>();
function cudaProbe(engine: NativeEngine): Promise<string | null> {
  let p = cudaProbes.get(engine.name);
  if (!p) {
    p = (async () => {
      try {
        const cfg = makeConfig({ nLayer: 1, nHead: 1, nEmbd: 8, blockSize: 8, vocabSize: 16 });
        (await engine.createModel(cfg, initWeights(cfg, 1))).dispose();
        return null;
      } catch (e) {
        return reason(e);
      }
    })();
    cudaProbes.set(engine.name, p);
  }
  return p;
}

/**
 * The engine by name. "auto" (the default) is the fastest engine that is available and passes parity: native-cuda
 * when its library loads, a GPU answers and it agrees with tfjs; else native-cpu (the C++ engine, about 10x tfjs
 * on a CPU) when its addon loads and its self-check against tfjs passes; else tfjs, whose notes then say why the
 * native engines were passed over.
 */
export async function getEngine(name = 'auto', opts: EngineOptions = {}): Promise<Engine> {
  if (name === 'tfjs' || (name === 'auto' && opts.backend)) {
    const choice = await selectTfjsBackend(opts.backend);
    return new TfjsEngine(choice.notes);
  }
  if (name === 'native-webgpu') return webgpuEngine({ precision: opts.precision === 'fp16' ? 'fp16' : undefined });
  const cpuPrecision = resolvePrecision('native-cpu', opts.precision);
  const cudaPrecision = resolvePrecision('native-cuda', opts.precision);
  if (name === 'native-cpu')
    return nativeCpuEngine({ gemm: opts.gemm, threads: opts.threads, precision: cpuPrecision });
  if (name === 'native-cuda') return nativeCudaEngine({ precision: cudaPrecision });
  if (name === 'auto') {
    let cudaWhy: string;
    try {
      const cuda = nativeCudaEngine({ precision: cudaPrecision });
      const probe = await cudaProbe(cuda);
      if (probe) cudaWhy = `native-cuda: ${probe}`;
      else {
        const parity = await nativeParity(cuda);
        if (parity.pass)
          return nativeCudaEngine({ precision: cudaPrecision }, [`default engine: parity ${parity.summary}`]);
        cudaWhy = `native-cuda failed its parity check (${parity.summary})`;
      }
    } catch (e) {
      cudaWhy = `native-cuda: ${reason(e)}`;
    }
    const webgpuWhy = await autoWebgpu();
    if (typeof webgpuWhy !== 'string') return webgpuWhy;
    let why: string;
    try {
      const native = nativeCpuEngine({ gemm: opts.gemm, threads: opts.threads });
      const parity = await nativeParity(native);
      if (parity.pass)
        return nativeCpuEngine({ gemm: opts.gemm, threads: opts.threads, precision: cpuPrecision }, [
          `default engine: parity ${parity.summary}`,
          cudaWhy,
          webgpuWhy,
        ]);
      why = `native-cpu failed its parity check (${parity.summary})`;
    } catch (e) {
      why = `native-cpu: ${reason(e)}`;
    }
    const choice = await selectTfjsBackend();
    return new TfjsEngine([...choice.notes, cudaWhy, webgpuWhy, why]);
  }
  throw new StudioError(
    ErrorCode.BAD_ARGUMENT,
    `Unknown engine "${name}".`,
    `Use one of: auto, ${ENGINE_NAMES.join(', ')}.`,
  );
}

/**
 * "auto"'s second choice: native-webgpu on a hardware adapter (discrete or integrated) that passes parity. Returns
 * the engine, or why it was passed over. A software adapter (lavapipe, SwiftShader, WARP) is never picked: it is
 * correct but slower than native-cpu on the same CPU.
 */
async function autoWebgpu(): Promise<WebGpuEngine | string> {
  try {
    const engine = await webgpuEngine();
    const a = engine.adapter;
    if (a.software) return `native-webgpu: ${a.name} is a software renderer, which "auto" never picks`;
    const parity = await nativeParity(engine);
    if (parity.pass) return webgpuEngine({}, [`default engine: parity ${parity.summary}`]);
    return `native-webgpu failed its parity check on ${a.name} (${parity.summary})`;
  } catch (e) {
    return `native-webgpu: ${reason(e)}`;
  }
}

/** Every engine with its availability, its parity and the reasons, for `gpt2-studio engines` and Settings. */
export async function describeEngines(): Promise<EngineInfo[]> {
  const out: EngineInfo[] = [];
  try {
    out.push((await getEngine('tfjs')).info());
  } catch (e) {
    out.push({ name: 'tfjs', available: false, detail: '', notes: [reason(e)] });
  }
  for (const name of ['native-cpu', 'native-cuda'] as const) {
    try {
      const native = name === 'native-cpu' ? nativeCpuEngine() : nativeCudaEngine();
      const info = native.info();
      if (name === 'native-cuda') {
        const probe = await cudaProbe(native);
        if (probe) {
          out.push({
            ...info,
            available: false,
            notes: [`the CUDA library loads, but no model can be built: ${probe}`, ...info.notes],
          });
          continue;
        }
      }
      out.push({ ...info, notes: [...(await parityNotes(native)), ...info.notes] });
    } catch (e) {
      const hint = e instanceof StudioError && e.hint ? [e.hint] : [];
      out.push({ name, available: false, detail: '', notes: [reason(e), ...hint] });
    }
  }
  try {
    const webgpu = await webgpuEngine();
    const info = webgpu.info();
    out.push({ ...info, notes: [...(await parityNotes(webgpu)), ...info.notes] });
  } catch (e) {
    const hint = e instanceof StudioError && e.hint ? [e.hint] : [];
    out.push({ name: 'native-webgpu', available: false, detail: '', notes: [reason(e), ...hint] });
  }
  return out;
}

/** The parity lines of a native engine: against tfjs, and against the PyTorch fixture where it is reachable. */
async function parityNotes(native: CheckedEngine): Promise<string[]> {
  const parity: string[] = [];
  try {
    parity.push(`parity: ${(await nativeParity(native)).summary}`);
  } catch (e) {
    parity.push(`parity: could not run: ${reason(e)}`);
  }
  const fixture = findFixture();
  if (fixture) {
    try {
      parity.push(`fixture parity: ${(await nativeFixtureParity(native, fixture)).summary}`);
    } catch (e) {
      parity.push(`fixture parity: could not run: ${reason(e)}`);
    }
  } else {
    parity.push(
      'fixture parity: not checked (the gpt2-tiny fixture is not here; set GPT2_STUDIO_SHARED to its shared folder)',
    );
  }
  return parity;
}
