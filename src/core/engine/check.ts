import { ErrorCode, StudioError } from '../../shared/errors';
import type { GPTConfig } from '../model/config';

/**
 * Checks a (B, T) batch of token ids before an engine runs it: a positive shape within the context, the right
 * length, and ids inside the real vocabulary (negative targets mean "ignored"; negative inputs are refused).
 */
export function checkTokenBatch(
  config: GPTConfig,
  B: number,
  T: number,
  ids: Int32Array,
  what: 'inputs' | 'targets' = 'inputs',
): void {
  const { blockSize, vocabSize } = config;
  if (!Number.isInteger(B) || !Number.isInteger(T) || B < 1 || T < 1) {
    throw new StudioError(ErrorCode.BAD_ARGUMENT, `Batch shape B=${B}, T=${T} must be positive integers.`);
  }
  if (T > blockSize) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `Sequence length ${T} exceeds the model's context of ${blockSize} positions.`,
      `Use at most ${blockSize} tokens.`,
    );
  }
  if (ids.length !== B * T) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `Batch ${what} hold ${ids.length} ids, expected B*T = ${B}*${T} = ${B * T}.`,
    );
  }
  for (let i = 0; i < ids.length; i++) {
    const t = ids[i]!;
    if (t >= vocabSize || (what === 'inputs' && t < 0)) {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `Token id ${t} at ${what}[${i}] is outside the vocabulary (0..${vocabSize - 1}).`,
      );
    }
  }
}
