/**
 * Workspace settings: `<home>/settings.json` (the Hugging Face endpoint and token, the allowed folders, and whether
 * private URLs may be fetched). The file is written atomically with owner-only permissions, since it may hold a
 * token; the token is never sent back to a client.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ErrorCode, StudioError } from '../../shared/errors';
import { writeFileAtomic } from '../fsutil';
import type { PublicSettings, SettingsPatch } from '../../shared/api/app';
import { Workspace } from '../workspace';
export type { PublicSettings, SettingsPatch };

export interface Settings {
  /** a Hugging Face endpoint or mirror, e.g. https://hf-mirror.com; unset = HF_ENDPOINT, else huggingface.co */
  hfEndpoint?: string;
  hfToken?: string;
  /**
   * folders besides the workspace that requests from the browser (serve) or the desktop window may read and write,
   * as real paths; the CLI is not limited (see src/node/confine/paths.ts)
   */
  allowedFolders?: string[];
  /** such requests may fetch loopback and private addresses (a mirror on the local network); default false */
  allowPrivateUrls?: boolean;
}

/** The most allowed folders kept. */
export const MAX_ALLOWED_FOLDERS = 100;

/**
 * Folders that cannot be allowed, nor anything inside them: the file-system root (it would allow everything), and
 * the system's configuration, devices, kernel interfaces and boot files, which no dataset or model lives in.
 */
const SYSTEM_FOLDERS = ['/etc', '/proc', '/sys', '/dev', '/boot', '/run'];

export const settingsFile = (home: string): string => new Workspace(home).settings;

export function readSettings(home: string): Settings {
  const file = settingsFile(home);
  if (!fs.existsSync(file)) return {};
  try {
    const v = JSON.parse(fs.readFileSync(file, 'utf8')) as Settings;
    return {
      hfEndpoint: typeof v.hfEndpoint === 'string' ? v.hfEndpoint : undefined,
      hfToken: typeof v.hfToken === 'string' ? v.hfToken : undefined,
      allowedFolders: Array.isArray(v.allowedFolders)
        ? v.allowedFolders.filter((f): f is string => typeof f === 'string' && path.isAbsolute(f))
        : undefined,
      allowPrivateUrls: v.allowPrivateUrls === true ? true : undefined,
    };
  } catch (e) {
    throw new StudioError(
      ErrorCode.BAD_CONFIG,
      `Settings file ${file} is not valid JSON.`,
      'Fix it, or delete it to return to the defaults.',
      { cause: e },
    );
  }
}

export function publicSettings(s: Settings): PublicSettings {
  return {
    hfEndpoint: s.hfEndpoint ?? null,
    hfTokenSet: Boolean(s.hfToken),
    allowedFolders: s.allowedFolders ?? [],
    allowPrivateUrls: s.allowPrivateUrls === true,
  };
}

/**
 * One folder to allow, checked: absolute (or `~/...`), existing, a folder, and not the root or a system folder.
 * Returns its real path, so that a symlinked folder is allowed where it really is.
 */
export function checkAllowedFolder(raw: string): string {
  const given = raw.trim();
  const expanded = given === '~' || given.startsWith('~/') ? path.join(os.homedir(), given.slice(1)) : given;
  if (!path.isAbsolute(expanded)) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `The allowed folder "${raw}" is not an absolute path.`,
      'Give the full path, e.g. /data/corpora or ~/models.',
    );
  }
  let real: string;
  try {
    real = fs.realpathSync(expanded);
  } catch (e) {
    throw new StudioError(
      ErrorCode.FILE_NOT_FOUND,
      `The allowed folder "${expanded}" does not exist (${(e as NodeJS.ErrnoException).code ?? 'error'}).`,
      'Create it first, or check the path.',
      { cause: e },
    );
  }
  if (!fs.statSync(real).isDirectory()) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `"${real}" is a file; an allowed folder must be a folder.`,
      `Allow its folder instead: ${path.dirname(real)}`,
    );
  }
  const system = SYSTEM_FOLDERS.find((f) => real === f || real.startsWith(f + path.sep));
  if (real === path.parse(real).root || system !== undefined) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `"${real}" cannot be an allowed folder: ${system ? `it is part of the system folder ${system}` : 'it is the root of the file system, which would allow every file'}.`,
      'Allow the folder that holds your data or models, e.g. /data/corpora.',
    );
  }
  return real;
}

/** Applies a change: a value sets it, null clears it, undefined leaves it. */
export function updateSettings(home: string, patch: SettingsPatch): Settings {
  const s = readSettings(home);
  if (patch.hfEndpoint !== undefined) {
    if (patch.hfEndpoint === null || patch.hfEndpoint === '') delete s.hfEndpoint;
    else {
      let u: URL;
      try {
        u = new URL(patch.hfEndpoint);
      } catch {
        throw new StudioError(
          ErrorCode.BAD_ARGUMENT,
          `"${patch.hfEndpoint}" is not a URL.`,
          'Give the endpoint as https://host (e.g. https://hf-mirror.com).',
        );
      }
      if (u.protocol !== 'https:' && u.protocol !== 'http:')
        throw new StudioError(
          ErrorCode.BAD_ARGUMENT,
          `The endpoint must be http or https, not ${u.protocol}`,
          'Give the endpoint as https://host.',
        );
      s.hfEndpoint = u.href.replace(/\/$/, '');
    }
  }
  if (patch.hfToken !== undefined) {
    if (patch.hfToken === null || patch.hfToken === '') delete s.hfToken;
    else s.hfToken = patch.hfToken;
  }
  if (patch.allowedFolders !== undefined) {
    const list = patch.allowedFolders ?? [];
    if (list.length > MAX_ALLOWED_FOLDERS) {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `${list.length} allowed folders is too many (at most ${MAX_ALLOWED_FOLDERS}).`,
        'Allow a common parent folder instead.',
      );
    }
    // a folder already allowed stays as it is, even while it is gone (an unplugged disk), so that the others can change
    const kept = new Set(s.allowedFolders ?? []);
    const folders = [...new Set(list.map((f) => (kept.has(f) ? f : checkAllowedFolder(f))))];
    if (folders.length === 0) delete s.allowedFolders;
    else s.allowedFolders = folders;
  }
  if (patch.allowPrivateUrls !== undefined) {
    if (patch.allowPrivateUrls === true) s.allowPrivateUrls = true;
    else delete s.allowPrivateUrls;
  }
  const file = settingsFile(home);
  writeFileAtomic(file, JSON.stringify(s, null, 2) + '\n');
  fs.chmodSync(file, 0o600);
  return s;
}
