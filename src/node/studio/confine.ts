/**
 * What a request from outside the process may reach. The browser (`gpt2-studio serve`) and the desktop window (IPC)
 * both send their requests through src/node/studio/dispatch.ts, which passes each one through `confineRequest`:
 * every path it names must lie in the workspace or an allowed folder (Settings → Allowed folders), after symlinks
 * (src/node/path-guard.ts), and every URL it names must be http(s) and, unless allowPrivateUrls is on, public
 * (src/node/url-guard.ts). The CLI calls the Studio's methods directly: it acts with its user's own rights and is
 * not confined.
 *
 * Each handler says here which of its fields are paths or URLs. The table names every handler, so a new handler is a
 * compile error until it says whether it takes any.
 */
import path from 'node:path';
import type { HandlerArg, HandlerName } from '../../shared/contract';
import type { ModelTarget } from '../../shared/models';
import { confinePath, workspaceConfinement, type Confinement } from '../path-guard';
import { readSettings, settingsFile, type Settings } from '../settings';
import { checkFetchUrl, type UrlPolicy } from '../url-guard';
import { expandBrowsePath } from './files';

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

type Confiner<K extends HandlerName> = (arg: HandlerArg<K>, limits: RequestLimits, home: string) => HandlerArg<K> | Promise<HandlerArg<K>>;

/** A model target: a weights file or folder (and the links in it) must be inside. */
function target<T extends ModelTarget | undefined>(t: T, limits: RequestLimits, what: string): T {
  if (t === undefined || !('weightsPath' in t)) return t;
  return { ...t, weightsPath: confinePath(t.weightsPath, limits.paths, what, { children: true }) } as T;
}

/** A run config's init_path (weights or a checkpoint; relative to the workspace, as runs take it). */
function initPath<T>(config: T, limits: RequestLimits, home: string): T {
  if (config === null || typeof config !== 'object') return config;
  const p = (config as { init_path?: unknown }).init_path;
  // checked, not rewritten: the run records it resolved in the workspace as it always has
  if (typeof p === 'string' && p.trim() !== '') confinePath(path.resolve(home, p), limits.paths, 'init_path', { children: true });
  return config;
}

const none = null;

/** Handler -> how its argument is confined (null: it names no path or URL). */
const confiners: { [K in HandlerName]: Confiner<K> | null } = {
  'app-info': none,
  'engines-list': none,
  'datasets-list': none,
  'datasets-sources': none,
  'datasets-jobs': none,
  'datasets-prepare': async (r, limits) => {
    if (r.url !== undefined) await checkFetchUrl(r.url, limits.urls);
    if (r.endpoint !== undefined && r.endpoint.trim() !== '') await checkFetchUrl(r.endpoint.trim(), limits.urls);
    // (the endpoint from Settings or HF_ENDPOINT is checked where the Hub is fetched: see guardedFetch)
    return r.file !== undefined ? { ...r, file: confinePath(r.file, limits.paths, 'datasets-prepare file') } : r;
  },
  'datasets-cancel': none,
  'datasets-remove': none,
  'datasets-preview': none,
  // an estimate reads local files (sizes, parquet metadata) but fetches nothing
  'datasets-estimate': (r, limits) => (r.file !== undefined ? { ...r, file: confinePath(r.file, limits.paths, 'datasets-estimate file') } : r),
  'files-browse': (a, limits) => (a?.path?.trim() ? { ...a, path: confinePath(expandBrowsePath(a.path.trim()), limits.paths, 'folder') } : a),
  'models-list': none,
  'models-import': (a, limits) => ({ ...a, path: confinePath(a.path, limits.paths, 'models-import path', { children: true }) }),
  'models-remove': none,
  'generate-start': (r, limits) => ({ ...r, target: target(r.target, limits, 'weights path') }),
  'generate-stop': none,
  'generate-sample': (r, limits) => ({ ...r, targets: r.targets.map((t) => target(t, limits, 'weights path')) }),
  'chats-list': none,
  'chats-get': none,
  'chats-create': (a, limits) => ({ ...a, target: target(a.target, limits, 'weights path') }),
  'chats-update': (a, limits) => (a.target !== undefined ? { ...a, target: target(a.target, limits, 'weights path') } : a),
  'chats-delete': none,
  'chats-send': none,
  'checkpoints-list': none,
  'checkpoints-delete': none,
  'checkpoints-export': (a, limits) => ({ ...a, dest: confinePath(a.dest, limits.paths, 'export folder') }),
  'checkpoints-branch': none,
  'evals-delete': none,
  'evals-hellaswag': (r, limits) => ({
    ...r,
    target: target(r.target, limits, 'weights path'),
    ...(r.data !== undefined && r.data.trim() !== '' ? { data: confinePath(r.data, limits.paths, 'HellaSwag data file') } : {}),
  }),
  'evals-cancel': none,
  'evals-list': none,
  'evals-get': none,
  'evals-examples': none,
  'evals-val-loss': (a, limits) => ({ ...a, target: target(a.target, limits, 'weights path') }),
  'tokens-score': (a, limits) => ({ ...a, target: target(a.target, limits, 'weights path') }),
  'settings-get': none,
  // allowed folders are checked by the settings themselves (they must exist; never the root or a system folder)
  'settings-set': none,
  'presets-list': none,
  'config-validate': (c, limits, home) => initPath(c, limits, home),
  'runs-create': (a, limits, home) => ({ ...a, config: initPath(a.config, limits, home) }),
  'runs-list': none,
  'runs-get': none,
  'runs-stop': none,
  'runs-pause': none,
  'runs-resume': none,
  'runs-delete': none,
  'runs-update': none,
  'runs-metrics': none,
  'runs-logs': none,
  'runs-samples': none,
  'runs-checkpoints': none,
  'runs-calibrate': (a, limits, home) => ({ ...a, config: initPath(a.config, limits, home) }),
  'runs-shape': (a, limits, home) => ({ ...a, config: initPath(a.config, limits, home) }),
};

/**
 * Checks a validated request from outside and returns its argument with each path made absolute (the form that was
 * checked, and that the services open). Throws FORBIDDEN for a path or URL out of bounds.
 */
export async function confineRequest<K extends HandlerName>(name: K, arg: HandlerArg<K>, limits: RequestLimits, home: string): Promise<HandlerArg<K>> {
  const confine = confiners[name] as Confiner<K> | null;
  return confine ? confine(arg, limits, home) : arg;
}
