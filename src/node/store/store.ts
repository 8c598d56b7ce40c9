/**
 * The run store: one SQLite database per workspace (`<home>/studio.db`), written by the Studio service before it
 * relays a worker's message (see docs/ARCHITECTURE.md, "A training run" and "Storage"). Synchronous, like
 * better-sqlite3: a method returns once its transaction is committed.
 *
 * Store owns the connection and answers for every table through the table modules (runs-table.ts,
 * metrics-table.ts, samples-table.ts, checkpoints-table.ts, logs-table.ts, evals-table.ts), which share one SQL
 * helper (sql.ts). The store keeps rows only. Files (runs/<id>/, checkpoint folders) are the caller's to create
 * and remove.
 */
import type Database from 'better-sqlite3';
import type { PlainError } from '../../shared/errors';
import type { RunAttempt } from '../../shared/run-facts';
import { CheckpointsTable } from '../checkpoints/table';
import { openDatabase, type OpenDatabaseOptions } from './database';
import { EvalsTable } from '../evals/table';
import { LogsTable } from '../runs/logs-table';
import { MetricsTable } from '../runs/metrics-table';
import { RunsTable } from '../runs/runs-table';
import { SamplesTable } from '../runs/samples-table';
import { Sql } from './sql';
import type {
  AddCheckpointInput,
  AddSampleInput,
  Checkpoint,
  CreateEvalInput,
  CreateRunInput,
  Eval,
  EvalExample,
  FinishEvalInput,
  GetMetricsOptions,
  ListEvalExamplesOptions,
  ListEvalsFilter,
  ListLogsOptions,
  ListRunsFilter,
  ListSamplesOptions,
  LogEntry,
  LogLevel,
  MetricSeries,
  RecordStepInput,
  Run,
  RunNode,
  RunPatch,
  Sample,
} from './types';

export interface StoreOptions extends OpenDatabaseOptions {
  /** whether a process id is alive (recoverOnStart); default: signal 0 */
  isPidAlive?: (pid: number) => boolean;
  /** the clock, Unix ms; default Date.now */
  now?: () => number;
}

export interface StoreInfo {
  file: string;
  schemaVersion: number;
  journalMode: string;
  synchronous: string;
  foreignKeys: boolean;
  busyTimeoutMs: number;
  sqliteVersion: string;
}

/** Opens (creating and migrating as needed) the store of the workspace `home`. */
export function openStore(home: string, opts: StoreOptions = {}): Store {
  const { db, file } = openDatabase(home, opts);
  return new Store(db, file, opts);
}

export class Store {
  /** the database file */
  readonly file: string;
  private readonly db: Database.Database;
  private readonly sql: Sql;
  private readonly now: () => number;
  private readonly runs: RunsTable;
  private readonly metrics: MetricsTable;
  private readonly samples: SamplesTable;
  private readonly checkpoints: CheckpointsTable;
  private readonly logs: LogsTable;
  private readonly evals: EvalsTable;

  /** Use openStore; this takes an open, migrated connection. */
  constructor(db: Database.Database, file: string, opts: StoreOptions = {}) {
    this.db = db;
    this.file = file;
    this.sql = new Sql(db);
    this.now = opts.now ?? Date.now;
    const isPidAlive = opts.isPidAlive ?? pidAlive;
    this.runs = new RunsTable(this.sql, this.now, isPidAlive);
    this.samples = new SamplesTable(this.sql, this.now);
    this.metrics = new MetricsTable(this.sql, this.runs, this.samples);
    this.checkpoints = new CheckpointsTable(this.sql, this.now);
    this.logs = new LogsTable(this.sql);
    this.evals = new EvalsTable(this.sql, this.now, isPidAlive);
  }

  /** The open connection, for the parts of the store kept on their own (chats.ts). */
  get database(): Database.Database {
    return this.db;
  }

  close(): void {
    this.sql.clear();
    if (this.db.open) this.db.close();
  }

  /** The connection's settings, for Settings/diagnostics. */
  info(): StoreInfo {
    const p = (name: string) => this.db.pragma(name, { simple: true });
    return {
      file: this.file,
      schemaVersion: Number(p('user_version')),
      journalMode: String(p('journal_mode')),
      synchronous: (['off', 'normal', 'full', 'extra'] as const)[Number(p('synchronous'))] ?? String(p('synchronous')),
      foreignKeys: Number(p('foreign_keys')) === 1,
      busyTimeoutMs: Number(p('busy_timeout')),
      sqliteVersion: String(this.db.prepare('SELECT sqlite_version()').pluck().get()),
    };
  }

  /** `PRAGMA integrity_check`: ['ok'] for a sound database, else SQLite's list of problems. */
  integrityCheck(): string[] {
    return (this.db.pragma('integrity_check') as Array<{ integrity_check: string }>).map((r) => r.integrity_check);
  }

  // ---- runs ----------------------------------------------------------------------------------------------------

  /** A new run in status 'created'; BAD_ARGUMENT for an id that is taken or not a safe folder name. */
  createRun(input: CreateRunInput): Run {
    return this.runs.create(input);
  }

  getRun(id: string): Run | undefined {
    return this.runs.get(id);
  }

  /** Newest first. */
  listRuns(filter: ListRunsFilter = {}): Run[] {
    return this.runs.list(filter);
  }

  /**
   * Records what an attempt of the run actually ran on (appended to its attempts), and sets the run's engine to the
   * engine that ran (the config may say "auto").
   */
  addRunAttempt(id: string, attempt: RunAttempt): Run {
    return this.runs.addAttempt(id, attempt);
  }

