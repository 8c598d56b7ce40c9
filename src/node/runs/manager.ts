/**
 * Runs: creating, starting, stopping, pausing, resuming and deleting training runs. Each run trains in its own
 * worker process; every message it sends is written to SQLite before it is relayed to subscribers, and a worker
 * that dies without saying why leaves its run `interrupted` with its last checkpoint.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ErrorCode, StudioError, toPlainError, type PlainError } from '../../shared/errors';
import { checkRunConfig, totalSteps, type FieldError, type RunConfig } from '../../shared/run-config';
import type { StudioEvents } from '../../shared/contract';
import {
  cleanCheckpointLeftovers,
  listCheckpointSteps,
  checkpointDirName,
  checkpointsDir,
  readCheckpointState,
} from '../checkpoints/files';
import type { Run, Store, Checkpoint, LogEntry, Sample } from '../store';
import type { RunNode } from '../../shared/records';
import { forkWorker, spawnGroup, type WorkerHandle, type WorkerSpawner } from '../train/launcher';
import { CONTROL_FILE, type ParentMessage, type WorkerMessage } from '../train/protocol';
import { initPathOf, runDirOf } from '../train/paths';
import { datasetExists } from '../train/data';
import { datasetShardFiles } from '../datasets';
import { parseShardLayout, SHARD_PROBE_BYTES } from '../../core/data/shard';
import { isSftDataset } from '../datasets/sft';
import { loadGpt2Weights } from '../models/weights';
import type { GPTConfig } from '../../core/model/config';
import { MODEL_PRESETS } from '../../shared/model-presets';
import { engineLabel } from '../../shared/run-facts';
import { planRun } from '../../shared/planner';
import { hostFacts } from './facts';
import { runNotFound } from './runs-table';
import { cudaMemoryInfo } from '../native';
import type { CreateRunInput } from '../../shared/api/runs';
export type { CreateRunInput };

/** Dataset sources whose dataset takes the source's name by default (src/node/datasets/sources.ts). */
const BUILT_IN_SOURCES = ['builtin', 'tinyshakespeare', 'fineweb-edu-10bt', 'hellaswag'];

type Emit = <K extends keyof StudioEvents>(name: K, payload: StudioEvents[K]) => void;

