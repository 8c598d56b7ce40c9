/**
 * native-cpu against the PyTorch fixture, once with BLAS and once with the built-in SGEMM (test/support/fixture-suite.ts).
 */
import { expect } from 'vitest';
import { getEngine } from '../src/node/engines';
import { GEMM_CASES } from '../src/node/native/testing';
import { fixtureSuite } from './support/fixture-suite';

for (const { gemm, skip } of GEMM_CASES) {
  fixtureSuite(
    `native-cpu engine against the PyTorch fixture (gpt2-tiny), ${gemm} GEMM`,
    async () => {
      const engine = await getEngine('native-cpu', { gemm, threads: 2 });
      expect(engine.name).toBe('native-cpu');
      return engine;
    },
    skip || undefined,
  );
}
