/**
 * What a handler is given: the workspace and the services of one Studio (see ./index.ts). Handlers take this
 * interface rather than the Studio class, so that a domain's handlers depend on the services they call and nothing
 * else.
 */
import type { Store } from '../store';
import type { Workspace } from '../workspace';
import type { RunManager } from '../runs/manager';
import type { DatasetService } from '../datasets/service';
import type { EvalService } from '../evals/service';
import type { ModelService } from '../models/service';
import type { GenerationService } from '../generation/service';
import type { ChatService } from '../chats/service';
import type { CheckpointService } from '../checkpoints/service';
import type { CalibrationService } from '../runs/calibrate';

export interface StudioContext {
  /** absolute path of the workspace folder */
  readonly home: string;
  /** every path of the workspace */
  readonly workspace: Workspace;
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
