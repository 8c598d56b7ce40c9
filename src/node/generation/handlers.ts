/**
 * Generation requests: text from a model, streamed as generate-token events and ended by generate-done, and the
 * same prompt across several models (the sample gallery).
 */
import { z } from 'zod';
import { chatMessage, engineName, genId, modelTarget, sampling } from '../../shared/schemas';
import { target } from '../confine/requests';
import { defineHandlers } from '../studio/registry';

export const generationHandlers = defineHandlers({
  /** Starts generating; text streams as generate-token events, the end is generate-done. */
  'generate-start': {
    schema: z
      .object({
        target: modelTarget,
        prompt: z.string().max(100_000).optional(),
        messages: z.array(chatMessage).max(1000).optional(),
        engine: engineName.optional(),
        genId: genId.optional(),
        ...sampling,
      })
      .strict(),
    run: (req, studio) => studio.generation.start(req),
    confine: (r, limits) => ({ ...r, target: target(r.target, limits, 'weights path') }),
  },

  'generate-stop': {
    schema: z.object({ genId: z.string().min(1).max(200) }).strict(),
    run: async (arg, studio) => studio.generation.stop(arg),
  },

  /** The same prompt and seed across models (the sample gallery). */
  'generate-sample': {
    schema: z
      .object({
        targets: z.array(modelTarget).min(1).max(10),
        prompt: z.string().max(100_000),
        engine: engineName.optional(),
        ...sampling,
      })
      .strict(),
    run: (req, studio) => studio.generation.sample(req),
    confine: (r, limits) => ({ ...r, targets: r.targets.map((t) => target(t, limits, 'weights path')) }),
  },
});
