/**
 * Evaluations: HellaSwag jobs in a queue (one at a time, with progress events and cancel), stored per example;
 * val loss of a checkpoint or of imported weights on a dataset's val split; per-token losses for the token-loss
 * view. Models are loaded from a run's checkpoint or from a weights file or folder.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode, StudioError, toPlainError } from '../../shared/errors';
import type { StudioEvents } from '../../shared/contract';
import type { Model } from '../../core/engine/types';
import type { GPTConfig } from '../../core/model/config';
import type { NamedTensors } from '../../core/tensors';
import { HELLASWAG_BASELINES, parseHellaswag, runHellaswag, type HellaswagExample } from '../../core/evals/hellaswag';
import { evaluateValLoss } from '../../core/train/trainer';
import { decode, encode } from '../../core/tokenizer';
import { checkpointDirName, checkpointsDir, listCheckpointSteps, readCheckpoint } from '../checkpoints/files';
import { Workspace } from '../workspace';
import type { Eval, EvalTarget, Store } from '../store';
import { openDatasetLoader } from '../datasets';
import { runDirOf } from '../train/paths';
import { loadGpt2Weights } from '../models/weights';
import { targetKey, type ModelTarget } from '../../shared/models';
import { importedModelPath, resolveModelTarget } from '../models/service';
import { openRemoteModel } from '../generation/remote-model';
import type { HellaswagRequest, HellaswagExampleView, TokenScores } from '../../shared/api/evals';
export type { HellaswagRequest, HellaswagExampleView, TokenScores };

type Emit = <K extends keyof StudioEvents>(name: K, payload: StudioEvents[K]) => void;

export type { ModelTarget };

export interface LoadedTarget {
  config: GPTConfig;
  weights: NamedTensors;
  /** the resolved target, with the checkpoint step filled in */
  target: EvalTarget;
  label: string;
}

/** The name an imported model was given (its meta.json), or null for weights that were not imported. */
function importedModelName(dir: string): string | null {
  try {
    const m = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8')) as { format?: string; name?: unknown };
    return m.format === 'gpt2-studio-model' && typeof m.name === 'string' && m.name !== '' ? m.name : null;
  } catch {
    return null;
  }
}

/** What a model is called in results: an imported model's name, "<run name> · step N", or the weights' path. */
export function targetLabel(home: string, t: ModelTarget, runName?: string): string {
  if ('modelId' in t) return importedModelName(importedModelPath(home, t.modelId)) ?? t.modelId;
  if ('runId' in t) return `${runName ?? t.runId} · step ${t.step ?? 'last'}`;
  return t.weightsPath;
}

/** Resolves and loads a target's weights. */
export function loadTarget(home: string, target: ModelTarget): LoadedTarget {
  const t = resolveModelTarget(home, target);
  if ('weightsPath' in t) {
    const w = loadGpt2Weights(t.weightsPath);
    const label = 'modelId' in target ? targetLabel(home, target) : w.file;
    return { config: w.config, weights: w.tensors, target: { weightsPath: w.file }, label };
  }
  const runDir = runDirOf(home, t.runId);
  const steps = listCheckpointSteps(runDir);
  if (steps.length === 0)
    throw new StudioError(
      ErrorCode.NOT_FOUND,
      `Run ${t.runId} has no checkpoints (${checkpointsDir(runDir)}).`,
      'Wait for its first checkpoint, or evaluate weights instead.',
    );
  const step = t.step ?? steps[steps.length - 1]!;
  if (!steps.includes(step))
    throw new StudioError(
      ErrorCode.NOT_FOUND,
      `Run ${t.runId} has no checkpoint at step ${step}.`,
      `Checkpoints: ${steps.join(', ')}.`,
    );
  const ck = readCheckpoint(path.join(checkpointsDir(runDir), checkpointDirName(step)));
  return {
    config: ck.state.modelConfig,
    weights: ck.weights,
    target: { runId: t.runId, step },
    label: `${t.runId} step ${step}`,
  };
}