/** Memory this machine can give a new process now: MemAvailable on Linux (it counts reclaimable caches), else free. */
export function availableMemory(): number {
  try {
    const m = /^MemAvailable:\s+(\d+) kB$/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return os.freemem();
}

/** What a training process needs besides the plan's tensors: Node, the engine's code, the tokenizer, buffers. */
const PROCESS_OVERHEAD = 400 * 2 ** 20;
/** What a GPU rank needs besides the plan's tensors: the CUDA context, cuBLAS workspaces, NCCL buffers. */
const GPU_OVERHEAD = 1024 * 2 ** 20;

const gib = (b: number) => `${(b / 2 ** 30).toFixed(b < 10 * 2 ** 30 ? 2 : 1)} GiB`;

/**
 * Refuses a run whose plan cannot fit in the memory the machine has now (RAM, for the CPU engines), with the
 * estimate and the largest batch_size that fits. A run on a GPU is judged by its GPU's memory, which this check does
 * not read: it is skipped for native-cuda and for "auto" on a machine with an NVIDIA GPU.
 */
export function checkMemoryFits(
  c: RunConfig,
  shape: GPTConfig | undefined,
  available = availableMemory(),
  gpus = hostGpus(),
  gpuFree?: readonly number[],
): void {
  const onGpu = c.engine === 'native-cuda' || (c.engine === 'auto' && gpus.length > 0);
  if (onGpu && !gpuFree?.length) return;
  const opts = shape
    ? {
        shape: {
          nLayer: shape.nLayer,
          nHead: shape.nHead,
          nEmbd: shape.nEmbd,
          blockSize: shape.blockSize,
          vocabSize: shape.vocabSize,
          paddedVocabSize: shape.paddedVocabSize,
        },
      }
    : {};
  const need = (cfg: RunConfig) => {
    const p = planRun(cfg, opts);
    // on a GPU only what surely stays resident is judged (weights, gradients, AdamW state): the plan counts fp32
    // activations and their gradients, which the CUDA engine keeps in less (bf16, reused buffers), so a run the
    // plan calls too big may still fit, and the engine's own allocation reports it if not
    if (onGpu) return p.memory.params + p.memory.grads + p.memory.optimizer + GPU_OVERHEAD;
    // on the CPU the guard's snapshot keeps another copy of the weights and AdamW's m and v
    const snapshot = cfg.guard.snapshot_interval > 0 ? p.memory.params + p.memory.optimizer : 0;
    return p.memory.total + snapshot + PROCESS_OVERHEAD;
  };
  // data parallel: on the CPU the ranks share the RAM; on GPUs each rank has its own device, judged by the fullest
  const per = onGpu ? 1 : c.world_size;
  if (onGpu) available = Math.min(...gpuFree!.slice(0, Math.max(1, c.world_size)));
  const total = need(c) * per;
  if (total <= available) return;
  // the largest micro-batch that fits and still divides the step's tokens (the rest becomes gradient accumulation)
  let fit: number | undefined;
  for (let b = c.batch_size - 1; b >= 1; b--) {
    if (c.total_batch_size % (b * c.seq_len * per) !== 0) continue;
    if (need({ ...c, batch_size: b }) * per <= available) {
      fit = b;
      break;
    }
  }
  throw new StudioError(
    ErrorCode.OUT_OF_MEMORY,
    onGpu
      ? `This model's weights, gradients and AdamW state alone need about ${gib(total)} of GPU memory per rank (before any activations), but ${c.world_size > 1 ? 'the fullest of its GPUs has' : 'the GPU has'} ${gib(available)} free.`
      : `This run needs about ${gib(total)} of memory (weights, gradients, AdamW state, the guard's snapshot and one micro-batch of ${c.batch_size} x ${c.seq_len} activations${per > 1 ? `, in each of ${per} processes` : ''}), but this machine has ${gib(available)} available.`,
    fit !== undefined
      ? `Lower batch_size to ${fit} (gradient accumulation keeps total_batch_size), or pass --force (the app: "Create anyway") to start it all the same.`
      : `No batch_size fits at seq_len ${c.seq_len}: pick a smaller model or seq_len, or pass --force to start it all the same.`,
  );
}

function hostGpus(): string[] {
  return hostFacts().gpus;
}

/** "4 layers, 4 heads, 128 wide, context 128" */
const describeShape = (s: { n_layer?: number; n_head?: number; n_embd?: number; block_size?: number }) =>
  [
    s.n_layer !== undefined ? `n_layer ${s.n_layer}` : '',
    s.n_head !== undefined ? `n_head ${s.n_head}` : '',
    s.n_embd !== undefined ? `n_embd ${s.n_embd}` : '',
    s.block_size !== undefined ? `block_size ${s.block_size}` : '',
  ]
    .filter(Boolean)
    .join(', ');

/**
 * The shape fields given in a raw config (a model preset, or explicit fields over it) that differ from the shape
 * of the init weights; null when none does. Fields left unset are taken from the weights.
 */
export function shapeConflict(input: unknown, w: GPTConfig): string | null {
  const model = (input as { model?: unknown } | null)?.model;
  if (!model || typeof model !== 'object') return null;
  const m = model as Record<string, unknown>;
  const preset =
    typeof m.preset === 'string'
      ? (
          MODEL_PRESETS as Record<
            string,
            { nLayer: number; nHead: number; nEmbd: number; blockSize: number } | undefined
          >
        )[m.preset]
      : undefined;
  const given = {
    n_layer: typeof m.n_layer === 'number' ? m.n_layer : preset?.nLayer,
    n_head: typeof m.n_head === 'number' ? m.n_head : preset?.nHead,
    n_embd: typeof m.n_embd === 'number' ? m.n_embd : preset?.nEmbd,
    block_size: typeof m.block_size === 'number' ? m.block_size : preset?.blockSize,
  };
  const weights = { n_layer: w.nLayer, n_head: w.nHead, n_embd: w.nEmbd, block_size: w.blockSize };
  const differs = (Object.keys(given) as (keyof typeof given)[]).some(
    (k) => given[k] !== undefined && given[k] !== weights[k],
  );
  const vocabDiffers = typeof m.vocab_size === 'number' && m.vocab_size !== w.vocabSize;
  if (!differs && !vocabDiffers) return null;
  const asked = `${preset ? `model.preset ${String(m.preset)} (` : ''}${describeShape(given)}${vocabDiffers ? `, vocab_size ${String(m.vocab_size)}` : ''}${preset ? ')' : ''}`;
  return `the config asks for ${asked}, but the init weights have ${describeShape(weights)}, vocab_size ${w.vocabSize}; remove the model fields (the shape is taken from the weights) or pick weights of that shape`;
}

/**
 * The first problem of a token dataset's shards, from their headers and sizes (a few bytes a shard), or null: a
 * damaged shard is refused before the run is created, not at its first step.
 */
function shardProblem(home: string, id: string): string | null {
  try {
    for (const split of ['train', 'val'] as const) {
      for (const file of datasetShardFiles(home, id, split)) {
        const size = fs.statSync(file).size;
        const fd = fs.openSync(file, 'r');
        try {
          const head = new Uint8Array(Math.min(size, SHARD_PROBE_BYTES));
          fs.readSync(fd, head, 0, head.length, 0);
          parseShardLayout(head, size, file);
        } finally {
          fs.closeSync(fd);
        }
      }
    }
    return null;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/** A run config with every problem listed by field, as one error. */
export function configError(errors: { field: string; message: string }[]): StudioError {
  return new StudioError(
    ErrorCode.BAD_CONFIG,
    `The run config is not valid: ${errors.map((e) => `${e.field}: ${e.message}`).join('; ')}.`,
    'Fix the named fields (see the run config reference in the README).',
  );
}

/**
 * How a run's processes are started when they are not the default (one process, or one per rank on this machine):
 * a multi-node run's node starts only its share of the ranks, maybe under mpirun, with fields of its own in the
 * workers' start message (runs/multinode.ts). Called with the run's validated config and the checkpoint it
 * resumes from.
 */
export type LaunchPlan = (
  config: RunConfig,
  resumeFrom: string | undefined,
) => { worker: WorkerHandle; start: Partial<Extract<ParentMessage, { type: 'start' }>> };

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
  validate(input: unknown, opts: { shapeFromInit?: boolean } = {}): RunConfig {
    const r = this.check(input, opts);
    if (!r.ok) throw configError(r.errors);
    return r.config;
  }

  /** Every problem of a config at once: the schema's, and what only the workspace can tell. */
  check(
    input: unknown,
    opts: { shapeFromInit?: boolean } = {},
  ): { ok: true; config: RunConfig } | { ok: false; errors: FieldError[] } {
    const r = checkRunConfig(input);
    const missingDataset = (name: string) => {
      // a dataset named after a source (builtin, tinyshakespeare, ...) is prepared by that name
      const how = BUILT_IN_SOURCES.includes(name) ? `"gpt2-studio prepare ${name}"` : '"gpt2-studio prepare"';
      return {
        field: 'dataset',
        message: `no dataset "${name}" in the workspace ${this.home} (prepare it on the Datasets page or with ${how}; "gpt2-studio datasets" lists them)`,
      };
    };
    if (!r.ok) {
      // report the workspace's answer too, so that one try shows every problem
      const dataset = (input as { dataset?: unknown } | null)?.dataset;
      const extra =
        typeof dataset === 'string' && dataset && !datasetExists(this.home, dataset) ? [missingDataset(dataset)] : [];
      return { ok: false, errors: [...r.errors, ...extra] };
    }
    const c = r.config;
    const errors: { field: string; message: string }[] = [];
    let shardIssue: string | null;
    if (!datasetExists(this.home, c.dataset)) {
      errors.push(missingDataset(c.dataset));
    } else if (!isSftDataset(this.home, c.dataset) && (shardIssue = shardProblem(this.home, c.dataset))) {
      errors.push({ field: 'dataset', message: shardIssue });
    } else if (isSftDataset(this.home, c.dataset) !== c.sft) {
      errors.push(
        c.sft
          ? {
              field: 'sft',
              message: `sft is true but "${c.dataset}" is not an SFT dataset (prepare one with "gpt2-studio prepare sft --file data.jsonl")`,
            }
          : {
              field: 'sft',
              message: `"${c.dataset}" is an SFT dataset: set sft to true (the loss then counts only the assistant's tokens)`,
            },
      );
    }
    let initShape: GPTConfig | undefined;
    if (c.init_from !== 'scratch' && c.init_path) {
      const abs = initPathOf(this.home, c.init_path);
      if (!fs.existsSync(abs)) {
        // a path typed relative to the shell's folder is the likely slip: say so, with the path that would work
        const fromCwd = path.resolve(c.init_path);
        const cwdHint =
          !path.isAbsolute(c.init_path) && fs.existsSync(fromCwd)
            ? `; ${fromCwd} exists: give that absolute path to use it`
            : '';
        errors.push({
          field: 'init_path',
          message: `${c.init_from === 'weights' ? 'weights file or folder' : 'checkpoint folder'} ${abs} does not exist (a relative path is taken in the workspace ${this.home}${cwdHint})`,
        });
      } else {
        try {
          initShape =
            c.init_from === 'weights'
              ? loadGpt2Weights(abs, { headerOnly: true }).config
              : readCheckpointState(abs).modelConfig;
        } catch (e) {
          errors.push({ field: 'init_path', message: e instanceof Error ? e.message : String(e) });
        }
      }
    }
    if (initShape && opts.shapeFromInit !== false) {
      // the weights set the shape: a shape field given beside them must agree, and an unset one is taken from them
      const conflict = shapeConflict(input, initShape);
      if (conflict) errors.push({ field: 'model', message: conflict });
    }
    if (c.world_size > 1 && (c.engine === 'tfjs' || c.engine === 'native-webgpu')) {
      errors.push({
        field: 'world_size',
        message: `world_size = ${c.world_size} needs data parallel, which the ${c.engine} engine does not have; use engine native-cpu or native-cuda, or world_size 1`,
      });
    }
    if (c.world_size > 1 && c.sft)
      errors.push({ field: 'world_size', message: 'fine-tuning (sft) runs in one process; set world_size to 1' });
    if (errors.length) return { ok: false, errors };
    // the config as the run records it: the init path resolved, and the shape that will actually train
    const out: RunConfig = { ...c };
    if (c.init_path) out.init_path = initPathOf(this.home, c.init_path);
    if (initShape && opts.shapeFromInit !== false) {
      out.model = {
        n_layer: initShape.nLayer,
        n_head: initShape.nHead,
        n_embd: initShape.nEmbd,
        block_size: initShape.blockSize,
        vocab_size: initShape.vocabSize,
        ...(c.model.padded_vocab_size !== undefined ? { padded_vocab_size: c.model.padded_vocab_size } : {}),
      };
    }
    return { ok: true, config: out };
  }

  /** Refuses (OUT_OF_MEMORY) a valid config whose plan does not fit in the memory this machine has now. */
  async checkMemory(config: RunConfig): Promise<void> {
    const gpus = hostGpus();
    const onGpu = config.engine === 'native-cuda' || (config.engine === 'auto' && gpus.length > 0);
    // a GPU run is judged by its devices' free memory, read through CUDA; null: CUDA cannot be asked here
    const devices = onGpu ? await cudaMemoryInfo() : null;
    checkMemoryFits(
      config,
      this.initShape(config),
      availableMemory(),
      gpus,
      devices?.map((d) => d.freeBytes),
    );
  }

  /**
   * Whether a config would be refused for memory, before anything is created: null when it fits (or cannot be
   * judged here), else the error runs-create would give. The New run page asks it to put every reason to confirm
   * a start in one dialog.
   */
  async memoryProblem(input: unknown): Promise<PlainError | null> {
    const config = this.validate(input);
    try {
      await this.checkMemory(config);
      return null;
    } catch (e) {
      if (e instanceof StudioError && e.code === ErrorCode.OUT_OF_MEMORY) return toPlainError(e);
      throw e;
    }
  }

  /**
   * `ranksHere`: a multi-node run's ranks on this machine (its world_size counts every node's), which is what this
   * machine's memory must hold.
   */
  async create(input: CreateRunInput, opts: { ranksHere?: number } = {}): Promise<Run> {
    const config = this.validate(input.config);
    if (!input.force) await this.checkMemory(opts.ranksHere ? { ...config, world_size: opts.ranksHere } : config);
    const run = this.store.createRun({
      name:
        input.name ??
        config.name ??
        (config.init_from === 'scratch' || !config.init_path
          ? `${config.model.preset ?? 'custom'} on ${config.dataset}`
          : `${path.basename(config.init_path)} on ${config.dataset}`),
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
    if (!run) throw runNotFound(id, this.home);
    if (this.attached.has(id) || run.status === 'running') {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `Run ${id} is already running.`,
        'Stop it first, or wait for it to finish.',
      );
    }
    return run;
  }

  /** Starts (or restarts from its last checkpoint) a run that is not running. */
  start(id: string, launch?: LaunchPlan): Run {
    const run = this.checkNotAttached(id);
    // the stored config was checked when the run was created; a run from an older studio may name a model preset
    // beside weights of another shape, and trains the weights' shape as it did then
    const config = this.validate(run.config, { shapeFromInit: false });
    const runDir = runDirOf(this.home, id);
    fs.rmSync(path.join(runDir, CONTROL_FILE), { force: true });
    // what a killed attempt left half-written or half-deleted goes before the checkpoints are listed
    const leftovers = this.cleanLeftovers(id);
    const steps = listCheckpointSteps(runDir);
    const last = steps.length ? steps[steps.length - 1] : undefined;
    if (last !== undefined && last >= totalSteps(config)) {
      if (run.status !== 'done') {
        // killed after its final checkpoint was in place (while pruning, before it said done): nothing is left to train
        const done = this.store.updateRun(id, { status: 'done', endedAt: Date.now(), error: null, pid: null });
        this.log(
          id,
          'info',
          `the run had saved its final checkpoint (step ${last}) before its worker stopped: it is done`,
        );
        this.emit('run-status', { runId: id, status: 'done' });
        return done;
      }
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `Run ${id} has already finished its ${totalSteps(config)} steps.`,
        'Start a new run, or raise max_steps in a copy of its config.',
      );
    }
    // forget what the interrupted attempt recorded after the checkpoint; the resumed run records it again
    this.store.rewindRun(id, last ?? 0);
    const resumeFrom = last !== undefined ? path.join(checkpointsDir(runDir), checkpointDirName(last)) : undefined;

    // data parallel: one process per rank, seen here as one worker
    const plan = launch?.(config, resumeFrom);
    const worker = plan
      ? plan.worker
      : config.world_size > 1
        ? spawnGroup(this.spawn, config.world_size)
        : this.spawn();
    let resolve!: (r: Run) => void;
    const done = new Promise<Run>((r) => (resolve = r));
    const a: Attached = { worker, finished: false, done, resolve };
    this.attached.set(id, a);
    worker.onMessage((m) => this.onMessage(id, a, m));
    worker.onExit((code, signal) => this.onExit(id, a, code, signal));
    worker.send({ type: 'start', runId: id, home: this.home, config, resumeFrom, ...plan?.start });
    const updated = this.store.updateRun(id, {
      status: 'running',
      startedAt: Date.now(),
      endedAt: null,
      error: null,
      pid: worker.pid ?? null,
    });
    this.emit('run-status', { runId: id, status: 'running' });
    if (leftovers) this.log(id, 'info', leftovers);
    if (resumeFrom) this.log(id, 'info', `resuming from checkpoint step ${last}`);
    else if (run.stepsDone > 0)
      this.log(
        id,
        'warn',
        `run ${id} has no checkpoint, so it starts again from step 0 (the earlier attempt reached step ${run.stepsDone - 1}); set checkpoint_interval to keep progress`,
      );
    return updated;
  }

  /**
   * Cleans what a killed worker left in a run's checkpoints folder (see cleanCheckpointLeftovers) and says what was
   * done, or null when there was nothing. Only for a run without a live worker.
   */
  cleanLeftovers(id: string): string | null {
    const r = cleanCheckpointLeftovers(runDirOf(this.home, id));
    if (!r.removed.length && !r.restored.length) return null;
    const parts: string[] = [];
    if (r.removed.length)
      parts.push(
        `removed ${r.removed.length} unfinished checkpoint folder${r.removed.length === 1 ? '' : 's'} (${r.removed.join(', ')}), freeing ${(r.freedBytes / 2 ** 20).toFixed(1)} MiB`,
      );
    if (r.restored.length)
      parts.push(`put back checkpoint${r.restored.length === 1 ? '' : 's'} ${r.restored.join(', ')}`);
    return `a stopped worker left its checkpoints unfinished: ${parts.join('; ')}`;
  }

  /** At studio start: cleans the leftovers of every run that has no live worker, logging what it freed. */
  cleanAllLeftovers(): void {
    for (const run of this.store.listRuns({ limit: 1000 })) {
      if (run.status === 'running') continue;
      try {
        const msg = this.cleanLeftovers(run.id);
        if (msg) this.log(run.id, 'info', msg);
      } catch {
        // a folder that cannot be cleaned now is cleaned when the run is resumed, which reports a failure
      }
    }
  }

  /** The shape of a validated config's init weights or checkpoint (its model fields already hold it). */
  private initShape(c: RunConfig): GPTConfig | undefined {
    if (c.init_from === 'scratch' || !c.init_path) return undefined;
    return c.init_from === 'weights'
      ? loadGpt2Weights(c.init_path, { headerOnly: true }).config
      : readCheckpointState(c.init_path).modelConfig;
  }

  /** Resumes a stopped, paused, interrupted or failed run from its last checkpoint. */
  resume(id: string): Run {
    return this.start(id);
  }

  /** Asks a run to checkpoint and stop (or pause). Works across processes through the run's control file. */
  control(id: string, what: 'stop' | 'pause'): Run {
    const run = this.store.getRun(id);
    if (!run) throw runNotFound(id, this.home);
    if (run.status !== 'running')
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `Run ${id} is ${run.status}, not running.`,
        'Only a running run can be stopped or paused.',
      );
    const a = this.attached.get(id);
    if (a) a.worker.send({ type: what });
    else fs.writeFileSync(path.join(runDirOf(this.home, id), CONTROL_FILE), what);
    return run;
  }

  /**
   * Ends a running run as failed with `error`, for a reason its workers cannot see (a multi-node run's node was
   * lost): its processes are killed, and their exit is not reported over this reason.
   */
  fail(id: string, error: PlainError): void {
    const a = this.attached.get(id);
    if (!a || a.finished) return;
    this.log(id, 'error', `${error.message}${error.hint ? ` (${error.hint})` : ''}`);
    this.finish(id, a, 'failed', error);
    a.worker.kill('SIGKILL');
  }

  /** Records a multi-node run's nodes (host, ranks, last heartbeat, step, tok/s) and tells the clients. */
  setNodes(id: string, nodes: RunNode[]): void {
    if (this.closed) return;
    this.store.setRunNodes(id, nodes);
    this.emit('run-nodes', { runId: id, nodes });
  }

  /** Appends a line to a run's log (multi-node coordination reports through it). */
  note(id: string, level: LogEntry['level'], message: string): void {
    this.log(id, level, message);
  }

  /**
   * A multi-node run resumed on another number of ranks: its world_size becomes `world`, which the config's checks
   * accept only when total_batch_size still divides (the loader's position is the same for any world size).
   */
  resize(id: string, world: number): Run {
    const run = this.checkNotAttached(id);
    const config = this.validate({ ...run.config, world_size: world }, { shapeFromInit: false });
    if (config.world_size === (run.config as { world_size?: number }).world_size) return run;
    this.log(id, 'info', `world_size ${String(run.config.world_size ?? 1)} -> ${world} for this attempt`);
    return this.store.updateRun(id, { config });
  }

  /** The spawner of one worker process (multi-node runs start their node's share of the ranks with it). */
  get spawner(): WorkerSpawner {
    return this.spawn;
  }

  /** The workspace this manager runs in. */
  get workspaceHome(): string {
    return this.home;
  }

  /** Resolves when the run's worker has ended (immediately for a run without one). */
  async wait(id: string): Promise<Run> {
    const a = this.attached.get(id);
    if (a) return a.done;
    const run = this.store.getRun(id);
    if (!run) throw runNotFound(id, this.home);
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
        case 'ready': {
          const run = this.store.addRunAttempt(runId, m.attempt);
          const prev = run.attempts.length > 1 ? run.attempts[run.attempts.length - 2] : undefined;
          this.log(runId, 'info', `engine ${m.engine}; ${m.params.toLocaleString('en-US')} parameters`);
          if (prev && engineLabel(prev) !== engineLabel(m.attempt)) {
            this.log(
              runId,
              'warn',
              `this attempt runs on ${engineLabel(m.attempt)}; the previous one ran on ${engineLabel(prev)}`,
            );
          }
          this.emit('run-status', { runId, status: run.status });
          break;
        }
        case 'guard': {
          const run = this.store.getRun(runId);
          this.store.recordStep(runId, {
            step: m.step,
            metrics: { [`guard/${m.action}`]: m.toStep ?? 1 },
            wallTime: Date.now(),
            tokensSeen: run?.tokensSeen ?? 0,
          });
          this.emit('run-guard', { runId, step: m.step, action: m.action, reason: m.reason, toStep: m.toStep });
          break;
        }
        case 'timing': {
          const run = this.store.getRun(runId);
          this.store.recordStep(runId, {
            step: m.step,
            metrics: { [`time/${m.what}_ms`]: m.ms },
            wallTime: Date.now(),
            tokensSeen: run?.tokensSeen ?? 0,
          });
          break;
        }
        case 'system': {
          // beside the step's metrics; sys/ names leave the run's totals alone (see MetricsTable.recordStep)
          const run = this.store.getRun(runId);
          this.store.recordStep(runId, {
            step: m.step,
            metrics: m.values,
            wallTime: m.time,
            tokensSeen: run?.tokensSeen ?? 0,
          });
          this.emit('run-system', { runId, step: m.step, time: m.time, values: m.values });
          break;
        }
        case 'step': {
          const metrics: Record<string, number> = {
            'train/loss': m.loss,
            'train/lr': m.lr,
            'train/norm': m.norm,
            'train/dt_ms': m.dtMs,
            'train/tok_per_sec': m.tokensPerSec,
          };
          if (m.mfu !== undefined) metrics['train/mfu'] = m.mfu;
          this.store.recordStep(runId, { step: m.step, metrics, wallTime: Date.now(), tokensSeen: m.tokensSeen });
          this.emit('run-step', {
            runId,
            step: m.step,
            loss: m.loss,
            lr: m.lr,
            norm: m.norm,
            dtMs: m.dtMs,
            tokensPerSec: m.tokensPerSec,
            mfu: m.mfu,
            tokensSeen: m.tokensSeen,
            skipped: m.skipped,
          });
          break;
        }
        case 'eval': {
          const run = this.store.getRun(runId);
          this.store.recordStep(runId, {
            step: m.step,
            metrics: { [m.name]: m.value },
            wallTime: Date.now(),
            tokensSeen: run?.tokensSeen ?? 0,
          });
          this.emit('run-eval', { runId, step: m.step, name: m.name, value: m.value });
          break;
        }
        case 'sample':
          m.samples.forEach((text, idx) => this.store.addSample(runId, { step: m.step, idx, prompt: m.prompt, text }));
          this.emit('run-sample', { runId, step: m.step, prompt: m.prompt, samples: m.samples });
          break;
        case 'checkpoint': {
          this.store.addCheckpoint(runId, {
            step: m.step,
            path: m.dir,
            sizeBytes: m.sizeBytes,
            valLoss: m.valLoss ?? undefined,
            valLossStep: m.valLossStep,
          });
          // rows of checkpoints that keep_last removed from disk
          for (const c of this.store.listCheckpoints(runId))
            if (!fs.existsSync(c.path)) this.store.deleteCheckpoint(runId, c.step);
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
          // a lost GPU device is no fault of the run: it ends interrupted, to be resumed from its checkpoint
          this.finish(runId, a, m.error.code === ErrorCode.DEVICE_LOST ? 'interrupted' : 'failed', m.error);
          break;
        case 'comm-id':
          // the group launcher's own message (rank 0's communicator id for the other ranks): it never reaches a run
          break;
      }
    } catch (e) {
      // a store failure must not take the service down; it ends this run with the reason
      const err = toPlainError(e);
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
    if (!run) throw runNotFound(id, this.home);
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
