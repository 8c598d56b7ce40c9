/**
 * Messages between the Studio service (parent) and a training worker process. Discriminated unions; every
 * worker message carries a per-run sequence number so the parent can order and de-duplicate them.
 */
import type { PlainError } from '../../shared/errors';
import type { RunConfig } from '../../shared/run-config';
import type { GuardEvent, StepEvent, TimingEvent, TrainerState } from '../../core/train/trainer';
import type { RunAttempt } from '../../shared/run-facts';

export type ParentMessage =
  | {
      type: 'start';
      runId: string;
      home: string;
      config: RunConfig;
      /** checkpoint folder to resume from */
      resumeFrom?: string;
      /** data parallel (config.world_size > 1): this process's rank; 0 when absent */
      rank?: number;
      /** data parallel: the communicator id that rank 0 made (absent for rank 0, which makes it) */
      commId?: string;
      /** data parallel: the engine rank 0 resolved (config.engine may be "auto"), which every rank must run */
      engine?: string;
      /** data parallel: the communicator rank 0 makes; "mpi-world" joins the MPI job the process runs in */
      commKind?: CommKind;
      /** multi-node: this node's place, and what the ranks other than 0 need beside the model they receive from rank 0 */
      nodes?: NodeStart;
    }
  | { type: 'stop' }
  | { type: 'pause' };

export type WorkerMessage = { seq: number } & (
  | {
      type: 'ready';
      engine: string;
      params: number;
      modelConfig: Record<string, number>;
      resumedAt: number;
      attempt: RunAttempt;
    }
  | ({ type: 'step' } & StepEvent)
  | { type: 'eval'; step: number; name: 'val/loss' | 'hellaswag/acc_norm'; value: number }
  | { type: 'sample'; step: number; prompt: string; samples: string[] }
  | {
      type: 'checkpoint';
      step: number;
      dir: string;
      sizeBytes: number;
      valLoss: number | null;
      valLossStep: number | null;
    }
  | ({ type: 'guard' } & GuardEvent)
  | ({ type: 'timing' } & TimingEvent)
  /** system metrics (sys/cpu_pct, sys/gpu0/util_pct, ...; see train/system-metrics.ts) sampled at `time` (ms) */
  | { type: 'system'; step: number; time: number; values: Record<string, number> }
  | { type: 'log'; level: 'info' | 'warn' | 'error'; message: string }
  | { type: 'done'; status: 'done' | 'stopped' | 'paused'; step: number }
  | { type: 'error'; error: PlainError }
  /** data parallel: rank 0's communicator id, which the parent hands to the other ranks (not recorded) */
  | { type: 'comm-id'; id: string; engine: string }
);

export type CommKind = 'shm' | 'nccl' | 'mpi' | 'mpi-world';

/**
 * A multi-node run's start, for each of its ranks. Only rank 0 reads the starting point from disk (node 0's
 * workspace owns the run); every other rank builds the model from what rank 0 broadcasts: the weights, and on a
 * resume (when `trainer` is set) the AdamW state.
 */
export interface NodeStart {
  nnodes: number;
  nodeRank: number;
  /** this node's ranks: first .. first + local - 1 */
  first: number;
  local: number;
  /**
   * the local rank of this node's first rank on its host: 0 with torchrun-style flags; under mpirun or srun, where
   * each process is a one-rank node, the launcher's local rank (which GPU it takes)
   */
  localBase: number;
  /** on a resume: the checkpoint's trainer state (step, tokens, loader position, guard) */
  trainer?: TrainerState;
}

/** Distributes Omit over a union (plain Omit collapses it). */
export type WithoutSeq<T> = T extends unknown ? Omit<T, 'seq'> : never;
export type WorkerPayload = WithoutSeq<WorkerMessage>;

/** The file a run's worker polls between steps: "stop" or "pause" written there by any process. */
export const CONTROL_FILE = 'control';
