import { ErrorCode, StudioError } from '../../shared/errors';
import type { Model } from '../engine/types';
import { encode } from '../tokenizer';
import { REFERENCE } from '../../shared/reference';

/** One HellaSwag example, as in hellaswag_val.jsonl (other fields are kept but unused). */
export interface HellaswagExample {
  ind: number;
  ctx: string;
  endings: [string, string, string, string];
  label: number;
  /** 1-based line in the source file */
  line: number;
}

export interface ParseIssue {
  line: number;
  message: string;
}

export interface ParsedHellaswag {
  examples: HellaswagExample[];
  /** malformed lines, each with its line number; skipped unless strict */
  skipped: ParseIssue[];
}

/**
 * Parses HellaSwag JSONL. A label may be a number or a numeric string (the Hugging Face copy stores "2").
 * Malformed lines (not JSON, no ctx, not four endings, a label outside 0..3) are reported with their line
 * number and skipped; with `strict` the first one is an error. `source` names the file in messages.
 */
export function parseHellaswag(text: string, opts: { strict?: boolean; source?: string } = {}): ParsedHellaswag {
  const src = opts.source ?? 'HellaSwag data';
  const examples: HellaswagExample[] = [];
  const skipped: ParseIssue[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (raw === '') continue;
    const line = i + 1;
    const problem = checkLine(raw, line);
    if (typeof problem === 'string') {
      if (opts.strict) {
        throw new StudioError(
          ErrorCode.BAD_DATA,
          `${src}, line ${line}: ${problem}.`,
          'Fix or remove the line, or run without --strict to skip malformed lines.',
        );
      }
      skipped.push({ line, message: problem });
    } else {
      examples.push(problem);
    }
  }
  if (examples.length === 0) {
    // an accuracy over nothing (acc 0/0) would read as a result
    throw new StudioError(
      ErrorCode.BAD_DATA,
      skipped.length
        ? `${src} holds no valid HellaSwag example: all ${skipped.length} line${skipped.length === 1 ? ' is' : 's are'} malformed (line ${skipped[0]!.line}: ${skipped[0]!.message}).`
        : `${src} holds no HellaSwag example: it is empty.`,
      'Pass the validation split as JSONL, one {"ctx", "endings": [4 strings], "label"} object a line ("gpt2-studio prepare hellaswag" downloads it).',
    );
  }
  return { examples, skipped };
}

