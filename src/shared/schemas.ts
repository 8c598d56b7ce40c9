/**
 * The zod pieces that several handlers' schemas share (each handler declares its own schema beside its code, in its
 * domain's handlers.ts under src/node; see docs/ARCHITECTURE.md).
 */
import { z } from 'zod';

/** A run id: the folder name runs/<id>/, so no separators or dots at the start. */
export const runId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/, 'a run id such as run-20261128-193000-ab12');

/** A model to evaluate: a run's checkpoint (its last one unless `step` is given) or a weights file or folder. */
export const modelTarget = z.union([
  z.object({ runId, step: z.number().int().min(0).optional() }).strict(),
  z
    .object({ modelId: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'an imported model id (see models-list)') })
    .strict(),
  z.object({ weightsPath: z.string().min(1).max(4000) }).strict(),
]);

/** Sampling settings; each is optional (the service fills in defaults). */
export const sampling = {
  temperature: z.number().min(0).max(10).optional(),
  topK: z.number().int().min(0).max(100_000).optional(),
  topP: z.number().gt(0).max(1).optional(),
  maxTokens: z.number().int().min(1).max(100_000).optional(),
  seed: z.number().int().min(0).max(4_294_967_295).optional(),
};
export const chatMessage = z
  .object({ role: z.enum(['system', 'user', 'assistant']), content: z.string().max(100_000) })
  .strict();
export const chatSettings = z.object({ ...sampling, system: z.string().max(10_000).optional() }).strict();
export const chatId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/, 'a conversation id');
export const step = z.number().int().min(0);
export const evalId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/, 'an evaluation id');
/** A generation id (chosen by the client, or given back by generate-start / chats-send). */
export const genId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,199}$/, 'a generation id such as gen-1f2e');
export const engineName = z.enum(['auto', 'tfjs', 'native-cpu', 'native-cuda', 'native-webgpu']);

/** The run statuses (as the store defines them). */
export const RUN_STATUS_VALUES = ['created', 'running', 'paused', 'stopped', 'done', 'failed', 'interrupted'] as const;

/** A dataset preparation request (see PrepareRequest). */
export const prepareRequest = z
  .object({
    source: z.string().min(1).max(100),
    name: z.string().max(100).optional(),
    url: z.string().max(4000).optional(),
    file: z.string().max(4000).optional(),
    maxFiles: z.number().int().min(1).optional(),
    maxTokens: z.number().int().min(1).optional(),
    maxBytes: z.number().int().min(1).optional(),
    shardSize: z.number().int().min(1).max(2_147_483_647).optional(),
    valTokens: z.number().int().min(0).optional(),
    endpoint: z.string().max(2000).optional(),
    hfToken: z.string().max(500).optional(),
    sizeMb: z.number().positive().max(10_000).optional(),
    seed: z.number().int().min(0).max(4_294_967_295).optional(),
    workers: z.number().int().min(1).max(256).optional(),
    keepDownloads: z.boolean().optional(),
    overwrite: z.boolean().optional(),
  })
  .strict();

/** The JSON body of `POST /api/invoke/<name>`: `{arg}`, where `arg` is absent for a request without argument. */
export const httpInvokeBodySchema = z.object({ arg: z.unknown().optional() }).strict();
