/**
 * The transport-independent half of a request: checks its name and validates its argument with the zod schema,
 * then calls the Studio. IPC and HTTP both go through here, so they validate identically.
 */
import { z } from 'zod';
import type { HandlerName, InvokeResult, StudioHandlers } from '../../shared/contract';
import { ErrorCode, toPlainError, type PlainError } from '../../shared/errors';
import { handlerNames, isHandlerName, requestSchemas } from '../../shared/schemas';
import type { Studio } from './index';
import { withUrlPolicy } from '../url-guard';
import { confineRequest, requestLimits } from './confine';

/** The handler table of one Studio instance; `satisfies` makes a missing or mistyped handler a compile error. */
export function handlersOf(studio: Studio): StudioHandlers {
  return {
    'app-info': () => studio.appInfo(),
    'engines-list': () => studio.enginesList(),
    'datasets-list': () => studio.datasetsList(),
    'datasets-sources': () => studio.datasetsSources(),
    'datasets-prepare': (r) => studio.datasetsPrepare(r),
    'datasets-cancel': (a) => studio.datasetsCancel(a),
    'datasets-jobs': () => studio.datasetsJobs(),
    'datasets-remove': (a) => studio.datasetsRemove(a),
    'datasets-preview': (a) => studio.datasetsPreview(a),
    'datasets-estimate': (r) => studio.datasetsEstimate(r),
    'files-browse': (a) => studio.filesBrowse(a),
    'models-list': () => studio.modelsList(),
    'models-import': (a) => studio.modelsImport(a),
    'models-remove': (a) => studio.modelsRemove(a),
    'generate-start': (r) => studio.generateStart(r),
    'generate-stop': (a) => studio.generateStop(a),
    'generate-sample': (r) => studio.generateSample(r),
    'chats-list': () => studio.chatsList(),
    'chats-get': (a) => studio.chatsGet(a),
    'chats-create': (a) => studio.chatsCreate(a),
    'chats-update': (a) => studio.chatsUpdate(a),
    'chats-delete': (a) => studio.chatsDelete(a),
    'chats-send': (a) => studio.chatsSend(a),
    'checkpoints-list': (a) => studio.checkpointsList(a),
    'checkpoints-delete': (a) => studio.checkpointsDelete(a),
    'checkpoints-export': (a) => studio.checkpointsExport(a),
    'checkpoints-branch': (a) => studio.checkpointsBranch(a),
    'evals-delete': (id) => studio.evalsDelete(id),
    'evals-hellaswag': (r) => studio.evalsHellaswag(r),
    'evals-cancel': (id) => studio.evalsCancel(id),
    'evals-list': (f) => studio.evalsList(f),
    'evals-get': (id) => studio.evalsGet(id),
    'evals-examples': (a) => studio.evalsExamples(a),
    'evals-val-loss': (a) => studio.evalsValLoss(a),
    'tokens-score': (a) => studio.tokensScore(a),
    'settings-get': () => studio.settingsGet(),
    'settings-set': (p) => studio.settingsSet(p),
    'presets-list': () => studio.presetsList(),
    'config-validate': (config) => studio.configValidate(config),
    'runs-create': (input) => studio.runsCreate(input),
    'runs-list': (filter) => studio.runsList(filter),
    'runs-get': (id) => studio.runsGet(id),
    'runs-stop': (id) => studio.runsStop(id),
    'runs-pause': (id) => studio.runsPause(id),
    'runs-resume': (id) => studio.runsResume(id),
    'runs-delete': (id) => studio.runsDelete(id),
    'runs-update': (arg) => studio.runsUpdate(arg),
    'runs-metrics': (arg) => studio.runsMetrics(arg),
    'runs-logs': (arg) => studio.runsLogs(arg),
    'runs-samples': (id) => studio.runsSamples(id),
    'runs-checkpoints': (id) => studio.runsCheckpoints(id),
    'runs-calibrate': (arg) => studio.runsCalibrate(arg),
    'runs-shape': (arg) => studio.runsShape(arg),
  } satisfies StudioHandlers;
}

export type ParsedRequest =
  | { ok: true; name: HandlerName; arg: unknown }
  | { ok: false; reason: 'unknown-handler' | 'bad-argument'; error: PlainError };

/** Checks a request from outside: a known name and an argument that its schema accepts. */
export function parseRequest(name: unknown, arg: unknown): ParsedRequest {
  if (!isHandlerName(name)) {
    const shown = typeof name === 'string' ? JSON.stringify(name.slice(0, 100)) : `a ${typeof name}`;
    return {
      ok: false,
      reason: 'unknown-handler',
      error: {
        code: ErrorCode.NOT_FOUND,
        message: `Unknown request ${shown}.`,
        hint: `Known requests: ${handlerNames.join(', ')}.`,
      },
    };
  }
  const parsed = requestSchemas[name].safeParse(arg);
  if (!parsed.success) {
    return {
      ok: false,
      reason: 'bad-argument',
      error: {
        code: ErrorCode.BAD_ARGUMENT,
        message: `Bad argument for "${name}": ${z.prettifyError(parsed.error)}`,
        hint: 'Fix the named field and send the request again.',
      },
    };
  }
  return { ok: true, name, arg: parsed.data };
}

/** Calls an already validated request. */
export async function callHandler(studio: Studio, name: HandlerName, arg: unknown): Promise<unknown> {
  const handler = handlersOf(studio)[name] as (arg?: unknown) => Promise<unknown>;
  return handler(arg);
}

/**
 * Validates and calls a request from outside the process (IPC from the desktop window, HTTP from a browser); never
 * throws: a failure comes back as `{ok: false, error}` with the reason. Its paths and URLs are confined to the
 * workspace, the allowed folders and public addresses (see ./confine.ts), and the downloads it starts stay under the
 * same URL policy. (The CLI calls the Studio directly, with its user's own rights.)
 */
export async function invokeStudio(
  studio: Studio,
  name: unknown,
  arg: unknown,
): Promise<InvokeResult & { reason?: 'unknown-handler' | 'bad-argument' | 'failed' }> {
  const req = parseRequest(name, arg);
  if (!req.ok) return { ok: false, error: req.error, reason: req.reason };
  try {
    const limits = requestLimits(studio.home);
    const confined = await confineRequest(req.name, req.arg as never, limits, studio.home);
    return { ok: true, value: await withUrlPolicy(limits.urls, () => callHandler(studio, req.name, confined)) };
  } catch (e) {
    return { ok: false, error: toPlainError(e), reason: 'failed' };
  }
}
