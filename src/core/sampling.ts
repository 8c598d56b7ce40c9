import { ErrorCode, StudioError } from '../shared/errors';
import type { Model } from './engine/types';
import { Rng } from './random';
import type { EndReason } from '../shared/models';
export type { EndReason };

export interface SamplingOptions {
  /** 0 = greedy (argmax); otherwise logits are divided by it */
  temperature: number;
  /** keep the k most likely tokens (0 = all) */
  topK: number;
  /** keep the smallest set of tokens whose probability reaches p (1 = all) */
  topP: number;
}

export function validateSampling(o: SamplingOptions): void {
  if (!(o.temperature >= 0) || !Number.isFinite(o.temperature)) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `temperature = ${o.temperature} must be a number >= 0.`,
      'Use 0 for greedy decoding, 1 for plain sampling.',
    );
  }
  if (!Number.isInteger(o.topK) || o.topK < 0) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `top-k = ${o.topK} must be an integer >= 0.`,
      'Use 0 to disable top-k (build-nanogpt samples with 50).',
    );
  }
  if (!(o.topP > 0 && o.topP <= 1)) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `top-p = ${o.topP} must be in (0, 1].`,
      'Use 1 to disable nucleus sampling.',
    );
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
    for (let i = 1; i < V; i++) if (logits[i]! > logits[best]!) best = i;
    return best;
  }
  // candidate ids sorted by logit, descending; only the top k need sorting when k is set
  let ids: number[];
  if (o.topK > 0 && o.topK < V) {
    ids = topKIndices(logits, o.topK);
  } else {
    ids = Array.from({ length: V }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]!);
  }
  const max = logits[ids[0]!]!;
  const probs = ids.map((i) => Math.exp((logits[i]! - max) / o.temperature));
  let total = probs.reduce((a, b) => a + b, 0);
  if (o.topP < 1) {
    let acc = 0;
    let keep = probs.length;
    for (let j = 0; j < probs.length; j++) {
      acc += probs[j]! / total;
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
    r -= probs[j]!;
    if (r < 0) return ids[j]!;
  }
  return ids[probs.length - 1]!;
}

/** Indices of the k largest values, descending, ties broken by the lower index. */
function topKIndices(x: Float32Array, k: number): number[] {
  const idx: number[] = [];
  for (let i = 0; i < x.length; i++) {
    if (idx.length < k) {
      idx.push(i);
      if (idx.length === k) idx.sort((a, b) => x[b]! - x[a]! || a - b);
    } else if (x[i]! > x[idx[k - 1]!]!) {
      let j = k - 1;
      while (j > 0 && x[idx[j - 1]!]! < x[i]!) {
        idx[j] = idx[j - 1]!;
        j--;
      }
      idx[j] = i;
    }
  }
  if (idx.length < k) idx.sort((a, b) => x[b]! - x[a]! || a - b);
  return idx;
}

/**
 * Max tokens checked against the model's context, at every boundary that takes it (chat, generate-*, the CLI).
 * A value above block_size could never be reached, so it is refused rather than silently cut. A value within it
 * still shares the context with the prompt: a generation that fills the context first ends with `context`. (The
 * window does not slide: the KV cache holds absolute positions up to block_size, so sliding would recompute the
 * whole window at every token.)
 */
export function checkMaxTokens(maxTokens: number, blockSize: number, name = 'max tokens'): void {
  if (!Number.isInteger(maxTokens) || maxTokens < 1) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `${name} ${maxTokens} must be a whole number >= 1.`,
      `Use a value from 1 to the model's context (${blockSize} tokens).`,
    );
  }
  if (maxTokens > blockSize) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `${name} ${maxTokens} is more than the model's context of ${blockSize} tokens; lower it to ${blockSize} or less.`,
      'The prompt and the generated tokens share the context: a generation that fills it ends early, as "context full".',
    );
  }
}

/** New tokens that fit after a prompt of `promptLength` tokens; throws when the prompt leaves no room at all. */
export function roomAfter(promptLength: number, blockSize: number): number {
  const room = blockSize - promptLength;
  if (room <= 0) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `The prompt has ${promptLength} tokens, which fills the model's context of ${blockSize} tokens: no room is left to generate.`,
      `Shorten the prompt to ${blockSize - 1} tokens or less.`,
    );
  }
  return room;
}

/**
 * Why a row that neither stopped nor emitted a stop token ended after `generated` tokens: `context` when the
 * context capped it below the tokens asked for, else `length`.
 */
export function limitReason(generated: number, maxTokens: number): EndReason {
  return generated < maxTokens ? 'context' : 'length';
}

export interface GenerateOptions extends SamplingOptions {
  /** new tokens per row, at most; the context may end a row sooner (its reason is then `context`) */
  maxNewTokens: number;
  /** number of sequences generated together */
  numSequences: number;
  seed: number;
  /** stop a row when it emits one of these ids (not included in the output; its reason is then `eot`) */
  stopTokens?: number[];
  /** called with each row's new token as it is generated; return false to stop early (reason `stop`) */
  onToken?: (row: number, token: number) => boolean | void;
}

/** One generated row: its new tokens and why it ended. */
export interface GeneratedRow {
  tokens: number[];
  reason: EndReason;
}

/**
 * Generates continuations of `prompt` with the KV cache: one prefill over the prompt, then one decode step per
 * token. Returns the new tokens of each row (the prompt is not repeated). See generateRows for why each ended.
 */
export async function generate(model: Model, prompt: number[], o: GenerateOptions): Promise<number[][]> {
  return (await generateRows(model, prompt, o)).map((r) => r.tokens);
}

/**
 * generate, with each row's end reason. maxNewTokens above what fits after the prompt is not an error here (the
 * trainer's samples rely on that); the row then ends with `context`, not `length`. Boundaries that take max tokens
 * from a user refuse a value above the context first (checkMaxTokens).
 */
export async function generateRows(model: Model, prompt: number[], o: GenerateOptions): Promise<GeneratedRow[]> {
  validateSampling(o);
  if (prompt.length === 0)
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      'The prompt is empty.',
      'Give at least one token (e.g. <|endoftext|>).',
    );
  const B = o.numSequences;
  const maxNew = Math.min(o.maxNewTokens, roomAfter(prompt.length, model.config.blockSize));
  if (!(maxNew >= 1)) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `maxNewTokens = ${o.maxNewTokens} must be at least 1.`,
      'Ask for one new token or more.',
    );
  }
  const V = model.config.vocabSize;
  const rng = new Rng(o.seed);
  const cache = model.createCache(B, prompt.length + maxNew);
  const out: number[][] = Array.from({ length: B }, () => []);
  const reasons = new Array<EndReason | null>(B).fill(null);
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
        if (reasons[b] !== null) continue;
        if (stop.has(tok)) {
          reasons[b] = 'eot';
          continue;
        }
        out[b]!.push(tok);
        if (o.onToken?.(b, tok) === false) {
          for (let r = 0; r < B; r++) reasons[r] ??= 'stop';
        }
      }
      if (reasons.every((r) => r !== null) || s === maxNew - 1) break;
      logits = await model.decodeStep(cache, next, 1);
    }
  } finally {
    cache.dispose();
  }
  return out.map((tokens, b) => ({ tokens, reason: reasons[b] ?? limitReason(tokens.length, o.maxNewTokens) }));
}
