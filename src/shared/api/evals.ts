/** Evaluation requests (see src/node/evals/handlers.ts). */
import type { ModelTarget } from '../models';
import type { Eval, EvalExample, ListEvalsFilter } from '../records';

export interface HellaswagRequest {
  target: ModelTarget;
  /** a hellaswag_val.jsonl; default: the workspace's (gpt2-studio prepare hellaswag) */
  data?: string;
  limit?: number;
  engine?: string;
}

/** One example of an eval as the per-example browser shows it: the stored scores, with the example's text. */
export interface HellaswagExampleView extends EvalExample {
  /** the context and the four endings, from the eval's data file; null when that file is gone or changed */
  ctx: string | null;
  endings: string[] | null;
}

export interface TokenScores {
  /** the scored tokens (the first contextLength + 1 of the text) */
  tokens: number[];
  /** each token decoded on its own */
  pieces: string[];
  /** losses[i]: the loss (nats) of tokens[i + 1] given tokens[0..i] */
  losses: number[];
  meanLoss: number;
  /** tokens in the whole text */
  totalTokens: number;
  /** the text was longer than the model's context and was cut */
  truncated: boolean;
  /** the model's context (block size) */
  contextLength: number;
  /** what the model is called */
  model: string;
}

export type EvalsHandlers = {
  'evals-hellaswag': (req: HellaswagRequest) => Promise<Eval>;
  'evals-cancel': (arg: { id: string }) => Promise<{ cancelled: boolean }>;
  'evals-list': (filter?: ListEvalsFilter) => Promise<Eval[]>;
  'evals-delete': (arg: { id: string }) => Promise<{ deleted: boolean }>;
  'evals-get': (arg: { id: string }) => Promise<Eval>;
  'evals-examples': (arg: {
    evalId: string;
    wrongOnly?: boolean;
    limit?: number;
    offset?: number;
  }) => Promise<HellaswagExampleView[]>;
  'evals-val-loss': (arg: {
    target: ModelTarget;
    dataset: string;
    iters?: number;
    batchSize?: number;
    seqLen?: number;
  }) => Promise<{ valLoss: number; tokens: number; model: string }>;
  'tokens-score': (arg: { target: ModelTarget; text: string }) => Promise<TokenScores>;
};
