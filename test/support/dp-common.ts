/** The model and batches of the data-parallel tests (test/data-parallel.test.ts and test/support/dp-rank.ts). */
import type { Batch } from '../../src/core/engine/types';

export const DP_CONFIG = { nLayer: 2, nHead: 2, nEmbd: 32, blockSize: 32, vocabSize: 50257, paddedVocabSize: 50304 };

/** Rank r's micro-batch: (2, 16) tokens from a fixed pseudo-random stream. */
export function dpBatch(r: number): Batch {
  const B = 2,
    T = 16;
  const inputs = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  let x = 12345 + 977 * r;
  const next = () => (x = (x * 1103515245 + 12345) % 2147483648) % 50257;
  for (let i = 0; i < B * T; i++) {
    inputs[i] = next();
    targets[i] = next();
  }
  return { B, T, inputs, targets };
}
