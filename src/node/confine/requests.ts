/**
 * What a request from outside the process may reach. The browser (`gpt2-studio serve`) and the desktop window (IPC)
 * both send their requests through the handler registry (./registry.ts), which passes each one through its handler's
 * `confine`:
 * every path it names must lie in the workspace or an allowed folder (Settings → Allowed folders), after symlinks
 * (src/node/confine/paths.ts), and every URL it names must be http(s) and, unless allowPrivateUrls is on, public
 * (src/node/confine/urls.ts). The CLI goes through the same registry and validation, but acts with its user's own
 * rights and is not confined.
 *
 * Each handler says beside its code (the `confine` of its declaration in its domain's handlers.ts) which of its
 * fields are paths or URLs; the helpers here are what those declarations use.
 */
import path from 'node:path';
import type { ModelTarget } from '../../shared/models';
import { confinePath, workspaceConfinement, type Confinement } from './paths';
import { readSettings, settingsFile, type Settings } from '../app/settings';
import type { UrlPolicy } from './urls';

/** The limits of one request, from the workspace's settings as they are when it arrives. */
export interface RequestLimits {
  paths: Confinement;
  urls: UrlPolicy;
}

/**
 * The limits for requests on the workspace `home`. A settings file that cannot be read leaves only the workspace and
 * public URLs, rather than failing every request (the Settings page can then rewrite it).
 */
export function requestLimits(home: string): RequestLimits {
  let s: Settings;
  try {
    s = readSettings(home);
  } catch {
    s = {};
  }
  return {
    paths: workspaceConfinement(home, s.allowedFolders ?? [], [path.basename(settingsFile(home))]),
    urls: { allowPrivate: s.allowPrivateUrls === true },
  };
}

/** A model target: a weights file or folder (and the links in it) must be inside. */
export function target<T extends ModelTarget | undefined>(t: T, limits: RequestLimits, what: string): T {
  if (t === undefined || !('weightsPath' in t)) return t;
  return { ...t, weightsPath: confinePath(t.weightsPath, limits.paths, what, { children: true }) } as T;
}

/** A run config's init_path (weights or a checkpoint; relative to the workspace, as runs take it). */
export function initPath<T>(config: T, limits: RequestLimits, home: string): T {
  if (config === null || typeof config !== 'object') return config;
  const p = (config as { init_path?: unknown }).init_path;
  // checked, not rewritten: the run records it resolved in the workspace as it always has
  if (typeof p === 'string' && p.trim() !== '')
    confinePath(path.resolve(home, p), limits.paths, 'init_path', { children: true });
  return config;
}
