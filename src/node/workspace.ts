import { mkdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { ErrorCode, StudioError } from '../shared/errors';

/** The folders every workspace holds (see docs/ARCHITECTURE.md, "The workspace"). */
export const WORKSPACE_SUBFOLDERS = ['datasets', 'runs', 'models', 'downloads'] as const;

/**
 * Every path of a workspace, in one place: the only code that knows the layout of the folder. Built once from the
 * home (resolveHome) by the Studio and passed down; the older helpers (runDirOf, datasetDir, modelsDir, ...) answer
 * through it.
 *
 * ```
 * <home>/studio.db                     runs, metrics, logs, samples, checkpoints, evals, chats (SQLite)
 * <home>/settings.json                 HF endpoint and token, allowed folders, private URLs
 * <home>/runs/<runId>/                 a run: config, control file, logs of its workers
 * <home>/runs/<runId>/checkpoints/step_NNNNNN/
 * <home>/datasets/<id>/                manifest.json and token shards; .<id>.partial while preparing
 * <home>/datasets/hellaswag/hellaswag_val.jsonl
 * <home>/downloads/<id>/               source files kept for a resumed download
 * <home>/models/<id>/                  imported GPT-2 weights
 * ```
 */
export class Workspace {
  constructor(readonly home: string) {}

  get database(): string {
    return join(this.home, 'studio.db');
  }
  get settings(): string {
    return join(this.home, 'settings.json');
  }
  get runs(): string {
    return join(this.home, 'runs');
  }
  run(runId: string): string {
    return join(this.runs, runId);
  }
  checkpoints(runId: string): string {
    return join(this.run(runId), 'checkpoints');
  }
  get datasets(): string {
    return join(this.home, 'datasets');
  }
  dataset(id: string): string {
    return join(this.datasets, id);
  }
  /** where a dataset is written while it is prepared (renamed to dataset(id) when it is complete) */
  partialDataset(id: string): string {
    return join(this.datasets, `.${id}.partial`);
  }
  downloads(id: string): string {
    return join(this.home, 'downloads', id);
  }
  /** the HellaSwag validation file that `prepare hellaswag` writes */
  get hellaswagData(): string {
    return join(this.dataset('hellaswag'), 'hellaswag_val.jsonl');
  }
  get models(): string {
    return join(this.home, 'models');
  }
  model(id: string): string {
    return join(this.models, id);
  }
  /** a run config's init_path: absolute as given, relative to the workspace otherwise (presets name `models/gpt2`) */
  initPath(p: string): string {
    return resolve(this.home, p);
  }
}

export interface ResolveHomeOptions {
  /** the value of a `--home` flag, if one was given */
  flag?: string;
  /** the environment to read GPT2_STUDIO_HOME from (default: process.env) */
  env?: NodeJS.ProcessEnv;
  /** Electron's `app.getPath('userData')`, when running under Electron */
  electronUserData?: string;
}

/**
 * Resolves the workspace folder once, in this order: the `--home` flag, GPT2_STUDIO_HOME, Electron's userData
 * folder, else `~/.gpt2-studio`. Creates it and its subfolders, and returns its absolute path. The caller passes
 * the result down; nothing else decides where the workspace is.
 */
export function resolveHome(opts: ResolveHomeOptions = {}): string {
  const env = opts.env ?? process.env;
  const candidates: Array<[string | undefined, string]> = [
    [opts.flag, '--home'],
    [env.GPT2_STUDIO_HOME, 'GPT2_STUDIO_HOME'],
    [opts.electronUserData, "Electron's userData folder"],
  ];
  let home = join(homedir(), '.gpt2-studio');
  let source = 'the default (~/.gpt2-studio)';
  for (const [value, from] of candidates) {
    if (value !== undefined && value.trim() !== '') {
      home = value;
      source = from;
      break;
    }
  }
  home = resolve(expandTilde(home));
  ensureFolder(home, source);
  for (const sub of WORKSPACE_SUBFOLDERS) ensureFolder(join(home, sub), source);
  return home;
}

/** `~` and `~/x` become the user's home folder (a quoted value in an env file is not expanded by the shell). */
function expandTilde(p: string): string {
  if (p === '~') return homedir();
  if (p.startsWith('~/') || p.startsWith('~\\')) return join(homedir(), p.slice(2));
  return p;
}

function ensureFolder(dir: string, source: string): void {
  const hint = 'Choose a writable folder with --home DIR or the GPT2_STUDIO_HOME environment variable.';
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTDIR') {
      throw new StudioError(
        ErrorCode.BAD_CONFIG,
        `The workspace folder "${dir}" (from ${source}) cannot be created: a file with that name is in the way.`,
        `Move or rename that file, or ${hint[0]!.toLowerCase()}${hint.slice(1)}`,
        { cause: e },
      );
    }
    throw new StudioError(
      ErrorCode.BAD_CONFIG,
      `The workspace folder "${dir}" (from ${source}) cannot be created: ${code ?? String(e)}.`,
      hint,
      { cause: e },
    );
  }
  // mkdir with recursive: true succeeds silently when the path exists, even when it is a file on some platforms.
  if (!statSync(dir).isDirectory()) {
    throw new StudioError(
      ErrorCode.BAD_CONFIG,
      `The workspace path "${dir}" (from ${source}) is a file, not a folder.`,
      `Move or rename that file, or ${hint[0]!.toLowerCase()}${hint.slice(1)}`,
    );
  }
}
