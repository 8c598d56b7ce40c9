/**
 * Downloads against a faulty loopback server (127.0.0.1 only): connections dropped with and without a length, 5xx
 * and 429 (with Retry-After), stalls, a server that ignores Range, one that answers a Range with other bytes, HTML
 * in place of the data, bodies that never end. Every case must end with the right sha256 or a clear error, never
 * with a wrong file accepted. The same faults are run through `prepare tinyshakespeare --url`, and the local
 * source's guards (pipes, devices, --max-bytes, empty input) through `prepare local --file`.
 *
 * Time-outs and back-offs are shortened through the options the CLI and the service take, so each case takes a
 * few seconds at most.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { StudioError } from '../src/shared/errors';
import {
  downloadFile,
  isRetryableNetworkError,
  looksLikeHtml,
  type DownloadOptions,
} from '../src/node/datasets/download';
import { listDatasets, readManifest } from '../src/node/datasets/manifest';
import { prepareDataset, readPartialInfo } from '../src/node/datasets/prepare';
import { TINYSHAKESPEARE_BYTES, TINYSHAKESPEARE_SHA256 } from '../src/node/datasets/sources';
import { DatasetService } from '../src/node/datasets/service';
import type { DatasetStatusEvent } from '../src/shared/api/datasets';
import { prepareCommand } from '../src/cli/prepare';
import { sha256, startLoopback, type Loopback, type Route } from './helpers/loopback';
import { hasFixture, sharedPath } from './shared';

const present = hasFixture('data/tinyshakespeare.txt') && hasFixture('data/hellaswag_val_1000.jsonl');
const shakespeare = present ? fs.readFileSync(sharedPath('data/tinyshakespeare.txt')) : Buffer.alloc(0);
const hellaswag = present ? fs.readFileSync(sharedPath('data/hellaswag_val_1000.jsonl')) : Buffer.alloc(0);
/** what the fault-injection run saw: a body without a length closed after this many bytes */
const MIRROR_CUT = 90_710;

/** Short back-off and time-outs: a retried case takes well under a second per attempt. */
const FAST: DownloadOptions = {
  retries: 3,
  backoffMs: 5,
  maxBackoffMs: 50,
  connectTimeoutMs: 1_000,
  idleTimeoutMs: 300,
};

let server: Loopback;
let home: string;
let seq = 0;

beforeAll(async () => {
  server = await startLoopback();
});
afterAll(async () => {
  await server?.close();
});
beforeEach(() => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-faults-'));
  server.requests.length = 0;
});
afterEach(() => {
  fs.rmSync(home, { recursive: true, force: true });
});

/** Serves `route` at a fresh path; returns its URL. */
function serve(route: Route, name = 'input.txt'): string {
  const p = `/f${++seq}/${name}`;
  server.routes.set(p, route);
  return `${server.url}${p}`;
}

/** The Range headers of the requests for a URL, in order. */
function ranges(url: string): Array<string | undefined> {
  const p = new URL(url).pathname;
  return server.requests.filter((q) => q.path === p).map((q) => q.range);
}

async function caught(p: Promise<unknown>): Promise<StudioError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof StudioError) return e;
    throw e;
  }
  throw new Error('expected a StudioError');
}

const dest = (name = 'input.txt'): string => path.join(home, 'downloads', 'x', name);
const known = { size: TINYSHAKESPEARE_BYTES, sha256: TINYSHAKESPEARE_SHA256 };

/** A port on 127.0.0.1 where nothing listens (it was free a moment ago). */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

function cli() {
  const r = { out: '', err: '' };
  return { r, io: { out: (s: string) => void (r.out += s), err: (s: string) => void (r.err += s) } };
}

/** `gpt2-studio prepare ...` in this process with short time-outs; resolves to the exit code or rejects. */
function prepare(argv: string[], download: DownloadOptions = FAST, io = cli().io): Promise<number> {
  const { retries, backoffMs, maxBackoffMs, connectTimeoutMs, idleTimeoutMs } = download;
  return prepareCommand([...argv, '--home', home, '--workers', '2'], io, {
    tty: false,
    intervalMs: 0,
    env: {},
    hooks: { download: { retries, backoffMs, maxBackoffMs, connectTimeoutMs, idleTimeoutMs }, progressIntervalMs: 0 },
  });
}

