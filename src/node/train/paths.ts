import path from 'node:path';

/** A run's folder in the workspace: runs/<id>/ (checkpoints/, control). */
export const runDirOf = (home: string, runId: string): string => path.join(home, 'runs', runId);
