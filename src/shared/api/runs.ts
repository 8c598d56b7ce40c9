/** Run requests (see src/node/runs/handlers.ts). */
import type { FieldError } from '../run-config';
import type { Calibration } from '../estimate';
import type { TrainedShape } from '../planner';
import type { TrainingPreset } from '../../node/presets';
import type { CreateRunInput } from '../../node/studio/runs';
import type { Checkpoint, ListRunsFilter, LogEntry, MetricSeries, Run, Sample } from '../../node/store';

export type RunsHandlers = {
  'presets-list': () => Promise<TrainingPreset[]>;
  'config-validate': (arg: { config: unknown }) => Promise<FieldError[]>;
  'runs-create': (input: CreateRunInput) => Promise<Run>;
  'runs-list': (filter?: ListRunsFilter) => Promise<Run[]>;
  'runs-get': (arg: { id: string }) => Promise<Run>;
  'runs-stop': (arg: { id: string }) => Promise<Run>;
  'runs-pause': (arg: { id: string }) => Promise<Run>;
  'runs-resume': (arg: { id: string }) => Promise<Run>;
  'runs-delete': (arg: { id: string }) => Promise<void>;
  'runs-update': (arg: { id: string; name?: string; tags?: string[]; notes?: string }) => Promise<Run>;
  'runs-metrics': (arg: { id: string; names?: string[]; sinceStep?: number }) => Promise<Record<string, MetricSeries>>;
  'runs-logs': (arg: { id: string; afterSeq?: number; tail?: number }) => Promise<LogEntry[]>;
  'runs-samples': (arg: { id: string }) => Promise<Sample[]>;
  'runs-checkpoints': (arg: { id: string }) => Promise<Checkpoint[]>;
  'runs-calibrate': (arg: { config: unknown; measure?: boolean }) => Promise<Calibration | null>;
  'runs-shape': (arg: { config: unknown }) => Promise<TrainedShape>;
};
