/**
 * zod schemas for every request argument. Every transport (IPC, HTTP, CLI) validates a request with these before
 * the Studio service sees it.
 */
import { z } from 'zod';
import type { HandlerArg, HandlerName } from './contract';

/** A run id: the folder name runs/<id>/, so no separators or dots at the start. */
const runId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/, 'a run id such as run-20261128-193000-ab12');

/** A model to evaluate: a run's checkpoint (its last one unless `step` is given) or a weights file or folder. */
const modelTarget = z.union([
  z.object({ runId, step: z.number().int().min(0).optional() }).strict(),
  z.object({ modelId: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'an imported model id (see models-list)') }).strict(),
  z.object({ weightsPath: z.string().min(1).max(4000) }).strict(),
]);

/** Sampling settings; each is optional (the service fills in defaults). */
const sampling = {
  temperature: z.number().min(0).max(10).optional(),
  topK: z.number().int().min(0).max(100_000).optional(),
  topP: z.number().gt(0).max(1).optional(),
  maxTokens: z.number().int().min(1).max(100_000).optional(),
  seed: z.number().int().min(0).max(4_294_967_295).optional(),
};
const chatMessage = z.object({ role: z.enum(['system', 'user', 'assistant']), content: z.string().max(100_000) }).strict();
const chatSettings = z.object({ ...sampling, system: z.string().max(10_000).optional() }).strict();
const chatId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/, 'a conversation id');
const step = z.number().int().min(0);
const evalId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/, 'an evaluation id');
const engineName = z.enum(['auto', 'tfjs', 'native-cpu', 'native-cuda']);

/** The run statuses (as the store defines them). */
const RUN_STATUS_VALUES = ['created', 'running', 'paused', 'stopped', 'done', 'failed', 'interrupted'] as const;

/** A dataset preparation request (see PrepareRequest). */
const prepareRequest = z.object({
  source: z.string().min(1).max(100),
  name: z.string().max(100).optional(),
  url: z.string().max(4000).optional(),
  file: z.string().max(4000).optional(),
  maxFiles: z.number().int().min(1).optional(),
  maxTokens: z.number().int().min(1).optional(),
  shardSize: z.number().int().min(1).max(2_147_483_647).optional(),
  valTokens: z.number().int().min(0).optional(),
  endpoint: z.string().max(2000).optional(),
  hfToken: z.string().max(500).optional(),
  sizeMb: z.number().positive().max(10_000).optional(),
  seed: z.number().int().min(0).max(4_294_967_295).optional(),
  workers: z.number().int().min(1).max(256).optional(),
  keepDownloads: z.boolean().optional(),
  overwrite: z.boolean().optional(),
}).strict();

/** A handler that takes no argument: nothing, or (from a JSON body) an absent `arg`. */
const noArgument = z.undefined({ error: 'this request takes no argument' });

/**
 * Request name -> schema of its argument. The mapped type makes a missing name, an extra name, or a schema whose
 * output differs from the handler's parameter a compile error.
 */
