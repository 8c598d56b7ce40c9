/**
 * Runs: creating, starting, stopping, pausing, resuming and deleting training runs. Each run trains in its own
 * worker process; every message it sends is written to SQLite before it is relayed to subscribers, and a worker
 * that dies without saying why leaves its run `interrupted` with its last checkpoint.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode, StudioError, type PlainError } from '../../shared/errors';
import { checkRunConfig, totalSteps, type FieldError, type RunConfig } from '../../shared/run-config';
import type { StudioEvents } from '../../shared/contract';
import { listCheckpointSteps, checkpointDirName, checkpointsDir, readCheckpointState } from '../checkpoints';
import type { Run, Store, Checkpoint, LogEntry, Sample } from '../store';
import { forkWorker, spawnGroup, type WorkerHandle, type WorkerSpawner } from '../train/launcher';
import { CONTROL_FILE, type WorkerMessage } from '../train/protocol';
import { initPathOf, runDirOf } from '../train/paths';
import { datasetExists } from '../train/data';
import { isSftDataset } from '../datasets/sft';

/** Dataset sources whose dataset takes the source's name by default (src/node/datasets/sources.ts). */
const BUILT_IN_SOURCES = ['builtin', 'tinyshakespeare', 'fineweb-edu-10bt', 'hellaswag'];

type Emit = <K extends keyof StudioEvents>(name: K, payload: StudioEvents[K]) => void;

export interface CreateRunInput {
  config: unknown;
  name?: string;
  /** the preset the config came from */
  preset?: string;
  tags?: string[];
  notes?: string;
  /** create the run without starting it */
  start?: boolean;
}

/** A run config with every problem listed by field, as one error. */
export function configError(errors: { field: string; message: string }[]): StudioError {
  return new StudioError(
    ErrorCode.BAD_CONFIG,
    `The run config is not valid: ${errors.map((e) => `${e.field}: ${e.message}`).join('; ')}.`,
    'Fix the named fields (see the run config reference in the README).',
  );
}

interface Attached {
  worker: WorkerHandle;
  finished: boolean;
  done: Promise<Run>;
  resolve: (r: Run) => void;
}

export class RunManager {
  private readonly attached = new Map<string, Attached>();
  /** set by shutdown: the store is about to close, so late worker messages and exits are ignored */
  private closed = false;

  constructor(
    private readonly home: string,
    private readonly store: Store,
    private readonly emit: Emit,
    private readonly spawn: WorkerSpawner = forkWorker,
  ) {}

  /** Validates a config, including what only the workspace can tell (dataset, weights, checkpoint). */
  validate(input: unknown): RunConfig {
    const r = this.check(input);
    if (!r.ok) throw configError(r.errors);
    return r.config;
  }