/** Opens a model in a worker thread (remote-model.ts), so that its forward passes never block the service. */
async function openModel(
  home: string,
  t: ModelTarget,
  engine?: string,
  entry?: string,
): Promise<{ model: Model; loaded: Omit<LoadedTarget, 'weights'> }> {
  const opened = await openRemoteModel(home, t, engine ?? 'auto', entry);
  return { model: opened.model, loaded: { config: opened.config, label: opened.label, target: opened.target } };
}

/** What a HellaSwag eval records in its params, besides the request's limit, data file and engine. */
export interface HellaswagParams {
  limit: number | null;
  data: string;
  engine: string;
  /** the imported model evaluated, when the target named one (the stored target holds its folder) */
  modelId?: string;
  /** ModelEntry.key of the model: `model:<id>`, `ckpt:<runId>:<step>` or `path:<file>` */
  modelKey: string;
  /** what the model is called: an imported model's name, "<run name> · step N", or the weights' path */
  model: string;
}

interface Job {
  evalId: string;
  /** the eval as it was created (what wait() answers if it is deleted before it ends) */
  created: Eval;
  req: HellaswagRequest;
  abort: AbortController;
}

export class EvalService {
  private readonly queue: Job[] = [];
  private current: Job | null = null;
  private readonly finished = new Map<string, Promise<Eval>>();
  private readonly resolvers = new Map<string, (e: Eval) => void>();
  /** the last data file read for the example browser, by path, size and mtime */
  private textCache: { key: string; byInd: Map<number, HellaswagExample> } | null = null;

  constructor(
    private readonly home: string,
    private readonly store: () => Store,
    private readonly emit: Emit,
    /** the model worker's entry (default: the sources') */
    private readonly workerEntry?: string,
  ) {}

