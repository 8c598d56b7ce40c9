/** Checkpoint requests (see src/node/checkpoints/handlers.ts). */
import type { Checkpoint, Run, RunStatus } from '../records';

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

export interface CheckpointDeleted {
  deleted: boolean;
  /** what keep_last does for this run from now on, in one sentence for the user */
  note: string;
}

export interface CheckpointExported {
  /** the export folder (absolute) */
  dir: string;
  modelFile: string;
  configFile: string;
}

export type CheckpointsHandlers = {
  'checkpoints-list': (arg?: { runId?: string }) => Promise<CheckpointEntry[]>;
  'checkpoints-delete': (arg: { runId: string; step: number }) => Promise<CheckpointDeleted>;
  'checkpoints-export': (arg: {
    runId: string;
    step: number;
    dest: string;
    overwrite?: boolean;
  }) => Promise<CheckpointExported>;
  'checkpoints-branch': (arg: { runId: string; step: number; name?: string; start?: boolean }) => Promise<Run>;
};
