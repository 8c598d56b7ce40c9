/**
 * The one contract between the Studio service and its three transports (Electron IPC, HTTP + SSE, the CLI).
 *
 * Each domain declares its requests' argument and result types in src/shared/api/<domain>.ts; their code (with the
 * zod schema of the argument, beside the function) is in src/node/<domain>/handlers.ts, which the compiler holds to
 * these types. `StudioHandlers` is the intersection of the domains' maps.
 */
import type { AppHandlers } from './api/app';
import type { ChatsHandlers } from './api/chats';
import type { CheckpointsHandlers } from './api/checkpoints';
import type { DatasetsHandlers } from './api/datasets';
import type { EvalsHandlers } from './api/evals';
import type { GenerationHandlers } from './api/generation';
import type { ModelsHandlers } from './api/models';
import type { RunsHandlers } from './api/runs';
import type { RunNode, RunStatus } from './records';
import type { DatasetProgressEvent, DatasetStatusEvent, DownloadProgressEvent } from './api/datasets';
import type { StepEvent, GuardEvent } from './api/runs';
import type { PlainError } from './errors';
import type { GenerateDoneEvent, GenerateTokenEvent } from './api/generation';

/** Request name -> its function type. Names are kebab-case `<domain>-<verb>`; every request takes one argument (or none). */
export type StudioHandlers = AppHandlers &
  DatasetsHandlers &
  ModelsHandlers &
  GenerationHandlers &
  ChatsHandlers &
  CheckpointsHandlers &
  EvalsHandlers &
  RunsHandlers;

export type HandlerName = keyof StudioHandlers;
/** The arguments of a handler, as a tuple: `[]` for a handler that takes none. */
export type HandlerArgs<K extends HandlerName> = Parameters<StudioHandlers[K]>;
/** The single argument of a handler, `undefined` for one that takes none. */
export type HandlerArg<K extends HandlerName> = HandlerArgs<K> extends [] ? undefined : HandlerArgs<K>[0];
export type HandlerResult<K extends HandlerName> = Awaited<ReturnType<StudioHandlers[K]>>;

/** How a run is doing. `interrupted` is a run whose worker died without saying why. */
export type { RunStatus };

/** Push events: name -> payload. Subscribers get them in the order the service emits them. */
export interface StudioEvents {
  /** one optimizer step of a run (loss, lr, norm before clipping, dt, tok/s, mfu where known, skipped by the guard) */
  'run-step': { runId: string } & StepEvent;
  /** an evaluation inside a run: val loss or HellaSwag acc_norm */
  'run-eval': { runId: string; step: number; name: 'val/loss' | 'hellaswag/acc_norm'; value: number };
  /** samples generated during a run */
  'run-sample': { runId: string; step: number; prompt: string; samples: string[] };
  /** the training guard acted: skipped an update, rolled back to a snapshot, or took a new loss level as baseline */
  'run-guard': { runId: string } & GuardEvent;
  /** a run's system metrics (sys/cpu_pct, sys/rss_bytes, sys/gpu0/util_pct, ...) sampled at `time` (ms) */
  'run-system': { runId: string; step: number; time: number; values: Record<string, number> };
  /**
   * the nodes of a multi-node run, every one of them, as node 0's service recorded them (runs.nodes_json): pushed
   * whenever a node joins, heartbeats, leaves or is lost
   */
  'run-nodes': { runId: string; nodes: RunNode[] };
  /** a checkpoint was written */
  'run-checkpoint': { runId: string; step: number; path: string; sizeBytes: number };
  /** a line of a run's log */
  'run-log': { runId: string; seq: number; level: 'debug' | 'info' | 'warn' | 'error'; message: string; time: number };
  /** a run and its files were deleted */
  'run-deleted': { runId: string };
  /** an evaluation was queued, started, or ended */
  'eval-status': { evalId: string; status: 'queued' | 'running' | 'done' | 'failed' | 'cancelled'; error?: PlainError };
  /** a HellaSwag evaluation advanced */
  'eval-progress': { evalId: string; done: number; total: number; accNorm: number };
  /** a dataset preparation advanced */
  'dataset-progress': DatasetProgressEvent;
  /** a dataset preparation started, finished, failed or was cancelled */
  'dataset-status': DatasetStatusEvent;
  /** a run changed state; `error` is set when it failed */
  'run-status': { runId: string; status: RunStatus; error?: PlainError };
  /** a download advanced */
  'download-progress': DownloadProgressEvent;
  /** new text of a generation (chat, sampling) */
  'generate-token': GenerateTokenEvent;
  /** a generation ended */
  'generate-done': GenerateDoneEvent;
}

export type EventName = keyof StudioEvents;
export type EventListener<K extends EventName> = (payload: StudioEvents[K]) => void;

// Compile-time check that every name is kebab-case `<domain>-<verb>`.
type KebabName = `${Lowercase<string>}-${Lowercase<string>}`;
type AssertKebab<T extends KebabName> = T;
export type _HandlerNamesAreKebab = AssertKebab<HandlerName>;
export type _EventNamesAreKebab = AssertKebab<EventName>;

/** A reply as it travels over a transport: a value, or a plain error (see errors.ts). */
export type InvokeResult<T = unknown> = { ok: true; value: T } | { ok: false; error: PlainError };

/** What the renderer (and any other client) uses: one interface over IPC or HTTP + SSE. */
export interface StudioClient {
  /** Calls a handler; rejects with a StudioError when the service answers with an error. */
  invoke<K extends HandlerName>(name: K, ...args: HandlerArgs<K>): Promise<HandlerResult<K>>;
  /** Subscribes to a push event; returns the function that unsubscribes. */
  on<K extends EventName>(name: K, cb: EventListener<K>): () => void;
}

/**
 * The API that the Electron preload exposes as `window.studio`. Replies come as InvokeResult envelopes, because
 * an Error loses its code and hint when it crosses the context bridge; the renderer's client unwraps them.
 */
export interface StudioBridge {
  invoke<K extends HandlerName>(name: K, ...args: HandlerArgs<K>): Promise<InvokeResult<HandlerResult<K>>>;
  on<K extends EventName>(name: K, cb: EventListener<K>): () => void;
}

/** Electron IPC channels. */
export const IPC_INVOKE_CHANNEL = 'studio:invoke';
export const IPC_EVENT_CHANNEL = 'studio:event';

/** HTTP routes of `gpt2-studio serve`. */
export const HTTP_INVOKE_PREFIX = '/api/invoke/';
export const HTTP_EVENTS_PATH = '/api/events';
/** The SSE `event:` field of every pushed message; its data is `{name, payload}` as JSON. */
export const SSE_EVENT_TYPE = 'studio';

/** The Content-Security-Policy of the renderer, wherever it is served from (the same text is in index.html). */
export const RENDERER_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');
