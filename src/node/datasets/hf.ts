/**
 * The Hugging Face Hub's HTTP API, as much as datasets need: the endpoint (settings, else HF_ENDPOINT, else
 * https://huggingface.co, as huggingface_hub resolves it), the file listing of a dataset folder, and the download
 * URL of a file.
 */
import { ErrorCode, StudioError } from '../../shared/errors';
import { checkUrl, httpStatusError, networkError } from './download';
import { guardedFetch } from '../confine/urls';

export const DEFAULT_HF_ENDPOINT = 'https://huggingface.co';

/** The hint shown with network failures on the Hub. */
export const HF_MIRROR_HINT =
  'If huggingface.co is blocked or unreachable from this machine (port 443 filtered, no DNS), use a mirror: set HF_ENDPOINT (e.g. HF_ENDPOINT=https://hf-mirror.com), pass --endpoint URL, or set the endpoint in Settings.';

/** The endpoint to use: an explicit one, else HF_ENDPOINT, else the default; without a trailing slash. */
export function resolveHfEndpoint(explicit: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const e = (explicit && explicit.trim()) || (env.HF_ENDPOINT && env.HF_ENDPOINT.trim()) || DEFAULT_HF_ENDPOINT;
  checkUrl(e);
  return e.replace(/\/+$/, '');
}

/** The token to send: an explicit one, else HF_TOKEN (huggingface_hub's variable), else none. */
export function resolveHfToken(explicit: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const t = (explicit && explicit.trim()) || (env.HF_TOKEN && env.HF_TOKEN.trim());
  return t || undefined;
}

export function hfHeaders(token: string | undefined): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** One file of a listing. `sha256` is the LFS oid (the sha256 of the file's bytes), when the file is in LFS. */
export interface HfFile {
  path: string;
  size: number;
  sha256?: string;
}

/** `{endpoint}/datasets/{repo}/resolve/{revision}/{path}` with each path segment encoded. */
export function hfResolveUrl(endpoint: string, repo: string, filePath: string, revision = 'main'): string {
  const enc = filePath.split('/').map(encodeURIComponent).join('/');
  return `${endpoint}/datasets/${repo}/resolve/${encodeURIComponent(revision)}/${enc}`;
}

function isEntry(
  x: unknown,
): x is { type: string; path: string; size?: number; lfs?: { oid?: string; size?: number } } {
  return (
    !!x &&
    typeof x === 'object' &&
    typeof (x as { type?: unknown }).type === 'string' &&
    typeof (x as { path?: unknown }).path === 'string'
  );
}

/**
 * Lists the files under `folder` of a dataset repository:
 * `GET {endpoint}/api/datasets/{repo}/tree/{revision}/{folder}`, following `Link: <...>; rel="next"` pages.
 */
export async function listHfDatasetFiles(opts: {
  endpoint: string;
  repo: string;
  folder: string;
  revision?: string;
  token?: string;
  signal?: AbortSignal;
  timeoutMs?: number;
}): Promise<HfFile[]> {
  const folder = opts.folder.split('/').map(encodeURIComponent).join('/');
  let url: string | null =
    `${opts.endpoint}/api/datasets/${opts.repo}/tree/${encodeURIComponent(opts.revision ?? 'main')}/${folder}`;
  const files: HfFile[] = [];
  for (let page = 0; url && page < 1000; page++) {
    const signal = AbortSignal.any([
      AbortSignal.timeout(opts.timeoutMs ?? 30_000),
      ...(opts.signal ? [opts.signal] : []),
    ]);
    let res: Response;
    try {
      res = await guardedFetch(url, {
        headers: { accept: 'application/json', 'user-agent': 'gpt2-studio', ...hfHeaders(opts.token) },
        signal,
      });
    } catch (e) {
      if (opts.signal?.aborted) throw e;
      throw networkError(url, e, HF_MIRROR_HINT);
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw httpStatusError(res.status, url, HF_MIRROR_HINT);
    }
    // a proxy's sign-in page or a web page at the endpoint's address, rather than the Hub's API
    const type = res.headers.get('content-type') ?? '';
    if (/^\s*(text\/html|application\/xhtml\+xml)\b/i.test(type)) {
      await res.body?.cancel();
      throw new StudioError(
        ErrorCode.BAD_DATA,
        `The Hub's file listing at ${url} is an HTML page (Content-Type: ${type.trim()}), not the API's JSON.`,
        `A proxy or a sign-in page answered, or the endpoint is not a Hugging Face Hub or mirror. Check HF_ENDPOINT / --endpoint; behind a proxy that needs a sign-in, sign in first. ${HF_MIRROR_HINT}`,
      );
    }
    let body: unknown;
    try {
      body = await res.json();
    } catch (e) {
      throw new StudioError(
        ErrorCode.BAD_DATA,
        `The Hub's file listing at ${url} is not JSON.`,
        `The endpoint may not be a Hugging Face Hub or mirror. ${HF_MIRROR_HINT}`,
        { cause: e },
      );
    }
    if (!Array.isArray(body)) {
      throw new StudioError(
        ErrorCode.BAD_DATA,
        `The Hub's file listing at ${url} is not a list of files.`,
        `The endpoint may not be a Hugging Face Hub or mirror. ${HF_MIRROR_HINT}`,
      );
    }
    for (const e of body) {
      if (!isEntry(e) || e.type !== 'file') continue;
      const size = e.lfs?.size ?? e.size;
      // the LFS oid is the sha256 of the file's bytes, which the download checks; anything else is not used
      const oid =
        typeof e.lfs?.oid === 'string' && /^[0-9a-f]{64}$/i.test(e.lfs.oid) ? e.lfs.oid.toLowerCase() : undefined;
      files.push({ path: e.path, size: typeof size === 'number' ? size : -1, sha256: oid });
    }
    url = nextLink(res.headers.get('link'), url);
  }
  return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function nextLink(link: string | null, base: string): string | null {
  if (!link) return null;
  for (const part of link.split(',')) {
    const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(part);
    if (m) return new URL(m[1]!, base).href;
  }
  return null;
}
