// Entry of a training worker process: loads the TypeScript sources through tsx, then starts the worker.
import { register } from 'tsx/esm/api';

register();
const { startWorkerProcess } = await import('./worker-main.ts');
await startWorkerProcess();
