/**
 * The datasets part of the Studio service: what the Datasets page and the download wizard call. Preparations run
 * in the background (one per dataset at a time); `prepare` answers at once with the job's id, and progress and the
 * outcome arrive as push events (`dataset-progress`, `download-progress`, `dataset-status`).
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { ErrorCode, StudioError, toPlainError } from '../../shared/errors';
import { isCancelled } from './errors';
import { datasetDir, downloadsDir, listDatasets, partialDir, checkDatasetId } from './manifest';
import { estimatePreparation } from './estimate';
import {
  prepareDataset,
  publicRequest,
  readPartialInfo,
  resolveDatasetId,
  type PrepareHooks,
  type PrepareOutcome,
} from './prepare';
import { DEFAULT_PREVIEW_CHARS, previewDataset } from './preview';
import { getSource, listSources } from './sources';
import type {
  DatasetEstimate,
  DatasetJob,
  DatasetPreview,
  DatasetProgressEvent,
  DatasetStatusEvent,
  DatasetSummary,
  DownloadProgressEvent,
  PrepareRequest,
  PrepareStarted,
  SourceInfo,
} from '../../shared/api/datasets';

/** Where the service sends its events (the Studio relays them as StudioEvents). */
export interface DatasetEventSinks {
  progress?: (p: DatasetProgressEvent) => void;
  status?: (p: DatasetStatusEvent) => void;
  download?: (p: DownloadProgressEvent) => void;
}

export interface DatasetServiceOptions {
  /** the workspace folder (resolveHome) */
  home: string;
  /** environment for HF_ENDPOINT and HF_TOKEN (default process.env) */
  env?: NodeJS.ProcessEnv;
  events?: DatasetEventSinks;
  /** the Hub endpoint and token from Settings, read at each prepare; a request's own values win */
  settings?: () => { hfEndpoint?: string; hfToken?: string };
  /** extra preparation hooks (tests: short back-off, small units) */
  hooks?: Omit<PrepareHooks, 'signal' | 'onProgress' | 'onDownload'>;
}

interface Job {
  info: DatasetJob;
  controller: AbortController;
  done: Promise<PrepareOutcome>;
}

/** Calls an event sink; a listener's failure is reported, not turned into the preparation's failure. */
function deliver<T>(sink: ((p: T) => void) | undefined, payload: T): void {
  if (!sink) return;
  try {
    sink(payload);
  } catch (e) {
    console.error('A dataset event listener failed:', e);
  }
}

export class DatasetService {
  private readonly opts: DatasetServiceOptions;
  private readonly jobsById = new Map<string, Job>();
  /** outcomes of recent jobs, for `wait` after a job already ended (bounded) */
  private readonly outcomes = new Map<string, Promise<PrepareOutcome>>();

  constructor(opts: DatasetServiceOptions) {
    this.opts = opts;
  }

  /** Every dataset of the workspace: ready ones, and interrupted preparations (status `partial`). */
  async list(): Promise<DatasetSummary[]> {
    return listDatasets(this.opts.home, readPartialInfo);
  }

  /** The sources the wizard offers. */
  async sources(): Promise<SourceInfo[]> {
    return listSources();
  }

  /** Running preparations. */
  async jobs(): Promise<DatasetJob[]> {
    return [...this.jobsById.values()].map((j) => ({ ...j.info, request: { ...j.info.request } }));
  }

