// Entry of a tokenizer worker thread. Worker threads start as plain Node, without the tsx loader that runs the
// rest of the studio from TypeScript sources, so this small JavaScript file registers tsx in the worker first and
// then loads the real worker module (tokenize-worker.ts). It works the same under vitest, bin/gpt2-studio.mjs and
// bin/run-ts.mjs.
import { register } from 'tsx/esm/api';

register();
await import('./tokenize-worker.ts');
