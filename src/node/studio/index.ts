/// <reference types="node" />
// (The reference keeps this file type-checking where src/shared/contract.ts pulls its types into the web project.)
/**
 * The Studio service: the only place that does the work. Electron IPC, the HTTP server and the CLI all call these
 * methods (see src/shared/contract.ts, whose handler types are derived from them). It is constructed with the
 * workspace folder, resolved once by the caller (see resolveHome).
 */
import { ErrorCode, StudioError } from '../../shared/errors';
import pkg from '../../../package.json' with { type: 'json' };
import type { EngineInfo } from '../../core/engine/types';
import type { EventListener, EventName, StudioEvents } from '../../shared/contract';
import { type AnyEventListener, StudioEmitter } from './emitter';
import { openStore, type Run, type ListRunsFilter, type Store } from '../store';
import { listPresets, type TrainingPreset } from '../presets';
import type { FieldError } from '../../shared/run-config';
import type { WorkerSpawner } from '../train/launcher';
import { RunManager, type CreateRunInput } from './runs';
import { DatasetService } from './datasets';
import { publicSettings, readSettings, updateSettings, type PublicSettings, type SettingsPatch } from '../settings';
import { EvalService, type HellaswagRequest } from './evals';
import type { Eval, ListEvalsFilter } from '../store';
import type { DatasetEstimate, DatasetJob, DatasetPreview, DatasetSummary, PrepareRequest, PrepareStarted, SourceInfo } from '../datasets/types';
import type { ModelEntry, ModelTarget } from '../../shared/models';
import { ModelService } from './models';
import { GenerationService, type GenerateRequest, type GenerateStarted, type SampleRequest, type SampleResult } from './generation';
import { ChatService, type ChatMessageEntry, type ChatSent, type ChatSettings, type Conversation } from './chats';
import { CheckpointService, type CheckpointDeleted, type CheckpointEntry } from './checkpoints';
import { browseFiles, type FolderListing } from './files';
import { requestLimits } from './confine';
import { CalibrationService, planConfig, trainedShape } from './calibrate';
import type { Calibration } from '../../shared/estimate';
import type { TrainedShape } from '../../shared/planner';

export interface StudioOptions {
  /** absolute path of the workspace folder (resolveHome) */
  home: string;
  /** how training workers start (Electron passes one built on utilityProcess); default child_process.fork */
  spawnWorker?: WorkerSpawner;
}

export interface AppInfo {
  /** the studio's version, from package.json */
  version: string;
  /** the workspace folder */
  home: string;
  /** Node's version, e.g. "20.19.0" */
  node: string;
  /** Electron's version when running under Electron */
  electron?: string;
  /** e.g. "linux" */
  platform: NodeJS.Platform;
  /** e.g. "x64" */
  arch: string;
}

export class Studio {
  readonly home: string;
  private readonly events = new StudioEmitter();
  private readonly opts: StudioOptions;
  private storeRef: Store | null = null;
  private runsRef: RunManager | null = null;
  private readonly datasets: DatasetService;
  private readonly evals: EvalService;
  private readonly models: ModelService;
  private readonly generation: GenerationService;
  private readonly chats: ChatService;
  private readonly checkpointService: CheckpointService;
  private readonly calibration: CalibrationService;

  constructor(opts: StudioOptions) {
    this.home = opts.home;
    this.opts = opts;
    this.evals = new EvalService(opts.home, () => this.store, (n, p) => this.emit(n, p));
    this.models = new ModelService(opts.home, () => this.store);
    this.generation = new GenerationService(opts.home, (n, p) => this.emit(n, p));
    this.chats = new ChatService(() => this.store, this.generation);
    this.checkpointService = new CheckpointService(opts.home, () => this.store, () => this.runs);
    this.calibration = new CalibrationService(opts.home, () => this.store.listRuns({ status: 'running' }).length);
    this.datasets = new DatasetService({
      home: opts.home,
      events: {
        progress: (p) => this.emit('dataset-progress', p),
        status: (p) => this.emit('dataset-status', p),
        download: (p) => this.emit('download-progress', p),
      },
      settings: () => readSettings(this.home),
    });
  }

  /** The run store, opened on first use; runs left `running` by a dead worker become `interrupted` then. */
  get store(): Store {
    if (!this.storeRef) {
      this.storeRef = openStore(this.home);
      for (const r of this.storeRef.recoverOnStart()) this.emit('run-status', { runId: r.id, status: r.status, error: r.error ?? undefined });
      this.storeRef.recoverEvalsOnStart();
    }
    return this.storeRef;
  }

  get runs(): RunManager {
    if (!this.runsRef) {
      this.runsRef = new RunManager(this.home, this.store, (n, p) => this.emit(n, p), this.opts.spawnWorker);
      // partial checkpoint writes and deletions of workers that were killed: up to a model's size each
      this.runsRef.cleanAllLeftovers();
    }
    return this.runsRef;
  }

  // ---- handlers (each is one entry of StudioHandlers) ----