  /**
   * Starts preparing a dataset (or continues an interrupted preparation of it). Answers at once; a bad request
   * (unknown source, bad name, a preparation of that dataset already running) is refused here.
   */
  async prepare(req: PrepareRequest): Promise<PrepareStarted> {
    getSource(req.source);
    const datasetId = resolveDatasetId(req);
    for (const j of this.jobsById.values()) {
      if (j.info.datasetId === datasetId) {
        throw new StudioError(
          ErrorCode.BAD_ARGUMENT,
          `The dataset "${datasetId}" is already being prepared (job ${j.info.jobId}).`,
          'Wait for it, or cancel it first.',
        );
      }
    }
    const settings = this.opts.settings?.() ?? {};
    const full: PrepareRequest = { ...req };
    if (full.endpoint === undefined && settings.hfEndpoint) full.endpoint = settings.hfEndpoint;
    if (full.hfToken === undefined && settings.hfToken) full.hfToken = settings.hfToken;

    const jobId = `prepare-${randomUUID()}`;
    const controller = new AbortController();
    const info: DatasetJob = {
      jobId,
      datasetId,
      source: req.source,
      stage: 'listing',
      started: new Date().toISOString(),
      request: publicRequest(req),
    };
    const ids = { jobId, datasetId, source: req.source };
    const events = this.opts.events ?? {};
    deliver(events.status, { ...ids, status: 'running' });
    const done = prepareDataset(this.opts.home, full, this.opts.env ?? process.env, {
      ...this.opts.hooks,
      signal: controller.signal,
      onProgress: (p) => {
        info.stage = p.stage;
        deliver(events.progress, { ...ids, ...p });
      },
      onDownload: (p) =>
        deliver(events.download, {
          id: jobId,
          url: p.url,
          bytes: p.bytes,
          total: p.total,
          bytesPerSec: p.bytesPerSec,
          etaSec: p.etaSec,
        }),
    });
    const job: Job = { info, controller, done };
    this.jobsById.set(jobId, job);
    this.outcomes.set(jobId, done);
    if (this.outcomes.size > 100) this.outcomes.delete(this.outcomes.keys().next().value!);
    done.then(
      (outcome) => {
        this.jobsById.delete(jobId);
        deliver(events.status, { ...ids, status: 'done', dataset: outcome.summary });
      },
      (e: unknown) => {
        this.jobsById.delete(jobId);
        const cancelled = isCancelled(e) || controller.signal.aborted;
        const resumable =
          fs.existsSync(partialDir(this.opts.home, datasetId)) ||
          fs.existsSync(downloadsDir(this.opts.home, datasetId));
        deliver(events.status, {
          ...ids,
          status: cancelled ? 'cancelled' : 'failed',
          error: cancelled ? undefined : toPlainError(e),
          resumable,
        });
      },
    );
    return { jobId, datasetId };
  }

  /** Cancels a running preparation; what it finished stays, and `prepare` continues it later. */
  async cancel(arg: { jobId: string }): Promise<{ cancelled: boolean }> {
    const job = this.jobsById.get(arg.jobId);
    if (!job) return { cancelled: false };
    job.controller.abort();
    await job.done.catch(() => undefined);
    return { cancelled: true };
  }

  /** Deletes a dataset: its folder, an interrupted preparation of it and its downloads. */
  async remove(arg: { id: string }): Promise<{ removed: boolean }> {
    const id = checkDatasetId(arg.id);
    for (const j of this.jobsById.values()) {
      if (j.info.datasetId === id)
        throw new StudioError(
          ErrorCode.BAD_ARGUMENT,
          `The dataset "${id}" is being prepared (job ${j.info.jobId}).`,
          'Cancel the preparation first.',
        );
    }
    const dirs = [datasetDir(this.opts.home, id), partialDir(this.opts.home, id), downloadsDir(this.opts.home, id)];
    const existed = dirs.some((d) => fs.existsSync(d));
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
    return { removed: existed };
  }

  /**
   * The start of a dataset, decoded (the dataset list's preview): about `chars` characters (default 2,000) of its
   * val shard (else its first train shard), or a raw dataset's first lines.
   */
  async preview(arg: { id: string; chars?: number }): Promise<DatasetPreview> {
    return previewDataset(this.opts.home, arg.id, arg.chars ?? DEFAULT_PREVIEW_CHARS);
  }

  /** Size and time estimates of a preparation, before it starts (nothing is downloaded). */
  async estimate(req: PrepareRequest): Promise<DatasetEstimate> {
    return estimatePreparation(req);
  }

  /** The outcome of a job, running or recently ended (the CLI waits on it); rejects as the preparation does. */
  wait(jobId: string): Promise<PrepareOutcome> {
    const done = this.outcomes.get(jobId);
    if (!done)
      return Promise.reject(
        new StudioError(
          ErrorCode.BAD_ARGUMENT,
          `No preparation "${jobId}".`,
          'See datasets-list for the datasets there are.',
        ),
      );
    return done;
  }

  /** Cancels every running preparation and waits for them to stop. */
  async close(): Promise<void> {
    const all = [...this.jobsById.values()];
    for (const j of all) j.controller.abort();
    await Promise.all(all.map((j) => j.done.catch(() => undefined)));
  }
}
