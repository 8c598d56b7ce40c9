/**
 * The file picker's view of the machine the studio runs on (the desktop app, or the box behind `serve`): one
 * folder's entries at a time. Paths are resolved and checked; nothing is read but names, kinds and sizes.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ErrorCode, StudioError } from '../../shared/errors';
import { isWithin, resolveReal, type AllowedRoot } from '../confine/paths';
import type { FileEntry, FolderListing } from '../../shared/api/app';
export type { FileEntry, FolderListing };

/** A path as the picker gives it, made absolute: a leading `~` is the user's home folder. */
export function expandBrowsePath(raw: string): string {
  if (raw === '~' || raw.startsWith('~/') || raw.startsWith(`~${path.sep}`))
    return path.join(os.homedir(), raw.slice(1));
  return path.resolve(raw);
}

/** ".TXT", "txt", "*.txt" -> ".txt" */
function normalizeExtension(ext: string): string {
  const e = ext.trim().toLowerCase().replace(/^\*/, '');
  return e.startsWith('.') ? e : `.${e}`;
}

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

/**
 * Lists one folder: its sub-folders first, then its files, each sorted by name (natural order, case-insensitive).
 * `extensions` keeps only files with one of these endings (folders are always listed); hidden entries (a leading
 * dot) are left out unless `showHidden`. The path is resolved with path.resolve (a leading `~` is the home
 * folder); the default is the user's home folder. `home` (the workspace) is not used to resolve paths: the picker
 * browses the machine, not the workspace.
 *
 * With `roots` (the workspace and the allowed folders), the default is the first root, the listing names the roots,
 * and `parent` stops at the root the folder is in. It does not check the path: requests from outside are checked
 * before they get here (src/node/confine/requests.ts).
 */
export function browseFiles(
  home: string,
  arg?: { path?: string; extensions?: string[]; showHidden?: boolean },
  roots?: AllowedRoot[],
): FolderListing {
  void home;
  const raw = arg?.path?.trim();
  const target = raw ? expandBrowsePath(raw) : roots && roots.length > 0 ? roots[0]!.path : os.homedir();

  let st: fs.Stats;
  try {
    st = fs.statSync(target);
  } catch (e) {
    throw browseError(e, target);
  }
  if (!st.isDirectory()) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `"${target}" is a file, not a folder.`,
      `Open its folder instead: ${path.dirname(target)}`,
    );
  }
  let dirents: fs.Dirent[];
  try {
    dirents = fs.readdirSync(target, { withFileTypes: true });
  } catch (e) {
    throw browseError(e, target);
  }
  const exts = arg?.extensions?.filter((e) => e.trim() !== '').map(normalizeExtension);
  const entries: FileEntry[] = [];
  for (const d of dirents) {
    if (!arg?.showHidden && d.name.startsWith('.')) continue;
    const full = path.join(target, d.name);
    let kind: 'file' | 'dir' | null = d.isDirectory() ? 'dir' : d.isFile() ? 'file' : null;
    let size: number | undefined;
    if (d.isSymbolicLink() || kind === 'file') {
      // a link is listed as what it points to; a broken one is left out
      try {
        const s = fs.statSync(full);
        kind = s.isDirectory() ? 'dir' : s.isFile() ? 'file' : null;
        if (kind === 'file') size = s.size;
      } catch {
        kind = null;
      }
    }
    if (kind === null) continue;
    if (kind === 'file' && exts && exts.length > 0 && !exts.some((e) => d.name.toLowerCase().endsWith(e))) continue;
    entries.push(kind === 'file' ? { name: d.name, path: full, kind, size } : { name: d.name, path: full, kind });
  }
  entries.sort((a, b) =>
    a.kind !== b.kind
      ? a.kind === 'dir'
        ? -1
        : 1
      : collator.compare(a.name, b.name) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
  const parent = path.dirname(target);
  if (!roots) return { path: target, parent: parent === target ? null : parent, entries };
  return {
    path: target,
    parent: parent === target || !insideRoots(target, parent, roots) ? null : parent,
    entries,
    roots,
  };
}

/** Whether going up from `target` to `parent` stays inside a root (not from a root itself, nor out of all of them). */
function insideRoots(target: string, parent: string, roots: readonly AllowedRoot[]): boolean {
  try {
    const realTarget = resolveReal(target);
    if (roots.some((r) => r.path === realTarget)) return false;
    const realParent = resolveReal(parent);
    return roots.some((r) => isWithin(r.path, realParent));
  } catch {
    return false;
  }
}

function browseError(e: unknown, target: string): StudioError {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    const up = nearestExisting(path.dirname(target));
    return new StudioError(
      ErrorCode.NOT_FOUND,
      `No such folder: "${target}".`,
      `Check the path${up ? `; the nearest folder that exists is ${up}` : ''}.`,
      { cause: e },
    );
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `Permission denied (${code}): the folder "${target}" cannot be read.`,
      'Choose another folder, or give your user read access to this one.',
      { cause: e },
    );
  }
  return new StudioError(
    ErrorCode.INTERNAL,
    `${code ?? 'Error'} while listing "${target}": ${(e as Error)?.message ?? String(e)}`,
    'Choose another folder.',
    { cause: e },
  );
}

function nearestExisting(p: string): string | null {
  for (let cur = p; ; cur = path.dirname(cur)) {
    try {
      if (fs.statSync(cur).isDirectory()) return cur;
    } catch {
      // keep going up
    }
    if (path.dirname(cur) === cur) return null;
  }
}
