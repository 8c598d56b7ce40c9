/**
 * The wizard's form and the PrepareRequest it makes: which fields a source shows (SourceInfo.options), counts typed
 * as "100M" or "1,000", and the dataset id a request prepares (as the service resolves it).
 */
import type { HandlerArg, HandlerResult } from '../../../shared/contract';

export type PrepareRequest = HandlerArg<'datasets-prepare'>;
export type SourceInfo = HandlerResult<'datasets-sources'>[number];
export type DatasetSummary = HandlerResult<'datasets-list'>[number];
export type DatasetJob = HandlerResult<'datasets-jobs'>[number];
export type DatasetEstimate = HandlerResult<'datasets-estimate'>;

/** Where a source's input comes from. */
export type Origin = 'default' | 'url' | 'file';
/** FineWeb-edu: how the preparation is limited. */
export type Limit = 'files' | 'tokens' | 'none';

export interface FormState {
  source: string;
  name: string;
  origin: Origin;
  url: string;
  file: string;
  limit: Limit;
  maxFiles: string;
  maxTokens: string;
  shardSize: string;
  valTokens: string;
  sizeMb: string;
  seed: string;
  workers: string;
  endpoint: string;
  hfToken: string;
  keepDownloads: boolean;
  overwrite: boolean;
}

export const EMPTY_FORM: FormState = {
  source: '',
  name: '',
  origin: 'default',
  url: '',
  file: '',
  limit: 'files',
  maxFiles: '1',
  maxTokens: '',
  shardSize: '',
  valTokens: '',
  sizeMb: '',
  seed: '',
  workers: '',
  endpoint: '',
  hfToken: '',
  keepDownloads: false,
  overwrite: false,
};

export type FieldErrors = Partial<Record<keyof FormState, string>>;

const SUFFIX: Record<string, number> = { '': 1, k: 1e3, m: 1e6, b: 1e9, g: 1e9 };

/** "100M" -> 100000000, "1,000" -> 1000, "1.5k" -> 1500; null when it is not a count. */
export function parseCount(text: string): number | null {
  const m = /^\s*(\d[\d,_]*(?:\.\d+)?|\.\d+)\s*([kKmMbBgG]?)\s*$/.exec(text);
  if (!m) return null;
  const v = Number(m[1]!.replace(/[,_]/g, '')) * SUFFIX[m[2]!.toLowerCase()]!;
  return Number.isFinite(v) ? Math.round(v * 1e6) / 1e6 : null;
}

/** The input origins a source offers, in the order shown. */
export function originsOf(src: SourceInfo): Origin[] {
  const out: Origin[] = [];
  if (src.network) out.push('default');
  if (src.options.includes('file')) out.push('file');
  if (src.options.includes('url')) out.push('url');
  return out;
}

/** The form's defaults when a source is chosen (keeping what applies of the previous form). */
export function formFor(src: SourceInfo, prev: FormState): FormState {
  const origins = originsOf(src);
  return {
    ...prev,
    source: src.id,
    origin: origins.includes(prev.origin) && prev.source === src.id ? prev.origin : (origins[0] ?? 'default'),
    name: prev.source === src.id ? prev.name : '',
  };
}