  async appInfo(): Promise<AppInfo> {
    const info: AppInfo = {
      version: pkg.version,
      home: this.home,
      node: process.versions.node,
      platform: process.platform,
      arch: process.arch,
    };
    if (process.versions.electron) info.electron = process.versions.electron;
    return info;
  }

  /** Every engine, available or not, with its detail and notes (what Settings shows). */
  async enginesList(): Promise<EngineInfo[]> {
    // Loaded on first use: TF.js is large, and the window or server should not wait for it to start.
    const { describeEngines } = await import('../engines');
    return describeEngines();
  }

  // ---- settings ----

  /** The workspace settings (the HF token only as set or not). */
  async settingsGet(): Promise<PublicSettings> {
    return publicSettings(readSettings(this.home));
  }

  /** Sets (a value), clears (null) or keeps (absent) the HF endpoint and token, the allowed folders, private URLs. */
  async settingsSet(patch: SettingsPatch): Promise<PublicSettings> {
    return publicSettings(updateSettings(this.home, patch));
  }

  // ---- datasets ----

  async datasetsList(): Promise<DatasetSummary[]> {
    return this.datasets.list();
  }

  /** The dataset sources (Tiny Shakespeare, FineWeb-edu, HellaSwag, local files, builtin). */
  async datasetsSources(): Promise<SourceInfo[]> {
    return this.datasets.sources();
  }

  /** Starts preparing a dataset; progress comes as dataset-progress / download-progress events. */
  async datasetsPrepare(req: PrepareRequest): Promise<PrepareStarted> {
    return this.datasets.prepare(req);
  }

  async datasetsCancel(arg: { jobId: string }): Promise<{ cancelled: boolean }> {
    return this.datasets.cancel(arg);
  }

  async datasetsJobs(): Promise<DatasetJob[]> {
    return this.datasets.jobs();
  }

  async datasetsRemove(arg: { id: string }): Promise<{ removed: boolean }> {
    return this.datasets.remove(arg);
  }

  /** The start of a dataset, decoded. */
  async datasetsPreview(arg: { id: string; chars?: number }): Promise<DatasetPreview> {
    return this.datasets.preview(arg);
  }

  /** Size and time estimates of a preparation, before it starts. */
  async datasetsEstimate(req: PrepareRequest): Promise<DatasetEstimate> {
    return this.datasets.estimate(req);
  }

  /** One folder of this machine, for the file picker: it offers the workspace and the allowed folders as roots. */
  async filesBrowse(arg?: { path?: string; extensions?: string[]; showHidden?: boolean }): Promise<FolderListing> {
    return browseFiles(this.home, arg, requestLimits(this.home).paths.roots);
  }

  // ---- models ----

  /** Imported GPT-2 weights and every checkpoint: what a model picker offers. */
  async modelsList(): Promise<ModelEntry[]> {
    return this.models.list();
  }

  /** Imports GPT-2 weights (a .safetensors file, or a folder with model.safetensors and config.json). */
  async modelsImport(arg: { path: string; name?: string }): Promise<ModelEntry> {
    return this.models.import(arg);
  }

  async modelsRemove(arg: { id: string }): Promise<{ removed: boolean }> {
    return this.models.remove(arg);
  }

  // ---- generation and chat ----

  /** Starts generating; text streams as generate-token events, the end is generate-done. */
  async generateStart(req: GenerateRequest): Promise<GenerateStarted> {
    return this.generation.start(req);
  }

  async generateStop(arg: { genId: string }): Promise<{ stopped: boolean }> {
    return this.generation.stop(arg);
  }

  /** The same prompt and seed across models (the sample gallery). */
  async generateSample(req: SampleRequest): Promise<SampleResult[]> {
    return this.generation.sample(req);
  }

  async chatsList(): Promise<Conversation[]> {
    return this.chats.list();
  }

  async chatsGet(arg: { id: string }): Promise<{ conversation: Conversation; messages: ChatMessageEntry[] }> {
    return this.chats.get(arg);
  }

  async chatsCreate(arg: { target: ModelTarget; title?: string; settings?: Partial<ChatSettings> }): Promise<Conversation> {
    return this.chats.create(arg);
  }

  async chatsUpdate(arg: { id: string; title?: string; target?: ModelTarget; settings?: Partial<ChatSettings> }): Promise<Conversation> {
    return this.chats.update(arg);
  }

  async chatsDelete(arg: { id: string }): Promise<{ deleted: boolean }> {
    return this.chats.remove(arg);
  }

  /** Stores a user message and starts the answer (generate-token / generate-done with the returned genId). */
  async chatsSend(arg: { id: string; content: string }): Promise<ChatSent> {
    return this.chats.send(arg);
  }

  // ---- checkpoints ----

  /** Checkpoints of one run, or of every run (newest first). */
  async checkpointsList(arg?: { runId?: string }): Promise<CheckpointEntry[]> {
    return this.checkpointService.list(arg);
  }

  async checkpointsDelete(arg: { runId: string; step: number }): Promise<CheckpointDeleted> {
    return this.checkpointService.remove(arg);
  }