  /** Every problem of a config at once: the schema's, and what only the workspace can tell. */
  check(input: unknown): { ok: true; config: RunConfig } | { ok: false; errors: FieldError[] } {
    const r = checkRunConfig(input);
    const missingDataset = (name: string) => {
      // a dataset named after a source (builtin, tinyshakespeare, ...) is prepared by that name
      const how = BUILT_IN_SOURCES.includes(name) ? `"gpt2-studio prepare ${name}"` : '"gpt2-studio prepare"';
      return { field: 'dataset', message: `no dataset "${name}" in the workspace ${this.home} (prepare it on the Datasets page or with ${how}; "gpt2-studio datasets" lists them)` };
    };
    if (!r.ok) {
      // report the workspace's answer too, so that one try shows every problem
      const dataset = (input as { dataset?: unknown } | null)?.dataset;
      const extra = typeof dataset === 'string' && dataset && !datasetExists(this.home, dataset) ? [missingDataset(dataset)] : [];
      return { ok: false, errors: [...r.errors, ...extra] };
    }
    const c = r.config;
    const errors: { field: string; message: string }[] = [];
    if (!datasetExists(this.home, c.dataset)) {
      errors.push(missingDataset(c.dataset));
    }
    else if (isSftDataset(this.home, c.dataset) !== c.sft) {
      errors.push(c.sft
        ? { field: 'sft', message: `sft is true but "${c.dataset}" is not an SFT dataset (prepare one with "gpt2-studio prepare sft --file data.jsonl")` }
        : { field: 'sft', message: `"${c.dataset}" is an SFT dataset: set sft to true (the loss then counts only the assistant's tokens)` });
    }
    if (c.init_from === 'weights' && c.init_path && !fs.existsSync(initPathOf(this.home, c.init_path))) {
      errors.push({ field: 'init_path', message: `weights file or folder ${initPathOf(this.home, c.init_path)} does not exist (a relative path is taken in the workspace)` });
    }
    if (c.init_from === 'checkpoint' && c.init_path) {
      try {
        readCheckpointState(initPathOf(this.home, c.init_path));
      } catch (e) {
        errors.push({ field: 'init_path', message: e instanceof Error ? e.message : String(e) });
      }
    }
    if (c.world_size > 1 && c.engine === 'tfjs') {
      errors.push({ field: 'world_size', message: `world_size = ${c.world_size} needs data parallel, which the tfjs engine does not have; use engine native-cpu or native-cuda, or world_size 1` });
    }
    if (c.world_size > 1 && c.sft) errors.push({ field: 'world_size', message: 'fine-tuning (sft) runs in one process; set world_size to 1' });
    return errors.length ? { ok: false, errors } : { ok: true, config: c };
  }

  async create(input: CreateRunInput): Promise<Run> {
    const config = this.validate(input.config);
    const run = this.store.createRun({
      name: input.name ?? config.name ?? `${config.model.preset ?? 'custom'} on ${config.dataset}`,
      config,
      preset: input.preset,
      engine: config.engine,
      tags: input.tags,
      notes: input.notes,
    });
    fs.mkdirSync(runDirOf(this.home, run.id), { recursive: true });
    this.emit('run-status', { runId: run.id, status: run.status });
    if (input.start === false) return run;
    return this.start(run.id);
  }

  private checkNotAttached(id: string): Run {
    const run = this.store.getRun(id);
    if (!run) throw new StudioError(ErrorCode.NOT_FOUND, `No run "${id}" in ${this.home}.`, 'List the runs with "gpt2-studio runs".');
    if (this.attached.has(id) || run.status === 'running') {
      throw new StudioError(ErrorCode.BAD_ARGUMENT, `Run ${id} is already running.`, 'Stop it first, or wait for it to finish.');
    }
    return run;
  }

  /** Starts (or restarts from its last checkpoint) a run that is not running. */
  start(id: string): Run {
    const run = this.checkNotAttached(id);
    const config = this.validate(run.config);
    const runDir = runDirOf(this.home, id);
    fs.rmSync(path.join(runDir, CONTROL_FILE), { force: true });
    const steps = listCheckpointSteps(runDir);
    const last = steps.length ? steps[steps.length - 1] : undefined;
    if (last !== undefined && last >= totalSteps(config)) {
      throw new StudioError(ErrorCode.BAD_ARGUMENT, `Run ${id} has already finished its ${totalSteps(config)} steps.`, 'Start a new run, or raise max_steps in a copy of its config.');
    }
    // forget what the interrupted attempt recorded after the checkpoint; the resumed run records it again
    this.store.rewindRun(id, last ?? 0);
    const resumeFrom = last !== undefined ? path.join(checkpointsDir(runDir), checkpointDirName(last)) : undefined;

    // data parallel: one process per rank, seen here as one worker
    const worker = config.world_size > 1 ? spawnGroup(this.spawn, config.world_size) : this.spawn();
    let resolve!: (r: Run) => void;
    const done = new Promise<Run>((r) => (resolve = r));
    const a: Attached = { worker, finished: false, done, resolve };
    this.attached.set(id, a);
    worker.onMessage((m) => this.onMessage(id, a, m));
    worker.onExit((code, signal) => this.onExit(id, a, code, signal));
    worker.send({ type: 'start', runId: id, home: this.home, config, resumeFrom });
    const updated = this.store.updateRun(id, { status: 'running', startedAt: Date.now(), endedAt: null, error: null, pid: worker.pid ?? null });
    this.emit('run-status', { runId: id, status: 'running' });
    if (resumeFrom) this.log(id, 'info', `resuming from checkpoint step ${last}`);
    else if (run.stepsDone > 0)
      this.log(id, 'warn', `run ${id} has no checkpoint, so it starts again from step 0 (the earlier attempt reached step ${run.stepsDone - 1}); set checkpoint_interval to keep progress`);
    return updated;
  }