/** The dataset id the service gives a request (resolveDatasetId): the name, else the file's name for local, else the default. */
export function datasetIdOf(src: SourceInfo, req: PrepareRequest): string {
  if (req.name) return req.name;
  if (src.id === 'local' && (req.file ?? req.url)) {
    const raw = req.file ?? req.url ?? '';
    const from =
      raw
        .replace(/[?#].*$/, '')
        .split(/[\\/]/)
        .filter(Boolean)
        .pop() ?? '';
    const base = from
      .replace(/\.[A-Za-z0-9]+$/, '')
      .replace(/[^A-Za-z0-9._-]+/g, '-')
      .replace(/^[^A-Za-z0-9]+/, '')
      .slice(0, 80);
    if (base) return base;
  }
  return src.defaultName;
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$/;

/** The request the form makes, and what is wrong with it (field -> message). */
export function buildRequest(src: SourceInfo, f: FormState): { req: PrepareRequest; errors: FieldErrors } {
  const req: PrepareRequest = { source: src.id };
  const errors: FieldErrors = {};
  const has = (k: keyof PrepareRequest): boolean => src.options.includes(k as Exclude<keyof PrepareRequest, 'source'>);
  const count = (
    key: 'maxFiles' | 'maxTokens' | 'shardSize' | 'valTokens' | 'seed' | 'workers',
    min: number,
    what: string,
  ): void => {
    const text = f[key].trim();
    if (text === '') return;
    const v = parseCount(text);
    if (v === null || !Number.isInteger(v) || v < min) {
      errors[key] =
        `${what} must be a whole number ≥ ${min} (e.g. ${key === 'shardSize' || key === 'maxTokens' || key === 'valTokens' ? '100M' : min + 1}); got "${text}".`;
      return;
    }
    req[key] = v;
  };

  const name = f.name.trim();
  if (has('name') && name !== '') {
    if (!ID_RE.test(name) || name.includes('..'))
      errors.name = 'Use 1 to 80 letters, digits, ".", "_" or "-", starting with a letter or digit.';
    else req.name = name;
  }
  if (f.origin === 'url' && has('url')) {
    const url = f.url.trim();
    if (url === '') errors.url = 'Give the URL to download.';
    else {
      try {
        const u = new URL(url);
        if (u.protocol !== 'http:' && u.protocol !== 'https:')
          errors.url = `Only http and https URLs can be downloaded, not ${u.protocol}`;
        else req.url = url;
      } catch {
        errors.url = `"${url}" is not a URL (e.g. https://example.com/input.txt).`;
      }
    }
  }
  if (f.origin === 'file' && has('file')) {
    const file = f.file.trim();
    if (file === '') errors.file = 'Choose a file or folder (Browse…), or type its path.';
    else req.file = file;
  }
  if (src.id === 'fineweb-edu-10bt') {
    if (f.limit === 'files') {
      count('maxFiles', 1, 'The number of files');
      if (f.maxFiles.trim() === '') errors.maxFiles = 'Give the number of parquet files, or choose another limit.';
    } else if (f.limit === 'tokens') {
      count('maxTokens', 1, 'The token limit');
      if (f.maxTokens.trim() === '') errors.maxTokens = 'Give the number of tokens, or choose another limit.';
    }
  } else if (has('maxTokens')) count('maxTokens', 1, 'The token limit');
  if (has('shardSize')) count('shardSize', 1, 'The shard size');
  if (has('valTokens')) count('valTokens', 0, 'The val tokens');
  if (has('seed')) count('seed', 0, 'The seed');
  if (has('workers')) count('workers', 1, 'The worker count');
  if (has('sizeMb') && f.sizeMb.trim() !== '') {
    const v = Number(f.sizeMb.trim());
    if (!Number.isFinite(v) || v <= 0 || v > 10_000)
      errors.sizeMb = `The size must be between 0 and 10000 MB; got "${f.sizeMb.trim()}".`;
    else req.sizeMb = v;
  }
  if (has('endpoint') && f.origin === 'default' && f.endpoint.trim() !== '') {
    const e = f.endpoint.trim();
    try {
      const u = new URL(e);
      if (u.protocol !== 'http:' && u.protocol !== 'https:')
        errors.endpoint = `The endpoint must be http or https, not ${u.protocol}`;
      else req.endpoint = e.replace(/\/$/, '');
    } catch {
      errors.endpoint = `"${e}" is not a URL (e.g. https://hf-mirror.com).`;
    }
  }
  if (has('hfToken') && f.origin !== 'file' && f.hfToken.trim() !== '') req.hfToken = f.hfToken.trim();
  if (has('keepDownloads') && f.keepDownloads && f.origin !== 'file') req.keepDownloads = true;
  if (has('overwrite') && f.overwrite) req.overwrite = true;
  return { req, errors };
}

/** The request without the token (what may be kept in the browser and shown). */
export function withoutToken(req: PrepareRequest): PrepareRequest {
  const out = { ...req };
  delete out.hfToken;
  return out;
}
