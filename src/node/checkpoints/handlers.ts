/**
 * Checkpoint requests: the checkpoints of every run, deleting one, exporting one as an HF GPT-2 folder, and
 * "resume from here" (a new run branched from it).
 */
import { z } from 'zod';
import { runId, step } from '../../shared/schemas';
import { confinePath } from '../confine/paths';
import { defineHandlers } from '../studio/registry';

export const checkpointsHandlers = defineHandlers({
  /** Checkpoints of one run, or of every run (newest first). */
  'checkpoints-list': {
    readOnly: true,
    schema: z.object({ runId: runId.optional() }).strict().optional(),
    run: async (arg, studio) => studio.checkpoints.list(arg),
  },

  'checkpoints-delete': {
    schema: z.object({ runId, step }).strict(),
    run: async (arg, studio) => studio.checkpoints.remove(arg),
  },

  /** Writes a checkpoint's weights as an HF GPT-2 folder (model.safetensors + config.json). */
  'checkpoints-export': {
    schema: z.object({ runId, step, dest: z.string().min(1).max(4000), overwrite: z.boolean().optional() }).strict(),
    run: async (arg, studio) => studio.checkpoints.export(arg),
    confine: (a, limits) => ({ ...a, dest: confinePath(a.dest, limits.paths, 'export folder') }),
  },

  /** "Resume from here": a new run that continues from a checkpoint; the original run is left as it is. */
  'checkpoints-branch': {
    schema: z.object({ runId, step, name: z.string().max(200).optional(), start: z.boolean().optional() }).strict(),
    run: (arg, studio) => studio.checkpoints.branch(arg),
  },
});
