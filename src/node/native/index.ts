/** The native engines: the addon loader, the native-cpu Engine, and its parity self-check against tfjs. */
import { ErrorCode, StudioError } from '../../shared/errors';
import { loadNativeAddon, type AddonLoad } from './addon';
import { NativeCpuEngine, nativeOptionsFromEnv, type NativeCpuOptions } from './model';

export { loadNativeAddon, NativeCpuEngine, nativeOptionsFromEnv };
export type { AddonLoad, NativeCpuOptions };
export { checkParity, PARITY_TOLERANCE, type ParityResult } from './parity';

/** The native-cpu engine, or a StudioError (ENGINE_UNAVAILABLE) that says why not and what to do. */
export function nativeCpuEngine(opts: NativeCpuOptions = {}, notes: string[] = []): NativeCpuEngine {
  const load = loadNativeAddon();
  if (!load.ok) throw new StudioError(ErrorCode.ENGINE_UNAVAILABLE, `The native-cpu engine is not available: ${load.reason}.`, load.hint);
  return new NativeCpuEngine(load.addon, { ...nativeOptionsFromEnv(), ...opts }, notes);
}

/** Why native-cuda is not available in this build (it is not built yet; the build's CUDA probe says more). */
export function nativeCudaReason(): string {
  const load = loadNativeAddon();
  const cuda = load.status?.cuda;
  const probe = cuda ? (cuda.reason ?? 'nvcc and cuBLAS were found') : 'the native build has not run';
  return `the CUDA engine is not part of this build yet (build probe: ${probe})`;
}
