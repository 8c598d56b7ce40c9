/**
 * Model requests: imported GPT-2 weights (models/<id>/) and, in the list, every checkpoint a model picker offers.
 */
import { z } from 'zod';
import { confinePath } from '../confine/paths';
import { defineHandlers, noArgument } from '../studio/registry';

export const modelsHandlers = defineHandlers({
  /** Imported GPT-2 weights and every checkpoint: what a model picker offers. */
  'models-list': { readOnly: true, schema: noArgument, run: async (_a, studio) => studio.models.list() },

  /** Imports GPT-2 weights (a .safetensors file, or a folder with model.safetensors and config.json). */
  'models-import': {
    schema: z.object({ path: z.string().min(1).max(4000), name: z.string().max(100).optional() }).strict(),
    run: (arg, studio) => studio.models.import(arg),
    confine: (a, limits) => ({
      ...a,
      path: confinePath(a.path, limits.paths, 'models-import path', { children: true }),
    }),
  },

  'models-remove': {
    schema: z.object({ id: z.string().min(1).max(100) }).strict(),
    run: async (arg, studio) => studio.models.remove(arg),
  },
});
