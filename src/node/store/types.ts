import type { RunAttempt } from '../../shared/run-facts';
/**
 * The store's types. Two layers:
 * - `*Row`: one row as SQLite returns it (snake_case columns, JSON still as text). Only store.ts sees these.
 * - the domain objects (`Run`, `Checkpoint`, ...): camelCase, JSON parsed, what callers get.
 *
 * Times are Unix epoch milliseconds everywhere (INTEGER columns, except metrics.wall_time, which keeps the
 * fraction the caller gives).
 */
import type { PlainError } from '../../shared/errors';

// ---------------------------------------------------------------------------------------------------------------
// Runs

export const RUN_STATUSES = ['created', 'running', 'paused', 'stopped', 'done', 'failed', 'interrupted'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/** Statuses in which a worker process is (or was, if it crashed) attached to the run. A paused run has checkpointed and let its worker go. */
export const ACTIVE_RUN_STATUSES = ['running'] as const satisfies readonly RunStatus[];

export interface RunRow {
  id: string;
  name: string;
  status: RunStatus;
  preset: string | null;
  config_json: string;
  engine: string | null;
  created_at: number;
  started_at: number | null;
  ended_at: number | null;
  steps_done: number;
  tokens_seen: number;
  best_val_loss: number | null;
  last_checkpoint_step: number | null;
  error_json: string | null;
  tags: string;
  notes: string;
  pid: number | null;
  attempts_json: string;
}

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
  /** the worker process's pid while running or paused; null otherwise */
  pid: number | null;
  /** what each attempt (the first start and every resume) actually ran on, oldest first */
  attempts: RunAttempt[];
}

export interface CreateRunInput {
  name: string;
  /** any JSON object; stored as config_json */
  config: object;
  preset?: string | null;
  engine?: string | null;
  tags?: string[];
  notes?: string;
  /** default: a new id (see newId) */
  id?: string;
  /** default: now */
  createdAt?: number;
}

