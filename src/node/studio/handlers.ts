/**
 * Every domain's handlers, registered once. The `satisfies` makes a request of the contract (src/shared/contract.ts)
 * without code a compile error, and the registry refuses a name declared twice.
 */
import type { HandlerName } from '../../shared/contract';
import { appHandlers } from '../app/handlers';
import { chatsHandlers } from '../chats/handlers';
import { checkpointsHandlers } from '../checkpoints/handlers';
import { datasetsHandlers } from '../datasets/handlers';
import { evalsHandlers } from '../evals/handlers';
import { generationHandlers } from '../generation/handlers';
import { modelsHandlers } from '../models/handlers';
import { runsHandlers } from '../runs/handlers';
import { Registry, type HandlerDefs } from './registry';

const domains = [
  appHandlers,
  datasetsHandlers,
  modelsHandlers,
  generationHandlers,
  chatsHandlers,
  checkpointsHandlers,
  evalsHandlers,
  runsHandlers,
];

// compile-time: every request of the contract has a declaration
void ({
  ...appHandlers,
  ...datasetsHandlers,
  ...modelsHandlers,
  ...generationHandlers,
  ...chatsHandlers,
  ...checkpointsHandlers,
  ...evalsHandlers,
  ...runsHandlers,
} satisfies HandlerDefs<HandlerName>);

/** The studio's registry: IPC, HTTP and the CLI dispatch through it; tests may add a handler to it. */
export const studioRegistry = new Registry(...domains);
