/**
 * The records of the workspace's store as the renderer and every other client see them: runs, their metrics,
 * samples, checkpoints and log lines, and evals. The store (src/node/store) reads them from SQLite and returns
 * them as they are declared here; the service relays them unchanged.
 *
 * camelCase, JSON parsed. Times are Unix epoch milliseconds everywhere (except a metric's wall time, which keeps
 * the fraction the worker gave).
 */
import type { PlainError } from './errors';
import type { RunAttempt } from './run-facts';

// ---------------------------------------------------------------------------------------------------------------
// Runs

export const RUN_STATUSES = ['created', 'running', 'paused', 'stopped', 'done', 'failed', 'interrupted'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/** Statuses in which a worker process is (or was, if it crashed) attached to the run. A paused run has checkpointed and let its worker go. */
export const ACTIVE_RUN_STATUSES = ['running'] as const satisfies readonly RunStatus[];

export interface Run {
  /** e.g. run-20261128-193000-ab12 (UTC time of creation + 4 random hex digits); also the folder runs/<id>/ */
  id: string;
  name: string;
  status: RunStatus;
  /** the model/training preset the config started from, if any */
  preset: string | null;
  /** the run config as stored; validate it with the run-config schema before use (it may be from an older studio) */
  config: Record<string, unknown>;
  engine: string | null;
  createdAt: number;
  startedAt: number | null;
  endedAt: number | null;
  /** highest recorded step + 1 (steps count from 0, as in build-nanogpt's log line) */
  stepsDone: number;
  tokensSeen: number;
  /** lowest finite val/loss recorded */
  bestValLoss: number | null;
  lastCheckpointStep: number | null;
  /** why the run failed or was interrupted */
  error: PlainError | null;
  tags: string[];
  notes: string;
  /** the worker process's pid while running; null otherwise */
  pid: number | null;
  /** what each attempt (the first start and every resume) actually ran on, oldest first */
  attempts: RunAttempt[];
  /**
   * the hosts of a multi-node data-parallel run, by node rank, as node 0's service last recorded them; empty for
   * a run on one node
   */
  nodes: RunNode[];
}

export const RUN_NODE_STATUSES = ['running', 'lost', 'left'] as const;
/** running: heartbeating; lost: its heartbeats stopped without a goodbye; left: it said goodbye (its ranks ended) */
export type RunNodeStatus = (typeof RUN_NODE_STATUSES)[number];

/**
 * One host of a multi-node data-parallel run. Node 0's workspace owns the run; every other node streams heartbeats
 * to node 0, whose service records each node's state here (node 0's own row is kept by its own service).
 */
export interface RunNode {
  /** node rank; 0 is the node that owns the run */
  node: number;
  host: string;
  /** the global ranks on that node, ascending */
  ranks: number[];
  status: RunNodeStatus;
  /** when the node joined (ms epoch) */
  joinedAt: number;
  /** the node's last heartbeat (ms epoch); for a lost node, the last one before it was declared lost */
  lastHeartbeat: number;
  /** the last step the node reported */
  step: number | null;
  tokPerSec: number | null;
}

export interface ListRunsFilter {
  status?: RunStatus | readonly RunStatus[];
  /** case-insensitive substring of the id, name, notes or any tag */
  search?: string;
  /** default 1000 */
  limit?: number;
  offset?: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Metrics

/** One metric's points in step order, as parallel arrays (what a chart wants). */
export interface MetricSeries {
  steps: number[];
  values: number[];
  wallTimes: number[];
  tokensSeen: number[];
}

// ---------------------------------------------------------------------------------------------------------------
// Samples, checkpoints, logs

export interface Sample {
  runId: string;
  step: number;
  /** which of the step's samples (0-based) */
  idx: number;
  prompt: string;
  text: string;
  createdAt: number;
}

export interface Checkpoint {
  runId: string;
  step: number;
  /** the checkpoint folder (runs/<id>/checkpoints/step_NNNNNN/) */
  path: string;
  sizeBytes: number;
  valLoss: number | null;
  /**
   * the step whose weights valLoss was measured on: the checkpoint's own step when it was evaluated before it was
   * saved, an earlier one for a checkpoint written on stop or pause (null: unknown, from an older studio)
   */
  valLossStep: number | null;
  /** HellaSwag acc_norm, when it was measured */
  hellaswag: number | null;
  createdAt: number;
}

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LogEntry {
  runId: string;
  /** 1, 2, 3, ... per run, in the order the lines were added */
  seq: number;
  level: LogLevel;
  message: string;
  time: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Evals

export const EVAL_KINDS = ['hellaswag', 'val_loss'] as const;
export type EvalKind = (typeof EVAL_KINDS)[number];

export const EVAL_STATUSES = ['running', 'done', 'failed', 'cancelled', 'interrupted'] as const;
export type EvalStatus = (typeof EVAL_STATUSES)[number];

/** What an eval measured: a run's checkpoint at a step, or a weights file or folder. */
export type EvalTarget = { runId: string; step: number } | { weightsPath: string };

export interface Eval {
  id: string;
  kind: EvalKind;
  target: EvalTarget;
  status: EvalStatus;
  /** what the eval was asked for (limit, split, ...) */
  params: Record<string, unknown>;
  /** the result (e.g. the HellaSwag summary), once done */
  summary: Record<string, unknown> | null;
  error: PlainError | null;
  /** the process doing the work while running */
  pid: number | null;
  createdAt: number;
  finishedAt: number | null;
}

export interface ListEvalsFilter {
  kind?: EvalKind;
  status?: EvalStatus;
  /** evals of this run's checkpoints */
  runId?: string;
  /** default 1000 */
  limit?: number;
}

/**
 * One scored example of an eval. Its keys are those of the HellaSwag scorer's ExampleResult
 * (src/core/evals/hellaswag.ts), which follow build-nanogpt's hellaswag.py. A non-finite loss reads back as NaN.
 */
export interface EvalExample {
  evalId: string;
  ind: number;
  label: number;
  /** index of the lowest summed loss (acc) */
  pred: number;
  /** index of the lowest mean loss (acc_norm) */
  pred_norm: number;
  sum_loss: number[];
  avg_loss: number[];
}