  /** Resumes a stopped, paused, interrupted or failed run from its last checkpoint. */
  resume(id: string): Run {
    return this.start(id);
  }

  /** Asks a run to checkpoint and stop (or pause). Works across processes through the run's control file. */
  control(id: string, what: 'stop' | 'pause'): Run {
    const run = this.store.getRun(id);
    if (!run) throw new StudioError(ErrorCode.NOT_FOUND, `No run "${id}" in ${this.home}.`, 'List the runs with "gpt2-studio runs".');
    if (run.status !== 'running') throw new StudioError(ErrorCode.BAD_ARGUMENT, `Run ${id} is ${run.status}, not running.`, 'Only a running run can be stopped or paused.');
    const a = this.attached.get(id);
    if (a) a.worker.send({ type: what });
    else fs.writeFileSync(path.join(runDirOf(this.home, id), CONTROL_FILE), what);
    return run;
  }

  /** Resolves when the run's worker has ended (immediately for a run without one). */
  async wait(id: string): Promise<Run> {
    const a = this.attached.get(id);
    if (a) return a.done;
    const run = this.store.getRun(id);
    if (!run) throw new StudioError(ErrorCode.NOT_FOUND, `No run "${id}".`, '');
    return run;
  }

  /** Deletes a run that is not running, with its files. */
  delete(id: string): void {
    this.checkNotAttached(id);
    this.store.deleteRun(id);
    fs.rmSync(runDirOf(this.home, id), { recursive: true, force: true });
    this.emit('run-deleted', { runId: id });
  }

  /** Asks every attached run to checkpoint and stop, and waits up to `timeoutMs` before killing the rest. */
  async shutdown(timeoutMs = 60_000): Promise<void> {
    const all = [...this.attached.entries()];
    for (const [, a] of all) a.worker.send({ type: 'stop' });
    const timer = new Promise<void>((r) => setTimeout(r, timeoutMs).unref());
    await Promise.race([Promise.all(all.map(([, a]) => a.done)), timer]);
    // a worker that did not stop in time: mark its run interrupted now, while the store is open
    for (const [id, a] of [...this.attached]) {
      this.onExit(id, a, null, 'SIGKILL (the studio was closing)');
      a.worker.kill('SIGKILL');
    }
    this.closed = true;
  }

  private log(runId: string, level: LogEntry['level'], message: string): void {
    const e = this.store.addLog(runId, level, message);
    this.emit('run-log', { runId, seq: e.seq, level, message, time: e.time });
  }

