/**
 * For the tests (test/native-*.test.ts): whether the native addon is built, and which GEMM backends to run every
 * test with. A test of a backend that is not there skips, and its title says why.
 */
import { loadNativeAddon, type GemmBackend, type NativeAddon } from './addon';

export const nativeLoad = loadNativeAddon();

/** The addon, or null when it is not built (the reason is in `nativeSkipReason`). */
export const addon: NativeAddon | null = nativeLoad.ok ? nativeLoad.addon : null;

export const nativeSkipReason = nativeLoad.ok ? '' : `${nativeLoad.reason}. ${nativeLoad.hint}`;

export interface GemmCase {
  gemm: GemmBackend;
  /** null when the case runs, else why it is skipped */
  skip: string | null;
  /** the title to show: the backend, and in short why when skipped (vitest cuts long titles) */
  title: string;
}

/** Both GEMM backends; BLAS is skipped (with the reason) on a build without one. */
export const GEMM_CASES: GemmCase[] = (['blas', 'builtin'] as const).map((gemm) => {
  let skip: string | null = null;
  let short = '';
  if (!addon) {
    skip = nativeSkipReason;
    short = 'native engine not built';
  } else if (gemm === 'blas' && !addon.hasBlas()) {
    skip = 'this native build has no BLAS (install libopenblas-dev and run npm run build:native)';
    short = 'no BLAS in this build';
  }
  return { gemm, skip, title: skip ? `${gemm} GEMM [skipped: ${short}]` : `${gemm} GEMM` };
});

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}
