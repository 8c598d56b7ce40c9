/** Model requests (see src/node/models/handlers.ts). */
import type { ModelEntry } from '../models';

export type ModelsHandlers = {
  'models-list': () => Promise<ModelEntry[]>;
  'models-import': (arg: { path: string; name?: string }) => Promise<ModelEntry>;
  'models-remove': (arg: { id: string }) => Promise<{ removed: boolean }>;
};
