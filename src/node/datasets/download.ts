/**
 * Resumable downloads (DESIGN.md "Data"):
 * - the bytes go to `<dest>.part`, with `<dest>.part.json` recording the URL and the server's validators, so a
 *   later attempt (or a later process) continues with an HTTP Range request; If-Range makes a server whose file
 *   changed send it whole instead;
 * - network failures, 408/429/5xx and dropped connections are retried with exponential back-off and jitter;
 *   401/403/404 are not, and say what to do;
 * - time-outs: until the response headers, and between body chunks;
 * - size and sha256 are checked where the source publishes them (Hugging Face's LFS oid is the sha256);
 * - an AbortSignal cancels (the partial file stays, for a later resume);
 * - progress `{bytes, total, bytesPerSec, etaSec}` a few times a second.
 * DownloadQueue limits how many run at once.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode, StudioError } from '../../shared/errors';
import { CancelledError, DatasetErrorCode, fsError, throwIfCancelled } from './errors';
import { fsyncDir, readJsonIfPresent, sha256File } from '../fsutil';
import { RateMeter, throttle } from './progress';

export interface DownloadRequest {
  url: string;
  /** where the finished file goes; the partial file is `<dest>.part` */
  dest: string;
  /** expected sha256 (hex), when the source publishes it */
  sha256?: string;
  /** expected size in bytes, when the source publishes it */
  size?: number;
  /** extra request headers (Authorization) */
  headers?: Record<string, string>;
}

export interface DownloadProgress {
  url: string;
  file: string;
  bytes: number;
  total?: number;
  bytesPerSec: number;
  etaSec?: number;
  done: boolean;
}

export interface DownloadOptions {
  signal?: AbortSignal;
  /** attempts after the first (default 5) */
  retries?: number;
  /** first back-off in ms, doubled each retry with ±25% jitter (default 1000) */
  backoffMs?: number;
  /** longest back-off (default 30 s) */
  maxBackoffMs?: number;
  /** time allowed until the response headers (default 30 s) */
  connectTimeoutMs?: number;
  /** time allowed between two body chunks (default 60 s) */
  idleTimeoutMs?: number;
  onProgress?: (p: DownloadProgress) => void;
  /** minimum time between progress reports (default 250 ms) */
  progressIntervalMs?: number;
  /** added to the hint of network errors (e.g. about HF_ENDPOINT mirrors) */
  networkHint?: string;
}

export interface DownloadResult {
  file: string;
  bytes: number;
  sha256: string;
  /** bytes that were already there when this call started (0 for a fresh download) */
  resumedFrom: number;
  /** HTTP requests made */
  attempts: number;
  /** the finished file was already there */
  cached: boolean;
}

interface PartMeta {
  url: string;
  etag?: string;
  lastModified?: string;
  total?: number;
}

/** A failure worth another attempt. */
class RetryableError extends Error {
  constructor(message: string, readonly retryAfterMs?: number, options?: { cause?: unknown }) {
    super(message, options);
  }
}

