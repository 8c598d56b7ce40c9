import { mkdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { ErrorCode, StudioError } from '../shared/errors';

/** The folders every workspace holds (see DESIGN.md, "Runs, workers, storage"). */
export const WORKSPACE_SUBFOLDERS = ['datasets', 'runs', 'models', 'downloads'] as const;

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
        `Move or rename that file, or ${hint[0].toLowerCase()}${hint.slice(1)}`,
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
      `Move or rename that file, or ${hint[0].toLowerCase()}${hint.slice(1)}`,
    );
  }
}
