/** The logs table: a run's log lines, numbered 1, 2, 3, ... per run in the order they were added. */
import { ErrorCode, StudioError } from '../../shared/errors';
import { withRun } from './runs-table';
import { type Sql, checkInt, checkLimit, checkMember } from '../store/sql';
import { LOG_LEVELS, type ListLogsOptions, type LogEntry, type LogLevel, type LogRow } from '../store/types';

export class LogsTable {
  constructor(private readonly sql: Sql) {}

  /** Its seq is one more than the run's last (atomic: one INSERT ... SELECT). */
  add(runId: string, level: LogLevel, message: string, time: number): LogEntry {
    checkMember(level, LOG_LEVELS, 'log level');
    const t = checkInt(time, 'time');
    const row = withRun(runId, () =>
      this.sql.get<{ seq: number }>(
        `INSERT INTO logs (run_id, seq, level, message, time)
         SELECT @id, COALESCE(MAX(seq), 0) + 1, @level, @message, @time FROM logs WHERE run_id = @id
         RETURNING seq`,
        { id: runId, level, message, time: t },
      ),
    );
    if (!row)
      throw new StudioError(ErrorCode.INTERNAL, `Adding a log line to run "${runId}" returned no seq.`, 'Report this.');
    return { runId, seq: row.seq, level, message, time: t };
  }

  list(runId: string, opts: ListLogsOptions): LogEntry[] {
    const after = checkInt(opts.afterSeq ?? 0, 'afterSeq');
    const limit = Math.min(checkLimit(opts.limit, 1000), 10_000);
    const rows = opts.tail
      ? this.sql.all<LogRow>(
          'SELECT * FROM (SELECT * FROM logs WHERE run_id = ? AND seq > ? ORDER BY seq DESC LIMIT ?) ORDER BY seq',
          runId,
          after,
          limit,
        )
      : this.sql.all<LogRow>(
          'SELECT * FROM logs WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?',
          runId,
          after,
          limit,
        );
    return rows.map((r) => ({ runId: r.run_id, seq: r.seq, level: r.level, message: r.message, time: r.time }));
  }
}