  /**
   * Replaces the nodes of a multi-node run (Run.nodes; [] for a run on one node) and changes nothing else: no
   * counter, no status, no other column. Cheap enough for every heartbeat: one UPDATE, the run is not read back.
   * BAD_ARGUMENT for a malformed node (or a node rank given twice), NOT_FOUND for an unknown run.
   */
  setRunNodes(runId: string, nodes: readonly RunNode[]): void {
    this.runs.setNodes(runId, nodes);
  }

  /** Changes the given fields and returns the run as it is now. Throws NOT_FOUND for an unknown id. */
  updateRun(id: string, patch: RunPatch): Run {
    return this.runs.update(id, patch);
  }

  /** Deletes a run with its metrics, samples, checkpoint rows, logs and evals; false when there was no such run. */
  deleteRun(id: string): boolean {
    return this.runs.delete(id);
  }

  /** Marks the given runs whose worker died as 'interrupted' (see RunsTable.markInterrupted); returns those changed. */
  markInterrupted(runIds: readonly string[], error?: PlainError): Run[] {
    return this.runs.markInterrupted(runIds, error);
  }

  /** At studio start: active runs whose worker is gone become 'interrupted' (see RunsTable.recoverOnStart). */
  recoverOnStart(): Run[] {
    return this.runs.recoverOnStart();
  }

  // ---- metrics ---------------------------------------------------------------------------------------------------

  /** Records one step's metrics and the run's totals in ONE transaction (see MetricsTable.recordStep). */
  recordStep(runId: string, input: RecordStepInput): void {
    this.metrics.recordStep(runId, input);
  }

  /**
   * The series of a run's metrics (all of them when `names` is omitted), each in step order. A requested name
   * with no points comes back as an empty series.
   */
  getMetrics(runId: string, names?: readonly string[], opts: GetMetricsOptions = {}): Record<string, MetricSeries> {
    return this.metrics.series(runId, names, opts);
  }

  /** The names of the metrics a run has recorded, sorted. */
  listMetricNames(runId: string): string[] {
    return this.metrics.names(runId);
  }

  /** Before a resume from the checkpoint at `fromStep`: forgets later metrics and samples (see MetricsTable.rewind). */
  rewindRun(runId: string, fromStep: number): Run {
    return this.metrics.rewind(runId, fromStep);
  }

  /** For a run branched at `upToStep`: copies the earlier metrics and samples (see MetricsTable.copyHistory). */
  copyRunHistory(fromRunId: string, toRunId: string, upToStep: number): { metrics: number; samples: number } {
    return this.metrics.copyHistory(fromRunId, toRunId, upToStep);
  }

  // ---- samples ---------------------------------------------------------------------------------------------------

  /** Adds (or replaces, for the same step and idx) a generated sample. */
  addSample(runId: string, input: AddSampleInput): Sample {
    return this.samples.add(runId, input);
  }

  /** Newest step first; within a step, by idx. */
  listSamples(runId: string, opts: ListSamplesOptions = {}): Sample[] {
    return this.samples.list(runId, opts);
  }

  // ---- checkpoints -----------------------------------------------------------------------------------------------

  /** Records a written checkpoint (replacing one at the same step) and sets the run's last_checkpoint_step. */
  addCheckpoint(runId: string, input: AddCheckpointInput): Checkpoint {
    return this.checkpoints.add(runId, input);
  }

  /** A run's checkpoints by step, or every run's (newest first) when runId is omitted. */
  listCheckpoints(runId?: string): Checkpoint[] {
    return this.checkpoints.list(runId);
  }

  /** Records the HellaSwag acc_norm measured on a checkpoint; false when there is no such checkpoint row. */
  setCheckpointHellaswag(runId: string, step: number, accNorm: number): boolean {
    return this.checkpoints.setHellaswag(runId, step, accNorm);
  }

  /** Forgets a checkpoint row (the caller removes its folder); updates last_checkpoint_step. */
  deleteCheckpoint(runId: string, step: number): boolean {
    return this.checkpoints.delete(runId, step);
  }

  // ---- logs ------------------------------------------------------------------------------------------------------

  /** Appends a log line; its seq is one more than the run's last (atomic: one INSERT ... SELECT). */
  addLog(runId: string, level: LogLevel, message: string, time: number = this.now()): LogEntry {
    return this.logs.add(runId, level, message, time);
  }

  /** Log lines in seq order: the first `limit` after `afterSeq`, or with `tail` the last `limit`. */
  listLogs(runId: string, opts: ListLogsOptions = {}): LogEntry[] {
    return this.logs.list(runId, opts);
  }

  // ---- evals -----------------------------------------------------------------------------------------------------

  /** Starts an eval record in status 'running'. */
  createEval(input: CreateEvalInput): Eval {
    return this.evals.create(input);
  }

  /** Ends an eval: its status, summary or error, and its per-example rows, all in one transaction. */
  finishEval(id: string, input: FinishEvalInput): Eval {
    return this.evals.finish(id, input);
  }

  getEval(id: string): Eval | undefined {
    return this.evals.get(id);
  }

  /** Newest first. */
  listEvals(filter: ListEvalsFilter = {}): Eval[] {
    return this.evals.list(filter);
  }

  /** An eval's examples in `ind` order; with wrongOnly, those whose acc_norm prediction missed the label. */
  listEvalExamples(evalId: string, opts: ListEvalExamplesOptions = {}): EvalExample[] {
    return this.evals.examples(evalId, opts);
  }

  deleteEval(id: string): boolean {
    return this.evals.delete(id);
  }

  /** At studio start: evals still 'running' whose process is gone (or unknown) become 'interrupted'. */
  recoverEvalsOnStart(): Eval[] {
    return this.evals.recoverOnStart();
  }
}

/** Signal 0 checks that a process exists without touching it; EPERM means it exists but is not ours. */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
