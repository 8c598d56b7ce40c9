/** Evaluation requests (see src/node/evals/handlers.ts). */
import type { ModelTarget } from '../models';
import type { Eval, ListEvalsFilter } from '../../node/store';
import type { HellaswagExampleView, HellaswagRequest, TokenScores } from '../../node/studio/evals';

export type EvalsHandlers = {
  'evals-hellaswag': (req: HellaswagRequest) => Promise<Eval>;
  'evals-cancel': (arg: { id: string }) => Promise<{ cancelled: boolean }>;
  'evals-list': (filter?: ListEvalsFilter) => Promise<Eval[]>;
  'evals-delete': (arg: { id: string }) => Promise<{ deleted: boolean }>;
  'evals-get': (arg: { id: string }) => Promise<Eval>;
  'evals-examples': (arg: { evalId: string; wrongOnly?: boolean; limit?: number; offset?: number }) => Promise<HellaswagExampleView[]>;
  'evals-val-loss': (arg: { target: ModelTarget; dataset: string; iters?: number; batchSize?: number; seqLen?: number }) => Promise<{ valLoss: number; tokens: number; model: string }>;
  'tokens-score': (arg: { target: ModelTarget; text: string }) => Promise<TokenScores>;
};
