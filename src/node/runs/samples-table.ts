/** The samples table: the text a run generated at a step, several per step (idx 0, 1, ...). */
import { withRun } from './runs-table';
import { type Sql, checkInt, checkLimit } from '../store/sql';
import type { AddSampleInput, ListSamplesOptions, Sample, SampleRow } from '../store/types';

/** Writing a sample again at the same step and idx replaces it. */
const ON_CONFLICT = `ON CONFLICT (run_id, step, idx) DO UPDATE
  SET prompt = excluded.prompt, text = excluded.text, created_at = excluded.created_at`;

export class SamplesTable {
  constructor(
    private readonly sql: Sql,
    private readonly now: () => number,
  ) {}

  add(runId: string, input: AddSampleInput): Sample {
    const row: SampleRow = {
      run_id: runId,
      step: checkInt(input.step, 'step'),
      idx: checkInt(input.idx, 'idx'),
      prompt: input.prompt,
      text: input.text,
      created_at: checkInt(input.createdAt ?? this.now(), 'createdAt'),
    };
    withRun(runId, () =>
      this.sql.run(
        `INSERT INTO samples (run_id, step, idx, prompt, text, created_at) VALUES (?, ?, ?, ?, ?, ?) ${ON_CONFLICT}`,
        row.run_id,
        row.step,
        row.idx,
        row.prompt,
        row.text,
        row.created_at,
      ),
    );
    return toSample(row);
  }

  list(runId: string, opts: ListSamplesOptions): Sample[] {
    const limit = checkLimit(opts.limit, 200);
    const rows =
      opts.step === undefined
        ? this.sql.all<SampleRow>(
            'SELECT * FROM samples WHERE run_id = ? ORDER BY step DESC, idx LIMIT ?',
            runId,
            limit,
          )
        : this.sql.all<SampleRow>(
            'SELECT * FROM samples WHERE run_id = ? AND step = ? ORDER BY idx LIMIT ?',
            runId,
            checkInt(opts.step, 'step'),
            limit,
          );
    return rows.map(toSample);
  }

  /** Forgets a run's samples of steps >= fromStep. */
  deleteFrom(runId: string, fromStep: number): void {
    this.sql.run('DELETE FROM samples WHERE run_id = ? AND step >= ?', runId, fromStep);
  }

  /** Copies the samples of steps < upToStep from one run to another, replacing the target's; returns the count. */
  copy(fromRunId: string, toRunId: string, upToStep: number): number {
    return this.sql.run(
      `INSERT INTO samples (run_id, step, idx, prompt, text, created_at)
       SELECT @to, step, idx, prompt, text, created_at FROM samples WHERE run_id = @from AND step < @step ${ON_CONFLICT}`,
      { from: fromRunId, to: toRunId, step: upToStep },
    ).changes;
  }
}

function toSample(r: SampleRow): Sample {
  return { runId: r.run_id, step: r.step, idx: r.idx, prompt: r.prompt, text: r.text, createdAt: r.created_at };
}
