/**
 * The metrics table: one row per (run, metric, step), written one step per transaction together with the run's
 * totals (steps_done, tokens_seen, best_val_loss); and a run's history (metrics and samples) rewound before a
 * resume or copied into a run branched from another's checkpoint.
 */
import type Database from 'better-sqlite3';
import { ErrorCode, StudioError } from '../../shared/errors';
import { runNotFound, type RunsTable } from './runs-table';
import type { SamplesTable } from './samples-table';
import { type Sql, checkFinite, checkInt } from '../store/sql';
import type { GetMetricsOptions, MetricRow, MetricSeries, RecordStepInput, Run } from '../store/types';

/** Recording a step again (a resumed run replaying steps after its checkpoint) replaces its values. */
const ON_CONFLICT = `ON CONFLICT (run_id, name, step) DO UPDATE
  SET value = excluded.value, wall_time = excluded.wall_time, tokens_seen = excluded.tokens_seen`;

type MetricPoint = Omit<MetricRow, 'run_id'>;

/**
 * The prefix of the system metrics (CPU, memory, disk, GPUs) that a run's worker samples every few seconds at the
 * last step it reported. They are no evidence of training progress: a step that records only these leaves the run's
 * steps_done and tokens_seen alone (the first sample comes before step 0 has finished).
 */
export const SYSTEM_METRIC = 'sys/';

export class MetricsTable {
  private readonly recordStepTx: Database.Transaction<(runId: string, input: RecordStepInput) => void>;

  constructor(
    private readonly sql: Sql,
    private readonly runs: RunsTable,
    private readonly samples: SamplesTable,
  ) {
    this.recordStepTx = sql.db.transaction((runId: string, input: RecordStepInput) => this.writeStep(runId, input));
  }

  /**
   * Records one step's metrics in ONE transaction, together with the run's steps_done (highest step + 1),
   * tokens_seen (highest) and best_val_loss (lowest finite 'val/loss'). Recording a step again (a resumed run
   * replaying steps after its checkpoint) replaces its values. When this returns, the step is committed.
   * System metrics alone (names starting with SYSTEM_METRIC) leave the totals as they are.
   */
  recordStep(runId: string, input: RecordStepInput): void {
    this.recordStepTx.immediate(runId, input);
  }

  series(runId: string, names: readonly string[] | undefined, opts: GetMetricsOptions): Record<string, MetricSeries> {
    const since = opts.sinceStep === undefined ? -1 : checkFinite(opts.sinceStep, 'sinceStep');
    const out: Record<string, MetricSeries> = {};
    const series = (name: string) => (out[name] ??= { steps: [], values: [], wallTimes: [], tokensSeen: [] });
    const push = (r: MetricPoint) => {
      const s = series(r.name);
      s.steps.push(r.step);
      s.values.push(r.value === null ? Number.NaN : r.value);
      s.wallTimes.push(r.wall_time);
      s.tokensSeen.push(r.tokens_seen);
    };
    const cols = 'name, step, value, wall_time, tokens_seen';
    if (names === undefined) {
      for (const r of this.sql.all<MetricPoint>(
        `SELECT ${cols} FROM metrics WHERE run_id = ? AND step > ? ORDER BY name, step`,
        runId,
        since,
      ))
        push(r);
    } else {
      for (const name of names) {
        series(name);
        for (const r of this.sql.all<MetricPoint>(
          `SELECT ${cols} FROM metrics WHERE run_id = ? AND name = ? AND step > ? ORDER BY step`,
          runId,
          name,
          since,
        ))
          push(r);
      }
    }
    return out;
  }

  names(runId: string): string[] {
    return this.sql
      .all<{ name: string }>('SELECT DISTINCT name FROM metrics WHERE run_id = ? ORDER BY name', runId)
      .map((r) => r.name);
  }

