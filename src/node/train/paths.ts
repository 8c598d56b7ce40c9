import path from 'node:path';

/** A run's folder in the workspace: runs/<id>/ (checkpoints/, control). */
export const runDirOf = (home: string, runId: string): string => path.join(home, 'runs', runId);

/** A config's init_path: absolute as given, relative to the workspace otherwise (presets name `models/gpt2`). */
export const initPathOf = (home: string, p: string): string => path.resolve(home, p);
