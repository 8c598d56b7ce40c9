/**
 * Confines the paths that a request from outside the process (the browser over HTTP, the renderer over IPC) may
 * name: the workspace and the folders the user allowed in Settings. The check is made on the path the kernel will
 * reach, after every symlink, so that neither `..` nor a link inside an allowed folder leads out.
 *
 * - A path that exists is resolved with fs.realpathSync.
 * - A path that does not exist yet (an export folder, a new file) is resolved component by component: the nearest
 *   existing parent's real path, with a dangling symlink on the way followed to where it points (a write through it
 *   would create its target).
 * - A hard link is another name for the same file, not a pointer: there is nothing to resolve, and one inside an
 *   allowed folder is allowed. Reading through it gives nothing its maker could not read already (Linux's
 *   fs.protected_hardlinks, on by default, lets a user hard-link only files they own or can read and write), and the
 *   studio writes files by renaming a new file into place, which replaces the link instead of writing through it.
 *
 * What is left: a folder swapped for a symlink between the check and the use (a race that needs write access to an
 * allowed folder) is not caught.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode, StudioError } from '../../shared/errors';
import type { AllowedRoot } from '../../shared/api/app';
export type { AllowedRoot };

/** The most symlinks followed while resolving one path (Linux's own limit is 40). */
const MAX_LINKS = 40;

function errnoOf(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * The real path the kernel reaches through `p` (absolute, or taken from the current folder), even where its last
 * components do not exist yet. `p` is first made absolute with path.resolve, so a `..` in it is taken by name, as
 * the services take it; a `..` inside a symlink's target is taken physically, as the kernel takes it.
 */
export function resolveReal(p: string): string {
  const abs = path.resolve(p);
  try {
    return fs.realpathSync(abs);
  } catch (e) {
    const code = errnoOf(e);
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw unreadable(abs, e);
  }
  // Some component is missing: walk the components, following each symlink (dangling ones too).
  const root = path.parse(abs).root;
  const pending = abs
    .slice(root.length)
    .split(path.sep)
    .filter((s) => s !== '');
  let cur = root;
  let links = 0;
  while (pending.length > 0) {
    const name = pending.shift()!;
    if (name === '.') continue;
    if (name === '..') {
      cur = path.dirname(cur);
      continue;
    }
    const next = path.join(cur, name);
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(next);
    } catch (e) {
      const code = errnoOf(e);
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw unreadable(next, e);
    }
    if (st?.isSymbolicLink()) {
      if (++links > MAX_LINKS) throw tooManyLinks(abs);
      let target: string;
      try {
        target = fs.readlinkSync(next);
      } catch (e) {
        throw unreadable(next, e);
      }
      if (path.isAbsolute(target)) cur = path.parse(target).root;
      pending.unshift(...target.split(path.sep).filter((s) => s !== ''));
      continue;
    }
    cur = next;
  }
  return cur;
}

function unreadable(p: string, e: unknown): StudioError {
  const code = errnoOf(e) ?? 'error';
  if (code === 'ELOOP') return tooManyLinks(p);
  return new StudioError(
    ErrorCode.BAD_ARGUMENT,
    `Cannot resolve "${p}" (${code}).`,
    'Check the path, and that your user may read the folders on the way to it.',
    { cause: e },
  );
}

function tooManyLinks(p: string): StudioError {
  return new StudioError(
    ErrorCode.BAD_ARGUMENT,
    `Too many symbolic links while resolving "${p}" (more than ${MAX_LINKS}; a loop?).`,
    'Give the path without the looping link.',
  );
}

/** Whether `p` is `root` or lies under it (both real, absolute paths). */
export function isWithin(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (rel !== '..' && !rel.startsWith('..' + path.sep) && !path.isAbsolute(rel));
}

/** Where requests may go: the allowed folders, less a few files in them that hold secrets. */
export interface Confinement {
  roots: AllowedRoot[];
  /** real paths of files inside the roots that requests may not name (the settings file, which holds the HF token) */
  excluded: string[];
}

/**
 * The folders requests may use: the workspace first, then the allowed folders, each at its real path; an allowed
 * folder that is gone (an unplugged disk) is left out until it is back. `excludedNames` are files of the workspace
 * that stay out of reach (settings.json: its HF token is never sent to a client).
 */
export function workspaceConfinement(
  home: string,
  allowedFolders: readonly string[] = [],
  excludedNames: readonly string[] = [],
): Confinement {
  const ws = resolveReal(home);
  const roots: AllowedRoot[] = [{ path: ws, label: 'the workspace' }];
  for (const f of allowedFolders) {
    let real: string;
    try {
      real = fs.realpathSync(f);
    } catch {
      continue;
    }
    if (!roots.some((r) => r.path === real)) roots.push({ path: real, label: 'an allowed folder' });
  }
  return { roots, excluded: excludedNames.map((n) => path.join(ws, n)) };
}

/** "the workspace /w and the allowed folders /a, /b" */
export function describeRoots(roots: readonly AllowedRoot[]): string {
  const ws = roots.filter((r) => r.label === 'the workspace').map((r) => r.path);
  const others = roots.filter((r) => r.label !== 'the workspace').map((r) => r.path);
  const parts: string[] = [];
  if (ws.length > 0) parts.push(`the workspace ${ws.join(', ')}`);
  if (others.length > 0) parts.push(`the allowed folder${others.length === 1 ? '' : 's'} ${others.join(', ')}`);
  else parts.push('no allowed folders');
  return parts.join(' and ');
}

/**
 * Checks that `p` leads inside one of the roots after every symlink, and returns it made absolute (path.resolve),
 * the form the services open. `what` names the field in the message (e.g. "models-import path"). With `children`,
 * a folder's own entries that are symlinks must stay inside too (a model folder whose model.safetensors links out).
 * Throws FORBIDDEN with the path, where it leads, the allowed roots and the fix.
 */
export function confinePath(p: string, c: Confinement, what: string, opts: { children?: boolean } = {}): string {
  const abs = path.resolve(p);
  checkReal(abs, resolveReal(abs), c, what);
  if (opts.children) {
    let entries: fs.Dirent[] = [];
    try {
      if (fs.statSync(abs).isDirectory()) entries = fs.readdirSync(abs, { withFileTypes: true });
    } catch {
      // missing or unreadable: the service says so in its own words
    }
    for (const e of entries) {
      if (!e.isSymbolicLink()) continue;
      const child = path.join(abs, e.name);
      checkReal(child, resolveReal(child), c, what);
    }
  }
  return abs;
}

function checkReal(abs: string, real: string, c: Confinement, what: string): void {
  const via = real !== abs ? ` (it leads to "${real}")` : '';
  if (c.excluded.includes(real)) {
    throw new StudioError(
      ErrorCode.FORBIDDEN,
      `The ${what} "${abs}"${via} is the studio's own settings file, which no request may read or write.`,
      'Pick another file; change settings on the Settings page.',
    );
  }
  if (c.roots.some((r) => isWithin(r.path, real))) return;
  throw new StudioError(
    ErrorCode.FORBIDDEN,
    `The ${what} "${abs}"${via} is outside the folders the studio may use: ${describeRoots(c.roots)}.`,
    'Add the folder in Settings → Allowed folders (or move the file into the workspace), then try again.',
  );
}