const DEFAULT_NETWORK_HINT =
  'Check the network connection and the URL (--url), or use a local copy (--file). The partial file is kept: run the same command again to resume.';

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/** The error code of a fetch failure (undici puts it on `cause`, sometimes one level deeper). */
function causeCode(e: unknown): string | undefined {
  let c: unknown = e;
  for (let i = 0; i < 4 && c && typeof c === 'object'; i++) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    c = (c as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Words for a network failure. */
function describeNetworkError(e: unknown, host: string): { what: string; permanent: boolean } {
  const code = causeCode(e);
  switch (code) {
    case 'ENOTFOUND':
      return { what: `the host name "${host}" could not be resolved (DNS lookup failed: ENOTFOUND)`, permanent: true };
    case 'EAI_AGAIN':
      return { what: `the host name "${host}" could not be resolved (DNS lookup failed: EAI_AGAIN, no answer from the name server)`, permanent: false };
    case 'ECONNREFUSED':
      return { what: `the connection to "${host}" was refused (ECONNREFUSED)`, permanent: false };
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
    case 'EPIPE':
      return { what: `the connection to "${host}" was closed before the download finished (${code})`, permanent: false };
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return { what: `the connection to "${host}" timed out (${code})`, permanent: false };
    case 'ENETUNREACH':
    case 'EHOSTUNREACH':
      return { what: `"${host}" is unreachable from this machine (${code})`, permanent: false };
    case 'CERT_HAS_EXPIRED':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
      return { what: `the TLS certificate of "${host}" was rejected (${code})`, permanent: true };
    default:
      return { what: `${messageChain(e)}${code ? ` (${code})` : ''}`, permanent: false };
  }
}

/** "fetch failed: bad port": the messages of an error and its causes (undici's own message says little). */
function messageChain(e: unknown): string {
  const parts: string[] = [];
  let c: unknown = e;
  for (let i = 0; i < 4 && c; i++) {
    const m = c instanceof Error ? c.message : String(c);
    if (m && !parts.includes(m)) parts.push(m);
    c = c instanceof Error ? c.cause : undefined;
  }
  return parts.join(': ');
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

/** Checks that a URL is http(s), with a clear error otherwise. */
export function checkUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new StudioError(ErrorCode.BAD_ARGUMENT, `"${url}" is not a URL.`, 'Give a full http:// or https:// URL, or a local file with --file.');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new StudioError(ErrorCode.BAD_ARGUMENT, `"${url}" is not an http(s) URL.`, 'Give an http:// or https:// URL, or a local file with --file.');
  }
  return u;
}

/** The error for an HTTP status that retrying will not fix. */
function statusError(status: number, url: string, networkHint: string | undefined): StudioError {
  if (status === 401 || status === 403) {
    return new StudioError(
      DatasetErrorCode.auth,
      `The server refused ${url} with HTTP ${status} (${status === 401 ? 'unauthorized' : 'forbidden'}).`,
      'The file needs an access token, or the token given has no access to it. For Hugging Face, create a read token at https://huggingface.co/settings/tokens, accept the dataset\'s terms on its page if it has any, and set HF_TOKEN (or the token in Settings).',
    );
  }
  if (status === 404 || status === 410) {
    return new StudioError(
      DatasetErrorCode.notFound,
      `${url} does not exist on the server (HTTP ${status}).`,
      'Check the URL (--url) or the endpoint (--endpoint / HF_ENDPOINT): a mirror may not hold this file.' + (networkHint ? ` ${networkHint}` : ''),
    );
  }
  return new StudioError(DatasetErrorCode.network, `The server answered HTTP ${status} for ${url}.`, networkHint ?? DEFAULT_NETWORK_HINT);
}

function retryAfterMs(res: Response): number | undefined {
  const h = res.headers.get('retry-after');
  if (!h) return undefined;
  const s = Number(h);
  if (Number.isFinite(s)) return s * 1000;
  const t = Date.parse(h);
  return Number.isFinite(t) ? Math.max(0, t - Date.now()) : undefined;
}

/** Parses `Content-Range: bytes a-b/total` (total may be `*`). */
function parseContentRange(h: string | null): { start: number; total?: number } | null {
  const m = h ? /^bytes\s+(\d+)-\d+\/(\d+|\*)$/i.exec(h.trim()) : null;
  if (!m) return null;
  return { start: Number(m[1]), total: m[2] === '*' ? undefined : Number(m[2]) };
}

function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return -1;
  }
}

