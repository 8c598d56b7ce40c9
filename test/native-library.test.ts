/**
 * The native-cuda engine's path through the addon: a build of the C API loaded at run time (loadLibrary) and
 * driven through a function table. Without a GPU, the CPU engine built as a shared library stands in for
 * libgpt2_cuda.so (GPT2_STUDIO_CUDA_LIB), so the same PyTorch fixture suite checks the loaded path end to end.
 * A library from another version of the header, or a missing one, is refused with the reason.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { getEngine, describeEngines } from '../src/node/engines';
import { loadNativeAddon } from '../src/node/native/addon';
import { withCudaLibrary } from './support/cuda-library';
import { fixtureSuite } from './support/fixture-suite';
import { repoRoot } from './shared';

const native = loadNativeAddon();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-lib-'));
const lib = path.join(dir, 'libgpt2_cpu.so');
const cxx = process.env.CXX || 'c++';

/** The CPU engine as a shared library, as native/test/gpu/gpu-check.sh builds it (without BLAS, -O2 to be quick). */
function buildCpuLibrary(): string | null {
  if (!native.ok) return 'the addon is not built';
  try {
    const src = ['cpu/model.cpp', 'cpu/layers.cpp', 'cpu/gemm.cpp', 'common/comm_shm.cpp', 'common/layout.cpp'].map(
      (f) => path.join(repoRoot, 'native', f),
    );
    execFileSync(cxx, ['-std=c++17', '-O2', '-fopenmp', '-fPIC', '-shared', '-Wl,-Bsymbolic', ...src, '-o', lib], {
      stdio: 'pipe',
    });
    return null;
  } catch (e) {
    return `${cxx} could not build the library: ${String(e).slice(0, 200)}`;
  }
}
const skip = buildCpuLibrary();
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const withLibrary = withCudaLibrary;

fixtureSuite(
  'native-cuda path (a loaded library, here the CPU build) against the PyTorch fixture',
  async () => {
    const engine = await withLibrary(lib, () => getEngine('native-cuda'));
    expect(engine.name).toBe('native-cuda');
    expect(engine.info().detail).toContain(lib);
    return engine;
  },
  skip ?? undefined,
);

describe.skipIf(!!skip)('loading a library of the C API', () => {
  it('lists native-cuda as available, with its parity, when the library loads and builds a model', async () => {
    const infos = await withLibrary(lib, () => describeEngines());
    const cuda = infos.find((i) => i.name === 'native-cuda')!;
    expect(cuda.available).toBe(true);
    expect(cuda.notes.join('\n')).toMatch(/parity: pass against tfjs/);
  }, 120_000);

  it('refuses a library from another version of the header, naming the missing function', () => {
    const old = path.join(dir, 'libold.so');
    const src = path.join(dir, 'old.c');
    fs.writeFileSync(src, 'const char* gpt2_last_error(void) { return ""; }\n');
    execFileSync(process.env.CC || 'cc', ['-shared', '-fPIC', src, '-o', old]);
    expect(() => native.ok && native.addon.loadLibrary(old)).toThrow(
      /libold\.so lacks gpt2_build_info: it was built from another version of native\/include\/gpt2\.h; rebuild it/,
    );
  });

  it('says why native-cuda is unavailable when the library is missing or does not load', async () => {
    await withLibrary(path.join(dir, 'nope.so'), async () => {
      await expect(getEngine('native-cuda')).rejects.toThrow(/The native-cuda engine is not available/);
    });
    const junk = path.join(dir, 'junk.so');
    fs.writeFileSync(junk, 'not a library');
    await withLibrary(junk, async () => {
      await expect(getEngine('native-cuda')).rejects.toThrow(/junk\.so: (invalid ELF header|file too short)/);
    });
  });

  it("a precision the loaded build does not have is refused with the engine's reason", async () => {
    const engine = await withLibrary(lib, () => getEngine('native-cuda', { precision: 'bf16' }));
    const { makeConfig } = await import('../src/core/model/config');
    const { initWeights } = await import('../src/core/model/init');
    const cfg = makeConfig({ nLayer: 1, nHead: 1, nEmbd: 8, blockSize: 8, vocabSize: 16 });
    await expect(engine.createModel(cfg, initWeights(cfg, 1))).rejects.toThrow(/native-cuda cannot compute in bf16/);
  });
});
