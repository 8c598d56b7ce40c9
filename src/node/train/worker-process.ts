// Entry of a training worker process in the built app (out/main/train-worker.js): the same worker as
// worker-entry.mjs, bundled, so that neither tsx nor the TypeScript sources are needed at run time.
import { startWorkerProcess } from './worker-main';

await startWorkerProcess();