function checkLine(raw: string, line: number): HellaswagExample | string {
  let o: unknown;
  try {
    o = JSON.parse(raw);
  } catch {
    return 'not valid JSON';
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return 'not a JSON object';
  const r = o as Record<string, unknown>;
  if (typeof r.ctx !== 'string' || r.ctx === '') return 'no "ctx" string';
  if (!Array.isArray(r.endings) || r.endings.length !== 4 || !r.endings.every((e) => typeof e === 'string')) {
    if (!Array.isArray(r.endings))
      return `"endings" must be a list of 4 strings; found ${r.endings === undefined ? 'no "endings"' : typeof r.endings}`;
    if (r.endings.length !== 4) return `"endings" must hold 4 strings; found ${r.endings.length}`;
    const bad = r.endings.findIndex((e) => typeof e !== 'string');
    return `"endings" must hold 4 strings; ending ${bad + 1} is ${JSON.stringify(r.endings[bad])}`;
  }
  const label = typeof r.label === 'string' && /^\d+$/.test(r.label.trim()) ? Number(r.label) : r.label;
  if (typeof label !== 'number' || !Number.isInteger(label) || label < 0 || label > 3) {
    return `"label" must be 0, 1, 2 or 3, found ${JSON.stringify(r.label)}`;
  }
  const ind = typeof r.ind === 'number' ? r.ind : line - 1;
  return { ind, ctx: r.ctx, endings: r.endings as HellaswagExample['endings'], label, line };
}

/** The four rows of an example: context tokens then " " + ending tokens, and where each ending starts. */
export interface RenderedExample {
  /** four token rows, unpadded */
  rows: number[][];
  /** tokens of the context (the first `ctxLen` of each row) */
  ctxLen: number;
}

export function renderExample(ex: HellaswagExample): RenderedExample {
  const ctx = encode(ex.ctx);
  const rows = ex.endings.map((e) => [...ctx, ...encode(' ' + e)]);
  return { rows, ctxLen: ctx.length };
}

export interface ExampleResult {
  ind: number;
  label: number;
  /** lowest summed loss */
  pred: number;
  /** lowest mean loss (acc_norm) */
  pred_norm: number;
  sum_loss: number[];
  avg_loss: number[];
}

/**
 * Scores one example as build-nanogpt's hellaswag.py does: the four rows run as one batch, padded to the
 * longest; the cross-entropy of each ending token given everything before it is summed (acc) and averaged
 * over the ending tokens (acc_norm).
 */
export async function scoreExample(model: Model, ex: HellaswagExample): Promise<ExampleResult | { skipped: string }> {
  const { rows, ctxLen } = renderExample(ex);
  const maxLen = Math.max(...rows.map((r) => r.length));
  const T = maxLen - 1;
  if (T > model.config.blockSize) {
    return {
      skipped: `example ${ex.ind} (line ${ex.line}) needs ${maxLen} tokens, more than the model's context of ${model.config.blockSize} + 1`,
    };
  }
  const B = 4;
  const inputs = new Int32Array(B * T);
  const targets = new Int32Array(B * T).fill(-1);
  rows.forEach((r, b) => {
    for (let t = 0; t < T; t++) {
      inputs[b * T + t] = t < r.length ? r[t]! : 0;
      // position t predicts token t+1; only ending tokens count
      if (t + 1 < r.length && t + 1 >= ctxLen) targets[b * T + t] = r[t + 1]!;
    }
  });
  const losses = await model.tokenLosses({ B, T, inputs, targets });
  const sum = [0, 0, 0, 0];
  const cnt = [0, 0, 0, 0];
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      if (targets[b * T + t]! >= 0) {
        sum[b]! += losses[b * T + t]!;
        cnt[b]!++;
      }
    }
  }
  const avg = sum.map((s, b) => s / cnt[b]!);
  const argmin = (xs: number[]) => xs.reduce((best, x, i) => (x < xs[best]! ? i : best), 0);
  return { ind: ex.ind, label: ex.label, pred: argmin(sum), pred_norm: argmin(avg), sum_loss: sum, avg_loss: avg };
}

export interface HellaswagSummary {
  n: number;
  correct: number;
  correctNorm: number;
  acc: number;
  accNorm: number;
  skipped: ParseIssue[];
}

export interface HellaswagRunOptions {
  limit?: number;
  /** score only examples i with i % world === rank */
  rank?: number;
  world?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number, s: { correct: number; correctNorm: number }) => void;
}

/** Scores a list of examples; examples longer than the context are reported in `skipped`, never truncated. */
export async function runHellaswag(
  model: Model,
  examples: HellaswagExample[],
  o: HellaswagRunOptions = {},
): Promise<{ summary: HellaswagSummary; examples: ExampleResult[] }> {
  const rank = o.rank ?? 0;
  const world = o.world ?? 1;
  let list = examples.slice(0, o.limit ?? examples.length);
  list = list.filter((_, i) => i % world === rank);
  const results: ExampleResult[] = [];
  const skipped: ParseIssue[] = [];
  let correct = 0;
  let correctNorm = 0;
  for (let i = 0; i < list.length; i++) {
    if (o.signal?.aborted)
      throw new StudioError(
        ErrorCode.CANCELLED,
        'HellaSwag evaluation was cancelled.',
        'Start it again to get a result.',
      );
    const r = await scoreExample(model, list[i]!);
    if ('skipped' in r) {
      skipped.push({ line: list[i]!.line, message: r.skipped });
    } else {
      results.push(r);
      if (r.pred === r.label) correct++;
      if (r.pred_norm === r.label) correctNorm++;
    }
    o.onProgress?.(i + 1, list.length, { correct, correctNorm });
  }
  const n = results.length;
  return {
    summary: { n, correct, correctNorm, acc: n ? correct / n : 0, accNorm: n ? correctNorm / n : 0, skipped },
    examples: results,
  };
}

/** Reference HellaSwag results (10,042 validation examples, completion style). */
export const HELLASWAG_BASELINES = [
  { model: 'GPT-2 124M', ...REFERENCE.hellaswag.gpt2 },
  { model: 'GPT-2 XL', ...REFERENCE.hellaswag.gpt2Xl },
  { model: 'GPT-3 124M (paper)', ...REFERENCE.hellaswag.gpt3 },
] as const;
