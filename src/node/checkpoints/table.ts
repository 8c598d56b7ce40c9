/**
 * The checkpoints table: one row per checkpoint folder a run wrote, kept in step with the run's
 * last_checkpoint_step. The folders themselves are the caller's to write and remove.
 */
import { withRun } from '../runs/runs-table';
import { type Sql, checkInt, checkText } from '../store/sql';
import type { AddCheckpointInput, Checkpoint, CheckpointRow } from '../store/types';

export class CheckpointsTable {
  constructor(
    private readonly sql: Sql,
    private readonly now: () => number,
  ) {}

  add(runId: string, input: AddCheckpointInput): Checkpoint {
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
    this.sql.immediate(() => {
      withRun(runId, () =>
        this.sql.run(
          `INSERT INTO checkpoints (run_id, step, path, size_bytes, val_loss, val_loss_step, hellaswag, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (run_id, step) DO UPDATE SET path = excluded.path, size_bytes = excluded.size_bytes,
             val_loss = excluded.val_loss, val_loss_step = excluded.val_loss_step, hellaswag = excluded.hellaswag,
             created_at = excluded.created_at`,
          row.run_id,
          row.step,
          row.path,
          row.size_bytes,
          row.val_loss,
          row.val_loss_step,
          row.hellaswag,
          row.created_at,
        ),
      );
      this.syncLastCheckpoint(runId);
    });
    return toCheckpoint(row);
  }

  list(runId?: string): Checkpoint[] {
    const rows =
      runId === undefined
        ? this.sql.all<CheckpointRow>('SELECT * FROM checkpoints ORDER BY created_at DESC, run_id, step DESC')
        : this.sql.all<CheckpointRow>('SELECT * FROM checkpoints WHERE run_id = ? ORDER BY step', runId);
    return rows.map(toCheckpoint);
  }

  setHellaswag(runId: string, step: number, accNorm: number): boolean {
    return (
      this.sql.run(
        'UPDATE checkpoints SET hellaswag = ? WHERE run_id = ? AND step = ?',
        accNorm,
        runId,
        checkInt(step, 'step'),
      ).changes > 0
    );
  }

  delete(runId: string, step: number): boolean {
    return this.sql.immediate((): boolean => {
      const deleted =
        this.sql.run('DELETE FROM checkpoints WHERE run_id = ? AND step = ?', runId, checkInt(step, 'step')).changes >
        0;
      if (deleted) this.syncLastCheckpoint(runId);
      return deleted;
    });
  }

  private syncLastCheckpoint(runId: string): void {
    this.sql.run(
      'UPDATE runs SET last_checkpoint_step = (SELECT MAX(step) FROM checkpoints WHERE run_id = @id) WHERE id = @id',
      { id: runId },
    );
  }
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