  /** Writes a checkpoint's weights as an HF GPT-2 folder (model.safetensors + config.json). */
  async checkpointsExport(arg: { runId: string; step: number; dest: string; overwrite?: boolean }): Promise<{ dir: string; modelFile: string; configFile: string }> {
    return this.checkpointService.export(arg);
  }

  /** "Resume from here": a new run that continues from a checkpoint; the original run is left as it is. */
  async checkpointsBranch(arg: { runId: string; step: number; name?: string; start?: boolean }): Promise<Run> {
    return this.checkpointService.branch(arg);
  }

  // ---- evaluations ----

  /** Queues a HellaSwag evaluation of a checkpoint or of weights; see eval-progress and eval-status. */
  async evalsHellaswag(req: HellaswagRequest): Promise<Eval> {
    return this.evals.hellaswag(req);
  }

  async evalsCancel(evalId: string): Promise<{ cancelled: boolean }> {
    return { cancelled: this.evals.cancel(evalId) };
  }

  async evalsList(filter?: ListEvalsFilter): Promise<Eval[]> {
    return this.store.listEvals(filter);
  }

  async evalsDelete(evalId: string): Promise<{ deleted: boolean }> {
    return this.evals.remove(evalId);
  }

  async evalsGet(evalId: string): Promise<Eval> {
    const e = this.store.getEval(evalId);
    if (!e) throw new StudioError(ErrorCode.NOT_FOUND, `No evaluation "${evalId}".`, 'List them with evals-list.');
    return e;
  }

  /** Per-example HellaSwag results, optionally only the wrong ones (acc_norm). */
  async evalsExamples(arg: { evalId: string; wrongOnly?: boolean; limit?: number; offset?: number }) {
    return this.evals.examples(arg);
  }

  /** Val loss of a checkpoint or weights on a dataset's val split. */
  async evalsValLoss(arg: { target: ModelTarget; dataset: string; iters?: number; batchSize?: number; seqLen?: number }) {
    return this.evals.valLoss(arg);
  }

  /** The loss of each token of a text under a model (the token-loss view). */
  async tokensScore(arg: { target: ModelTarget; text: string }) {
    return this.evals.score(arg);
  }

  /** Resolves when an evaluation has ended (for the CLI and tests). */
  waitEval(evalId: string): Promise<Eval> {
    return this.evals.wait(evalId);
  }

  // ---- runs ----

  /** Training presets (resources/presets). */
  async presetsList(): Promise<TrainingPreset[]> {
    return listPresets();
  }

  /** Checks a run config without creating anything; the list is empty when it is valid. */
  async configValidate(config: unknown): Promise<FieldError[]> {
    const r = this.runs.check(config);
    return r.ok ? [] : r.errors;
  }

  /** Creates a run from a config and starts its worker. */
  async runsCreate(input: CreateRunInput): Promise<Run> {
    return this.runs.create(input);
  }

  async runsList(filter?: ListRunsFilter): Promise<Run[]> {
    return this.runs.list(filter);
  }

  async runsGet(id: string): Promise<Run> {
    return this.runs.get(id);
  }

  async runsStop(id: string): Promise<Run> {
    return this.runs.control(id, 'stop');
  }

  async runsPause(id: string): Promise<Run> {
    return this.runs.control(id, 'pause');
  }

  /** Resumes a stopped, paused, interrupted or failed run from its last checkpoint. */
  async runsResume(id: string): Promise<Run> {
    return this.runs.resume(id);
  }

  /** Deletes a run that is not running, with its checkpoints and files. */
  async runsDelete(id: string): Promise<void> {
    this.runs.delete(id);
  }

  async runsUpdate(arg: { id: string; name?: string; tags?: string[]; notes?: string }): Promise<Run> {
    this.runs.get(arg.id);
    const { id, ...patch } = arg;
    return this.store.updateRun(id, patch);
  }

  /** Metric series of a run (all, or the named ones), optionally only after a step. */
  async runsMetrics(arg: { id: string; names?: string[]; sinceStep?: number }) {
    return this.runs.metrics(arg.id, arg.names, arg.sinceStep);
  }

  /** A run's log lines after `afterSeq`, or its last `tail` lines. */
  async runsLogs(arg: { id: string; afterSeq?: number; tail?: number }) {
    return this.runs.logs(arg.id, arg.afterSeq, arg.tail);
  }

  async runsSamples(id: string) {
    return this.runs.samples(id);
  }

  /**
   * How fast a run config trains on this machine: a real timed training step of its model shape and micro-batch
   * on its engine, in a child process (seconds for a small model). The cached measurement, or null without
   * `measure`; with it, a new one when none is cached.
   */
  async runsCalibrate(arg: { config: unknown; measure?: boolean }): Promise<Calibration | null> {
    return this.calibration.calibrate(arg.config, arg.measure === true);
  }

  /** The model shape a run config trains: the config's, or that of its init weights or checkpoint. */
  async runsShape(arg: { config: unknown }): Promise<TrainedShape> {
    return trainedShape(this.home, planConfig(arg.config));
  }

  async runsCheckpoints(id: string) {
    return this.runs.checkpoints(id);
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