/** The fields updateRun may change. `undefined` leaves a field alone; `null` clears a nullable one. */
export interface RunPatch {
  name?: string;
  status?: RunStatus;
  preset?: string | null;
  config?: object;
  engine?: string | null;
  startedAt?: number | null;
  endedAt?: number | null;
  stepsDone?: number;
  tokensSeen?: number;
  bestValLoss?: number | null;
  lastCheckpointStep?: number | null;
  error?: PlainError | null;
  tags?: string[];
  notes?: string;
  pid?: number | null;
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

/** Well-known metric names; any other non-empty name is accepted too. */
export const METRIC_NAMES = [
  'train/loss',
  'train/lr',
  'train/norm',
  'train/dt_ms',
  'train/tok_per_sec',
  'train/mfu',
  'val/loss',
  'hellaswag/acc_norm',
] as const;
export type KnownMetricName = (typeof METRIC_NAMES)[number];

export interface MetricRow {
  run_id: string;
  name: string;
  step: number;
  /** NULL stores NaN (SQLite has no NaN) */
  value: number | null;
  wall_time: number;
  tokens_seen: number;
}

export interface RecordStepInput {
  /** the optimizer step, counted from 0 as in build-nanogpt's `step N | loss ...` line */
  step: number;
  /** name -> value; NaN is kept (read back as NaN), +-Infinity too */
  metrics: Record<string, number>;
  /** when the values were measured, Unix ms */
  wallTime: number;
  /** tokens processed when the values were measured */
  tokensSeen: number;
}

/** One metric's points in step order, as parallel arrays (what a chart wants). */
export interface MetricSeries {
  steps: number[];
  values: number[];
  wallTimes: number[];
  tokensSeen: number[];
}

export interface GetMetricsOptions {
  /** only points with step > sinceStep (for polling: pass the last step you have) */
  sinceStep?: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Samples, checkpoints, logs

export interface SampleRow {
  run_id: string;
  step: number;
  idx: number;
  prompt: string;
  text: string;
  created_at: number;
}

export interface Sample {
  runId: string;
  step: number;
  /** which of the step's samples (0-based) */
  idx: number;
  prompt: string;
  text: string;
  createdAt: number;
}

export interface AddSampleInput {
  step: number;
  idx: number;
  prompt: string;
  text: string;
  createdAt?: number;
}

export interface ListSamplesOptions {
  /** only this step's samples */
  step?: number;
  /** default 200 */
  limit?: number;
}

export interface CheckpointRow {
  run_id: string;
  step: number;
  path: string;
  size_bytes: number;
  val_loss: number | null;
  val_loss_step: number | null;
  hellaswag: number | null;
  created_at: number;
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

export interface AddCheckpointInput {
  step: number;
  path: string;
  sizeBytes: number;
  valLoss?: number | null;
  valLossStep?: number | null;
  hellaswag?: number | null;
  createdAt?: number;
}

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LogRow {
  run_id: string;
  seq: number;
  level: LogLevel;
  message: string;
  time: number;
}

export interface LogEntry {
  runId: string;
  /** 1, 2, 3, ... per run, in the order the lines were added */
  seq: number;
  level: LogLevel;
  message: string;
  time: number;
}

export interface ListLogsOptions {
  /** only lines with seq > afterSeq */
  afterSeq?: number;
  /** default 1000, at most 10000 */
  limit?: number;
  /** the last `limit` lines (after afterSeq) instead of the first; still returned in seq order */
  tail?: boolean;
}

// ---------------------------------------------------------------------------------------------------------------
// Evals

export const EVAL_KINDS = ['hellaswag', 'val_loss'] as const;
export type EvalKind = (typeof EVAL_KINDS)[number];

export const EVAL_STATUSES = ['running', 'done', 'failed', 'cancelled', 'interrupted'] as const;
export type EvalStatus = (typeof EVAL_STATUSES)[number];
export type EvalEndStatus = Exclude<EvalStatus, 'running' | 'interrupted'>;

/** What an eval measured: a run's checkpoint at a step, or a weights file or folder. */
export type EvalTarget = { runId: string; step: number } | { weightsPath: string };

export interface EvalRow {
  id: string;
  kind: EvalKind;
  run_id: string | null;
  step: number | null;
  weights_path: string | null;
  status: EvalStatus;
  params_json: string;
  summary_json: string | null;
  error_json: string | null;
  pid: number | null;
  created_at: number;
  finished_at: number | null;
}

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

export interface CreateEvalInput {
  kind: EvalKind;
  target: EvalTarget;
  params?: object;
  pid?: number | null;
  id?: string;
  createdAt?: number;
}

export interface FinishEvalInput {
  status: EvalEndStatus;
  summary?: object | null;
  error?: PlainError | null;
  /** per-example results (HellaSwag), written in the same transaction */
  examples?: readonly EvalExampleInput[];
  finishedAt?: number;
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
 * One scored example. Its keys are those of the HellaSwag scorer's ExampleResult (src/core/evals/hellaswag.ts),
 * which follow build-nanogpt's hellaswag.py, so the scorer's results are passed in as they are.
 */
export interface EvalExampleInput {
  ind: number;
  label: number;
  /** index of the lowest summed loss (acc) */
  pred: number;
  /** index of the lowest mean loss (acc_norm) */
  pred_norm: number;
  sum_loss: readonly number[];
  avg_loss: readonly number[];
}

export interface EvalExample extends EvalExampleInput {
  evalId: string;
  sum_loss: number[];
  avg_loss: number[];
}

export interface EvalExampleRow {
  eval_id: string;
  ind: number;
  label: number;
  pred: number;
  pred_norm: number;
  sum_loss_json: string;
  avg_loss_json: string;
}

export interface ListEvalExamplesOptions {
  /** only examples whose acc_norm prediction (pred_norm) is not the label */
  wrongOnly?: boolean;
  /** default: all */
  limit?: number;
  offset?: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Datasets

export const DATASET_STATUSES = ['preparing', 'ready', 'failed', 'interrupted'] as const;
export type DatasetStatus = (typeof DATASET_STATUSES)[number];

export interface DatasetRow {
  id: string;
  name: string;
  source: string;
  manifest_path: string | null;
  train_tokens: number;
  val_tokens: number;
  status: DatasetStatus;
  error_json: string | null;
  created_at: number;
  updated_at: number;
}

export interface Dataset {
  /** also the folder datasets/<id>/ */
  id: string;
  name: string;
  /** where it came from: 'tinyshakespeare', 'fineweb-edu-10BT', a file path, a URL */
  source: string;
  /** datasets/<id>/manifest.json once written */
  manifestPath: string | null;
  trainTokens: number;
  valTokens: number;
  status: DatasetStatus;
  error: PlainError | null;
  createdAt: number;
  updatedAt: number;
}

export interface UpsertDatasetInput {
  id: string;
  name: string;
  source: string;
  status: DatasetStatus;
  manifestPath?: string | null;
  trainTokens?: number;
  valTokens?: number;
  error?: PlainError | null;
}