/** Downloads one file; see the module comment. */
export async function downloadFile(req: DownloadRequest, opts: DownloadOptions = {}): Promise<DownloadResult> {
  checkUrl(req.url);
  const { signal } = opts;
  const retries = opts.retries ?? 5;
  const part = `${req.dest}.part`;
  const metaFile = `${part}.json`;
  const label = `The download of ${req.url}`;
  throwIfCancelled(signal, label);
  fs.mkdirSync(path.dirname(req.dest), { recursive: true });

  // a finished file from an earlier run
  const existing = fileSize(req.dest);
  if (existing >= 0) {
    if (req.size === undefined || existing === req.size) {
      const sha = await sha256File(req.dest, signal);
      if (req.sha256 === undefined || sha === req.sha256.toLowerCase()) {
        return { file: req.dest, bytes: existing, sha256: sha, resumedFrom: existing, attempts: 0, cached: true };
      }
    }
    fs.rmSync(req.dest, { force: true });
  }

  const meta = readJsonIfPresent(metaFile) as PartMeta | undefined;
  if (!meta || meta.url !== req.url) fs.rmSync(part, { force: true });
  let validators: PartMeta = meta && meta.url === req.url ? meta : { url: req.url };
  const resumedFrom = Math.max(0, fileSize(part));

  const meter = new RateMeter();
  const tick = throttle(opts.progressIntervalMs ?? 250);
  let total = req.size ?? validators.total;
  const emit = (bytes: number, done: boolean): void => {
    meter.add(bytes);
    opts.onProgress?.({ url: req.url, file: req.dest, bytes, total, bytesPerSec: meter.rate, etaSec: meter.eta(total), done });
  };
  let lastBytes = -1;
  const report = (bytes: number, done: boolean): void => {
    lastBytes = bytes;
    if (!opts.onProgress || !tick(done)) return;
    emit(bytes, done);
  };
  // while bytes arrive faster than the interval, the last ones of a burst are throttled away; and while the
  // server sends nothing, no report is due. A heartbeat reports the bytes so far when none went out for an
  // interval, so the count is never stale and the rate falls during a stall.
  const heartbeat = opts.onProgress
    ? setInterval(() => {
      if (lastBytes >= 0 && tick()) emit(lastBytes, false);
    }, Math.max(250, opts.progressIntervalMs ?? 250))
    : undefined;
  heartbeat?.unref?.();

  let attempts = 0;
  let lastError: unknown;
  try {
    for (let attempt = 0; attempt <= retries; attempt++) {
      throwIfCancelled(signal, label);
      if (attempt > 0) {
        const base = Math.min(opts.maxBackoffMs ?? 30_000, (opts.backoffMs ?? 1000) * 2 ** (attempt - 1));
        const wait = lastError instanceof RetryableError && lastError.retryAfterMs !== undefined
          ? Math.min(lastError.retryAfterMs, opts.maxBackoffMs ?? 30_000)
          : base * (0.75 + Math.random() * 0.5);
        await sleep(wait, signal);
        throwIfCancelled(signal, label);
      }
      // the validators the last attempt saw (it may have failed after writing them)
      const seen = readJsonIfPresent(metaFile) as PartMeta | undefined;
      if (seen && seen.url === req.url) validators = seen;
      let have = Math.max(0, fileSize(part));
      if (total !== undefined && have === total && have > 0) break; // finished before a crash, not yet renamed
      if (total !== undefined && have > total) {
        fs.rmSync(part, { force: true });
        have = 0;
      }
      attempts++;
      try {
        const r = await attemptDownload(req, part, have, validators, opts, report, (t) => {
          total = req.size ?? t ?? total;
        });
        validators = r.validators;
        total = r.total ?? total;
        lastError = undefined;
        break;
      } catch (e) {
        if (signal?.aborted) throw new CancelledError(label);
        if (!(e instanceof RetryableError)) throw e;
        lastError = e;
        if (e instanceof NotRetryable) break;
      }
    }
  } finally {
    clearInterval(heartbeat);
  }
  if (lastError) {
    const host = hostOf(req.url);
    const cause = (lastError as Error).cause ?? lastError;
    const net = describeNetworkError(cause, host);
    const msg = lastError instanceof RetryableError && !(lastError.cause) ? lastError.message : net.what;
    throw new StudioError(
      DatasetErrorCode.network,
      `Could not download ${req.url}: ${msg} (${attempts} attempt${attempts === 1 ? '' : 's'}).`,
      opts.networkHint ? `${opts.networkHint} The partial file is kept: run the same command again to resume.` : DEFAULT_NETWORK_HINT,
      { cause: lastError },
    );
  }

  // check and move into place
  const bytes = fileSize(part);
  const expectedSize = req.size ?? total;
  if (expectedSize !== undefined && bytes !== expectedSize) {
    throw new StudioError(ErrorCode.BAD_DATA, `${label} ended with ${bytes} bytes; expected ${expectedSize}.`, 'Run the command again; it continues the partial file.');
  }
  const sha = await sha256File(part, signal);
  if (req.sha256 !== undefined && sha !== req.sha256.toLowerCase()) {
    fs.rmSync(part, { force: true });
    fs.rmSync(metaFile, { force: true });
    throw new StudioError(
      ErrorCode.BAD_DATA,
      `The file downloaded from ${req.url} has sha256 ${sha}, but the source publishes ${req.sha256.toLowerCase()}.`,
      'The download was corrupted or the mirror serves another version; the bad file was deleted. Run the command again, or try another endpoint.',
    );
  }
  try {
    fs.renameSync(part, req.dest);
    fs.rmSync(metaFile, { force: true });
    fsyncDir(path.dirname(req.dest));
  } catch (e) {
    throw fsError(e, 'moving the finished download to', req.dest);
  }
  report(bytes, true);
  return { file: req.dest, bytes, sha256: sha, resumedFrom, attempts, cached: false };
}

