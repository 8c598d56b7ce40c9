/**
 * Evaluation requests: HellaSwag (queued, with progress events and per-example results), the val loss of a model on
 * a dataset, and the loss of each token of a text.
 */
import { z } from 'zod';
import { ErrorCode, StudioError } from '../../shared/errors';
import { engineName, evalId, modelTarget, runId } from '../../shared/schemas';
import { confinePath } from '../confine/paths';
import { target } from '../confine/requests';
import { defineHandlers } from '../studio/registry';

const byId = z.object({ id: evalId }).strict();

export const evalsHandlers = defineHandlers({
  /** Queues a HellaSwag evaluation of a checkpoint or of weights; see eval-progress and eval-status. */
  'evals-hellaswag': {
    schema: z
      .object({
        target: modelTarget,
        data: z.string().max(4000).optional(),
        limit: z.number().int().positive().optional(),
        engine: engineName.optional(),
      })
      .strict(),
    run: async (req, studio) => studio.evals.hellaswag(req),
    confine: (r, limits) => ({
      ...r,
      target: target(r.target, limits, 'weights path'),
      ...(r.data !== undefined && r.data.trim() !== ''
        ? { data: confinePath(r.data, limits.paths, 'HellaSwag data file') }
        : {}),
    }),
  },

  'evals-cancel': { schema: byId, run: async ({ id }, studio) => ({ cancelled: studio.evals.cancel(id) }) },

  'evals-list': {
    readOnly: true,
    schema: z
      .object({
        kind: z.enum(['hellaswag', 'val_loss']).optional(),
        status: z.enum(['running', 'done', 'failed', 'cancelled', 'interrupted']).optional(),
        runId: runId.optional(),
        limit: z.number().int().positive().max(10_000).optional(),
      })
      .strict()
      .optional(),
    run: async (filter, studio) => studio.store.listEvals(filter),
  },

  'evals-delete': { schema: byId, run: async ({ id }, studio) => studio.evals.remove(id) },

  'evals-get': {
    readOnly: true,
    schema: byId,
    run: async ({ id }, studio) => {
      const e = studio.store.getEval(id);
      if (!e) throw new StudioError(ErrorCode.NOT_FOUND, `No evaluation "${id}".`, 'List them with evals-list.');
      return e;
    },
  },

  /** Per-example HellaSwag results, optionally only the wrong ones (acc_norm). */
  'evals-examples': {
    readOnly: true,
    schema: z
      .object({
        evalId,
        wrongOnly: z.boolean().optional(),
        limit: z.number().int().positive().max(20_000).optional(),
        offset: z.number().int().min(0).optional(),
      })
      .strict(),
    run: async (arg, studio) => studio.evals.examples(arg),
  },

  /** Val loss of a checkpoint or weights on a dataset's val split. */
  'evals-val-loss': {
    schema: z
      .object({
        target: modelTarget,
        dataset: z.string().min(1).max(100),
        iters: z.number().int().positive().max(10_000).optional(),
        batchSize: z.number().int().positive().max(1024).optional(),
        seqLen: z.number().int().positive().max(100_000).optional(),
      })
      .strict(),
    run: (arg, studio) => studio.evals.valLoss(arg),
    confine: (a, limits) => ({ ...a, target: target(a.target, limits, 'weights path') }),
  },

  /** The loss of each token of a text under a model (the token-loss view). */
  'tokens-score': {
    schema: z.object({ target: modelTarget, text: z.string().min(1).max(100_000) }).strict(),
    run: (arg, studio) => studio.evals.score(arg),
    confine: (a, limits) => ({ ...a, target: target(a.target, limits, 'weights path') }),
  },
});
