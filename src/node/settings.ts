/**
 * Workspace settings: `<home>/settings.json` (the Hugging Face endpoint and token for now). The file is written
 * atomically with owner-only permissions, since it may hold a token; the token is never sent back to a client.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode, StudioError } from '../shared/errors';
import { writeFileAtomic } from './fsutil';

export interface Settings {
  /** a Hugging Face endpoint or mirror, e.g. https://hf-mirror.com; unset = HF_ENDPOINT, else huggingface.co */
  hfEndpoint?: string;
  hfToken?: string;
}

/** What a client sees: the token only as set or not. */
export interface PublicSettings {
  hfEndpoint: string | null;
  hfTokenSet: boolean;
}

export const settingsFile = (home: string): string => path.join(home, 'settings.json');

export function readSettings(home: string): Settings {
  const file = settingsFile(home);
  if (!fs.existsSync(file)) return {};
  try {
    const v = JSON.parse(fs.readFileSync(file, 'utf8')) as Settings;
    return { hfEndpoint: typeof v.hfEndpoint === 'string' ? v.hfEndpoint : undefined, hfToken: typeof v.hfToken === 'string' ? v.hfToken : undefined };
  } catch (e) {
    throw new StudioError(ErrorCode.BAD_CONFIG, `Settings file ${file} is not valid JSON.`, 'Fix it, or delete it to return to the defaults.', { cause: e });
  }
}

export function publicSettings(s: Settings): PublicSettings {
  return { hfEndpoint: s.hfEndpoint ?? null, hfTokenSet: Boolean(s.hfToken) };
}

/** Applies a change: a string sets a value, null clears it, undefined leaves it. */
export function updateSettings(home: string, patch: { hfEndpoint?: string | null; hfToken?: string | null }): Settings {
  const s = readSettings(home);
  if (patch.hfEndpoint !== undefined) {
    if (patch.hfEndpoint === null || patch.hfEndpoint === '') delete s.hfEndpoint;
    else {
      let u: URL;
      try {
        u = new URL(patch.hfEndpoint);
      } catch {
        throw new StudioError(ErrorCode.BAD_ARGUMENT, `"${patch.hfEndpoint}" is not a URL.`, 'Give the endpoint as https://host (e.g. https://hf-mirror.com).');
      }
      if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new StudioError(ErrorCode.BAD_ARGUMENT, `The endpoint must be http or https, not ${u.protocol}`, 'Give the endpoint as https://host.');
      s.hfEndpoint = u.href.replace(/\/$/, '');
    }
  }
  if (patch.hfToken !== undefined) {
    if (patch.hfToken === null || patch.hfToken === '') delete s.hfToken;
    else s.hfToken = patch.hfToken;
  }
  const file = settingsFile(home);
  writeFileAtomic(file, JSON.stringify(s, null, 2) + '\n');
  fs.chmodSync(file, 0o600);
  return s;
}
