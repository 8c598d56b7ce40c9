// Entry of a model worker thread from the sources: registers the TypeScript loader, then loads model-worker.ts
// (the built app starts its bundle, out/main/model-worker.mjs, instead).
import { register } from 'tsx/esm/api';

register();
await import('./model-worker.ts');
