/** Checkpoint requests (see src/node/checkpoints/handlers.ts). */
import type { Run } from '../../node/store';
import type { CheckpointDeleted, CheckpointEntry, CheckpointExported } from '../../node/studio/checkpoints';

export type CheckpointsHandlers = {
  'checkpoints-list': (arg?: { runId?: string }) => Promise<CheckpointEntry[]>;
  'checkpoints-delete': (arg: { runId: string; step: number }) => Promise<CheckpointDeleted>;
  'checkpoints-export': (arg: { runId: string; step: number; dest: string; overwrite?: boolean }) => Promise<CheckpointExported>;
  'checkpoints-branch': (arg: { runId: string; step: number; name?: string; start?: boolean }) => Promise<Run>;
};
