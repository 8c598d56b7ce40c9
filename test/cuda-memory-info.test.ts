/**
 * cudaMemoryInfo (src/node/native) where it cannot ask a GPU: it answers null at once and never throws, so that the
 * run creation that checks a memory plan against it goes on without the check. The answers of a library that can
 * ask (the CUDA engine under the CPU emulation) are checked in test/cuda-emulated.test.ts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cudaMemoryInfo } from '../src/node/native';
import { withCudaLibrary } from './support/cuda-library';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-cuda-memory-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('cudaMemoryInfo without a CUDA library', () => {
  it('is null, at once, when the library file is missing', async () => {
    const t0 = performance.now();
    expect(await withCudaLibrary(path.join(dir, 'missing', 'libgpt2_cuda.so'), () => cudaMemoryInfo())).toBeNull();
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it('is null, without throwing, when the file is not a library', async () => {
    const junk = path.join(dir, 'libjunk.so');
    fs.writeFileSync(junk, 'not an ELF file\n');
    expect(await withCudaLibrary(junk, () => cudaMemoryInfo())).toBeNull();
  });
});