export const requestSchemas: { [K in HandlerName]: z.ZodType<HandlerArg<K>> } = {
  'app-info': noArgument,
  'engines-list': noArgument,
  'datasets-list': noArgument,
  'datasets-sources': noArgument,
  'datasets-jobs': noArgument,
  'datasets-prepare': prepareRequest,
  'datasets-cancel': z.object({ jobId: z.string().min(1).max(200) }).strict(),
  'datasets-remove': z.object({ id: z.string().min(1).max(200) }).strict(),
  'datasets-preview': z.object({ id: z.string().min(1).max(200), chars: z.number().int().min(1).max(100_000).optional() }).strict(),
  'datasets-estimate': prepareRequest,
  'files-browse': z.object({ path: z.string().max(4000).optional(), extensions: z.array(z.string().max(20)).max(20).optional(), showHidden: z.boolean().optional() }).strict().optional(),
  'models-list': noArgument,
  'models-import': z.object({ path: z.string().min(1).max(4000), name: z.string().max(100).optional() }).strict(),
  'models-remove': z.object({ id: z.string().min(1).max(100) }).strict(),
  'generate-start': z.object({ target: modelTarget, prompt: z.string().max(100_000).optional(), messages: z.array(chatMessage).max(1000).optional(), engine: engineName.optional(), ...sampling }).strict(),
  'generate-stop': z.object({ genId: z.string().min(1).max(200) }).strict(),
  'generate-sample': z.object({ targets: z.array(modelTarget).min(1).max(10), prompt: z.string().max(100_000), engine: engineName.optional(), ...sampling }).strict(),
  'chats-list': noArgument,
  'chats-get': z.object({ id: chatId }).strict(),
  'chats-create': z.object({ target: modelTarget, title: z.string().max(200).optional(), settings: chatSettings.optional() }).strict(),
  'chats-update': z.object({ id: chatId, title: z.string().max(200).optional(), target: modelTarget.optional(), settings: chatSettings.optional() }).strict(),
  'chats-delete': z.object({ id: chatId }).strict(),
  'chats-send': z.object({ id: chatId, content: z.string().min(1).max(100_000) }).strict(),
  'checkpoints-list': z.object({ runId: runId.optional() }).strict().optional(),
  'checkpoints-delete': z.object({ runId, step }).strict(),
  'checkpoints-export': z.object({ runId, step, dest: z.string().min(1).max(4000), overwrite: z.boolean().optional() }).strict(),
  'checkpoints-branch': z.object({ runId, step, name: z.string().max(200).optional(), start: z.boolean().optional() }).strict(),
  'evals-delete': evalId,
  'evals-hellaswag': z.object({ target: modelTarget, data: z.string().max(4000).optional(), limit: z.number().int().positive().optional(), engine: engineName.optional() }).strict(),
  'evals-cancel': evalId,
  'evals-list': z.object({ kind: z.enum(['hellaswag', 'val_loss']).optional(), status: z.enum(['running', 'done', 'failed', 'cancelled', 'interrupted']).optional(), runId: runId.optional(), limit: z.number().int().positive().max(10_000).optional() }).strict().optional(),
  'evals-get': evalId,
  'evals-examples': z.object({ evalId, wrongOnly: z.boolean().optional(), limit: z.number().int().positive().max(20_000).optional(), offset: z.number().int().min(0).optional() }).strict(),
  'evals-val-loss': z.object({ target: modelTarget, dataset: z.string().min(1).max(100), iters: z.number().int().positive().max(10_000).optional(), batchSize: z.number().int().positive().max(1024).optional(), seqLen: z.number().int().positive().max(100_000).optional() }).strict(),
  'tokens-score': z.object({ target: modelTarget, text: z.string().min(1).max(100_000) }).strict(),
  'settings-get': noArgument,
  'settings-set': z.object({
    hfEndpoint: z.string().max(2000).nullable().optional(),
    hfToken: z.string().max(500).nullable().optional(),
    allowedFolders: z.array(z.string().min(1).max(4000)).max(100).nullable().optional(),
    allowPrivateUrls: z.boolean().nullable().optional(),
  }).strict(),
  'presets-list': noArgument,
  'config-validate': z.unknown(),
  'runs-create': z.object({
    config: z.unknown(),
    name: z.string().max(200).optional(),
    preset: z.string().max(100).optional(),
    tags: z.array(z.string().max(50)).max(20).optional(),
    notes: z.string().max(10_000).optional(),
    start: z.boolean().optional(),
    force: z.boolean().optional(),
  }).strict(),
  'runs-list': z.object({
    status: z.union([z.enum(RUN_STATUS_VALUES), z.array(z.enum(RUN_STATUS_VALUES))]).optional(),
    search: z.string().max(200).optional(),
    limit: z.number().int().positive().max(10_000).optional(),
    offset: z.number().int().min(0).optional(),
  }).strict().optional(),
  'runs-get': runId,
  'runs-stop': runId,
  'runs-pause': runId,
  'runs-resume': runId,
  'runs-delete': runId,
  'runs-update': z.object({ id: runId, name: z.string().max(200).optional(), tags: z.array(z.string().max(50)).max(20).optional(), notes: z.string().max(10_000).optional() }).strict(),
  'runs-metrics': z.object({ id: runId, names: z.array(z.string().max(100)).max(50).optional(), sinceStep: z.number().int().optional() }).strict(),
  'runs-logs': z.object({ id: runId, afterSeq: z.number().int().min(0).optional(), tail: z.number().int().positive().max(10_000).optional() }).strict(),
  'runs-samples': runId,
  'runs-checkpoints': runId,
  'runs-calibrate': z.object({ config: z.unknown(), measure: z.boolean().optional() }).strict(),
  'runs-shape': z.object({ config: z.unknown() }).strict(),
};

export const handlerNames = Object.keys(requestSchemas) as HandlerName[];

export function isHandlerName(name: unknown): name is HandlerName {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(requestSchemas, name);
}

/** The JSON body of `POST /api/invoke/<name>`: `{arg}`, where `arg` is absent for a request without argument. */
export const httpInvokeBodySchema = z.object({ arg: z.unknown().optional() }).strict();
