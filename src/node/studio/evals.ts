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
import { HELLASWAG_BASELINES, parseHellaswag, runHellaswag } from '../../core/evals/hellaswag';
import { evaluateValLoss } from '../../core/train/trainer';
import { decode, encode } from '../../core/tokenizer';
import { checkpointDirName, checkpointsDir, listCheckpointSteps, readCheckpoint } from '../checkpoints';
import { getEngine } from '../engines';
import { hellaswagDataPath } from '../evals/paths';
import type { Eval, EvalTarget, Store } from '../store';
import { openDatasetLoader } from '../datasets';
import { runDirOf } from '../train/paths';
import { loadGpt2Weights } from '../weights';
import type { ModelTarget } from '../../shared/models';
import { resolveModelTarget } from './models';

type Emit = <K extends keyof StudioEvents>(name: K, payload: StudioEvents[K]) => void;

export type { ModelTarget };

export interface LoadedTarget {
  config: GPTConfig;
  weights: NamedTensors;
  /** the resolved target, with the checkpoint step filled in */
  target: EvalTarget;
  label: string;
}

/** Resolves and loads a target's weights. */
export function loadTarget(home: string, target: ModelTarget): LoadedTarget {
  const t = resolveModelTarget(home, target);
  if ('weightsPath' in t) {
    const w = loadGpt2Weights(t.weightsPath);
    return { config: w.config, weights: w.tensors, target: { weightsPath: w.file }, label: w.file };
  }
  const runDir = runDirOf(home, t.runId);
  const steps = listCheckpointSteps(runDir);
  if (steps.length === 0) throw new StudioError(ErrorCode.NOT_FOUND, `Run ${t.runId} has no checkpoints (${checkpointsDir(runDir)}).`, 'Wait for its first checkpoint, or evaluate weights instead.');
  const step = t.step ?? steps[steps.length - 1];
  if (!steps.includes(step)) throw new StudioError(ErrorCode.NOT_FOUND, `Run ${t.runId} has no checkpoint at step ${step}.`, `Checkpoints: ${steps.join(', ')}.`);
  const ck = readCheckpoint(path.join(checkpointsDir(runDir), checkpointDirName(step)));
  return { config: ck.state.modelConfig, weights: ck.weights, target: { runId: t.runId, step }, label: `${t.runId} step ${step}` };
}

async function openModel(home: string, t: ModelTarget, engine?: string): Promise<{ model: Model; loaded: LoadedTarget }> {
  const loaded = loadTarget(home, t);
  const e = await getEngine(engine ?? 'auto');
  const model = await e.createModel(loaded.config, loaded.weights);
  loaded.weights.clear();
  return { model, loaded };
}

export interface HellaswagRequest {
  target: ModelTarget;
  /** a hellaswag_val.jsonl; default: the workspace's (gpt2-studio prepare hellaswag) */
  data?: string;
  limit?: number;
  engine?: string;
}

interface Job {
  evalId: string;
  req: HellaswagRequest;
  abort: AbortController;
}

export class EvalService {
  private readonly queue: Job[] = [];
  private current: Job | null = null;
  private readonly finished = new Map<string, Promise<Eval>>();
  private readonly resolvers = new Map<string, (e: Eval) => void>();

  constructor(
    private readonly home: string,
    private readonly store: () => Store,
    private readonly emit: Emit,
  ) {}

  /** Queues a HellaSwag evaluation; progress comes as eval-progress events, the end as eval-status. */
  hellaswag(req: HellaswagRequest): Eval {
    const data = this.dataFile(req.data);
    if (!fs.existsSync(data)) throw new StudioError(ErrorCode.FILE_NOT_FOUND, `No HellaSwag data at ${data}.`, 'Download it with "gpt2-studio prepare hellaswag" (or the Datasets page), or give a file.');
    // check the target now, so that a bad one fails the request instead of the job
    const resolved = resolveModelTarget(this.home, req.target);
    const target: EvalTarget = 'weightsPath' in resolved ? { weightsPath: path.resolve(resolved.weightsPath) } : { runId: resolved.runId, step: resolved.step ?? this.lastStep(resolved.runId) };
    const ev = this.store().createEval({ kind: 'hellaswag', target, params: { limit: req.limit ?? null, data, engine: req.engine ?? 'auto' }, pid: process.pid });
    const job: Job = { evalId: ev.id, req: { ...req, data, target: 'weightsPath' in target ? target : { runId: target.runId, step: target.step } }, abort: new AbortController() };
    this.finished.set(ev.id, new Promise((r) => this.resolvers.set(ev.id, r)));
    this.queue.push(job);
    this.emit('eval-status', { evalId: ev.id, status: 'queued' });
    void this.pump();
    return ev;
  }

