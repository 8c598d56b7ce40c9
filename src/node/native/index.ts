/** The native engines: the addon loader, the native-cpu Engine, and its parity self-check against tfjs. */
import { ErrorCode, StudioError } from '../../shared/errors';
import { existsSync } from 'node:fs';
import path from 'node:path';
import {
  loadNativeAddon,
  nativeRoot,
  type AddonLoad,
  type NativeDeviceMemory,
  type NativeLibraryHandle,
} from './addon';
import { NativeEngine, nativeOptionsFromEnv, type NativeOptions } from './model';

export { loadNativeAddon, NativeEngine, nativeOptionsFromEnv };
export type { AddonLoad, NativeOptions };
/** One GPU's free and total memory and name (cudaMemoryInfo). */
export type CudaDeviceMemory = NativeDeviceMemory;
export { checkParity, PARITY_TOLERANCE, type ParityResult } from './parity';

/** The native-cpu engine, or a StudioError (ENGINE_UNAVAILABLE) that says why not and what to do. */
export function nativeCpuEngine(opts: NativeOptions = {}, notes: string[] = []): NativeEngine {
  const load = loadNativeAddon();
  if (!load.ok)
    throw new StudioError(
      ErrorCode.ENGINE_UNAVAILABLE,
      `The native-cpu engine is not available: ${load.reason}.`,
      load.hint,
    );
  return new NativeEngine(load.addon, { ...nativeOptionsFromEnv(), ...opts }, notes);
}

/** The CUDA library the native-cuda engine loads: GPT2_STUDIO_CUDA_LIB, else the one the build made. */
export function cudaLibraryPath(env: NodeJS.ProcessEnv = process.env): string | null {
  if (env.GPT2_STUDIO_CUDA_LIB) return path.resolve(env.GPT2_STUDIO_CUDA_LIB);
  const dir = nativeRoot();
  if (!dir) return null;
  const built = loadNativeAddon().status?.cuda?.library;
  return built ? path.resolve(dir, '..', built) : path.join(dir, 'build', 'libgpt2_cuda.so');
}

/** Why native-cuda is not built here (the build's CUDA probe). */
export function nativeCudaReason(): string {
  const load = loadNativeAddon();
  const cuda = load.status?.cuda;
  if (!cuda) return 'the native build has not run';
  return cuda.available
    ? 'the CUDA library was built but is missing now; run npm run build:native'
    : (cuda.reason ?? 'the CUDA probe found no CUDA toolkit');
}

const CUDA_HINT =
  'On a machine with an NVIDIA GPU, install the CUDA toolkit with cuBLAS (or the nvidia-cublas wheel) and run "npm run build:native"; meanwhile use --engine native-cpu.';

/**
 * The native-cuda engine: the CUDA build of the same C API (native/cuda, libgpt2_cuda.so) driven through the
 * addon, or a StudioError (ENGINE_UNAVAILABLE) that says why not. Models fail to build when the machine has no GPU.
 */
export function nativeCudaEngine(opts: NativeOptions = {}, notes: string[] = []): NativeEngine {
  const load = loadNativeAddon();
  if (!load.ok)
    throw new StudioError(
      ErrorCode.ENGINE_UNAVAILABLE,
      `The native-cuda engine is not available: ${load.reason}.`,
      load.hint,
    );
  const file = cudaLibraryPath();
  if (!file || !existsSync(file)) {
    throw new StudioError(
      ErrorCode.ENGINE_UNAVAILABLE,
      `The native-cuda engine is not available: ${nativeCudaReason()}.`,
      CUDA_HINT,
    );
  }
  let library: NativeLibraryHandle;
  try {
    library = load.addon.loadLibrary(file);
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0];
    throw new StudioError(ErrorCode.ENGINE_UNAVAILABLE, `The native-cuda engine is not available: ${msg}.`, CUDA_HINT);
  }
  return new NativeEngine(load.addon, opts, notes, { name: 'native-cuda', library });
}

/**
 * Each visible GPU's free and total memory (cudaMemGetInfo) and name, read through the native-cuda library without
 * building a model: what a run's memory plan is checked against before the run is created. The library gives back the
 * GPU context that the question made, so the studio's process keeps no memory on a GPU it does not train on.
 *
 * null when it cannot be asked: the addon or the CUDA library is not built or does not load, or the library cannot
 * tell (GPT2_STUDIO_CUDA_LIB at a CPU build, an addon older than this function, a failed device count). It never
 * throws; without a library it answers at once. [] when CUDA works but sees no GPU. A GPU that does not answer (held
 * by another process in exclusive mode) is left out, so match entries by `device`, not by position.
 */
export async function cudaMemoryInfo(): Promise<CudaDeviceMemory[] | null> {
  const load = loadNativeAddon();
  if (!load.ok) return null;
  const file = cudaLibraryPath();
  if (!file || !existsSync(file)) return null;
  try {
    const library = load.addon.loadLibrary(file);
    if (typeof library.deviceMemory !== 'function') return null;
    return await library.deviceMemory();
  } catch {
    return null; // a library that does not load, or a driver error: the same as not knowing
  }
}
