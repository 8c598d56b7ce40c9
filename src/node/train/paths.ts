import { Workspace } from '../workspace';

/** A run's folder in the workspace: runs/<id>/ (checkpoints/, control). */
export const runDirOf = (home: string, runId: string): string => new Workspace(home).run(runId);

/** A config's init_path: absolute as given, relative to the workspace otherwise (presets name `models/gpt2`). */
export const initPathOf = (home: string, p: string): string => new Workspace(home).initPath(p);