  /**
   * Before resuming from the checkpoint at `fromStep`: forgets the metrics and samples of steps >= fromStep (the
   * interrupted attempt's, which the resumed run records again) and sets steps_done, tokens_seen and best_val_loss
   * from what remains. Checkpoint rows and logs are kept.
   */
  rewind(runId: string, fromStep: number): Run {
    const step = checkInt(fromStep, 'fromStep');
    return this.sql.immediate((): Run => {
      this.runs.require(runId);
      this.sql.run('DELETE FROM metrics WHERE run_id = ? AND step >= ?', runId, step);
      this.samples.deleteFrom(runId, step);
      this.syncTotals(runId);
      return this.runs.require(runId);
    });
  }

  /**
   * For a run branched from another's checkpoint at `upToStep`: copies the metrics and samples of the steps before
   * it (what a run resuming from that checkpoint keeps; the same boundary as rewind) from `fromRunId` to
   * `toRunId`, replacing any the target has at those steps, and sets the target's steps_done, tokens_seen and
   * best_val_loss from what it then holds. All in ONE transaction. Returns the number of rows copied.
   */
  copyHistory(fromRunId: string, toRunId: string, upToStep: number): { metrics: number; samples: number } {
    const step = checkInt(upToStep, 'upToStep');
    if (fromRunId === toRunId) {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `copyRunHistory got the same run "${fromRunId}" as source and target.`,
        'Copy the history into another run.',
      );
    }
    return this.sql.immediate((): { metrics: number; samples: number } => {
      this.runs.require(fromRunId);
      this.runs.require(toRunId);
      const metrics = this.sql.run(
        `INSERT INTO metrics (run_id, name, step, value, wall_time, tokens_seen)
         SELECT @to, name, step, value, wall_time, tokens_seen FROM metrics WHERE run_id = @from AND step < @step ${ON_CONFLICT}`,
        { from: fromRunId, to: toRunId, step },
      ).changes;
      const samples = this.samples.copy(fromRunId, toRunId, step);
      this.syncTotals(toRunId);
      return { metrics, samples };
    });
  }

  private writeStep(runId: string, input: RecordStepInput): void {
    const step = checkInt(input.step, 'step');
    const tokens = checkInt(input.tokensSeen, 'tokensSeen');
    const wallTime = checkFinite(input.wallTime, 'wallTime');
    const entries = Object.entries(input.metrics);
    for (const [name, value] of entries) {
      if (name.length === 0)
        throw new StudioError(
          ErrorCode.BAD_ARGUMENT,
          `A metric of step ${step} of run "${runId}" has an empty name.`,
          "Name metrics like 'train/loss'.",
        );
      if (typeof value !== 'number') {
        throw new StudioError(
          ErrorCode.BAD_ARGUMENT,
          `The metric "${name}" of step ${step} of run "${runId}" is ${JSON.stringify(value)}, not a number.`,
          'Send numbers (NaN is allowed).',
        );
      }
    }
    const val = input.metrics['val/loss'];
    const best = val !== undefined && Number.isFinite(val) ? val : null;
    const systemOnly = entries.length > 0 && entries.every(([name]) => name.startsWith(SYSTEM_METRIC));
    if (systemOnly) this.runs.require(runId);
    else {
      const r = this.sql.run(
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
    }
    for (const [name, value] of entries) {
      this.sql.run(
        `INSERT INTO metrics (run_id, name, step, value, wall_time, tokens_seen) VALUES (?, ?, ?, ?, ?, ?) ${ON_CONFLICT}`,
        runId,
        name,
        step,
        Number.isNaN(value) ? null : value,
        wallTime,
        tokens,
      );
    }
  }

  /** Sets a run's steps_done, tokens_seen and best_val_loss (lowest finite val/loss) from the metrics it holds. */
  private syncTotals(runId: string): void {
    this.sql.run(
      `UPDATE runs SET
         steps_done = COALESCE((SELECT MAX(step) + 1 FROM metrics WHERE run_id = @id AND name NOT LIKE 'sys/%'), 0),
         tokens_seen = COALESCE((SELECT MAX(tokens_seen) FROM metrics WHERE run_id = @id AND name NOT LIKE 'sys/%'), 0),
         best_val_loss = (SELECT MIN(value) FROM metrics WHERE run_id = @id AND name = 'val/loss' AND abs(value) < 9e999)
       WHERE id = @id`,
      { id: runId },
    );
  }
}
