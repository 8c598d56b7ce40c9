/** What the Evals page derives from evaluations and token scores: baselines, labels, paging, the loss colour scale. */
import type { HandlerResult } from '../../../shared/contract';
import { REFERENCE } from '../../../shared/reference';

export type Eval = HandlerResult<'evals-get'>;
export type TokenScores = HandlerResult<'tokens-score'>;
/** One scored example; its text (ctx, endings) comes from the eval's data file and is null when that file is gone. */
export type Example = HandlerResult<'evals-examples'>[number] & { ctx?: string | null; endings?: string[] | null };

export interface Baseline {
  label: string;
  acc: number | null;
  accNorm: number;
  note: string;
}

/** HellaSwag reference points (10,042 validation examples, completion style), and chance with four endings. */
export const BASELINES: readonly Baseline[] = [
  { label: 'Random', ...REFERENCE.hellaswag.random, note: 'chance: one of four endings' },
  { label: 'GPT-2 124M', ...REFERENCE.hellaswag.gpt2, note: 'OpenAI GPT-2 small, as build-nanogpt measures it' },
  { label: 'GPT-3 124M', ...REFERENCE.hellaswag.gpt3, note: "the GPT-3 paper's Small model, trained on 300B tokens" },
];

/** The HellaSwag summary of a finished eval (the service's summary_json), or null. */
export interface HellaswagSummary {
  n: number;
  correct: number;
  correctNorm: number;
  acc: number;
  accNorm: number;
  model?: string;
  modelKey?: string;
  skipped?: Array<{ line: number; message: string }>;
  malformed?: Array<{ line: number; message: string }>;
}

export function summaryOf(ev: Eval): HellaswagSummary | null {
  const s = ev.summary as Partial<HellaswagSummary> | null;
  if (!s || typeof s.n !== 'number' || typeof s.accNorm !== 'number') return null;
  return s as HellaswagSummary;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** What the model of an eval is called: its recorded name, else the run and step, else the weights' file. */
export function evalModelLabel(ev: Eval): string {
  const fromParams = str(ev.params.model) ?? str(summaryOf(ev)?.model);
  if (fromParams) return fromParams;
  if ('runId' in ev.target) return `${ev.target.runId} · step ${ev.target.step}`;
  return ev.target.weightsPath;
}

/** The models-list key of an eval's model (what the picker and the URL use). */
export function evalModelKey(ev: Eval): string {
  const k = str(ev.params.modelKey);
  if (k) return k;
  if (str(ev.params.modelId)) return `model:${String(ev.params.modelId)}`;
  if ('runId' in ev.target) return `ckpt:${ev.target.runId}:${ev.target.step}`;
  return `path:${ev.target.weightsPath}`;
}

/** The example limit an eval was asked for, or null for all. */
export function evalLimit(ev: Eval): number | null {
  return typeof ev.params.limit === 'number' ? ev.params.limit : null;
}

export { accPercent } from '../../../shared/accuracy';

/** A difference of two accuracies in percentage points, signed: -0.0465 -> "−4.7 pts". */
export function accPointsDiff(d: number): string {
  if (!Number.isFinite(d)) return '—';
  const pts = Math.abs(d) * 100;
  return `${d >= 0 ? '+' : '−'}${pts.toLocaleString('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 1 })} pts`;
}

/** The standard error of an accuracy measured on n examples (a binomial proportion). */
export function stdErr(p: number, n: number): number {
  return n > 0 ? Math.sqrt((p * (1 - p)) / n) : Number.NaN;
}

/** Examples in the browser's list: all scored ones, or those acc_norm got wrong. */
export function browsableCount(s: HellaswagSummary, wrongOnly: boolean): number {
  return wrongOnly ? s.n - s.correctNorm : s.n;
}

/** Parses the "examples" field: empty is all (null); otherwise a whole number of at least 1, or an error message. */
export function parseLimit(text: string): { limit: number | null } | { error: string } {
  const t = text.trim();
  if (t === '') return { limit: null };
  if (!/^\d+$/.test(t) || Number(t) < 1)
    return {
      error: `“${t}” is not a number of examples: use a whole number of at least 1, or leave it empty for all.`,
    };
  return { limit: Number(t) };
}

/** Rate and time left of a running eval, from its first and latest progress. */
export interface Progress {
  done: number;
  total: number;
  accNorm: number;
  /** when the first progress of this eval arrived (ms), and how far it was then */
  t0: number;
  done0: number;
  /** when the latest arrived */
  t: number;
}

export function progressRate(p: Progress): { perSec: number | null; etaSec: number | null } {
  const dt = (p.t - p.t0) / 1000;
  const dd = p.done - p.done0;
  if (dt <= 0 || dd <= 0) return { perSec: null, etaSec: null };
  const perSec = dd / dt;
  return { perSec, etaSec: (p.total - p.done) / perSec };
}

// ---- the token-loss view -----------------------------------------------------------------------------------

/** Upper edges (nats) of the colour classes of a token's loss; the last class is open. */
export const LOSS_CLASSES = [1, 2, 4, 6, 8] as const;

/** The colour class (0..5) of a loss in nats. */
export function lossClass(loss: number): number {
  if (!Number.isFinite(loss)) return LOSS_CLASSES.length;
  const i = LOSS_CLASSES.findIndex((edge) => loss < edge);
  return i < 0 ? LOSS_CLASSES.length : i;
}

/** The legend's text of each class: "< 1", "1–2", ..., "≥ 8". */
export function lossClassLabels(): string[] {
  return [
    ...LOSS_CLASSES.map((edge, i) => (i === 0 ? `< ${edge}` : `${LOSS_CLASSES[i - 1]}–${edge}`)),
    `≥ ${LOSS_CLASSES[LOSS_CLASSES.length - 1]}`,
  ];
}

/** One token of a scored text as the view draws it; the first token has no loss (nothing predicts it). */
export interface ScoredToken {
  /** position in the text's tokens */
  pos: number;
  id: number;
  piece: string;
  loss: number | null;
}

export function scoredTokens(r: TokenScores): ScoredToken[] {
  return r.tokens.map((id, pos) => ({
    pos,
    id,
    piece: r.pieces[pos] ?? '',
    loss: pos === 0 ? null : (r.losses[pos - 1] ?? null),
  }));
}

/** The k tokens with the highest loss, highest first (ties: the earlier one first). */
export function mostSurprising(tokens: ScoredToken[], k = 10): Array<ScoredToken & { loss: number }> {
  return tokens
    .filter((t): t is ScoredToken & { loss: number } => t.loss !== null && Number.isFinite(t.loss))
    .sort((a, b) => b.loss - a.loss || a.pos - b.pos)
    .slice(0, k);
}

/** A token's text for a list: quoted, with spaces, tabs and newlines made visible. */
export function showPiece(piece: string): string {
  return `“${piece.replace(/\n/g, '↵').replace(/\t/g, '⇥').replace(/ /g, '␣')}”`;
}
