/**
 * Resumable downloads (docs/ARCHITECTURE.md, "The data path"):
 * - the bytes go to `<dest>.part`, with `<dest>.part.json` recording the URL and the server's validators, so a
 *   later attempt (or a later process) continues with an HTTP Range request; If-Range makes a server whose file
 *   changed send it whole instead;
 * - only what another attempt can fix is retried, with exponential back-off and jitter: dropped connections, resets,
 *   time-outs, 408, 429 and 5xx (Retry-After honoured, capped), a refused connection to another machine (its server
 *   may be restarting). A name that does not resolve, a refused connection on this machine (nothing listens on that
 *   port), a rejected TLS certificate and the other 4xx fail at once and say what to do;
 * - time-outs: until the response headers, and between body chunks (a stalled server);
 * - size and sha256 are checked where the source publishes them (Hugging Face's LFS oid is the sha256). A body that
 *   ends before the published size is a dropped connection even when the server sent no length, so it is resumed,
 *   never accepted; a 206 whose Content-Range is not the range asked for is never spliced onto the partial file;
 * - an HTML page in place of the file (a proxy's sign-in page, a mirror's error page) is refused;
 * - a size limit (maxBytes) stops a body that never ends;
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
import { guardedFetch } from '../confine/urls';
import { causeCode, DEFAULT_NETWORK_HINT, describeNetworkError, networkError, statusError } from './network-errors';

export { networkError };

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
  /** refuse a file larger than this (bytes); a body without a length is stopped when it gets there */
  maxBytes?: number;
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
  constructor(
    message: string,
    readonly retryAfterMs?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

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

/** Checks that a URL is http(s), with a clear error otherwise. */
export function checkUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `"${url}" is not a URL.`,
      'Give a full http:// or https:// URL, or a local file with --file.',
    );
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `"${url}" is not an http(s) URL.`,
      'Give an http:// or https:// URL, or a local file with --file.',
    );
  }
  return u;
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
function parseContentRange(h: string | null): { start: number; end: number; total?: number } | null {
  const m = h ? /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec(h.trim()) : null;
  if (!m || Number(m[2]) < Number(m[1])) return null;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? undefined : Number(m[3]) };
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
  if (req.maxBytes !== undefined && req.size !== undefined && req.size > req.maxBytes)
    throw tooLargeError(req.url, req.size, req.maxBytes, false);
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
    opts.onProgress?.({
      url: req.url,
      file: req.dest,
      bytes,
      total,
      bytesPerSec: meter.rate,
      etaSec: meter.eta(total),
      done,
    });
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
    ? setInterval(
        () => {
          if (lastBytes >= 0 && tick()) emit(lastBytes, false);
        },
        Math.max(250, opts.progressIntervalMs ?? 250),
      )
    : undefined;
  heartbeat?.unref?.();

  let attempts = 0;
  let lastError: unknown;
  try {
    for (let attempt = 0; attempt <= retries; attempt++) {
      throwIfCancelled(signal, label);
      if (attempt > 0) {
        const base = Math.min(opts.maxBackoffMs ?? 30_000, (opts.backoffMs ?? 1000) * 2 ** (attempt - 1));
        const wait =
          lastError instanceof RetryableError && lastError.retryAfterMs !== undefined
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
    const cause = (lastError as Error).cause ?? lastError;
    const net = describeNetworkError(cause, req.url);
    const msg = lastError instanceof RetryableError && !lastError.cause ? lastError.message : net.what;
    const kept =
      fileSize(part) > 0
        ? ' The partial file is kept: run the same command again to resume.'
        : ' Then run the same command again.';
    throw new StudioError(
      DatasetErrorCode.network,
      `Could not download ${req.url}: ${msg} (${attempts} attempt${attempts === 1 ? '' : 's'}).`,
      net.permanent && net.hint
        ? `${[net.hint, opts.networkHint].filter(Boolean).join(' ')}${kept}`
        : opts.networkHint
          ? `${opts.networkHint}${kept}`
          : DEFAULT_NETWORK_HINT,
      { cause: lastError },
    );
  }

  // check and move into place
  const bytes = fileSize(part);
  const expectedSize = req.size ?? total;
  if (expectedSize !== undefined && bytes !== expectedSize) {
    // (attemptDownload retries a short body; this is a safety net, and the partial file is resumable)
    throw new StudioError(
      DatasetErrorCode.network,
      `${label} ended with ${bytes} bytes; the file has ${expectedSize}.`,
      'The connection was cut short. Run the same command again: it continues the partial file.',
    );
  }
  const sha = await sha256File(part, signal);
  if (req.sha256 !== undefined && sha !== req.sha256.toLowerCase()) {
    fs.rmSync(part, { force: true });
    fs.rmSync(metaFile, { force: true });
    throw new StudioError(
      ErrorCode.BAD_DATA,
      `The file downloaded from ${req.url} has sha256 ${sha}, but the source publishes ${req.sha256.toLowerCase()}.`,
      'The download was corrupted or the server serves another version; the bad file was deleted. Run the command again, or try another endpoint (HF_ENDPOINT / --endpoint) or URL (--url). To prepare a different file on purpose, use the local source: gpt2-studio prepare local --url URL.',
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

/** Whether the URL names an HTML file itself (then an HTML body is what was asked for). */
function asksForHtml(url: string): boolean {
  try {
    return /\.x?html?$/i.test(new URL(url).pathname);
  } catch {
    return false;
  }
}

/** Bytes of a body's start that are enough to tell an HTML page from data. */
const SNIFF_BYTES = 64;

/** Whether a body starts as an HTML page does: `<!DOCTYPE html` or `<html`, after a UTF-8 BOM and white space. */
export function looksLikeHtml(head: Uint8Array): boolean {
  let i = head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf ? 3 : 0;
  while (i < head.length && (head[i] === 0x20 || head[i] === 0x09 || head[i] === 0x0a || head[i] === 0x0d)) i++;
  const start = Buffer.from(head.subarray(i, i + 16))
    .toString('latin1')
    .toLowerCase();
  return /^<!doctype\s+html/.test(start) || /^<html[\s>]/.test(start) || start === '<html';
}

/** The error for an HTML page served in place of a data file. */
function htmlError(url: string, why: string): StudioError {
  return new StudioError(
    ErrorCode.BAD_DATA,
    `${url} answered with an HTML page (${why}) instead of the data file.`,
    "A proxy, a sign-in page or a mirror's error page answered with HTML in place of the file. Check the URL (--url) and the Hugging Face endpoint (HF_ENDPOINT / --endpoint); behind a proxy that needs a sign-in, sign in first, or download the file by other means and pass it with --file.",
  );
}

/** The error for a file over the size limit. */
function tooLargeError(url: string, bytes: number, limit: number, soFar: boolean): StudioError {
  return new StudioError(
    ErrorCode.BAD_ARGUMENT,
    soFar
      ? `${url} sent ${bytes} bytes so far without ending, more than the limit of ${limit} bytes (--max-bytes); the download was stopped and its partial file deleted.`
      : `${url} is ${bytes} bytes, more than the limit of ${limit} bytes (--max-bytes).`,
    `If this file is what you want, pass a larger limit, e.g. --max-bytes ${Math.ceil((bytes * 2) / 1e9)}G. Otherwise check the URL (--url).`,
  );
}

/** The error for a server that sends another size than the source publishes. */
function wrongSizeError(url: string, bytes: number, expected: number, what: string): StudioError {
  return new StudioError(
    ErrorCode.BAD_DATA,
    `${url} ${what} ${bytes} bytes, but the file has ${expected} bytes (as its source publishes).`,
    'The URL serves another file, or a mirror another version. Check the URL (--url) or the endpoint (HF_ENDPOINT / --endpoint). To prepare a different file on purpose, use the local source: gpt2-studio prepare local --url URL.',
  );
}

/**
 * One HTTP request: appends to `part` from byte `have`. Throws RetryableError for what another attempt may fix, a
 * StudioError for what it will not.
 */
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
  let timer = setTimeout(
    () =>
      timeout.abort(
        new RetryableError(`no response from the server within ${(opts.connectTimeoutMs ?? 30_000) / 1000} s`),
      ),
    opts.connectTimeoutMs ?? 30_000,
  );
  const idle = (): void => {
    clearTimeout(timer);
    timer = setTimeout(
      () =>
        timeout.abort(
          new RetryableError(
            `the server sent no data for ${(opts.idleTimeoutMs ?? 60_000) / 1000} s (a stalled connection)`,
          ),
        ),
      opts.idleTimeoutMs ?? 60_000,
    );
  };
  let fd: number | undefined;
  try {
    let res: Response;
    try {
      // checks each hop against the request's URL policy (no private addresses for a remote client)
      res = await guardedFetch(req.url, { headers, signal });
    } catch (e) {
      throw timeoutOr(timeout, e, req.url);
    }
    if (res.status === 416 && have > 0) {
      // nothing left to send: the partial file may already be whole
      const whole = /\/(\d+)\s*$/.exec(res.headers.get('content-range') ?? '');
      await res.body?.cancel();
      if (whole && Number(whole[1]) === have && (req.size === undefined || req.size === have))
        return { validators, total: have };
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
    const htmlWanted = asksForHtml(req.url);
    const type = res.headers.get('content-type') ?? '';
    if (!htmlWanted && /^\s*(text\/html|application\/xhtml\+xml)\b/i.test(type)) {
      await res.body?.cancel();
      throw htmlError(req.url, `Content-Type: ${type.trim()}`);
    }
    const encoded = !!res.headers.get('content-encoding');
    let start = 0;
    /** the whole file's size, as this response tells it */
    let total: number | undefined;
    /** where this response's body must end, when it says */
    let end: number | undefined;
    if (res.status === 206) {
      const cr = parseContentRange(res.headers.get('content-range'));
      // a range that is not the one asked for, or a file that changed size, must never be spliced onto the
      // partial file: start over from byte 0 (the next attempt asks without a Range)
      const restart = async (why: string): Promise<never> => {
        await res.body?.cancel();
        fs.rmSync(part, { force: true });
        throw new RetryableError(`${why}; starting over`);
      };
      if (!cr)
        return restart(
          `the server answered a range request with an invalid Content-Range (${JSON.stringify(res.headers.get('content-range'))})`,
        );
      if (cr.start !== have) return restart(`the server sent bytes from ${cr.start} when asked for ${have}`);
      if (cr.total !== undefined && cr.end >= cr.total)
        return restart(`the server sent an impossible Content-Range (${res.headers.get('content-range')})`);
      if (cr.total !== undefined && validators.total !== undefined && cr.total !== validators.total) {
        return restart(`the file on the server is now ${cr.total} bytes, not ${validators.total}`);
      }
      if (cr.total !== undefined && req.size !== undefined && cr.total !== req.size)
        return restart(`the server says the file has ${cr.total} bytes, not ${req.size}`);
      start = cr.start;
      total = cr.total;
      end = cr.end + 1;
    } else {
      const len = res.headers.get('content-length');
      total = len !== null && /^\d+$/.test(len) && !encoded ? Number(len) : undefined; // an encoded length is not the file's
      end = total;
      if (total !== undefined && req.size !== undefined && total !== req.size) {
        await res.body?.cancel();
        throw wrongSizeError(req.url, total, req.size, 'sends');
      }
    }
    const limit = req.maxBytes;
    if (limit !== undefined && total !== undefined && total > limit) {
      await res.body?.cancel();
      throw tooLargeError(req.url, total, limit, false);
    }
    const next: PartMeta = {
      url: req.url,
      etag: res.headers.get('etag') ?? undefined,
      lastModified: res.headers.get('last-modified') ?? undefined,
      total,
    };
    setTotal(total);
    /** the size the file must reach: the source's, else the server's */
    const fileTotal = req.size ?? total;
    // the partial file is opened (and emptied, for a response from byte 0) only once the body is known to be data,
    // so that a proxy's page in reply to a resume does not destroy the bytes already there
    const open = (): number => {
      if (fd !== undefined) return fd;
      try {
        fs.writeFileSync(`${part}.json`, JSON.stringify(next));
        fd = fs.openSync(part, start === 0 ? 'w' : 'r+');
      } catch (e) {
        throw fsError(e, 'creating the partial download', part);
      }
      return fd;
    };
    let pos = start;
    const write = (chunk: Uint8Array): void => {
      if (limit !== undefined && pos + chunk.length > limit) {
        fs.rmSync(part, { force: true });
        fs.rmSync(`${part}.json`, { force: true });
        throw tooLargeError(req.url, pos + chunk.length, limit, true);
      }
      if (fileTotal !== undefined && pos + chunk.length > fileTotal) {
        // more bytes than the file has: not this file (or a server that appends junk); nothing of it is kept
        fs.rmSync(part, { force: true });
        fs.rmSync(`${part}.json`, { force: true });
        throw wrongSizeError(req.url, pos + chunk.length, fileTotal, 'sent at least');
      }
      const f = open();
      let done = 0;
      while (done < chunk.length) done += fs.writeSync(f, chunk, done, chunk.length - done, pos + done);
      pos += chunk.length;
      report(pos, false);
    };
    let head: Uint8Array[] | null = start === 0 && !htmlWanted ? [] : null;
    let headBytes = 0;
    const flushHead = (): void => {
      if (!head) return;
      const h = Buffer.concat(head);
      head = null;
      if (looksLikeHtml(h))
        throw htmlError(
          req.url,
          `it starts with ${JSON.stringify(h.toString('utf8', 0, Math.min(h.length, 20)).trim())}`,
        );
      if (h.length > 0) write(h);
    };
    report(pos, false);
    if (res.body) {
      idle();
      try {
        for await (const chunk of res.body) {
          idle();
          if (head) {
            head.push(chunk);
            headBytes += chunk.length;
            if (headBytes >= SNIFF_BYTES) flushHead();
            continue;
          }
          write(chunk);
        }
      } catch (e) {
        if (e instanceof StudioError) throw e;
        const code = causeCode(e);
        if (code === 'ENOSPC' || code === 'EDQUOT') throw fsError(e, 'writing the download', part);
        throw timeoutOr(timeout, e, req.url);
      }
    }
    flushHead();
    fs.fsyncSync(open());
    // a body that stops short is a dropped connection, whether or not the server sent a length: a server that
    // closes the connection early without one looks the same as a finished body, and only the size tells
    if (end !== undefined && pos < end)
      throw new RetryableError(`the connection ended after ${pos} of ${total ?? end} bytes`);
    if (fileTotal !== undefined && pos < fileTotal) {
      throw new RetryableError(
        `the connection ended after ${pos} of ${fileTotal} bytes${res.headers.get('content-length') === null ? ' (the server sent no length)' : ''}`,
      );
    }
    return { validators: next, total: total ?? pos };
  } finally {
    clearTimeout(timer);
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * The error to throw after an aborted or failed fetch: our time-out's reason, a NotRetryable for what another
 * attempt cannot fix, else a retryable network error.
 */
function timeoutOr(timeout: AbortController, e: unknown, url: string): Error {
  if (timeout.signal.aborted && timeout.signal.reason instanceof RetryableError) return timeout.signal.reason;
  if (e instanceof StudioError) return e;
  // retrying will not make a name resolve, a certificate valid, or a server appear on a closed local port
  if (describeNetworkError(e, url).permanent) return new NotRetryable(e);
  return new RetryableError((e as Error)?.message ?? String(e), undefined, { cause: e });
}

/** Whether another attempt could get past this network failure (for tests and callers that retry on their own). */
export function isRetryableNetworkError(e: unknown, url: string): boolean {
  return !describeNetworkError(e, url).permanent;
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

export { statusError as httpStatusError };
