/** Run requests (see src/node/runs/handlers.ts). */
import type { FieldError } from '../run-config';
import type { PlainError } from '../errors';
import type { Calibration } from '../estimate';
import type { TrainedShape } from '../planner';
import type { Checkpoint, ListRunsFilter, LogEntry, MetricSeries, Run, Sample } from '../records';

export interface TrainingPreset {
  name: string;
  title: string;
  description: string;
  config: Record<string, unknown>;
}

export interface CreateRunInput {
  config: unknown;
  name?: string;
  /** the preset the config came from */
  preset?: string;
  tags?: string[];
  notes?: string;
  /** create the run without starting it */
  start?: boolean;
  /** create it even when the plan says it does not fit in this machine's memory */
  force?: boolean;
}

export interface StepEvent {
  step: number;
  loss: number;
  lr: number;
  norm: number;
  dtMs: number;
  tokensPerSec: number;
  mfu?: number;
  tokensSeen: number;
  /** true when the guard did not apply this update (a skip or a rollback) */
  skipped: boolean;
}

/** An action of the guard: every one is reported, logged and marked on the loss chart. */
export interface GuardEvent {
  step: number;
  action: 'skip' | 'rollback' | 'rebaseline';
  reason: string;
  /** rollback: the step whose weights were restored (the batches from it to `step` were skipped) */
  toStep?: number;
}

export type RunsHandlers = {
  'presets-list': () => Promise<TrainingPreset[]>;
  'config-validate': (arg: { config: unknown }) => Promise<FieldError[]>;
  /** null when the config's plan fits in this machine's memory now, else the error runs-create would give */
  'runs-check-memory': (arg: { config: unknown }) => Promise<PlainError | null>;
  'runs-create': (input: CreateRunInput) => Promise<Run>;
  'runs-list': (filter?: ListRunsFilter) => Promise<Run[]>;
  'runs-get': (arg: { id: string }) => Promise<Run>;
  'runs-start': (arg: { id: string }) => Promise<Run>;
  'runs-stop': (arg: { id: string }) => Promise<Run>;
  'runs-pause': (arg: { id: string }) => Promise<Run>;
  'runs-resume': (arg: { id: string }) => Promise<Run>;
  'runs-delete': (arg: { id: string }) => Promise<void>;
  'runs-update': (arg: { id: string; name?: string; tags?: string[]; notes?: string }) => Promise<Run>;
  'runs-metrics': (arg: { id: string; names?: string[]; sinceStep?: number }) => Promise<Record<string, MetricSeries>>;
  'runs-logs': (arg: { id: string; afterSeq?: number; tail?: number }) => Promise<LogEntry[]>;
  'runs-samples': (arg: { id: string }) => Promise<Sample[]>;
  'runs-checkpoints': (arg: { id: string }) => Promise<Checkpoint[]>;
  /** the run as one self-contained HTML page, and the file name to save it as */
  'runs-report': (arg: { id: string }) => Promise<{ html: string; fileName: string }>;
  'runs-calibrate': (arg: { config: unknown; measure?: boolean }) => Promise<Calibration | null>;
  'runs-shape': (arg: { config: unknown }) => Promise<TrainedShape>;
};
