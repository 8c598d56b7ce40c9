import { ErrorCode, StudioError } from '../shared/errors';
import type { Model } from './engine/types';
import { Rng } from './random';

export interface SamplingOptions {
  /** 0 = greedy (argmax); otherwise logits are divided by it */
  temperature: number;
  /** keep the k most likely tokens (0 = all) */
  topK: number;
  /** keep the smallest set of tokens whose probability reaches p (1 = all) */
  topP: number;
}

export const DEFAULT_SAMPLING: SamplingOptions = { temperature: 1, topK: 50, topP: 1 };

export function validateSampling(o: SamplingOptions): void {
  if (!(o.temperature >= 0) || !Number.isFinite(o.temperature)) {
    throw new StudioError(ErrorCode.BAD_ARGUMENT, `temperature = ${o.temperature} must be a number >= 0.`, 'Use 0 for greedy decoding, 1 for plain sampling.');
  }
  if (!Number.isInteger(o.topK) || o.topK < 0) {
    throw new StudioError(ErrorCode.BAD_ARGUMENT, `top-k = ${o.topK} must be an integer >= 0.`, 'Use 0 to disable top-k (build-nanogpt samples with 50).');
  }
  if (!(o.topP > 0 && o.topP <= 1)) {
    throw new StudioError(ErrorCode.BAD_ARGUMENT, `top-p = ${o.topP} must be in (0, 1].`, 'Use 1 to disable nucleus sampling.');
  }
}

/**
 * Picks the next token from one row of logits (real vocabulary only, so a padded id can never come out).
 * Greedy when temperature is 0; otherwise softmax(logits / T) restricted to top-k, then top-p, sampled with rng.
 */
export function sampleToken(logits: Float32Array, o: SamplingOptions, rng: Rng): number {
  const V = logits.length;
  if (o.temperature === 0) {
    let best = 0;
    for (let i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  // candidate ids sorted by logit, descending; only the top k need sorting when k is set
  let ids: number[];
  if (o.topK > 0 && o.topK < V) {
    ids = topKIndices(logits, o.topK);
  } else {
    ids = Array.from({ length: V }, (_, i) => i).sort((a, b) => logits[b] - logits[a]);
  }
  const max = logits[ids[0]];
  const probs = ids.map((i) => Math.exp((logits[i] - max) / o.temperature));
  let total = probs.reduce((a, b) => a + b, 0);
  if (o.topP < 1) {
    let acc = 0;
    let keep = probs.length;
    for (let j = 0; j < probs.length; j++) {
      acc += probs[j] / total;
      if (acc >= o.topP) {
        keep = j + 1;
        break;
      }
    }
    probs.length = keep;
    ids.length = keep;
    total = probs.reduce((a, b) => a + b, 0);
  }
  let r = rng.random() * total;
  for (let j = 0; j < probs.length; j++) {
    r -= probs[j];
    if (r < 0) return ids[j];
  }
  return ids[probs.length - 1];
}

/** Indices of the k largest values, descending, ties broken by the lower index. */
function topKIndices(x: Float32Array, k: number): number[] {
  const idx: number[] = [];
  for (let i = 0; i < x.length; i++) {
    if (idx.length < k) {
      idx.push(i);
      if (idx.length === k) idx.sort((a, b) => x[b] - x[a] || a - b);
    } else if (x[i] > x[idx[k - 1]]) {
      let j = k - 1;
      while (j > 0 && x[idx[j - 1]] < x[i]) {
        idx[j] = idx[j - 1];
        j--;
      }
      idx[j] = i;
    }
  }
  if (idx.length < k) idx.sort((a, b) => x[b] - x[a] || a - b);
  return idx;
}

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens: number;
  /** number of sequences generated together */
  numSequences: number;
  seed: number;
  /** stop a row when it emits one of these ids (not included in the output) */
  stopTokens?: number[];
  /** called with each row's new token as it is generated; return false to stop early */
  onToken?: (row: number, token: number) => boolean | void;
}

/**
 * Generates continuations of `prompt` with the KV cache: one prefill over the prompt, then one decode step per
 * token. Returns the new tokens of each row (the prompt is not repeated).
 */
export async function generate(model: Model, prompt: number[], o: GenerateOptions): Promise<number[][]> {
  validateSampling(o);
  if (prompt.length === 0) throw new StudioError(ErrorCode.BAD_ARGUMENT, 'The prompt is empty.', 'Give at least one token (e.g. <|endoftext|>).');
  const B = o.numSequences;
  const limit = model.config.blockSize;
  const maxNew = Math.min(o.maxNewTokens, limit - prompt.length);
  if (maxNew <= 0) {
    throw new StudioError(ErrorCode.BAD_ARGUMENT, `The prompt has ${prompt.length} tokens; the model's context is ${limit}.`, 'Shorten the prompt.');
  }
  const V = model.config.vocabSize;
  const rng = new Rng(o.seed);
  const cache = model.createCache(B, prompt.length + maxNew);
  const out: number[][] = Array.from({ length: B }, () => []);
  const done = new Array<boolean>(B).fill(false);
  const stop = new Set(o.stopTokens ?? []);
  try {
    const first = new Int32Array(B * prompt.length);
    for (let b = 0; b < B; b++) first.set(prompt, b * prompt.length);
    let logits = await model.decodeStep(cache, first, prompt.length);
    for (let s = 0; s < maxNew; s++) {
      const next = new Int32Array(B);
      for (let b = 0; b < B; b++) {
        const tok = sampleToken(logits.subarray(b * V, (b + 1) * V), o, rng);
        next[b] = tok;
        if (done[b]) continue;
        if (stop.has(tok)) {
          done[b] = true;
          continue;
        }
        out[b].push(tok);
        if (o.onToken?.(b, tok) === false) done.fill(true);
      }
      if (done.every(Boolean) || s === maxNew - 1) break;
      logits = await model.decodeStep(cache, next, 1);
    }
  } finally {
    cache.dispose();
  }
  return out;
}
