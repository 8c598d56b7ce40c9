/**
 * What a handler is given: the workspace and the services of one Studio (see ./index.ts). Handlers take this
 * interface rather than the Studio class, so that a domain's handlers depend on the services they call and nothing
 * else.
 */
import type { Store } from '../store';
import type { RunManager } from './runs';
import type { DatasetService } from './datasets';
import type { EvalService } from './evals';
import type { ModelService } from './models';
import type { GenerationService } from './generation';
import type { ChatService } from './chats';
import type { CheckpointService } from './checkpoints';
import type { CalibrationService } from './calibrate';

export interface StudioContext {
  /** absolute path of the workspace folder */
  readonly home: string;
  readonly store: Store;
  readonly runs: RunManager;
  readonly datasets: DatasetService;
  readonly evals: EvalService;
  readonly models: ModelService;
  readonly generation: GenerationService;
  readonly chats: ChatService;
  readonly checkpoints: CheckpointService;
  readonly calibration: CalibrationService;
}
