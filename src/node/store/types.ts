/**
 * The store's types. Two layers:
 * - `*Row`: one row as SQLite returns it (snake_case columns, JSON still as text). Only the table modules see these.
 * - the records (`Run`, `Checkpoint`, ...): camelCase, JSON parsed, what callers get. They cross the process
 *   boundary, so they are declared in src/shared/records.ts and re-exported here.
 *
 * Times are Unix epoch milliseconds everywhere (INTEGER columns, except metrics.wall_time, which keeps the
 * fraction the caller gives).
 */
import type { PlainError } from '../../shared/errors';
import type { EvalExample, EvalKind, EvalStatus, EvalTarget, LogLevel, RunStatus } from '../../shared/records';

export {
  ACTIVE_RUN_STATUSES,
  EVAL_KINDS,
  EVAL_STATUSES,
  LOG_LEVELS,
  RUN_NODE_STATUSES,
  RUN_STATUSES,
} from '../../shared/records';
export type {
  Checkpoint,
  Eval,
  EvalExample,
  EvalKind,
  EvalStatus,
  EvalTarget,
  ListEvalsFilter,
  ListRunsFilter,
  LogEntry,
  LogLevel,
  MetricSeries,
  Run,
  RunNode,
  RunNodeStatus,
  RunStatus,
  Sample,
} from '../../shared/records';

// ---------------------------------------------------------------------------------------------------------------
// Runs

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
  /** RunNode[] as JSON; '[]' for a run on one node */
  nodes_json: string;
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

export interface AddCheckpointInput {
  step: number;
  path: string;
  sizeBytes: number;
  valLoss?: number | null;
  valLossStep?: number | null;
  hellaswag?: number | null;
  createdAt?: number;
}

export interface LogRow {
  run_id: string;
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

export type EvalEndStatus = Exclude<EvalStatus, 'running' | 'interrupted'>;

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

/**
 * One scored example as finishEval takes it: an EvalExample without its eval id. Its keys are those of the
 * HellaSwag scorer's ExampleResult (src/core/evals/hellaswag.ts), so the scorer's results are passed in as they are.
 */
export interface EvalExampleInput extends Omit<EvalExample, 'evalId' | 'sum_loss' | 'avg_loss'> {
  sum_loss: readonly number[];
  avg_loss: readonly number[];
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