  /** Queues a HellaSwag evaluation; progress comes as eval-progress events, the end as eval-status. */
  hellaswag(req: HellaswagRequest): Eval {
    const data = this.dataFile(req.data);
    if (!fs.existsSync(data)) {
      throw req.data
        ? new StudioError(
            ErrorCode.FILE_NOT_FOUND,
            `No HellaSwag data at ${data}.`,
            "Check the path: it should be a hellaswag_val.jsonl (one example a line, with ctx, endings and label). Leave it out to use the workspace's copy.",
          )
        : new StudioError(
            ErrorCode.FILE_NOT_FOUND,
            `This workspace has no HellaSwag data yet (${data} is missing).`,
            'Prepare it once: "Prepare HellaSwag data" on the Evals page, HellaSwag (val) on the Datasets page, or "gpt2-studio prepare hellaswag" (about 7.5 MB from github.com/rowanz/hellaswag).',
          );
    }
    if (req.limit !== undefined && (!Number.isSafeInteger(req.limit) || req.limit < 1)) {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `The example limit must be a whole number of at least 1, not ${req.limit}.`,
        'Leave it out to score every example.',
      );
    }
    // check the target now, so that a bad one fails the request instead of the job
    const resolved = resolveModelTarget(this.home, req.target);
    const target: EvalTarget =
      'weightsPath' in resolved
        ? { weightsPath: path.resolve(resolved.weightsPath) }
        : { runId: resolved.runId, step: resolved.step ?? this.lastStep(resolved.runId) };
    const modelId = 'modelId' in req.target ? req.target.modelId : undefined;
    const keyTarget: ModelTarget = modelId !== undefined ? { modelId } : target;
    const runName = 'runId' in target ? this.store().getRun(target.runId)?.name : undefined;
    const params: HellaswagParams = {
      limit: req.limit ?? null,
      data,
      engine: req.engine ?? 'auto',
      ...(modelId !== undefined ? { modelId } : {}),
      modelKey: targetKey(keyTarget),
      model: targetLabel(this.home, keyTarget, runName),
    };
    const ev = this.store().createEval({ kind: 'hellaswag', target, params, pid: process.pid });
    const job: Job = {
      evalId: ev.id,
      created: ev,
      req: { ...req, data, target: keyTarget },
      abort: new AbortController(),
    };
    this.finished.set(ev.id, new Promise((r) => this.resolvers.set(ev.id, r)));
    this.queue.push(job);
    this.emit('eval-status', { evalId: ev.id, status: 'queued' });
    void this.pump();
    return ev;
  }

  private lastStep(runId: string): number {
    const steps = listCheckpointSteps(runDirOf(this.home, runId));
    if (!steps.length)
      throw new StudioError(
        ErrorCode.NOT_FOUND,
        `Run ${runId} has no checkpoints yet.`,
        'Wait for its first checkpoint.',
      );
    return steps[steps.length - 1]!;
  }

  private dataFile(explicit?: string): string {
    return explicit ? path.resolve(explicit) : new Workspace(this.home).hellaswagData;
  }

  /** Cancels a queued or running evaluation. */
  cancel(evalId: string): boolean {
    const q = this.queue.findIndex((j) => j.evalId === evalId);
    if (q >= 0) {
      const job = this.queue.splice(q, 1)[0]!;
      this.end(job, 'cancelled', null, null);
      return true;
    }
    if (this.current?.evalId === evalId) {
      this.current.abort.abort();
      return true;
    }
    return false;
  }

  /** Deletes an evaluation with its examples; a queued or running one is cancelled first. */
  remove(evalId: string): { deleted: boolean } {
    this.cancel(evalId);
    return { deleted: this.store().deleteEval(evalId) };
  }

  /** Resolves when the evaluation has ended. */
  wait(evalId: string): Promise<Eval> {
    return this.finished.get(evalId) ?? Promise.resolve(this.store().getEval(evalId)!);
  }

  /**
   * An eval's examples (optionally only those acc_norm got wrong, a page of them), each with its context and
   * endings read back from the eval's data file. When that file is gone, or no longer holds the example (the
   * label differs), the text is null and the scores are still there.
   */
  examples(arg: { evalId: string; wrongOnly?: boolean; limit?: number; offset?: number }): HellaswagExampleView[] {
    const ev = this.store().getEval(arg.evalId);
    if (!ev) throw new StudioError(ErrorCode.NOT_FOUND, `No evaluation "${arg.evalId}".`, 'List them with evals-list.');
    const rows = this.store().listEvalExamples(arg.evalId, {
      wrongOnly: arg.wrongOnly,
      limit: arg.limit,
      offset: arg.offset,
    });
    const data = typeof ev.params.data === 'string' ? ev.params.data : null;
    const byInd = rows.length && data ? this.examplesOf(data) : null;
    return rows.map((r) => {
      const ex = byInd?.get(r.ind);
      const same = ex !== undefined && ex.label === r.label;
      return { ...r, ctx: same ? ex.ctx : null, endings: same ? [...ex.endings] : null };
    });
  }

  private examplesOf(file: string): Map<number, HellaswagExample> | null {
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch {
      return null;
    }
    const key = `${file}\0${st.size}\0${st.mtimeMs}`;
    if (this.textCache?.key !== key) {
      const parsed = parseHellaswag(fs.readFileSync(file, 'utf8'), { source: file });
      this.textCache = { key, byInd: new Map(parsed.examples.map((e) => [e.ind, e])) };
    }
    return this.textCache.byInd;
  }

  private async pump(): Promise<void> {
    if (this.current) return;
    const job = this.queue.shift();
    if (!job) return;
    this.current = job;
    this.emit('eval-status', { evalId: job.evalId, status: 'running' });
    let model: Model | null = null;
    try {
      const file = job.req.data!;
      const parsed = parseHellaswag(fs.readFileSync(file, 'utf8'), { source: file });
      const opened = await openModel(this.home, job.req.target, job.req.engine, this.workerEntry);
      model = opened.model;
      let last = 0;
      const res = await runHellaswag(model, parsed.examples, {
        limit: job.req.limit,
        signal: job.abort.signal,
        onProgress: (done, total, s) => {
          const now = Date.now();
          if (done === total || now - last > 250) {
            last = now;
            this.emit('eval-progress', { evalId: job.evalId, done, total, accNorm: s.correctNorm / done });
          }
        },
      });
      const params = this.store().getEval(job.evalId)?.params as Partial<HellaswagParams> | undefined;
      const summary = {
        ...res.summary,
        malformed: parsed.skipped,
        baselines: HELLASWAG_BASELINES,
        model: params?.model ?? opened.loaded.label,
        modelKey: params?.modelKey,
      };
      const t = opened.loaded.target;
      // a checkpoint's score is kept with it (models-list, the Checkpoints page), when it covers the whole data file:
      // a quick run on the first few examples must not replace a full one
      if ('runId' in t && res.summary.n > 0 && res.summary.n >= parsed.examples.length)
        this.store().setCheckpointHellaswag(t.runId, t.step, res.summary.accNorm);
      this.end(job, 'done', summary, null, res.examples);
    } catch (e) {
      const cancelled = job.abort.signal.aborted || (e instanceof StudioError && e.code === ErrorCode.CANCELLED);
      this.end(job, cancelled ? 'cancelled' : 'failed', null, cancelled ? null : toPlainError(e));
    } finally {
      model?.dispose();
      this.current = null;
      void this.pump();
    }
  }

  private end(
    job: Job,
    status: 'done' | 'failed' | 'cancelled',
    summary: object | null,
    error: ReturnType<typeof toPlainError> | null,
    examples?: Parameters<Store['finishEval']>[1]['examples'],
  ): void {
    // deleted while it ran: nothing to record
    const ev = this.store().getEval(job.evalId)
      ? this.store().finishEval(job.evalId, { status, summary, error, examples })
      : { ...job.created, status, summary: null, error, pid: null, finishedAt: Date.now() };
    this.emit('eval-status', { evalId: job.evalId, status, error: error ?? undefined });
    this.resolvers.get(job.evalId)?.(ev);
    this.resolvers.delete(job.evalId);
  }

  /** Cancels everything (the studio is closing). */
  close(): void {
    for (const j of this.queue.splice(0)) this.end(j, 'cancelled', null, null);
    this.current?.abort.abort();
  }

  // ---- synchronous evaluations -----------------------------------------------------------------------------

  /** Mean loss of a model on `iters` batches from the start of a dataset's val split. */
  async valLoss(arg: {
    target: ModelTarget;
    dataset: string;
    iters?: number;
    batchSize?: number;
    seqLen?: number;
    engine?: string;
  }): Promise<{ valLoss: number; tokens: number; model: string }> {
    const { model, loaded } = await openModel(this.home, arg.target, arg.engine, this.workerEntry);
    try {
      const T = Math.min(arg.seqLen ?? 1024, loaded.config.blockSize);
      const B = arg.batchSize ?? 4;
      const iters = arg.iters ?? 20;
      const loader = openDatasetLoader(this.home, arg.dataset, 'val', { B, T });
      const src = {
        next: () => loader.nextBatch(),
        getState: () => loader.position,
        setState: () => {},
        reset: () => loader.reset(),
      };
      const valLoss = await evaluateValLoss(model, src, iters);
      return { valLoss, tokens: iters * B * T, model: loaded.label };
    } finally {
      model.dispose();
    }
  }

  /**
   * The loss of each next token of a text (the token-loss view): losses[i] is that of tokens[i+1]. A text longer
   * than the model's context (+1) is cut there: `truncated` says so, and `totalTokens` is the whole text's count.
   */
  async score(arg: { target: ModelTarget; text: string; engine?: string }): Promise<TokenScores> {
    const tokens = encode(arg.text);
    if (tokens.length < 2)
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `The text has ${tokens.length} token(s); scoring needs at least 2.`,
        'Type a longer text.',
      );
    const { model, loaded } = await openModel(this.home, arg.target, arg.engine, this.workerEntry);
    try {
      const contextLength = model.config.blockSize;
      const use = tokens.slice(0, contextLength + 1);
      const T = use.length - 1;
      const l = await model.tokenLosses({
        B: 1,
        T,
        inputs: Int32Array.from(use.slice(0, -1)),
        targets: Int32Array.from(use.slice(1)),
      });
      const losses = Array.from(l);
      return {
        tokens: use,
        pieces: use.map((t) => decode([t])),
        losses,
        meanLoss: losses.reduce((a, b) => a + b, 0) / losses.length,
        totalTokens: tokens.length,
        truncated: tokens.length > use.length,
        contextLength,
        model: loaded.label,
      };
    } finally {
      model.dispose();
    }
  }
}