/** One HTTP request: appends to `part` from byte `have`. Throws RetryableError for what another attempt may fix. */
async function attemptDownload(
  req: DownloadRequest,
  part: string,
  have: number,
  validators: PartMeta,
  opts: DownloadOptions,
  report: (bytes: number, done: boolean) => void,
  setTotal: (total: number | undefined) => void,
): Promise<{ validators: PartMeta; total?: number }> {
  const timeout = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout.signal]) : timeout.signal;
  const headers: Record<string, string> = { 'user-agent': 'gpt2-studio', ...req.headers };
  if (have > 0) {
    headers.range = `bytes=${have}-`;
    const v = validators.etag && !validators.etag.startsWith('W/') ? validators.etag : validators.lastModified;
    if (v) headers['if-range'] = v;
  }
  let timer = setTimeout(() => timeout.abort(new RetryableError(`no response from the server within ${(opts.connectTimeoutMs ?? 30_000) / 1000} s`)), opts.connectTimeoutMs ?? 30_000);
  const idle = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => timeout.abort(new RetryableError(`the server sent no data for ${(opts.idleTimeoutMs ?? 60_000) / 1000} s`)), opts.idleTimeoutMs ?? 60_000);
  };
  let fd: number | undefined;
  try {
    let res: Response;
    try {
      res = await fetch(req.url, { headers, signal, redirect: 'follow' });
    } catch (e) {
      throw timeoutOr(timeout, e);
    }
    if (res.status === 416 && have > 0) {
      // nothing left to send: the partial file may already be whole
      const whole = /\/(\d+)\s*$/.exec(res.headers.get('content-range') ?? '');
      await res.body?.cancel();
      if (whole && Number(whole[1]) === have) return { validators, total: have };
      fs.rmSync(part, { force: true });
      throw new RetryableError(`the server rejected resuming at byte ${have} (HTTP 416); starting over`);
    }
    if (res.status === 408 || res.status === 429 || res.status >= 500) {
      await res.body?.cancel();
      throw new RetryableError(`the server answered HTTP ${res.status}`, retryAfterMs(res));
    }
    if (res.status !== 200 && res.status !== 206) {
      await res.body?.cancel();
      throw statusError(res.status, req.url, opts.networkHint);
    }
    let start = 0;
    let total: number | undefined;
    if (res.status === 206) {
      const cr = parseContentRange(res.headers.get('content-range'));
      if (!cr) {
        await res.body?.cancel();
        throw new RetryableError('the server answered a range request without a valid Content-Range');
      }
      start = cr.start;
      total = cr.total;
      if (start !== have) {
        await res.body?.cancel();
        fs.rmSync(part, { force: true });
        throw new RetryableError(`the server resumed at byte ${start} instead of ${have}; starting over`);
      }
    } else {
      const len = res.headers.get('content-length');
      total = len !== null && /^\d+$/.test(len) ? Number(len) : undefined;
      if (res.headers.get('content-encoding')) total = undefined; // the length of the encoded body, not of the file
    }
    const next: PartMeta = {
      url: req.url,
      etag: res.headers.get('etag') ?? undefined,
      lastModified: res.headers.get('last-modified') ?? undefined,
      total,
    };
    fs.writeFileSync(`${part}.json`, JSON.stringify(next));
    setTotal(total);
    try {
      fd = fs.openSync(part, start === 0 ? 'w' : 'r+');
    } catch (e) {
      throw fsError(e, 'creating the partial download', part);
    }
    let pos = start;
    report(pos, false);
    if (res.body) {
      idle();
      try {
        for await (const chunk of res.body) {
          idle();
          let done = 0;
          while (done < chunk.length) done += fs.writeSync(fd, chunk, done, chunk.length - done, pos + done);
          pos += chunk.length;
          report(pos, false);
        }
      } catch (e) {
        if (e instanceof StudioError) throw e;
        const code = causeCode(e);
        if (code === 'ENOSPC' || code === 'EDQUOT') throw fsError(e, 'writing the download', part);
        throw timeoutOr(timeout, e);
      }
    }
    fs.fsyncSync(fd);
    if (total !== undefined && pos !== total) throw new RetryableError(`the connection ended after ${pos} of ${total} bytes`);
    return { validators: next, total: total ?? pos };
  } finally {
    clearTimeout(timer);
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** The error to throw after an aborted or failed fetch: our time-out's reason, else a retryable network error. */
function timeoutOr(timeout: AbortController, e: unknown): Error {
  if (timeout.signal.aborted && timeout.signal.reason instanceof RetryableError) return timeout.signal.reason;
  if (e instanceof StudioError) return e;
  const code = causeCode(e);
  if (code === 'ENOTFOUND' || code?.startsWith('CERT_') || code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' || code === 'SELF_SIGNED_CERT_IN_CHAIN' || code === 'DEPTH_ZERO_SELF_SIGNED_CERT') {
    // retrying will not make a name resolve or a certificate valid: fail now
    return new NotRetryable(e);
  }
  return new RetryableError((e as Error)?.message ?? String(e), undefined, { cause: e });
}

/** A network failure that retrying will not fix; downloadFile turns it into a StudioError. */
class NotRetryable extends RetryableError {
  constructor(cause: unknown) {
    super((cause as Error)?.message ?? String(cause), undefined, { cause });
  }
}

/**
 * Runs tasks with at most `limit` at once, in the order they were added.
 */
export class DownloadQueue {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly limit = 2) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.running++;
    try {
      return await fn();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }
}

/** A StudioError for a network failure outside downloadFile (API listings), with the same words. */
export function networkError(url: string, e: unknown, hint?: string): StudioError {
  if (e instanceof StudioError) return e;
  const net = describeNetworkError(e, hostOf(url));
  return new StudioError(DatasetErrorCode.network, `Could not reach ${url}: ${net.what}.`, hint ?? DEFAULT_NETWORK_HINT, { cause: e });
}

export { statusError as httpStatusError };