describe.skipIf(!present)('downloadFile against a faulty server', () => {
  it('the fixture is the published Tiny Shakespeare (size and sha256 in sources.ts)', () => {
    expect(shakespeare.length).toBe(TINYSHAKESPEARE_BYTES);
    expect(sha256(shakespeare)).toBe(TINYSHAKESPEARE_SHA256);
  });

  it('a connection dropped with a Content-Length resumes with Range and ends with the right sha256', async () => {
    const url = serve({ body: shakespeare, etag: '"a"', dropAfter: { bytes: 200_000, times: 1 } });
    const r = await downloadFile({ url, dest: dest(), ...known }, FAST);
    expect(r.sha256).toBe(TINYSHAKESPEARE_SHA256);
    expect(ranges(url)).toEqual([undefined, 'bytes=200000-']);
  });

  it('a chunked body (no length) cut by the server resumes and ends with the right sha256', async () => {
    const url = serve({ body: shakespeare, etag: '"a"', noLength: 'chunked', dropAfter: { bytes: 300_000, times: 1 } });
    const r = await downloadFile({ url, dest: dest() }, FAST);
    expect(r.sha256).toBe(TINYSHAKESPEARE_SHA256);
    expect(r.attempts).toBe(2);
    expect(ranges(url)[1]).toMatch(/^bytes=\d+-$/);
  });

  it('a body without a length that ends early is not accepted: it is an error whose partial file resumes', async () => {
    // the fault-injection case: the connection closes cleanly, with no length, after 90,710 bytes
    const url = serve({
      body: shakespeare,
      etag: '"m"',
      noLength: 'close',
      dropAfter: { bytes: MIRROR_CUT, times: 1 },
    });
    const e = await caught(downloadFile({ url, dest: dest(), ...known }, { ...FAST, retries: 0 }));
    expect(e.code).toBe('NETWORK');
    expect(e.message).toContain(url);
    expect(e.message).toContain(
      `ended after ${MIRROR_CUT} of ${TINYSHAKESPEARE_BYTES} bytes (the server sent no length)`,
    );
    expect(e.hint).toMatch(/partial file is kept/);
    expect(fs.existsSync(dest())).toBe(false);
    expect(fs.statSync(`${dest()}.part`).size).toBe(MIRROR_CUT);
    const r = await downloadFile({ url, dest: dest(), ...known }, FAST);
    expect(r).toMatchObject({ sha256: TINYSHAKESPEARE_SHA256, resumedFrom: MIRROR_CUT, bytes: TINYSHAKESPEARE_BYTES });
    expect(ranges(url)).toEqual([undefined, `bytes=${MIRROR_CUT}-`]);
  });

  it('5xx and 429 are retried until the file comes; Retry-After is honoured, and capped', async () => {
    const flaky = serve({ body: shakespeare, failFirst: { status: 503, times: 2 } });
    const r = await downloadFile({ url: flaky, dest: dest('a'), ...known }, FAST);
    expect(r.attempts).toBe(3);
    expect(r.sha256).toBe(TINYSHAKESPEARE_SHA256);

    const polite = serve({ body: shakespeare, failFirst: { status: 429, times: 1, headers: { 'retry-after': '1' } } });
    let t = performance.now();
    await downloadFile({ url: polite, dest: dest('b'), ...known }, { ...FAST, backoffMs: 1, maxBackoffMs: 5_000 });
    expect(performance.now() - t).toBeGreaterThanOrEqual(900); // waited the second it was asked to, not 1 ms

    const greedy = serve({
      body: shakespeare,
      failFirst: { status: 429, times: 1, headers: { 'retry-after': '3600' } },
    });
    t = performance.now();
    const g = await downloadFile({ url: greedy, dest: dest('c'), ...known }, { ...FAST, maxBackoffMs: 100 });
    expect(g.sha256).toBe(TINYSHAKESPEARE_SHA256);
    expect(performance.now() - t).toBeLessThan(5_000); // an hour asked, the cap (100 ms) waited
  });

  it('what another attempt cannot fix fails at once: 4xx other than 408/429, a refused local port, a blocked port', async () => {
    for (const status of [400, 401, 403, 404, 410]) {
      const url = serve({ body: Buffer.alloc(0), status });
      const e = await caught(downloadFile({ url, dest: dest(`s${status}`) }, FAST));
      expect(e.message).toContain(`HTTP ${status}`);
      expect(ranges(url)).toHaveLength(1);
    }
    // default back-off (1 s, doubling, 5 retries: about 31 s in all) would show as a slow test
    const port = await closedPort();
    let t = performance.now();
    const refused = await caught(downloadFile({ url: `http://127.0.0.1:${port}/input.txt`, dest: dest('r') }));
    expect(performance.now() - t).toBeLessThan(3_000);
    expect(refused.code).toBe('NETWORK');
    expect(refused.message).toMatch(new RegExp(`127\\.0\\.0\\.1:${port}.*ECONNREFUSED.*\\(1 attempt\\)`));
    expect(refused.hint).toMatch(/Start the server .*check the port/);
    t = performance.now();
    const blocked = await caught(downloadFile({ url: 'http://127.0.0.1:9/input.txt', dest: dest('p') }));
    expect(performance.now() - t).toBeLessThan(3_000);
    expect(blocked.message).toMatch(/port 9 .*\(1 attempt\)/);
    expect(blocked.hint).toMatch(/another port/);
  });

  it('the network errors worth another attempt: resets, time-outs, a remote refusal; not DNS failures or certificates', () => {
    const err = (code: string, address?: string): Error =>
      new TypeError('fetch failed', { cause: Object.assign(new Error(code), { code, address }) });
    expect(isRetryableNetworkError(err('ECONNRESET'), 'https://example.org/x')).toBe(true);
    expect(isRetryableNetworkError(err('UND_ERR_SOCKET'), 'https://example.org/x')).toBe(true);
    expect(isRetryableNetworkError(err('ETIMEDOUT'), 'https://example.org/x')).toBe(true);
    expect(isRetryableNetworkError(err('EAI_AGAIN'), 'https://example.org/x')).toBe(true);
    expect(isRetryableNetworkError(err('ECONNREFUSED', '93.184.216.34'), 'https://example.org/x')).toBe(true);
    expect(isRetryableNetworkError(err('ECONNREFUSED', '127.0.0.1'), 'http://localhost:8000/x')).toBe(false);
    expect(isRetryableNetworkError(err('ECONNREFUSED', '::1'), 'http://[::1]:8000/x')).toBe(false);
    expect(isRetryableNetworkError(err('ENOTFOUND'), 'https://no-such-host.invalid/x')).toBe(false);
    for (const code of [
      'CERT_HAS_EXPIRED',
      'DEPTH_ZERO_SELF_SIGNED_CERT',
      'SELF_SIGNED_CERT_IN_CHAIN',
      'ERR_TLS_CERT_ALTNAME_INVALID',
      'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
    ]) {
      expect(isRetryableNetworkError(err(code), 'https://example.org/x'), code).toBe(false);
    }
  });

  it('a stall in the body, and one before the headers, time out (configurable) and are resumed', async () => {
    const body = serve({ body: shakespeare, etag: '"s"', stallAfter: { bytes: 200_000, times: 1 } });
    let t = performance.now();
    const r = await downloadFile({ url: body, dest: dest('a'), ...known }, { ...FAST, idleTimeoutMs: 300 });
    expect(r.sha256).toBe(TINYSHAKESPEARE_SHA256);
    expect(ranges(body)).toEqual([undefined, 'bytes=200000-']);
    expect(performance.now() - t).toBeLessThan(5_000);

    const headers = serve({ body: shakespeare, stallAfter: { bytes: 0, times: 1 } });
    t = performance.now();
    const h = await downloadFile({ url: headers, dest: dest('b'), ...known }, { ...FAST, connectTimeoutMs: 300 });
    expect(h.sha256).toBe(TINYSHAKESPEARE_SHA256);
    expect(h.attempts).toBe(2);
    expect(performance.now() - t).toBeLessThan(5_000);

    // a stall on every attempt ends as an error that says so, with the partial file kept
    const dead = serve({ body: shakespeare, etag: '"d"', stallAfter: { bytes: 100_000, times: 99 } });
    const e = await caught(
      downloadFile({ url: dead, dest: dest('c'), ...known }, { ...FAST, retries: 1, idleTimeoutMs: 200 }),
    );
    expect(e.code).toBe('NETWORK');
    expect(e.message).toMatch(/sent no data for 0\.2 s .*\(2 attempts\)/);
    expect(fs.statSync(`${dest('c')}.part`).size).toBe(200_000); // 100,000 bytes from each attempt
    expect(ranges(dead)).toEqual([undefined, 'bytes=100000-']);
  });

  it('a server that ignores Range sends the whole file, which replaces the partial one (restart from 0)', async () => {
    const url = serve({ body: shakespeare, noRange: true, dropAfter: { bytes: 400_000, times: 1 } });
    const r = await downloadFile({ url, dest: dest(), ...known }, FAST);
    expect(r.sha256).toBe(TINYSHAKESPEARE_SHA256);
    expect(r.bytes).toBe(TINYSHAKESPEARE_BYTES);
    expect(ranges(url)).toEqual([undefined, 'bytes=400000-']); // asked to resume, got a 200 with the whole file
  });

  it('a 206 whose Content-Range is not what was asked is never spliced: the download starts over', async () => {
    for (const kind of ['shift', 'garbage', 'total'] as const) {
      const url = serve({
        body: shakespeare,
        etag: '"r"',
        dropAfter: { bytes: 300_000, times: 1 },
        badRange: { kind, times: 1 },
      });
      const r = await downloadFile({ url, dest: dest(kind), ...(kind === 'total' ? known : {}) }, FAST);
      expect(r.sha256, kind).toBe(TINYSHAKESPEARE_SHA256);
      expect(ranges(url), kind).toEqual([undefined, 'bytes=300000-', undefined]);
    }
    // a server that always answers a resume with other bytes: an error in the end, and the partial file holds
    // only bytes that a 200 sent from the start
    const liar = serve({
      body: shakespeare,
      etag: '"l"',
      dropAfter: { bytes: 300_000, times: 99 },
      badRange: { kind: 'shift', times: 99 },
    });
    const e = await caught(downloadFile({ url: liar, dest: dest('liar') }, { ...FAST, retries: 4 }));
    expect(e.code).toBe('NETWORK');
    const part = fs.readFileSync(`${dest('liar')}.part`);
    expect(part.equals(shakespeare.subarray(0, part.length))).toBe(true);
  });

  it('an HTML page in place of the data is refused at once, naming the URL and the fix', async () => {
    const typed = serve({ body: Buffer.from('<p>Please sign in</p>'), contentType: 'text/html; charset=utf-8' });
    const a = await caught(downloadFile({ url: typed, dest: dest('a') }, FAST));
    expect(a.code).toBe('BAD_DATA');
    expect(a.message).toContain(typed);
    expect(a.message).toMatch(/HTML page \(Content-Type: text\/html; charset=utf-8\)/);
    expect(a.hint).toMatch(/proxy/);
    expect(a.hint).toMatch(/--url/);
    expect(a.hint).toMatch(/HF_ENDPOINT/);
    expect(ranges(typed)).toHaveLength(1); // not retried

    const sniffed = serve({
      body: Buffer.from('\n  <!DOCTYPE html>\n<html><body>Access denied</body></html>\n'),
      contentType: 'application/octet-stream',
    });
    const b = await caught(downloadFile({ url: sniffed, dest: dest('b') }, FAST));
    expect(b.message).toMatch(/HTML page \(it starts with "<!DOCTYPE html>/);
    expect(fs.existsSync(dest('b')) || fs.existsSync(`${dest('b')}.part`)).toBe(false);

    // a proxy page in reply to a resume leaves the bytes already downloaded alone
    const url = serve({ body: shakespeare, etag: '"h"', dropAfter: { bytes: 250_000, times: 1 } });
    await caught(downloadFile({ url, dest: dest('c') }, { ...FAST, retries: 0 }));
    server.routes.set(new URL(url).pathname, {
      body: Buffer.from('<html><body>Sign in to continue</body></html>'),
      noRange: true,
    });
    const c = await caught(downloadFile({ url, dest: dest('c') }, FAST));
    expect(c.message).toMatch(/HTML page/);
    expect(fs.readFileSync(`${dest('c')}.part`).equals(shakespeare.subarray(0, 250_000))).toBe(true);

    // an .html URL asks for HTML: that is not refused
    const html = Buffer.from('<!DOCTYPE html><html></html>');
    const page = serve({ body: html, contentType: 'text/html' }, 'page.html');
    expect((await downloadFile({ url: page, dest: dest('page.html') }, FAST)).sha256).toBe(sha256(html));
    expect(looksLikeHtml(Buffer.from('\ufeff<HTML lang="en">'))).toBe(true);
    expect(looksLikeHtml(Buffer.from('{"html": 1}'))).toBe(false);
  });

  it('a size or sha256 that differs from the published one is refused, and nothing wrong is kept', async () => {
    const longer = serve({ body: Buffer.concat([shakespeare, Buffer.from('extra')]) });
    const a = await caught(downloadFile({ url: longer, dest: dest('a'), ...known }, FAST));
    expect(a.code).toBe('BAD_DATA');
    expect(a.message).toContain(
      `sends ${TINYSHAKESPEARE_BYTES + 5} bytes, but the file has ${TINYSHAKESPEARE_BYTES} bytes`,
    );
    expect(ranges(longer)).toHaveLength(1);
    // without a length, the extra bytes are noticed as they come
    const longerNoLength = serve({ body: Buffer.concat([shakespeare, Buffer.from('extra')]), noLength: 'close' });
    const b = await caught(downloadFile({ url: longerNoLength, dest: dest('b'), ...known }, FAST));
    expect(b.message).toMatch(/sent at least \d+ bytes, but the file has 1115394 bytes/);
    expect(fs.existsSync(`${dest('b')}.part`)).toBe(false);

    const changed = Buffer.from(shakespeare);
    changed[1000]! ^= 1;
    const flipped = serve({ body: changed });
    const c = await caught(downloadFile({ url: flipped, dest: dest('c'), ...known }, FAST));
    expect(c.message).toContain(`has sha256 ${sha256(changed)}, but the source publishes ${TINYSHAKESPEARE_SHA256}`);
    expect(fs.existsSync(dest('c')) || fs.existsSync(`${dest('c')}.part`)).toBe(false);
  });

  it('a body that never ends stops at maxBytes, naming the URL, the bytes so far and the flag', async () => {
    const url = serve({ body: Buffer.alloc(0), endless: true });
    const t = performance.now();
    const e = await caught(downloadFile({ url, dest: dest(), maxBytes: 200_000 }, FAST));
    expect(performance.now() - t).toBeLessThan(5_000);
    expect(e.message).toMatch(
      new RegExp(`${url} sent \\d+ bytes so far without ending, more than the limit of 200000 bytes \\(--max-bytes\\)`),
    );
    expect(e.hint).toMatch(/--max-bytes/);
    expect(fs.existsSync(`${dest()}.part`)).toBe(false);
    // a length over the limit is refused before the body
    const big = serve({ body: shakespeare });
    const b = await caught(downloadFile({ url: big, dest: dest('b'), maxBytes: 1_000 }, FAST));
    expect(b.message).toBe(
      `${big} is ${TINYSHAKESPEARE_BYTES} bytes, more than the limit of 1000 bytes (--max-bytes).`,
    );
  });
});

describe.skipIf(!present)('prepare tinyshakespeare --url against a faulty server', () => {
  it('the mirror that closes a body without a length after 90,710 bytes: an error, then a resumed, correct dataset', async () => {
    const url = serve({
      body: shakespeare,
      etag: '"m"',
      noLength: 'close',
      dropAfter: { bytes: MIRROR_CUT, times: 1 },
    });
    const e = await caught(prepare(['tinyshakespeare', '--url', url], { ...FAST, retries: 0 }));
    expect(e.code).toBe('NETWORK');
    expect(e.message).toContain(`ended after ${MIRROR_CUT} of ${TINYSHAKESPEARE_BYTES} bytes`);
    expect(listDatasets(home, readPartialInfo)).toEqual([]); // nothing ready, nothing half-tokenized
    expect(fs.statSync(path.join(home, 'downloads', 'tinyshakespeare', 'input.txt.part')).size).toBe(MIRROR_CUT);

    const { r, io } = cli();
    expect(await prepare(['tinyshakespeare', '--url', url], FAST, io)).toBe(0);
    expect(r.out).toMatch(/^tinyshakespeare: 301,966 train \+ 36,059 val tokens/);
    expect(ranges(url)).toEqual([undefined, `bytes=${MIRROR_CUT}-`]);
    const m = readManifest(path.join(home, 'datasets', 'tinyshakespeare', 'manifest.json'));
    expect(m.inputs).toEqual([
      { name: 'input.txt', url, bytes: TINYSHAKESPEARE_BYTES, sha256: TINYSHAKESPEARE_SHA256 },
    ]);
  });

  it('5xx, 429 and a stalled body on the way still give the right dataset', async () => {
    const url = serve({
      body: shakespeare,
      etag: '"f"',
      failFirst: { status: 502, times: 1 },
      stallAfter: { bytes: 300_000, times: 1 },
    });
    expect(await prepare(['tinyshakespeare', '--url', url, '--name', 'a'])).toBe(0);
    expect(ranges(url)).toEqual([undefined, undefined, 'bytes=300000-']);
    const limited = serve({
      body: shakespeare,
      failFirst: { status: 429, times: 2, headers: { 'retry-after': '120' } },
    });
    const t = performance.now();
    expect(await prepare(['tinyshakespeare', '--url', limited, '--name', 'b'])).toBe(0);
    expect(performance.now() - t).toBeLessThan(15_000); // Retry-After 120 s, capped at maxBackoffMs
    for (const id of ['a', 'b']) {
      const m = readManifest(path.join(home, 'datasets', id, 'manifest.json'));
      expect(m.inputs[0]!.sha256).toBe(TINYSHAKESPEARE_SHA256);
      expect(m.tokens).toEqual({ train: 301_966, val: 36_059 });
    }
  });

  it('an HTML page, another file, or a refused local port fail with a clear error and leave nothing behind', async () => {
    const portal = serve({
      body: Buffer.from('<!doctype html><title>Proxy sign-in</title>'),
      contentType: 'text/html',
    });
    const a = await caught(prepare(['tinyshakespeare', '--url', portal]));
    expect(a.message).toContain(portal);
    expect(a.hint).toMatch(/proxy/);

    const other = serve({ body: Buffer.from('To be, or not to be, that is the question.\n') });
    const b = await caught(prepare(['tinyshakespeare', '--url', other]));
    expect(b.message).toContain('sends 43 bytes, but the file has 1115394 bytes');
    expect(b.hint).toMatch(/prepare local --url/);

    const port = await closedPort();
    const t = performance.now();
    // the default retries and back-off: a refused local port is not worth them
    const c = await caught(
      prepareCommand(['tinyshakespeare', '--url', `http://127.0.0.1:${port}/input.txt`, '--home', home], cli().io, {
        tty: false,
        env: {},
      }),
    );
    expect(performance.now() - t).toBeLessThan(5_000);
    expect(c.message).toMatch(/ECONNREFUSED.*\(1 attempt\)/);
    expect(listDatasets(home, readPartialInfo)).toEqual([]);
    expect(fs.readdirSync(path.join(home, 'datasets'))).toEqual([]);
    expect(fs.existsSync(path.join(home, 'downloads', 'tinyshakespeare'))).toBe(false); // not even an empty folder
  });

  it('--max-bytes below the published size is refused before anything is fetched', async () => {
    const url = serve({ body: shakespeare });
    const e = await caught(prepare(['tinyshakespeare', '--url', url, '--max-bytes', '1M']));
    expect(e.message).toBe(
      `${url} is ${TINYSHAKESPEARE_BYTES} bytes, more than the limit of 1000000 bytes (--max-bytes).`,
    );
    expect(ranges(url)).toEqual([]);
  });

  it('a copy given with --file is checked against the published size and sha256', async () => {
    const copy = path.join(home, 'input.txt');
    fs.writeFileSync(copy, shakespeare.toString('utf8').replace(/\n/g, '\r\n'));
    const e = await caught(prepare(['tinyshakespeare', '--file', copy]));
    expect(e.code).toBe('BAD_DATA');
    expect(e.message).toContain(copy);
    expect(e.message).toContain(TINYSHAKESPEARE_SHA256);
    expect(e.hint).toMatch(/prepare local --file/);
  });
});

describe.skipIf(!present)('HellaSwag downloads are checked by their structure', () => {
  it('a body without a length cut inside a line is an error; the next run downloads it again', async () => {
    const cut = hellaswag.indexOf(0x0a, 300_000) - 100; // inside a line
    const url = serve(
      { body: hellaswag, noLength: 'close', dropAfter: { bytes: cut, times: 1 } },
      'hellaswag_val.jsonl',
    );
    const e = await caught(prepareDataset(home, { source: 'hellaswag', url }, {}, { download: FAST }));
    expect(e.code).toBe('NETWORK');
    expect(e.message).toMatch(/ends inside a line/);
    expect(fs.existsSync(path.join(home, 'downloads', 'hellaswag', 'hellaswag_val.jsonl'))).toBe(false);
    const r = await prepareDataset(home, { source: 'hellaswag', url }, {}, { download: FAST });
    expect(r.summary.examples).toBe(1000);
    expect(sha256(fs.readFileSync(path.join(r.dir, 'hellaswag_val.jsonl')))).toBe(sha256(hellaswag));
  });
});

describe('local inputs: pipes, devices, sizes, empty files', () => {
  it('a FIFO and /dev/zero are refused at once, not read', async () => {
    const fifo = path.join(home, 'corpus.txt');
    let made = true;
    try {
      execFileSync('mkfifo', [fifo]);
    } catch {
      made = false; // no mkfifo here: the device case still runs
    }
    if (made) {
      const e = await caught(prepare(['local', '--file', fifo]));
      expect(e.code).toBe('BAD_ARGUMENT');
      expect(e.message).toBe(`--file "${fifo}" is a named pipe (FIFO), not a regular file.`);
      expect(e.hint).toMatch(/save it to a file first/);
    }
    if (fs.existsSync('/dev/zero')) {
      const z = await caught(prepare(['local', '--file', '/dev/zero']));
      expect(z.message).toBe('--file "/dev/zero" is a character device, not a regular file.');
    }
    expect(listDatasets(home, readPartialInfo)).toEqual([]);
  });

  it('a file over --max-bytes is an error naming it, its size and the flag; --help states the default', async () => {
    const file = path.join(home, 'big.txt');
    fs.writeFileSync(file, 'word '.repeat(1_000));
    const e = await caught(prepare(['local', '--file', file, '--max-bytes', '1000']));
    expect(e.code).toBe('BAD_ARGUMENT');
    expect(e.message).toBe(`"${file}" is 5000 bytes, more than the limit of 1000 bytes (--max-bytes).`);
    expect(e.hint).toMatch(/--max-bytes \d+G/);
    expect(listDatasets(home, readPartialInfo)).toEqual([]);
    expect(await prepare(['local', '--file', file, '--max-bytes', '5000'])).toBe(0);
    const help = cli();
    expect(await prepareCommand(['--help'], help.io)).toBe(0);
    expect(help.r.out).toMatch(/--max-bytes N is the largest input\s+file to read or download \(default 50G\)/);
  });

  it('an empty input fails for good: status failed, not resumable, and nothing listed as partial', async () => {
    const empty = path.join(home, 'empty.txt');
    fs.writeFileSync(empty, '');
    const status: DatasetStatusEvent[] = [];
    const svc = new DatasetService({ home, env: {}, events: { status: (s) => status.push(s) } });
    const { jobId } = await svc.prepare({ source: 'local', file: empty, workers: 1 });
    const e = await caught(svc.wait(jobId));
    await new Promise((r) => setImmediate(r));
    expect(e.code).toBe('BAD_DATA');
    expect(e.message).toMatch(/hold no text to tokenize \(empty\.txt: 0 bytes of text\)/);
    expect(status.map((s) => s.status)).toEqual(['running', 'failed']);
    expect(status[1]!.resumable).toBe(false);
    expect(status[1]!.error?.message).toBe(e.message);
    expect(await svc.list()).toEqual([]);
    expect(fs.readdirSync(path.join(home, 'datasets'))).toEqual([]);

    // the same for a JSONL file without a single "text"
    const nothing = path.join(home, 'nothing.jsonl');
    fs.writeFileSync(nothing, '{"body": "a"}\n{"body": "b"}\n');
    const n = await caught(prepareDataset(home, { source: 'local', file: nothing, workers: 1 }, {}, {}));
    expect(n.message).toMatch(/2 rows or lines without a "text" string/);
    expect(listDatasets(home, readPartialInfo)).toEqual([]);
  });

  it('a text downloaded with --url that turns out empty is deleted with the failed attempt', async () => {
    const url = serve({ body: Buffer.alloc(0) }, 'empty.txt');
    const e = await caught(prepareDataset(home, { source: 'local', url, workers: 1 }, {}, { download: FAST }));
    expect(e.code).toBe('BAD_DATA');
    expect(fs.existsSync(path.join(home, 'downloads', 'empty'))).toBe(false);
    expect(listDatasets(home, readPartialInfo)).toEqual([]);
  });
});
