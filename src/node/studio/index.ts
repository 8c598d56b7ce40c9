/**
 * The Studio service: one workspace's services (runs, datasets, evaluations, models, generation, chats,
 * checkpoints) and its push events. Requests reach it through the handler registry (./registry.ts, ./handlers.ts):
 * Electron IPC and the HTTP server call `request`, the CLI and tests `invoke`. It is constructed with the workspace
 * folder, resolved once by the caller (see resolveHome).
 */
import type {
  EventListener,
  EventName,
  HandlerArgs,
  HandlerName,
  HandlerResult,
  StudioEvents,
} from '../../shared/contract';
import { type AnyEventListener, StudioEmitter } from './emitter';
import { openStore, type Eval, type Run, type Store } from '../store';
import type { WorkerSpawner } from '../train/launcher';
import { RunManager } from '../runs/manager';
import { DatasetService } from '../datasets/service';
import { readSettings } from '../app/settings';
import { EvalService } from '../evals/service';
import { ModelService } from '../models/service';
import { GenerationService } from '../generation/service';
import { ChatService } from '../chats/service';
import { CheckpointService } from '../checkpoints/service';
import { CalibrationService, forkCalibrateChild } from '../runs/calibrate';
import { Workspace } from '../workspace';
import type { StudioContext } from './context';
import type { InvokeReply } from './registry';
import { studioRegistry } from './handlers';

export type { AppInfo } from '../../shared/api/app';

/**
 * Where each kind of worker starts. From the sources every default is right; the built app passes its bundles
 * (out/main/*, see electron.vite.config.ts).
 */
export interface WorkerEntries {
  /** how training workers start (Electron passes one built on utilityProcess); default child_process.fork */
  train?: WorkerSpawner;
  /** the tokenizer threads of a dataset preparation */
  tokenize?: string;
  /** the model threads of chat, sampling and evaluations (and of checking imported weights) */
  model?: string;
  /** the calibration child process (a timed training step) */
  calibrate?: string;
}

export interface StudioOptions {
  /** absolute path of the workspace folder (resolveHome) */
  home: string;
  workers?: WorkerEntries;
}

export class Studio implements StudioContext {
  readonly home: string;
  /** every path of the workspace */
  readonly workspace: Workspace;
  /** the handlers every transport dispatches through */
  readonly registry = studioRegistry;
  private readonly events = new StudioEmitter();
  private readonly opts: StudioOptions;
  private storeRef: Store | null = null;
  private runsRef: RunManager | null = null;
  readonly datasets: DatasetService;
  readonly evals: EvalService;
  readonly models: ModelService;
  readonly generation: GenerationService;
  readonly chats: ChatService;
  readonly checkpoints: CheckpointService;
  readonly calibration: CalibrationService;

  constructor(opts: StudioOptions) {
    this.home = opts.home;
    this.opts = opts;
    this.workspace = new Workspace(opts.home);
    const workers = opts.workers ?? {};
    this.evals = new EvalService(
      opts.home,
      () => this.store,
      (n, p) => this.emit(n, p),
      workers.model,
    );
    this.models = new ModelService(opts.home, () => this.store, workers.model);
    this.generation = new GenerationService(opts.home, (n, p) => this.emit(n, p), workers.model);
    this.chats = new ChatService(() => this.store, this.generation);
    this.checkpoints = new CheckpointService(
      opts.home,
      () => this.store,
      () => this.runs,
    );
    this.calibration = new CalibrationService(
      opts.home,
      () => this.store.listRuns({ status: 'running' }).length,
      () => forkCalibrateChild(workers.calibrate),
    );
    this.datasets = new DatasetService({
      home: opts.home,
      events: {
        progress: (p) => this.emit('dataset-progress', p),
        status: (p) => this.emit('dataset-status', p),
        download: (p) => this.emit('download-progress', p),
      },
      settings: () => readSettings(this.home),
      hooks: workers.tokenize ? { workerEntry: workers.tokenize } : undefined,
    });
  }

  /** The run store, opened on first use; runs left `running` by a dead worker become `interrupted` then. */
  get store(): Store {
    if (!this.storeRef) {
      this.storeRef = openStore(this.home);
      for (const r of this.storeRef.recoverOnStart())
        this.emit('run-status', { runId: r.id, status: r.status, error: r.error ?? undefined });
      this.storeRef.recoverEvalsOnStart();
    }
    return this.storeRef;
  }

  get runs(): RunManager {
    if (!this.runsRef) {
      this.runsRef = new RunManager(this.home, this.store, (n, p) => this.emit(n, p), this.opts.workers?.train);
      // partial checkpoint writes and deletions of workers that were killed: up to a model's size each
      this.runsRef.cleanAllLeftovers();
    }
    return this.runsRef;
  }

  // ---- requests ----

  /**
   * Answers a request from inside the process (the CLI, tests, benchmarks): validated by its handler's schema like
   * every request, but not confined to the workspace. Throws a StudioError.
   */
  async invoke<K extends HandlerName>(name: K, ...args: HandlerArgs<K>): Promise<HandlerResult<K>> {
    return (await studioRegistry.call(this, name, args[0])) as HandlerResult<K>;
  }

  /**
   * Answers a request from outside the process (the desktop window over IPC, a browser over HTTP): validated,
   * its paths and URLs confined (./confine.ts). Never throws: a failure is `{ok: false, error, reason}`.
   */
  request(name: unknown, arg: unknown): Promise<InvokeReply> {
    return studioRegistry.invoke(this, name, arg);
  }

  /** Resolves when a run's worker has ended (for the CLI and tests); at once for a run without one. */
  waitRun(runId: string): Promise<Run> {
    return this.runs.wait(runId);
  }

  /** Resolves when an evaluation has ended (for the CLI and tests). */
  waitEval(evalId: string): Promise<Eval> {
    return this.evals.wait(evalId);
  }

  // ---- push events ----

  /** Subscribes to one event; returns the unsubscribe function. */
  on<K extends EventName>(name: K, cb: EventListener<K>): () => void {
    return this.events.on(name, cb);
  }

  /** Subscribes to every event (what the transports use to relay them); returns the unsubscribe function. */
  onAny(cb: AnyEventListener): () => void {
    return this.events.onAny(cb);
  }

  /** Sends an event to every subscriber. Used by the service's own parts (runs, downloads). */
  emit<K extends EventName>(name: K, payload: StudioEvents[K]): void {
    this.events.emit(name, payload);
  }

  /** Stops the attached runs (each checkpoints first), closes the store and drops every subscriber. */
  async shutdown(timeoutMs?: number): Promise<void> {
    // a generation ends first, so that its answer is stored before the store closes
    await this.generation.close();
    if (this.runsRef) await this.runsRef.shutdown(timeoutMs);
    this.close();
  }

  /** Closes the store and drops every subscriber. */
  close(): void {
    void this.generation.close();
    this.evals.close();
    this.calibration.close();
    void this.datasets.close();
    this.storeRef?.close();
    this.storeRef = null;
    this.runsRef = null;
    this.events.clear();
  }
}