  private onMessage(runId: string, a: Attached, m: WorkerMessage): void {
    // nothing after the run has ended (e.g. a data-parallel rank that has not noticed yet)
    if (this.closed || a.finished) return;
    try {
      switch (m.type) {
        case 'ready':
          this.log(runId, 'info', `engine ${m.engine}; ${m.params.toLocaleString('en-US')} parameters`);
          break;
        case 'step': {
          const metrics: Record<string, number> = {
            'train/loss': m.loss, 'train/lr': m.lr, 'train/norm': m.norm, 'train/dt_ms': m.dtMs, 'train/tok_per_sec': m.tokensPerSec,
          };
          if (m.mfu !== undefined) metrics['train/mfu'] = m.mfu;
          this.store.recordStep(runId, { step: m.step, metrics, wallTime: Date.now(), tokensSeen: m.tokensSeen });
          this.emit('run-step', { runId, step: m.step, loss: m.loss, lr: m.lr, norm: m.norm, dtMs: m.dtMs, tokensPerSec: m.tokensPerSec, mfu: m.mfu, tokensSeen: m.tokensSeen, skipped: m.skipped });
          break;
        }
        case 'eval': {
          const run = this.store.getRun(runId);
          this.store.recordStep(runId, { step: m.step, metrics: { [m.name]: m.value }, wallTime: Date.now(), tokensSeen: run?.tokensSeen ?? 0 });
          this.emit('run-eval', { runId, step: m.step, name: m.name, value: m.value });
          break;
        }
        case 'sample':
          m.samples.forEach((text, idx) => this.store.addSample(runId, { step: m.step, idx, prompt: m.prompt, text }));
          this.emit('run-sample', { runId, step: m.step, prompt: m.prompt, samples: m.samples });
          break;
        case 'checkpoint': {
          this.store.addCheckpoint(runId, { step: m.step, path: m.dir, sizeBytes: m.sizeBytes, valLoss: m.valLoss ?? undefined });
          // rows of checkpoints that keep_last removed from disk
          for (const c of this.store.listCheckpoints(runId)) if (!fs.existsSync(c.path)) this.store.deleteCheckpoint(runId, c.step);
          this.emit('run-checkpoint', { runId, step: m.step, path: m.dir, sizeBytes: m.sizeBytes });
          break;
        }
        case 'log':
          this.log(runId, m.level, m.message);
          break;
        case 'done':
          this.finish(runId, a, m.status, null);
          break;
        case 'error':
          this.log(runId, 'error', `${m.error.message}${m.error.hint ? ` (${m.error.hint})` : ''}`);
          this.finish(runId, a, 'failed', m.error);
          break;
      }
    } catch (e) {
      // a store failure must not take the service down; it ends this run with the reason
      const err = e instanceof StudioError ? e.toPlain() : { code: ErrorCode.INTERNAL, message: String(e), hint: '' };
      if (!a.finished) {
        a.worker.kill('SIGKILL');
        this.finish(runId, a, 'failed', err);
      }
    }
  }

  private finish(runId: string, a: Attached, status: Run['status'], error: PlainError | null): void {
    if (a.finished) return;
    a.finished = true;
    const run = this.store.updateRun(runId, { status, endedAt: Date.now(), pid: null, error });
    this.emit('run-status', { runId, status, error: error ?? undefined });
    this.attached.delete(runId);
    a.resolve(run);
  }

  private onExit(runId: string, a: Attached, code: number | null, signal: string | null): void {
    if (a.finished || this.closed) return;
    a.finished = true;
    this.attached.delete(runId);
    const why = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    const checkpointed = listCheckpointSteps(runDirOf(this.home, runId)).length > 0;
    const [run] = this.store.markInterrupted([runId], {
      code: ErrorCode.INTERRUPTED,
      message: `The training worker of run ${runId} ${why} without finishing.`,
      hint: checkpointed
        ? `Resume it from its last checkpoint: gpt2-studio resume ${runId}`
        : `It had no checkpoint yet, so resuming starts it again from step 0: gpt2-studio resume ${runId}`,
    });
    const r = run ?? this.store.getRun(runId)!;
    this.emit('run-status', { runId, status: 'interrupted', error: r.error ?? undefined });
    a.resolve(r);
  }

  // ---- queries -------------------------------------------------------------------------------------------

  list(filter?: Parameters<Store['listRuns']>[0]): Run[] {
    return this.store.listRuns(filter);
  }

  get(id: string): Run {
    const run = this.store.getRun(id);
    if (!run) throw new StudioError(ErrorCode.NOT_FOUND, `No run "${id}" in ${this.home}.`, 'List the runs with "gpt2-studio runs".');
    return run;
  }

  metrics(id: string, names?: string[], sinceStep?: number) {
    this.get(id);
    return this.store.getMetrics(id, names, { sinceStep });
  }

  samples(id: string): Sample[] {
    return this.store.listSamples(id);
  }

  checkpoints(id: string): Checkpoint[] {
    return this.store.listCheckpoints(id);
  }

  logs(id: string, afterSeq?: number, tail?: number): LogEntry[] {
    return this.store.listLogs(id, tail ? { afterSeq, tail: true, limit: tail } : { afterSeq });
  }
}
