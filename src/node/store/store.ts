/**
 * The run store: one SQLite database per workspace (`<home>/studio.db`), written by the Studio service before it
 * relays a worker's message (see DESIGN.md, "Runs, workers, storage"). Synchronous, like better-sqlite3: a method
 * returns once its transaction is committed.
 *
 * The store keeps rows only. Files (runs/<id>/, checkpoint folders, datasets/<id>/) are the caller's to create
 * and remove.
 */
import type Database from 'better-sqlite3';
import { ErrorCode, StudioError, type PlainError } from '../../shared/errors';
import type { RunAttempt } from '../../shared/run-facts';
import { openDatabase, type OpenDatabaseOptions } from './database';
import { checkId, newId } from './ids';
import {
  ACTIVE_RUN_STATUSES,
  DATASET_STATUSES,
  EVAL_KINDS,
  EVAL_STATUSES,
  LOG_LEVELS,
  RUN_STATUSES,
  type AddCheckpointInput,
  type AddSampleInput,
  type Checkpoint,
  type CheckpointRow,
  type CreateEvalInput,
  type CreateRunInput,
  type Dataset,
  type DatasetRow,
  type DatasetStatus,
  type Eval,
  type EvalExample,
  type EvalExampleInput,
  type EvalExampleRow,
  type EvalRow,
  type FinishEvalInput,
  type GetMetricsOptions,
  type ListEvalExamplesOptions,
  type ListEvalsFilter,
  type ListLogsOptions,
  type ListRunsFilter,
  type ListSamplesOptions,
  type LogEntry,
  type LogLevel,
  type LogRow,
  type MetricSeries,
  type RecordStepInput,
  type Run,
  type RunPatch,
  type RunRow,
  type RunStatus,
  type Sample,
  type SampleRow,
  type UpsertDatasetInput,
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

/** What better-sqlite3 binds. (It refuses booleans and undefined.) */
type SqlValue = string | number | bigint | Buffer | null;
/** Positional values, or one object for @named parameters. */
type BindArg = SqlValue | Record<string, SqlValue>;

const ACTIVE_SQL = `(${ACTIVE_RUN_STATUSES.map((s) => `'${s}'`).join(', ')})`;
const RUN_PATCH_KEYS = new Set<string>([
  'name', 'status', 'preset', 'config', 'engine', 'startedAt', 'endedAt', 'stepsDone', 'tokensSeen', 'bestValLoss',
  'lastCheckpointStep', 'error', 'tags', 'notes', 'pid',
]);

/** Opens (creating and migrating as needed) the store of the workspace `home`. */
export function openStore(home: string, opts: StoreOptions = {}): Store {
  const { db, file } = openDatabase(home, opts);
  return new Store(db, file, opts);
}

export class Store {
  /** the database file */
  readonly file: string;
  private readonly db: Database.Database;
  private readonly stmts = new Map<string, Database.Statement<BindArg[], unknown>>();
  private readonly now: () => number;
  private readonly isPidAlive: (pid: number) => boolean;
  private readonly recordStepTx: Database.Transaction<(runId: string, input: RecordStepInput) => void>;

  /** Use openStore; this takes an open, migrated connection. */
  constructor(db: Database.Database, file: string, opts: StoreOptions = {}) {
    this.db = db;
    this.file = file;
    this.now = opts.now ?? Date.now;
    this.isPidAlive = opts.isPidAlive ?? pidAlive;
    this.recordStepTx = this.db.transaction((runId: string, input: RecordStepInput) => this.writeStep(runId, input));
  }

  /** The open connection, for the parts of the store kept in their own files (chats.ts). */
  get database(): Database.Database {
    return this.db;
  }

  close(): void {
    this.stmts.clear();
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

  createRun(input: CreateRunInput): Run {
    const createdAt = input.createdAt ?? this.now();
    const values = (id: string): SqlValue[] => [
      id,
      checkText(input.name, 'run name'),
      input.preset ?? null,
      jsonObject(input.config, 'run config'),
      input.engine ?? null,
      checkInt(createdAt, 'createdAt'),
      JSON.stringify(checkTags(input.tags ?? [])),
      input.notes ?? '',
    ];
    const sql = `INSERT INTO runs (id, name, preset, config_json, engine, created_at, tags, notes)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)`;
    if (input.id !== undefined) {
      const id = checkId(input.id, 'run');
      try {
        this.run(sql, ...values(id));
      } catch (e) {
        if (isConstraint(e, 'SQLITE_CONSTRAINT_PRIMARYKEY')) {
          throw new StudioError(ErrorCode.BAD_ARGUMENT, `A run with the id "${id}" already exists.`, 'Choose another id, or leave it out to get a new one.', { cause: e });
        }
        throw e;
      }
      return this.requireRun(id);
    }
    // A generated id collides only with a run created in the same second with the same 16 random bits.
    for (let attempt = 0; ; attempt++) {
      const id = newId('run', createdAt);
      try {
        this.run(sql, ...values(id));
        return this.requireRun(id);
      } catch (e) {
        if (!isConstraint(e, 'SQLITE_CONSTRAINT_PRIMARYKEY') || attempt >= 20) throw e;
      }
    }
  }

  getRun(id: string): Run | undefined {
    const row = this.get<RunRow>('SELECT * FROM runs WHERE id = ?', id);
    return row && toRun(row);
  }

  /** Newest first. */
  listRuns(filter: ListRunsFilter = {}): Run[] {
    const where: string[] = [];
    const params: SqlValue[] = [];
    if (filter.status !== undefined) {
      const statuses = typeof filter.status === 'string' ? [filter.status] : [...filter.status];
      statuses.forEach((s) => checkMember(s, RUN_STATUSES, 'run status'));
      if (statuses.length === 0) return [];
      where.push(`status IN (${statuses.map(() => '?').join(', ')})`);
      params.push(...statuses);
    }
    const search = filter.search?.trim();
    if (search) {
      const like = `%${search.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      where.push(`(id LIKE ? ESCAPE '\\' OR name LIKE ? ESCAPE '\\' OR notes LIKE ? ESCAPE '\\'
                   OR EXISTS (SELECT 1 FROM json_each(runs.tags) AS t WHERE t.value LIKE ? ESCAPE '\\'))`);
      params.push(like, like, like, like);
    }
    const sql = `SELECT * FROM runs ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
                 ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`;
    params.push(checkLimit(filter.limit, 1000), checkInt(filter.offset ?? 0, 'offset'));
    return this.all<RunRow>(sql, ...params).map(toRun);
  }

  /**
   * Records what an attempt of the run actually ran on (appended to its attempts), and sets the run's engine to the
   * engine that ran (the config may say "auto").
   */
  addRunAttempt(id: string, attempt: RunAttempt): Run {
    const r = this.run(
      `UPDATE runs SET attempts_json = json_insert(attempts_json, '$[#]', json(?)), engine = ? WHERE id = ?`,
      JSON.stringify(attempt), checkText(attempt.engine, 'engine'), id,
    );
    if (r.changes === 0) throw runNotFound(id);
    return this.getRun(id)!;
  }

  /** Changes the given fields and returns the run as it is now. Throws NOT_FOUND for an unknown id. */
  updateRun(id: string, patch: RunPatch): Run {
    const unknown = Object.keys(patch).filter((k) => !RUN_PATCH_KEYS.has(k));
    if (unknown.length) {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `updateRun got unknown field(s) ${unknown.join(', ')} for run "${id}".`,
        `The fields a run update may change are: ${[...RUN_PATCH_KEYS].join(', ')}.`,
      );
    }
    const sets: string[] = [];
    const values: SqlValue[] = [];
    const set = (column: string, value: SqlValue) => {
      sets.push(`${column} = ?`);
      values.push(value);
    };
    if (patch.name !== undefined) set('name', checkText(patch.name, 'run name'));
    if (patch.status !== undefined) set('status', checkMember(patch.status, RUN_STATUSES, 'run status'));
    if (patch.preset !== undefined) set('preset', patch.preset);
    if (patch.config !== undefined) set('config_json', jsonObject(patch.config, 'run config'));
    if (patch.engine !== undefined) set('engine', patch.engine);
    if (patch.startedAt !== undefined) set('started_at', nullOr(patch.startedAt, (v) => checkInt(v, 'startedAt')));
    if (patch.endedAt !== undefined) set('ended_at', nullOr(patch.endedAt, (v) => checkInt(v, 'endedAt')));
    if (patch.stepsDone !== undefined) set('steps_done', checkInt(patch.stepsDone, 'stepsDone'));
    if (patch.tokensSeen !== undefined) set('tokens_seen', checkInt(patch.tokensSeen, 'tokensSeen'));
    if (patch.bestValLoss !== undefined) set('best_val_loss', patch.bestValLoss);
    if (patch.lastCheckpointStep !== undefined) {
      set('last_checkpoint_step', nullOr(patch.lastCheckpointStep, (v) => checkInt(v, 'lastCheckpointStep')));
    }
    if (patch.error !== undefined) set('error_json', patch.error === null ? null : JSON.stringify(patch.error));
    if (patch.tags !== undefined) set('tags', JSON.stringify(checkTags(patch.tags)));
    if (patch.notes !== undefined) set('notes', patch.notes);
    if (patch.pid !== undefined) set('pid', nullOr(patch.pid, (v) => checkInt(v, 'pid')));
    if (sets.length) {
      const r = this.run(`UPDATE runs SET ${sets.join(', ')} WHERE id = ?`, ...values, id);
      if (r.changes === 0) throw runNotFound(id);
    }
    return this.requireRun(id);
  }

  /**
   * Deletes a run and, through ON DELETE CASCADE, its metrics, samples, checkpoints rows, logs and evals. A run
   * with a worker attached (running or paused) is refused. Returns false when there was no such run.
   */
  deleteRun(id: string): boolean {
    const run = this.getRun(id);
    if (!run) return false;
    if ((ACTIVE_RUN_STATUSES as readonly RunStatus[]).includes(run.status)) {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `The run "${id}" is ${run.status}; it cannot be deleted while its worker is attached.`,
        `Stop it first (gpt2-studio stop ${id}), then delete it.`,
      );
    }
    return this.run('DELETE FROM runs WHERE id = ?', id).changes > 0;
  }

  /**
   * Marks runs whose worker died as 'interrupted' (only those still running or paused), clears their pid and sets
   * ended_at. Returns the runs changed.
   */
  markInterrupted(runIds: readonly string[], error?: PlainError): Run[] {
    const tx = this.db.transaction((): Run[] => {
      const changed: Run[] = [];
      for (const id of runIds) {
        const run = this.getRun(id);
        if (!run || !(ACTIVE_RUN_STATUSES as readonly RunStatus[]).includes(run.status)) continue;
        const err = error ?? interruptedError(run, `its worker${run.pid === null ? '' : ` (pid ${run.pid})`} stopped unexpectedly`);
        this.run(
          `UPDATE runs SET status = 'interrupted', pid = NULL, ended_at = ?, error_json = ? WHERE id = ?`,
          this.now(),
          JSON.stringify(err),
          id,
        );
        changed.push(this.requireRun(id));
      }
      return changed;
    });
    return tx.immediate();
  }

  /**
   * At studio start: every run still 'running' or 'paused' whose pid is gone (or unknown) becomes 'interrupted',
   * with an error that says so and an ended_at of its last recorded activity. Runs whose worker is still alive
   * (another studio or a CLI `train` on the same workspace) are left alone. Returns the runs changed.
   *
   * A pid can be reused by an unrelated process after a reboot; such a run stays 'running' until the studio
   * notices its worker is not ours (the caller can then use markInterrupted).
   */
  recoverOnStart(): Run[] {
    const tx = this.db.transaction((): Run[] => {
      const active = this.all<RunRow>(`SELECT * FROM runs WHERE status IN ${ACTIVE_SQL} ORDER BY created_at, id`);
      const changed: Run[] = [];
      for (const row of active) {
        if (row.pid !== null && this.isPidAlive(row.pid)) continue;
        const run = toRun(row);
        const err = interruptedError(run, `its worker${row.pid === null ? '' : ` (pid ${row.pid})`} was no longer running when the studio started`);
        // ended_at: the run's last sign of life (metric, log line, start), not the time the studio restarted.
        this.run(
          `UPDATE runs SET status = 'interrupted', pid = NULL, error_json = @err,
             ended_at = COALESCE(
               (SELECT CAST(MAX(t) AS INTEGER) FROM (
                  SELECT MAX(wall_time) AS t FROM metrics WHERE run_id = @id
                  UNION ALL SELECT MAX(time) FROM logs WHERE run_id = @id
                  UNION ALL SELECT started_at FROM runs WHERE id = @id)),
               @now)
           WHERE id = @id`,
          { err: JSON.stringify(err), id: row.id, now: this.now() },
        );
        changed.push(this.requireRun(row.id));
      }
      return changed;
    });
    return tx.immediate();
  }

  // ---- metrics ---------------------------------------------------------------------------------------------------

  /**
   * Records one step's metrics in ONE transaction, together with the run's steps_done (highest step + 1),
   * tokens_seen (highest) and best_val_loss (lowest finite 'val/loss'). Recording a step again (a resumed run
   * replaying steps after its checkpoint) replaces its values. When this returns, the step is committed.
   */
  recordStep(runId: string, input: RecordStepInput): void {
    this.recordStepTx.immediate(runId, input);
  }

  private writeStep(runId: string, input: RecordStepInput): void {
    const step = checkInt(input.step, 'step');
    const tokens = checkInt(input.tokensSeen, 'tokensSeen');
    const wallTime = checkFinite(input.wallTime, 'wallTime');
    const entries = Object.entries(input.metrics);
    for (const [name, value] of entries) {
      if (name.length === 0) throw new StudioError(ErrorCode.BAD_ARGUMENT, `A metric of step ${step} of run "${runId}" has an empty name.`, "Name metrics like 'train/loss'.");
      if (typeof value !== 'number') {
        throw new StudioError(ErrorCode.BAD_ARGUMENT, `The metric "${name}" of step ${step} of run "${runId}" is ${JSON.stringify(value)}, not a number.`, 'Send numbers (NaN is allowed).');
      }
    }
    const val = input.metrics['val/loss'];
    const best = val !== undefined && Number.isFinite(val) ? val : null;
    const r = this.run(
      `UPDATE runs SET steps_done = MAX(steps_done, ?), tokens_seen = MAX(tokens_seen, ?),
         best_val_loss = COALESCE(MIN(COALESCE(best_val_loss, ?), ?), best_val_loss)
       WHERE id = ?`,
      step + 1,
      tokens,
      best,
      best,
      runId,
    );
    if (r.changes === 0) throw runNotFound(runId);
    for (const [name, value] of entries) {
      this.run(
        `INSERT INTO metrics (run_id, name, step, value, wall_time, tokens_seen) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (run_id, name, step) DO UPDATE
           SET value = excluded.value, wall_time = excluded.wall_time, tokens_seen = excluded.tokens_seen`,
        runId,
        name,
        step,
        Number.isNaN(value) ? null : value,
        wallTime,
        tokens,
      );
    }
  }

  /**
   * The series of a run's metrics (all of them when `names` is omitted), each in step order. A requested name
   * with no points comes back as an empty series.
   */
  getMetrics(runId: string, names?: readonly string[], opts: GetMetricsOptions = {}): Record<string, MetricSeries> {
    const since = opts.sinceStep === undefined ? -1 : checkFinite(opts.sinceStep, 'sinceStep');
    const out: Record<string, MetricSeries> = {};
    const series = (name: string) => (out[name] ??= { steps: [], values: [], wallTimes: [], tokensSeen: [] });
    const push = (r: Pick<MetricRowOut, 'name' | 'step' | 'value' | 'wall_time' | 'tokens_seen'>) => {
      const s = series(r.name);
      s.steps.push(r.step);
      s.values.push(r.value === null ? Number.NaN : r.value);
      s.wallTimes.push(r.wall_time);
      s.tokensSeen.push(r.tokens_seen);
    };
    const cols = 'name, step, value, wall_time, tokens_seen';
    if (names === undefined) {
      for (const r of this.all<MetricRowOut>(`SELECT ${cols} FROM metrics WHERE run_id = ? AND step > ? ORDER BY name, step`, runId, since)) push(r);
    } else {
      for (const name of names) {
        series(name);
        for (const r of this.all<MetricRowOut>(`SELECT ${cols} FROM metrics WHERE run_id = ? AND name = ? AND step > ? ORDER BY step`, runId, name, since)) push(r);
      }
    }
    return out;
  }

  /** The names of the metrics a run has recorded, sorted. */
  listMetricNames(runId: string): string[] {
    return this.all<{ name: string }>('SELECT DISTINCT name FROM metrics WHERE run_id = ? ORDER BY name', runId).map((r) => r.name);
  }

  /**
   * Before resuming from the checkpoint at `fromStep`: forgets the metrics and samples of steps >= fromStep (the
   * interrupted attempt's, which the resumed run records again) and sets steps_done, tokens_seen and best_val_loss
   * from what remains. Checkpoint rows and logs are kept.
   */
  rewindRun(runId: string, fromStep: number): Run {
    const step = checkInt(fromStep, 'fromStep');
    const tx = this.db.transaction((): Run => {
      this.requireRun(runId);
      this.run('DELETE FROM metrics WHERE run_id = ? AND step >= ?', runId, step);
      this.run('DELETE FROM samples WHERE run_id = ? AND step >= ?', runId, step);
      this.run(
        `UPDATE runs SET
           steps_done = COALESCE((SELECT MAX(step) + 1 FROM metrics WHERE run_id = @id), 0),
           tokens_seen = COALESCE((SELECT MAX(tokens_seen) FROM metrics WHERE run_id = @id), 0),
           best_val_loss = (SELECT MIN(value) FROM metrics WHERE run_id = @id AND name = 'val/loss' AND abs(value) < 9e999)
         WHERE id = @id`,
        { id: runId },
      );
      return this.requireRun(runId);
    });
    return tx.immediate();
  }

  /**
   * For a run branched from another's checkpoint at `upToStep`: copies the metrics and samples of the steps before
   * it (what a run resuming from that checkpoint keeps; the same boundary as rewindRun) from `fromRunId` to
   * `toRunId`, replacing any the target has at those steps, and sets the target's steps_done, tokens_seen and
   * best_val_loss from what it then holds. All in ONE transaction. Returns the number of rows copied.
   */
  copyRunHistory(fromRunId: string, toRunId: string, upToStep: number): { metrics: number; samples: number } {
    const step = checkInt(upToStep, 'upToStep');
    if (fromRunId === toRunId) {
      throw new StudioError(ErrorCode.BAD_ARGUMENT, `copyRunHistory got the same run "${fromRunId}" as source and target.`, 'Copy the history into another run.');
    }
    const tx = this.db.transaction((): { metrics: number; samples: number } => {
      this.requireRun(fromRunId);
      this.requireRun(toRunId);
      const metrics = this.run(
        `INSERT INTO metrics (run_id, name, step, value, wall_time, tokens_seen)
         SELECT @to, name, step, value, wall_time, tokens_seen FROM metrics WHERE run_id = @from AND step < @step
         ON CONFLICT (run_id, name, step) DO UPDATE
           SET value = excluded.value, wall_time = excluded.wall_time, tokens_seen = excluded.tokens_seen`,
        { from: fromRunId, to: toRunId, step },
      ).changes;
      const samples = this.run(
        `INSERT INTO samples (run_id, step, idx, prompt, text, created_at)
         SELECT @to, step, idx, prompt, text, created_at FROM samples WHERE run_id = @from AND step < @step
         ON CONFLICT (run_id, step, idx) DO UPDATE
           SET prompt = excluded.prompt, text = excluded.text, created_at = excluded.created_at`,
        { from: fromRunId, to: toRunId, step },
      ).changes;
      this.run(
        `UPDATE runs SET
           steps_done = COALESCE((SELECT MAX(step) + 1 FROM metrics WHERE run_id = @id), 0),
           tokens_seen = COALESCE((SELECT MAX(tokens_seen) FROM metrics WHERE run_id = @id), 0),
           best_val_loss = (SELECT MIN(value) FROM metrics WHERE run_id = @id AND name = 'val/loss' AND abs(value) < 9e999)
         WHERE id = @id`,
        { id: toRunId },
      );
      return { metrics, samples };
    });
    return tx.immediate();
  }

  // ---- samples ---------------------------------------------------------------------------------------------------

  /** Adds (or replaces, for the same step and idx) a generated sample. */
  addSample(runId: string, input: AddSampleInput): Sample {
    const row: SampleRow = {
      run_id: runId,
      step: checkInt(input.step, 'step'),
      idx: checkInt(input.idx, 'idx'),
      prompt: input.prompt,
      text: input.text,
      created_at: checkInt(input.createdAt ?? this.now(), 'createdAt'),
    };
    this.withRun(runId, () =>
      this.run(
        `INSERT INTO samples (run_id, step, idx, prompt, text, created_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (run_id, step, idx) DO UPDATE
           SET prompt = excluded.prompt, text = excluded.text, created_at = excluded.created_at`,
        row.run_id, row.step, row.idx, row.prompt, row.text, row.created_at,
      ),
    );
    return toSample(row);
  }

  /** Newest step first; within a step, by idx. */
  listSamples(runId: string, opts: ListSamplesOptions = {}): Sample[] {
    const limit = checkLimit(opts.limit, 200);
    const rows =
      opts.step === undefined
        ? this.all<SampleRow>('SELECT * FROM samples WHERE run_id = ? ORDER BY step DESC, idx LIMIT ?', runId, limit)
        : this.all<SampleRow>('SELECT * FROM samples WHERE run_id = ? AND step = ? ORDER BY idx LIMIT ?', runId, checkInt(opts.step, 'step'), limit);
    return rows.map(toSample);
  }

  // ---- checkpoints -----------------------------------------------------------------------------------------------

  /** Records a written checkpoint (replacing one at the same step) and sets the run's last_checkpoint_step. */
  addCheckpoint(runId: string, input: AddCheckpointInput): Checkpoint {
    const row: CheckpointRow = {
      run_id: runId,
      step: checkInt(input.step, 'step'),
      path: checkText(input.path, 'checkpoint path'),
      size_bytes: checkInt(input.sizeBytes, 'sizeBytes'),
      val_loss: input.valLoss ?? null,
      val_loss_step: input.valLossStep ?? null,
      hellaswag: input.hellaswag ?? null,
      created_at: checkInt(input.createdAt ?? this.now(), 'createdAt'),
    };
    const tx = this.db.transaction(() => {
      this.withRun(runId, () =>
        this.run(
          `INSERT INTO checkpoints (run_id, step, path, size_bytes, val_loss, val_loss_step, hellaswag, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (run_id, step) DO UPDATE SET path = excluded.path, size_bytes = excluded.size_bytes,
             val_loss = excluded.val_loss, val_loss_step = excluded.val_loss_step, hellaswag = excluded.hellaswag,
             created_at = excluded.created_at`,
          row.run_id, row.step, row.path, row.size_bytes, row.val_loss, row.val_loss_step, row.hellaswag, row.created_at,
        ),
      );
      this.syncLastCheckpoint(runId);
    });
    tx.immediate();
    return toCheckpoint(row);
  }

  /** A run's checkpoints by step, or every run's (newest first) when runId is omitted. */
  listCheckpoints(runId?: string): Checkpoint[] {
    const rows =
      runId === undefined
        ? this.all<CheckpointRow>('SELECT * FROM checkpoints ORDER BY created_at DESC, run_id, step DESC')
        : this.all<CheckpointRow>('SELECT * FROM checkpoints WHERE run_id = ? ORDER BY step', runId);
    return rows.map(toCheckpoint);
  }

  /** Records the HellaSwag acc_norm measured on a checkpoint; false when there is no such checkpoint row. */
  setCheckpointHellaswag(runId: string, step: number, accNorm: number): boolean {
    return this.run('UPDATE checkpoints SET hellaswag = ? WHERE run_id = ? AND step = ?', accNorm, runId, checkInt(step, 'step')).changes > 0;
  }

  /** Forgets a checkpoint row (the caller removes its folder); updates last_checkpoint_step. */
  deleteCheckpoint(runId: string, step: number): boolean {
    const tx = this.db.transaction((): boolean => {
      const deleted = this.run('DELETE FROM checkpoints WHERE run_id = ? AND step = ?', runId, checkInt(step, 'step')).changes > 0;
      if (deleted) this.syncLastCheckpoint(runId);
      return deleted;
    });
    return tx.immediate();
  }

  private syncLastCheckpoint(runId: string): void {
    this.run('UPDATE runs SET last_checkpoint_step = (SELECT MAX(step) FROM checkpoints WHERE run_id = @id) WHERE id = @id', { id: runId });
  }

  // ---- logs ------------------------------------------------------------------------------------------------------

  /** Appends a log line; its seq is one more than the run's last (atomic: one INSERT ... SELECT). */
  addLog(runId: string, level: LogLevel, message: string, time: number = this.now()): LogEntry {
    checkMember(level, LOG_LEVELS, 'log level');
    const t = checkInt(time, 'time');
    const row = this.withRun(runId, () =>
      this.get<{ seq: number }>(
        `INSERT INTO logs (run_id, seq, level, message, time)
         SELECT @id, COALESCE(MAX(seq), 0) + 1, @level, @message, @time FROM logs WHERE run_id = @id
         RETURNING seq`,
        { id: runId, level, message, time: t },
      ),
    );
    if (!row) throw new StudioError(ErrorCode.INTERNAL, `Adding a log line to run "${runId}" returned no seq.`, 'Report this.');
    return { runId, seq: row.seq, level, message, time: t };
  }

  /** Log lines in seq order: the first `limit` after `afterSeq`, or with `tail` the last `limit`. */
  listLogs(runId: string, opts: ListLogsOptions = {}): LogEntry[] {
    const after = checkInt(opts.afterSeq ?? 0, 'afterSeq');
    const limit = Math.min(checkLimit(opts.limit, 1000), 10_000);
    const rows = opts.tail
      ? this.all<LogRow>('SELECT * FROM (SELECT * FROM logs WHERE run_id = ? AND seq > ? ORDER BY seq DESC LIMIT ?) ORDER BY seq', runId, after, limit)
      : this.all<LogRow>('SELECT * FROM logs WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?', runId, after, limit);
    return rows.map((r) => ({ runId: r.run_id, seq: r.seq, level: r.level, message: r.message, time: r.time }));
  }

  // ---- evals -----------------------------------------------------------------------------------------------------

  /** Starts an eval record in status 'running'. */
  createEval(input: CreateEvalInput): Eval {
    checkMember(input.kind, EVAL_KINDS, 'eval kind');
    const t = input.target;
    const [runId, step, weightsPath] =
      'runId' in t ? [t.runId, checkInt(t.step, 'target step'), null] : [null, null, checkText(t.weightsPath, 'weights path')];
    const createdAt = checkInt(input.createdAt ?? this.now(), 'createdAt');
    const id = input.id === undefined ? newId('eval', createdAt) : checkId(input.id, 'eval');
    const insert = () =>
      this.run(
        `INSERT INTO evals (id, kind, run_id, step, weights_path, params_json, pid, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        id, input.kind, runId, step, weightsPath, jsonObject(input.params ?? {}, 'eval params'),
        nullOr(input.pid ?? null, (v) => checkInt(v, 'pid')), createdAt,
      );
    try {
      if (runId === null) insert();
      else this.withRun(runId, insert);
    } catch (e) {
      if (isConstraint(e, 'SQLITE_CONSTRAINT_PRIMARYKEY')) {
        throw new StudioError(ErrorCode.BAD_ARGUMENT, `An eval with the id "${id}" already exists.`, 'Choose another id, or leave it out to get a new one.', { cause: e });
      }
      throw e;
    }
    return this.requireEval(id);
  }

  /** Ends an eval: its status, summary or error, and its per-example rows, all in one transaction. */
  finishEval(id: string, input: FinishEvalInput): Eval {
    checkMember(input.status, ['done', 'failed', 'cancelled'] as const, 'eval end status');
    const examples = (input.examples ?? []).map((ex, i) => checkExample(ex, i, id));
    const tx = this.db.transaction((): Eval => {
      const ev = this.requireEval(id);
      if (ev.status !== 'running' && ev.status !== 'interrupted') {
        throw new StudioError(ErrorCode.BAD_ARGUMENT, `The eval "${id}" has already finished (${ev.status}).`, 'Start a new eval to measure again.');
      }
      this.run('DELETE FROM eval_examples WHERE eval_id = ?', id);
      for (const ex of examples) {
        this.run(
          `INSERT INTO eval_examples (eval_id, ind, label, pred, pred_norm, sum_loss_json, avg_loss_json) VALUES (?, ?, ?, ?, ?, ?, ?)`,
          id, ex.ind, ex.label, ex.pred, ex.pred_norm, JSON.stringify(ex.sum_loss), JSON.stringify(ex.avg_loss),
        );
      }
      this.run(
        `UPDATE evals SET status = ?, summary_json = ?, error_json = ?, finished_at = ?, pid = NULL WHERE id = ?`,
        input.status,
        input.summary == null ? null : jsonObject(input.summary, 'eval summary'),
        input.error == null ? null : JSON.stringify(input.error),
        checkInt(input.finishedAt ?? this.now(), 'finishedAt'),
        id,
      );
      return this.requireEval(id);
    });
    return tx.immediate();
  }

  getEval(id: string): Eval | undefined {
    const row = this.get<EvalRow>('SELECT * FROM evals WHERE id = ?', id);
    return row && toEval(row);
  }

  /** Newest first. */
  listEvals(filter: ListEvalsFilter = {}): Eval[] {
    const where: string[] = [];
    const params: SqlValue[] = [];
    if (filter.kind !== undefined) {
      where.push('kind = ?');
      params.push(checkMember(filter.kind, EVAL_KINDS, 'eval kind'));
    }
    if (filter.status !== undefined) {
      where.push('status = ?');
      params.push(checkMember(filter.status, EVAL_STATUSES, 'eval status'));
    }
    if (filter.runId !== undefined) {
      where.push('run_id = ?');
      params.push(filter.runId);
    }
    const sql = `SELECT * FROM evals ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC LIMIT ?`;
    return this.all<EvalRow>(sql, ...params, checkLimit(filter.limit, 1000)).map(toEval);
  }

  /** An eval's examples in `ind` order; with wrongOnly, those whose acc_norm prediction missed the label. */
  listEvalExamples(evalId: string, opts: ListEvalExamplesOptions = {}): EvalExample[] {
    const sql = `SELECT * FROM eval_examples WHERE eval_id = ? ${opts.wrongOnly ? 'AND pred_norm <> label' : ''} ORDER BY ind LIMIT ? OFFSET ?`;
    const limit = opts.limit === undefined ? -1 : checkInt(opts.limit, 'limit');
    return this.all<EvalExampleRow>(sql, evalId, limit, checkInt(opts.offset ?? 0, 'offset')).map((r) => ({
      evalId: r.eval_id,
      ind: r.ind,
      label: r.label,
      pred: r.pred,
      pred_norm: r.pred_norm,
      sum_loss: parseNumbers(r.sum_loss_json),
      avg_loss: parseNumbers(r.avg_loss_json),
    }));
  }

  deleteEval(id: string): boolean {
    return this.run('DELETE FROM evals WHERE id = ?', id).changes > 0;
  }

  /** At studio start: evals still 'running' whose process is gone (or unknown) become 'interrupted'. */
  recoverEvalsOnStart(): Eval[] {
    const tx = this.db.transaction((): Eval[] => {
      const rows = this.all<EvalRow>(`SELECT * FROM evals WHERE status = 'running' ORDER BY created_at, id`);
      const changed: Eval[] = [];
      for (const row of rows) {
        if (row.pid !== null && this.isPidAlive(row.pid)) continue;
        const err: PlainError = {
          code: ErrorCode.INTERRUPTED,
          message: `The ${row.kind} eval "${row.id}" stopped before it finished: its process${row.pid === null ? '' : ` (pid ${row.pid})`} was no longer running when the studio started.`,
          hint: 'Start the eval again.',
        };
        this.run(`UPDATE evals SET status = 'interrupted', pid = NULL, error_json = ?, finished_at = ? WHERE id = ?`, JSON.stringify(err), this.now(), row.id);
        changed.push(this.requireEval(row.id));
      }
      return changed;
    });
    return tx.immediate();
  }

  // ---- datasets --------------------------------------------------------------------------------------------------

  /** Inserts or replaces a dataset's row (every field as given, omitted ones as their defaults); keeps created_at. */
  upsertDataset(input: UpsertDatasetInput): Dataset {
    const id = checkId(input.id, 'dataset');
    const now = this.now();
    this.run(
      `INSERT INTO datasets (id, name, source, manifest_path, train_tokens, val_tokens, status, error_json, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET name = excluded.name, source = excluded.source,
         manifest_path = excluded.manifest_path, train_tokens = excluded.train_tokens, val_tokens = excluded.val_tokens,
         status = excluded.status, error_json = excluded.error_json, updated_at = excluded.updated_at`,
      id,
      checkText(input.name, 'dataset name'),
      checkText(input.source, 'dataset source'),
      input.manifestPath ?? null,
      checkInt(input.trainTokens ?? 0, 'trainTokens'),
      checkInt(input.valTokens ?? 0, 'valTokens'),
      checkMember(input.status, DATASET_STATUSES, 'dataset status'),
      input.error == null ? null : JSON.stringify(input.error),
      now,
      now,
    );
    const ds = this.getDataset(id);
    if (!ds) throw new StudioError(ErrorCode.INTERNAL, `The dataset "${id}" was not found right after it was written.`, 'Report this.');
    return ds;
  }

  /** Newest first. */
  listDatasets(filter: { status?: DatasetStatus } = {}): Dataset[] {
    const rows =
      filter.status === undefined
        ? this.all<DatasetRow>('SELECT * FROM datasets ORDER BY created_at DESC, id')
        : this.all<DatasetRow>('SELECT * FROM datasets WHERE status = ? ORDER BY created_at DESC, id', checkMember(filter.status, DATASET_STATUSES, 'dataset status'));
    return rows.map(toDataset);
  }

  getDataset(id: string): Dataset | undefined {
    const row = this.get<DatasetRow>('SELECT * FROM datasets WHERE id = ?', id);
    return row && toDataset(row);
  }

  /** Forgets a dataset's row (the caller removes datasets/<id>/). */
  deleteDataset(id: string): boolean {
    return this.run('DELETE FROM datasets WHERE id = ?', id).changes > 0;
  }

  // ---- internals -------------------------------------------------------------------------------------------------

  /** Prepared once per SQL text and reused. */
  private stmt(sql: string): Database.Statement<BindArg[], unknown> {
    let s = this.stmts.get(sql);
    if (!s) {
      s = this.db.prepare<BindArg[], unknown>(sql);
      this.stmts.set(sql, s);
    }
    return s;
  }

  // The casts below are the one place rows meet their types: the schema (STRICT tables, CHECKs) guarantees them.
  private all<R>(sql: string, ...params: BindArg[]): R[] {
    return this.stmt(sql).all(...params) as R[];
  }

  private get<R>(sql: string, ...params: BindArg[]): R | undefined {
    return this.stmt(sql).get(...params) as R | undefined;
  }

  private run(sql: string, ...params: BindArg[]): Database.RunResult {
    return this.stmt(sql).run(...params);
  }

  private requireRun(id: string): Run {
    const run = this.getRun(id);
    if (!run) throw runNotFound(id);
    return run;
  }

  private requireEval(id: string): Eval {
    const ev = this.getEval(id);
    if (!ev) throw new StudioError(ErrorCode.NOT_FOUND, `There is no eval with the id "${id}".`, 'List evals to see their ids.');
    return ev;
  }

  /** Runs a write that references a run, turning the foreign-key failure of an unknown run into NOT_FOUND. */
  private withRun<T>(runId: string, write: () => T): T {
    try {
      return write();
    } catch (e) {
      if (isConstraint(e, 'SQLITE_CONSTRAINT_FOREIGNKEY')) throw runNotFound(runId, e);
      throw e;
    }
  }
}

// ---- helpers -----------------------------------------------------------------------------------------------------

interface MetricRowOut {
  name: string;
  step: number;
  value: number | null;
  wall_time: number;
  tokens_seen: number;
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

function interruptedError(run: Run, why: string): PlainError {
  const resume =
    run.lastCheckpointStep === null
      ? 'It has no checkpoint to resume from; start it again.'
      : `Resume it from its last checkpoint (step ${run.lastCheckpointStep}): gpt2-studio resume ${run.id}`;
  return {
    code: ErrorCode.INTERRUPTED,
    message: `The run "${run.id}" was interrupted after ${run.stepsDone} step(s): ${why}.`,
    hint: resume,
  };
}

function runNotFound(id: string, cause?: unknown): StudioError {
  return new StudioError(ErrorCode.NOT_FOUND, `There is no run with the id "${id}".`, 'List runs (gpt2-studio runs) to see their ids.', { cause });
}

function isConstraint(e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === code;
}

function badArgument(message: string, hint: string): StudioError {
  return new StudioError(ErrorCode.BAD_ARGUMENT, message, hint);
}

function checkInt(v: number, what: string): number {
  if (!Number.isSafeInteger(v) || v < 0) throw badArgument(`${what} must be a whole number >= 0, got ${JSON.stringify(v)}.`, `Pass a non-negative integer as ${what}.`);
  return v;
}

function checkFinite(v: number, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw badArgument(`${what} must be a finite number, got ${JSON.stringify(v)}.`, `Pass a finite number as ${what}.`);
  return v;
}

function checkLimit(v: number | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  if (!Number.isSafeInteger(v) || v < 1) throw badArgument(`limit must be a whole number >= 1, got ${JSON.stringify(v)}.`, 'Pass a positive limit, or leave it out.');
  return v;
}

function checkText(v: string, what: string): string {
  if (typeof v !== 'string' || v.trim() === '') throw badArgument(`The ${what} must be a non-empty string, got ${JSON.stringify(v)}.`, `Give a ${what}.`);
  return v;
}

function checkMember<T extends string>(v: T, allowed: readonly T[], what: string): T {
  if (!allowed.includes(v)) throw badArgument(`${JSON.stringify(v)} is not a ${what}; expected one of ${allowed.join(', ')}.`, `Use one of ${allowed.join(', ')}.`);
  return v;
}

/** Tags are trimmed, de-duplicated strings; empty ones are dropped. */
function checkTags(tags: readonly string[]): string[] {
  if (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string')) {
    throw badArgument(`Tags must be a list of strings, got ${JSON.stringify(tags)}.`, 'Pass tags like ["baseline", "fineweb"].');
  }
  return [...new Set(tags.map((t) => t.trim()).filter((t) => t !== ''))];
}

function jsonObject(v: object, what: string): string {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw badArgument(`The ${what} must be a JSON object, got ${Array.isArray(v) ? 'an array' : JSON.stringify(v)}.`, `Pass the ${what} as an object.`);
  }
  return JSON.stringify(v);
}

function nullOr<T>(v: T | null, f: (v: T) => SqlValue): SqlValue {
  return v === null ? null : f(v);
}

function checkExample(ex: EvalExampleInput, i: number, evalId: string): EvalExampleInput {
  const ints = [ex.ind, ex.label, ex.pred, ex.pred_norm];
  if (!ints.every((n) => Number.isSafeInteger(n)) || !Array.isArray(ex.sum_loss) || !Array.isArray(ex.avg_loss)) {
    throw badArgument(
      `Example ${i} of eval "${evalId}" is malformed: ${JSON.stringify(ex).slice(0, 200)}.`,
      'Each example needs integer ind, label, pred, pred_norm and number arrays sum_loss, avg_loss (the HellaSwag scorer\'s ExampleResult).',
    );
  }
  return ex;
}

/** JSON has no NaN: a non-finite loss was stored as null and comes back as NaN. */
function parseNumbers(text: string): number[] {
  return (JSON.parse(text) as Array<number | null>).map((x) => (x === null ? Number.NaN : x));
}

function parseObject(text: string): Record<string, unknown> {
  return JSON.parse(text) as Record<string, unknown>;
}

function parseError(text: string | null): PlainError | null {
  return text === null ? null : (JSON.parse(text) as PlainError);
}

function toRun(r: RunRow): Run {
  return {
    id: r.id,
    name: r.name,
    status: r.status,
    preset: r.preset,
    config: parseObject(r.config_json),
    engine: r.engine,
    createdAt: r.created_at,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    stepsDone: r.steps_done,
    tokensSeen: r.tokens_seen,
    bestValLoss: r.best_val_loss,
    lastCheckpointStep: r.last_checkpoint_step,
    error: parseError(r.error_json),
    tags: JSON.parse(r.tags) as string[],
    notes: r.notes,
    pid: r.pid,
    attempts: JSON.parse(r.attempts_json) as RunAttempt[],
  };
}

function toSample(r: SampleRow): Sample {
  return { runId: r.run_id, step: r.step, idx: r.idx, prompt: r.prompt, text: r.text, createdAt: r.created_at };
}

function toCheckpoint(r: CheckpointRow): Checkpoint {
  return {
    runId: r.run_id,
    step: r.step,
    path: r.path,
    sizeBytes: r.size_bytes,
    valLoss: r.val_loss,
    valLossStep: r.val_loss_step,
    hellaswag: r.hellaswag,
    createdAt: r.created_at,
  };
}

function toEval(r: EvalRow): Eval {
  return {
    id: r.id,
    kind: r.kind,
    target: r.run_id !== null && r.step !== null ? { runId: r.run_id, step: r.step } : { weightsPath: r.weights_path ?? '' },
    status: r.status,
    params: parseObject(r.params_json),
    summary: r.summary_json === null ? null : parseObject(r.summary_json),
    error: parseError(r.error_json),
    pid: r.pid,
    createdAt: r.created_at,
    finishedAt: r.finished_at,
  };
}

function toDataset(r: DatasetRow): Dataset {
  return {
    id: r.id,
    name: r.name,
    source: r.source,
    manifestPath: r.manifest_path,
    trainTokens: r.train_tokens,
    valTokens: r.val_tokens,
    status: r.status,
    error: parseError(r.error_json),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}
