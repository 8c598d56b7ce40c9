/**
 * Checkpoints across runs: the list (with val loss, HellaSwag, size), delete (aware of keep_last), export to an
 * HF folder, and "resume from here": a new run that continues from a checkpoint, leaving the original untouched.
 */
import { ErrorCode, StudioError } from '../../shared/errors';
import type { Checkpoint, Run, RunStatus, Store } from '../store';
import type { RunManager } from './runs';

export interface CheckpointEntry extends Checkpoint {
  runName: string;
  runStatus: RunStatus;
  /** the run's keep_last (0 = keep all) */
  keepLast: number;
  /** the run's newest checkpoint (resume continues from it) */
  latest: boolean;
  /** trained on an SFT dataset */
  sft: boolean;
}

const notBuilt = () => new StudioError(ErrorCode.INTERNAL, 'Checkpoint actions are not built yet.', '');

export class CheckpointService {
  constructor(
    private readonly home: string,
    private readonly store: () => Store,
    private readonly runs: () => RunManager,
  ) {}

  list(arg?: { runId?: string }): CheckpointEntry[] {
    void arg;
    void this.home;
    void this.store;
    throw notBuilt();
  }

  remove(arg: { runId: string; step: number }): { deleted: boolean } {
    void arg;
    throw notBuilt();
  }

  export(arg: { runId: string; step: number; dest: string; overwrite?: boolean }): { dir: string; modelFile: string; configFile: string } {
    void arg;
    throw notBuilt();
  }

  branch(arg: { runId: string; step: number; name?: string; start?: boolean }): Run {
    void arg;
    void this.runs;
    throw notBuilt();
  }
}