  private lastStep(runId: string): number {
    const steps = listCheckpointSteps(runDirOf(this.home, runId));
    if (!steps.length) throw new StudioError(ErrorCode.NOT_FOUND, `Run ${runId} has no checkpoints yet.`, 'Wait for its first checkpoint.');
    return steps[steps.length - 1];
  }

  private dataFile(explicit?: string): string {
    return explicit ? path.resolve(explicit) : hellaswagDataPath(this.home);
  }

  /** Cancels a queued or running evaluation. */
  cancel(evalId: string): boolean {
    const q = this.queue.findIndex((j) => j.evalId === evalId);
    if (q >= 0) {
      const [job] = this.queue.splice(q, 1);
      this.end(job, 'cancelled', null, null);
      return true;
    }
    if (this.current?.evalId === evalId) {
      this.current.abort.abort();
      return true;
    }
    return false;
  }

  /** Resolves when the evaluation has ended. */
  wait(evalId: string): Promise<Eval> {
    return this.finished.get(evalId) ?? Promise.resolve(this.store().getEval(evalId)!);
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
      const opened = await openModel(this.home, job.req.target, job.req.engine);
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
      const summary = { ...res.summary, malformed: parsed.skipped, baselines: HELLASWAG_BASELINES, model: opened.loaded.label };
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

  private end(job: Job, status: 'done' | 'failed' | 'cancelled', summary: object | null, error: ReturnType<typeof toPlainError> | null, examples?: Parameters<Store['finishEval']>[1]['examples']): void {
    const ev = this.store().finishEval(job.evalId, { status, summary, error, examples });
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
  async valLoss(arg: { target: ModelTarget; dataset: string; iters?: number; batchSize?: number; seqLen?: number; engine?: string }): Promise<{ valLoss: number; tokens: number; model: string }> {
    const { model, loaded } = await openModel(this.home, arg.target, arg.engine);
    try {
      const T = Math.min(arg.seqLen ?? 1024, loaded.config.blockSize);
      const B = arg.batchSize ?? 4;
      const iters = arg.iters ?? 20;
      const loader = openDatasetLoader(this.home, arg.dataset, 'val', { B, T });
      const src = { next: () => loader.nextBatch(), getState: () => loader.position, setState: () => {}, reset: () => loader.reset() };
      const valLoss = await evaluateValLoss(model, src, iters);
      return { valLoss, tokens: iters * B * T, model: loaded.label };
    } finally {
      model.dispose();
    }
  }

  /** The loss of each next token of a text (the token-loss view): losses[i] is that of tokens[i+1]. */
  async score(arg: { target: ModelTarget; text: string; engine?: string }): Promise<{ tokens: number[]; pieces: string[]; losses: number[]; meanLoss: number }> {
    const tokens = encode(arg.text);
    if (tokens.length < 2) throw new StudioError(ErrorCode.BAD_ARGUMENT, `The text has ${tokens.length} token(s); scoring needs at least 2.`, 'Type a longer text.');
    const { model } = await openModel(this.home, arg.target, arg.engine);
    try {
      const use = tokens.slice(0, model.config.blockSize + 1);
      const T = use.length - 1;
      const l = await model.tokenLosses({ B: 1, T, inputs: Int32Array.from(use.slice(0, -1)), targets: Int32Array.from(use.slice(1)) });
      const losses = Array.from(l);
      return { tokens: use, pieces: use.map((t) => decode([t])), losses, meanLoss: losses.reduce((a, b) => a + b, 0) / losses.length };
    } finally {
      model.dispose();
    }
  }
}
