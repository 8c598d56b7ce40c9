/**
 * Datasets end to end, against a loopback HTTP server of the test's own (127.0.0.1) and real files: downloads
 * (Range resume, retries, errors), preparation of every source into llm.c shards, resume after an interruption,
 * corrupt shards, and the service's events.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encode as referenceEncode } from 'gpt-tokenizer/encoding/r50k_base';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { StudioError } from '../src/shared/errors';
import { parseHellaswag } from '../src/core/evals/hellaswag';
import { downloadFile } from '../src/node/datasets/download';
import { prepareDataset, type PrepareHooks } from '../src/node/datasets/prepare';
import { listDatasets, readManifest } from '../src/node/datasets/manifest';
import { readShardLayout, readShardTokens } from '../src/node/datasets/shards';
import { openShardLoader } from '../src/node/datasets/loader';
import { isCancelled } from '../src/node/datasets/errors';
import { DatasetService } from '../src/node/datasets/service';
import type { DatasetProgressEvent, DatasetStatusEvent, DownloadProgressEvent } from '../src/shared/api/datasets';
import { hfTree, sha256, startLoopback, type Loopback } from './helpers/loopback';
import { hasFixture, sharedPath } from './shared';

const EOT = 50256;
const TS_SHA = '86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed';
const present = hasFixture('data/tinyshakespeare.txt');
const shakespeare = present ? fs.readFileSync(sharedPath('data/tinyshakespeare.txt')) : Buffer.alloc(0);
const shakespeareText = shakespeare.toString('utf8');

/** GPT-2 tokens of a text by gpt-tokenizer directly (an independent tokenization: no chunking, no workers). */
const ref = (text: string): number[] => referenceEncode(text, { disallowedSpecial: new Set() });

/** Quick settings for tests: short back-off, two workers. */
const FAST: PrepareHooks = { download: { retries: 3, backoffMs: 5, maxBackoffMs: 20 }, progressIntervalMs: 0 };

async function caught(p: Promise<unknown>): Promise<StudioError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof StudioError) return e;
    throw e;
  }
  throw new Error('expected a StudioError');
}

function tokensOf(dir: string, files: string[]): number[] {
  return files.flatMap((f) => Array.from(readShardTokens(path.join(dir, f))));
}

/** Documents for the parquet and JSONL tests: Tiny Shakespeare's speeches. */
const speeches = shakespeareText.split('\n\n').filter((s) => s.trim() !== '');

function parquetOf(docs: string[], rowGroupSize: number): Buffer {
  return Buffer.from(
    parquetWriteBuffer({
      columnData: [
        { name: 'id', data: docs.map((_, i) => `doc-${i}`), type: 'STRING' },
        { name: 'text', data: docs, type: 'STRING' },
      ],
      rowGroupSize,
    }),
  );
}

let server: Loopback;
let home: string;
const FW = '/datasets/HuggingFaceFW/fineweb-edu/resolve/main/sample/10BT';
const fwDocs = [speeches.slice(0, 300), speeches.slice(300, 600), speeches.slice(600, 900)];
const fwFiles = fwDocs.map((docs, i) => ({ path: `sample/10BT/00${i}_00000.parquet`, body: parquetOf(docs, 64) }));

beforeAll(async () => {
  server = await startLoopback({
    '/input.txt': { body: shakespeare, contentType: 'text/plain', etag: '"ts-1"' },
    '/hellaswag_val.jsonl': {
      body: present ? fs.readFileSync(sharedPath('data/hellaswag_val_1000.jsonl')) : Buffer.alloc(0),
    },
    '/secret.txt': { body: Buffer.alloc(0), status: 401 },
    '/forbidden.txt': { body: Buffer.alloc(0), status: 403 },
    '/api/datasets/HuggingFaceFW/fineweb-edu/tree/main/sample/10BT': {
      body: hfTree(fwFiles),
      contentType: 'application/json',
    },
    ...Object.fromEntries(
      fwFiles.map((f) => [`/datasets/HuggingFaceFW/fineweb-edu/resolve/main/${f.path}`, { body: f.body }]),
    ),
  });
});
afterAll(async () => {
  await server?.close();
});
beforeEach(() => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-datasets-'));
  fs.mkdirSync(path.join(home, 'datasets'));
  fs.mkdirSync(path.join(home, 'downloads'));
  server.requests.length = 0;
});
afterEach(() => {
  fs.rmSync(home, { recursive: true, force: true });
});

describe.skipIf(!present)('downloads through the loopback server', () => {
  it('an interrupted download retries with Range and If-Range and ends with the right sha256', async () => {
    server.routes.set('/drop.txt', { body: shakespeare, etag: '"ts-1"', dropAfter: { bytes: 300_000, times: 1 } });
    const progress: number[] = [];
    const r = await downloadFile(
      { url: `${server.url}/drop.txt`, dest: path.join(home, 'downloads', 'x', 'input.txt') },
      {
        retries: 3,
        backoffMs: 5,
        progressIntervalMs: 0,
        onProgress: (p) => progress.push(p.bytes),
      },
    );
    expect(r.sha256).toBe(TS_SHA);
    expect(r.bytes).toBe(shakespeare.length);
    expect(r.attempts).toBe(2);
    const reqs = server.requests.filter((q) => q.path === '/drop.txt');
    expect(reqs.map((q) => q.range)).toEqual([undefined, 'bytes=300000-']);
    expect(reqs[1]!.ifRange).toBe('"ts-1"');
    expect(fs.readFileSync(r.file).equals(shakespeare)).toBe(true);
    expect(fs.existsSync(`${r.file}.part`)).toBe(false);
    expect(Math.max(...progress)).toBe(shakespeare.length);
  });

  it('a partial file left by an earlier (failed) run is continued, not downloaded again', async () => {
    server.routes.set('/drop2.txt', { body: shakespeare, etag: '"ts-1"', dropAfter: { bytes: 500_000, times: 1 } });
    const dest = path.join(home, 'downloads', 'y', 'input.txt');
    const e = await caught(downloadFile({ url: `${server.url}/drop2.txt`, dest }, { retries: 0 }));
    expect(e.message).toMatch(/Could not download .*drop2\.txt/);
    expect(e.hint).toMatch(/partial file is kept/);
    expect(fs.statSync(`${dest}.part`).size).toBe(500_000);
    const r = await downloadFile(
      { url: `${server.url}/drop2.txt`, dest, sha256: TS_SHA, size: shakespeare.length },
      { retries: 0 },
    );
    expect(r.resumedFrom).toBe(500_000);
    expect(r.sha256).toBe(TS_SHA);
    expect(server.requests.filter((q) => q.path === '/drop2.txt').map((q) => q.range)).toEqual([
      undefined,
      'bytes=500000-',
    ]);
    // a finished file is not fetched again
    const again = await downloadFile({ url: `${server.url}/drop2.txt`, dest, sha256: TS_SHA }, { retries: 0 });
    expect(again.cached).toBe(true);
    expect(server.requests.filter((q) => q.path === '/drop2.txt').length).toBe(2);
  });

  it('a server without Range support is downloaded again from the start', async () => {
    server.routes.set('/norange.txt', { body: shakespeare, noRange: true, dropAfter: { bytes: 100_000, times: 1 } });
    const r = await downloadFile(
      { url: `${server.url}/norange.txt`, dest: path.join(home, 'd', 'n.txt') },
      { retries: 2, backoffMs: 5 },
    );
    expect(r.sha256).toBe(TS_SHA);
  });

  it('a wrong sha256 is an error, and the bad file is deleted', async () => {
    const dest = path.join(home, 'downloads', 'z', 'input.txt');
    const e = await caught(
      downloadFile({ url: `${server.url}/input.txt`, dest, sha256: '0'.repeat(64) }, { retries: 0 }),
    );
    expect(e.code).toBe('BAD_DATA');
    expect(e.message).toContain(TS_SHA);
    expect(e.message).toContain('0'.repeat(64));
    expect(fs.existsSync(dest) || fs.existsSync(`${dest}.part`)).toBe(false);
  });

  it('401/403 say a token is needed, 404 says the file is not there, neither is retried; 5xx is', async () => {
    const d = (n: string) => path.join(home, 'dl', n);
    const e401 = await caught(
      downloadFile({ url: `${server.url}/secret.txt`, dest: d('a') }, { retries: 3, backoffMs: 5 }),
    );
    expect(e401.message).toMatch(/HTTP 401/);
    expect(e401.hint).toMatch(/HF_TOKEN/);
    const e403 = await caught(
      downloadFile({ url: `${server.url}/forbidden.txt`, dest: d('b') }, { retries: 3, backoffMs: 5 }),
    );
    expect(e403.message).toMatch(/HTTP 403/);
    const e404 = await caught(
      downloadFile({ url: `${server.url}/nope.txt`, dest: d('c') }, { retries: 3, backoffMs: 5 }),
    );
    expect(e404.code).toBe('NOT_FOUND');
    expect(e404.message).toContain(`${server.url}/nope.txt`);
    expect(server.requests.length).toBe(3);
    server.routes.set('/flaky.txt', { body: shakespeare, failFirst: { status: 503, times: 2 } });
    const ok = await downloadFile({ url: `${server.url}/flaky.txt`, dest: d('e') }, { retries: 3, backoffMs: 5 });
    expect(ok.attempts).toBe(3);
    expect(ok.sha256).toBe(TS_SHA);
  });

  it('a host that does not resolve is an error with a hint about HF_ENDPOINT mirrors', async () => {
    const e = await caught(
      downloadFile(
        { url: 'http://no-such-host.invalid/input.txt', dest: path.join(home, 'dns', 'x') },
        {
          retries: 0,
          connectTimeoutMs: 10_000,
          networkHint: 'Use a mirror: set HF_ENDPOINT.',
        },
      ),
    );
    expect(e.message).toMatch(/no-such-host\.invalid/);
    expect(e.hint).toMatch(/HF_ENDPOINT/);
  });

  it('cancel stops a download and keeps the partial file', async () => {
    server.routes.set('/slow.txt', { body: shakespeare, chunkDelayMs: 20 });
    const ac = new AbortController();
    const dest = path.join(home, 'slow', 'x.txt');
    const seen: DownloadProgressEvent[] = [];
    const p = downloadFile(
      { url: `${server.url}/slow.txt`, dest },
      {
        signal: ac.signal,
        progressIntervalMs: 0,
        onProgress: (x) => {
          seen.push({ id: 'x', ...x });
          if (x.bytes > 100_000) ac.abort();
        },
      },
    );
    let err: unknown;
    try {
      await p;
    } catch (e) {
      err = e;
    }
    expect(isCancelled(err)).toBe(true);
    expect(fs.statSync(`${dest}.part`).size).toBeGreaterThan(100_000);
    const last = seen.at(-1)!;
    expect(last.total).toBe(shakespeare.length);
    expect(last.bytesPerSec).toBeGreaterThan(0);
    expect(last.etaSec).toBeGreaterThan(0);
  });
});

describe.skipIf(!present)('preparing Tiny Shakespeare from the loopback server', () => {
  it("gives 301,966 train and 36,059 val tokens, equal to an independent tokenization of nanoGPT's split", async () => {
    const r = await prepareDataset(
      home,
      { source: 'tinyshakespeare', url: `${server.url}/input.txt`, workers: 2 },
      {},
      FAST,
    );
    expect(r.summary.tokens).toEqual({ train: 301_966, val: 36_059 });
    const files = fs.readdirSync(r.dir).sort();
    expect(files).toEqual(['manifest.json', 'tinyshakespeare_train_000001.bin', 'tinyshakespeare_val_000000.bin']);
    const n = shakespeareText.length;
    const cut = Math.floor(n * 0.9);
    expect(Array.from(readShardTokens(path.join(r.dir, 'tinyshakespeare_val_000000.bin')))).toEqual(
      ref(shakespeareText.slice(cut)),
    );
    expect(Array.from(readShardTokens(path.join(r.dir, 'tinyshakespeare_train_000001.bin')))).toEqual(
      ref(shakespeareText.slice(0, cut)),
    );
    const m = readManifest(path.join(r.dir, 'manifest.json'));
    expect(m.inputs).toEqual([
      { name: 'input.txt', url: `${server.url}/input.txt`, bytes: shakespeare.length, sha256: TS_SHA },
    ]);
    expect(m.tokenizer?.eotBeforeEachDocument).toBe(false);
    expect(m.files.map((f) => [f.file, f.split, f.tokens])).toEqual([
      ['tinyshakespeare_val_000000.bin', 'val', 36_059],
      ['tinyshakespeare_train_000001.bin', 'train', 301_966],
    ]);
    for (const f of m.files) expect(f.sha256).toBe(sha256(fs.readFileSync(path.join(r.dir, f.file))));
    // the download is cleaned up, and nothing partial is left
    expect(fs.existsSync(path.join(home, 'downloads', 'tinyshakespeare'))).toBe(false);
    expect(fs.readdirSync(path.join(home, 'datasets'))).toEqual(['tinyshakespeare']);
    // asking again does nothing
    const again = await prepareDataset(home, { source: 'tinyshakespeare', url: `${server.url}/input.txt` }, {}, FAST);
    expect(again.alreadyPrepared).toBe(true);
  });

  it('small shards split the stream without changing it', async () => {
    const r = await prepareDataset(
      home,
      { source: 'tinyshakespeare', url: `${server.url}/input.txt`, shardSize: 100_000, name: 'ts-small' },
      {},
      FAST,
    );
    const m = readManifest(path.join(r.dir, 'manifest.json'));
    expect(m.files.map((f) => f.file)).toEqual([
      'ts-small_val_000000.bin',
      'ts-small_train_000001.bin',
      'ts-small_train_000002.bin',
      'ts-small_train_000003.bin',
      'ts-small_train_000004.bin',
    ]);
    expect(m.files.map((f) => f.tokens)).toEqual([36_059, 100_000, 100_000, 100_000, 1_966]);
    const cut = Math.floor(shakespeareText.length * 0.9);
    expect(
      tokensOf(
        r.dir,
        m.files.slice(1).map((f) => f.file),
      ),
    ).toEqual(ref(shakespeareText.slice(0, cut)));
  });

  it('an interrupted preparation leaves no dataset, and resuming gives exactly the uninterrupted result', async () => {
    const file = path.join(home, 'input.txt');
    fs.writeFileSync(file, shakespeare);
    const req = { source: 'local', file, name: 'ts', shardSize: 150_000, workers: 2 };
    const ac = new AbortController();
    const hooks: PrepareHooks = {
      ...FAST,
      unitChars: 40_000,
      signal: ac.signal,
      afterCommit: (n) => n === 12 && ac.abort(),
    };
    let err: unknown;
    try {
      await prepareDataset(home, req, {}, hooks);
    } catch (e) {
      err = e;
    }
    expect(isCancelled(err)).toBe(true);
    const listed = listDatasets(home);
    expect(listed.map((d) => [d.id, d.status])).toEqual([['ts', 'partial']]);
    expect(fs.existsSync(path.join(home, 'datasets', 'ts'))).toBe(false);
    // tokens written after the last checkpoint (as by a process killed mid-write) must not survive
    const partDir = path.join(home, 'datasets', '.ts.partial');
    const open = fs.readdirSync(partDir).find((f) => f.endsWith('.part'));
    expect(open).toBeDefined();
    fs.appendFileSync(path.join(partDir, open!), Buffer.alloc(1000, 7));

    const resumed = await prepareDataset(home, req, {}, { ...FAST, unitChars: 40_000 });
    expect(resumed.resumed).toBe(true);
    const other = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-datasets-ref-'));
    try {
      const clean = await prepareDataset(other, req, {}, { ...FAST, unitChars: 40_000 });
      expect(clean.resumed).toBe(false);
      const a = readManifest(path.join(resumed.dir, 'manifest.json'));
      const b = readManifest(path.join(clean.dir, 'manifest.json'));
      expect(a.files).toEqual(b.files); // names, token counts and sha256 of every shard
      expect(a.tokens).toEqual(b.tokens);
      expect(a.documents).toBe(2);
      // local text gets <|endoftext|> before each of its two parts
      const val = readShardTokens(path.join(clean.dir, 'ts_val_000000.bin'));
      expect(val[0]).toBe(EOT);
      expect(Array.from(val.subarray(1))).toEqual(ref(shakespeareText.slice(Math.floor(shakespeareText.length * 0.9))));
    } finally {
      fs.rmSync(other, { recursive: true, force: true });
    }
  });

  it('the service runs it in the background with progress and status events, and lists it', async () => {
    const status: DatasetStatusEvent[] = [];
    const progress: DatasetProgressEvent[] = [];
    const downloads: DownloadProgressEvent[] = [];
    const svc = new DatasetService({
      home,
      env: {},
      hooks: { ...FAST },
      events: { status: (s) => status.push(s), progress: (p) => progress.push(p), download: (d) => downloads.push(d) },
    });
    expect((await svc.sources()).map((s) => s.id)).toEqual([
      'tinyshakespeare',
      'fineweb-edu-10bt',
      'hellaswag',
      'local',
      'builtin',
    ]);
    const { jobId, datasetId } = await svc.prepare({ source: 'tinyshakespeare', url: `${server.url}/input.txt` });
    expect(datasetId).toBe('tinyshakespeare');
    expect((await svc.jobs()).map((j) => j.jobId)).toEqual([jobId]);
    await expect(svc.prepare({ source: 'tinyshakespeare' })).rejects.toThrow(/already being prepared/);
    const outcome = await svc.wait(jobId);
    await new Promise((r) => setImmediate(r));
    expect(outcome.summary.tokens.train).toBe(301_966);
    expect(status.map((s) => s.status)).toEqual(['running', 'done']);
    expect(status[1]!.dataset?.tokens).toEqual({ train: 301_966, val: 36_059 });
    expect(new Set(progress.map((p) => p.stage))).toEqual(
      new Set(['listing', 'downloading', 'tokenizing', 'finishing']),
    );
    expect(progress.every((p) => p.jobId === jobId && p.datasetId === 'tinyshakespeare')).toBe(true);
    expect(progress.at(-1)!.tokens).toBe(338_025);
    expect(downloads.at(-1)).toMatchObject({ id: jobId, bytes: shakespeare.length, total: shakespeare.length });
    const list = await svc.list();
    expect(list.map((d) => [d.id, d.status, d.tokens.train])).toEqual([['tinyshakespeare', 'ready', 301_966]]);
    expect(await svc.remove({ id: 'tinyshakespeare' })).toEqual({ removed: true });
    expect(await svc.list()).toEqual([]);
  });

  it('cancel through the service reports `cancelled` and leaves a resumable partial', async () => {
    server.routes.set('/slow-input.txt', { body: shakespeare, chunkDelayMs: 30 });
    const status: DatasetStatusEvent[] = [];
    const svc = new DatasetService({ home, env: {}, hooks: FAST, events: { status: (s) => status.push(s) } });
    const { jobId } = await svc.prepare({ source: 'tinyshakespeare', url: `${server.url}/slow-input.txt` });
    await new Promise((r) => setTimeout(r, 150));
    expect(await svc.cancel({ jobId })).toEqual({ cancelled: true });
    await new Promise((r) => setImmediate(r));
    expect(status.map((s) => s.status)).toEqual(['running', 'cancelled']);
    expect(status[1]!.resumable).toBe(true);
    // nothing was tokenized: no partial dataset is left, only the partial download, which the next attempt continues
    expect(await svc.list()).toEqual([]);
    expect(fs.readdirSync(path.join(home, 'datasets'))).toEqual([]);
    const part = fs.readdirSync(path.join(home, 'downloads', 'tinyshakespeare')).find((f) => f.endsWith('.part'));
    expect(part).toBeDefined();
    const had = fs.statSync(path.join(home, 'downloads', 'tinyshakespeare', part!)).size;
    expect(had).toBeGreaterThan(0);
    server.requests.length = 0;
    server.routes.set('/slow-input.txt', { body: shakespeare });
    const again = await svc.prepare({ source: 'tinyshakespeare', url: `${server.url}/slow-input.txt` });
    expect((await svc.wait(again.jobId)).summary.tokens.train).toBe(301_966);
    expect(server.requests.map((q) => q.range)).toEqual([`bytes=${had}-`]);
  });
});

describe.skipIf(!present)('FineWeb-edu through a Hugging Face style endpoint', () => {
  const expected = (docs: string[]): number[] => docs.flatMap((d) => [EOT, ...ref(d)]);

  it('lists the parquet files, checks their LFS sha256, sends the token, and writes EOT + tokens per document', async () => {
    const r = await prepareDataset(
      home,
      { source: 'fineweb-edu-10bt', endpoint: server.url, maxFiles: 2, shardSize: 20_000, workers: 2 },
      { HF_TOKEN: 'hf_test_token' },
      FAST,
    );
    const m = readManifest(path.join(r.dir, 'manifest.json'));
    const stream = tokensOf(
      r.dir,
      m.files.map((f) => f.file),
    );
    expect(stream).toEqual(expected([...fwDocs[0]!, ...fwDocs[1]!]));
    // shard 0 is val with the first shardSize tokens (fineweb.py), the others are train
    expect(m.files[0]).toMatchObject({ file: 'fineweb-edu-10bt_val_000000.bin', split: 'val', tokens: 20_000 });
    expect(
      m.files
        .slice(1)
        .every(
          (f, i) => f.split === 'train' && f.file === `fineweb-edu-10bt_train_${String(i + 1).padStart(6, '0')}.bin`,
        ),
    ).toBe(true);
    expect(m.files.slice(1, -1).every((f) => f.tokens === 20_000)).toBe(true);
    expect(m.inputs.map((i) => i.sha256)).toEqual(fwFiles.slice(0, 2).map((f) => sha256(f.body)));
    expect(m.documents).toBe(600);
    expect(m.source.endpoint).toBe(server.url);
    const fileReqs = server.requests.filter((q) => q.path.startsWith(FW));
    expect(fileReqs.length).toBe(2); // --max-files 2
    expect(fileReqs.every((q) => q.authorization === 'Bearer hf_test_token')).toBe(true);
  });

  it('an interrupted preparation continues from its last row group without downloading finished files again', async () => {
    const req = { source: 'fineweb-edu-10bt', endpoint: server.url, shardSize: 7_000 };
    const ac = new AbortController();
    // 5 row groups a file: stop in the second file
    let err: unknown;
    try {
      await prepareDataset(home, req, {}, { ...FAST, signal: ac.signal, afterCommit: (n) => n === 7 && ac.abort() });
    } catch (e) {
      err = e;
    }
    expect(isCancelled(err)).toBe(true);
    const before = server.requests.filter((q) => q.path.startsWith(FW)).length;
    expect(before).toBeGreaterThanOrEqual(2);
    server.requests.length = 0;
    const r = await prepareDataset(home, req, {}, FAST);
    expect(r.resumed).toBe(true);
    const files = server.requests.filter((q) => q.path.startsWith(FW)).map((q) => q.path.split('/').pop());
    expect(files).not.toContain('000_00000.parquet'); // finished before the interruption
    const m = readManifest(path.join(r.dir, 'manifest.json'));
    expect(
      tokensOf(
        r.dir,
        m.files.map((f) => f.file),
      ),
    ).toEqual(expected(fwDocs.flat()));
    expect(m.documents).toBe(900);
    expect(m.inputs.map((i) => i.sha256)).toEqual(fwFiles.map((f) => sha256(f.body)));
  });

  it('--max-tokens stops at exactly that many tokens, with 10% of them as val', async () => {
    const r = await prepareDataset(
      home,
      { source: 'fineweb-edu-10bt', endpoint: server.url, maxTokens: 20_000, shardSize: 8_000, name: 'fw' },
      {},
      FAST,
    );
    expect(r.summary.tokens).toEqual({ val: 2_000, train: 18_000 });
    const m = readManifest(path.join(r.dir, 'manifest.json'));
    expect(m.files.map((f) => f.tokens)).toEqual([2_000, 8_000, 8_000, 2_000]);
    expect(
      tokensOf(
        r.dir,
        m.files.map((f) => f.file),
      ),
    ).toEqual(expected(fwDocs.flat()).slice(0, 20_000));
    expect(m.notes.join(' ')).toMatch(/--max-tokens 20,000/);
  });

  it('HF_ENDPOINT is used when no endpoint is given; an unknown endpoint path is a 404 with a mirror hint', async () => {
    const r = await prepareDataset(
      home,
      { source: 'fineweb-edu-10bt', maxFiles: 1, name: 'fw1' },
      { HF_ENDPOINT: server.url },
      FAST,
    );
    expect(r.summary.tokens.val + r.summary.tokens.train).toBe(expected(fwDocs[0]!).length);
    const e = await caught(
      prepareDataset(home, { source: 'fineweb-edu-10bt', name: 'fw2' }, { HF_ENDPOINT: `${server.url}/mirror` }, FAST),
    );
    expect(e.code).toBe('NOT_FOUND');
    expect(e.hint).toMatch(/HF_ENDPOINT/);
    // the failed attempt left the workspace as it was
    expect(fs.readdirSync(path.join(home, 'datasets')).sort()).toEqual(['fw1']);
  });
});

describe.skipIf(!present)('other sources', () => {
  it('hellaswag: the JSONL is kept byte for byte, with its examples counted', async () => {
    const r = await prepareDataset(home, { source: 'hellaswag', url: `${server.url}/hellaswag_val.jsonl` }, {}, FAST);
    const kept = path.join(r.dir, 'hellaswag_val.jsonl');
    expect(sha256(fs.readFileSync(kept))).toBe('79b87117cffba9878961284f233797c5ebeba4193cb48a93eabc4a5a1156cc45');
    expect(r.summary).toMatchObject({ kind: 'raw', examples: 1000, status: 'ready' });
    // an HTML page instead of the file is refused
    server.routes.set('/portal.jsonl', { body: Buffer.from('<html><body>Sign in</body></html>\n') });
    const e = await caught(
      prepareDataset(home, { source: 'hellaswag', url: `${server.url}/portal.jsonl`, name: 'hs2' }, {}, FAST),
    );
    expect(e.code).toBe('BAD_DATA');
    expect(e.hint).toMatch(/HTML/);
    expect(fs.readdirSync(path.join(home, 'datasets'))).toEqual(['hellaswag']); // nothing of the failed attempt
    const denied = await caught(
      prepareDataset(home, { source: 'tinyshakespeare', url: `${server.url}/secret.txt` }, {}, FAST),
    );
    expect(denied.message).toMatch(/HTTP 401/);
    expect(fs.readdirSync(path.join(home, 'datasets'))).toEqual(['hellaswag']);
  });

  it('hellaswag: a file with malformed lines counts only the usable examples and names the first bad line', async () => {
    const h = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-hs-bad-'));
    try {
      const file = sharedPath('fixtures/bad-inputs/hellaswag_bad_lines.jsonl');
      const r = await prepareDataset(h, { source: 'hellaswag', file, name: 'hsbad' }, {}, FAST);
      const parsed = parseHellaswag(fs.readFileSync(file, 'utf8'));
      expect(parsed.skipped.length).toBeGreaterThan(0);
      expect(r.summary.examples).toBe(parsed.examples.length);
      expect(r.summary.notes.join(' ')).toMatch(
        new RegExp(`${parsed.skipped.length} malformed lines are skipped \\(first: line ${parsed.skipped[0]!.line}`),
      );
    } finally {
      fs.rmSync(h, { recursive: true, force: true });
    }
  });

  it('local: a folder of .txt files, JSONL (skipping bad lines) and parquet, one document each', async () => {
    const dir = path.join(home, 'texts');
    fs.mkdirSync(dir);
    const docs = speeches.slice(0, 3);
    docs.forEach((d, i) => fs.writeFileSync(path.join(dir, `${i}.txt`), d));
    fs.writeFileSync(path.join(dir, 'notes.md~'), 'ignored');
    const a = await prepareDataset(home, { source: 'local', file: dir, valTokens: 10 }, {}, FAST);
    expect(a.id).toBe('texts');
    const am = readManifest(path.join(a.dir, 'manifest.json'));
    expect(am.inputs.map((i) => i.name)).toEqual(['0.txt', '1.txt', '2.txt']);
    expect(
      tokensOf(
        a.dir,
        am.files.map((f) => f.file),
      ),
    ).toEqual(docs.flatMap((d) => [EOT, ...ref(d)]));
    expect(am.tokens.val).toBe(10);

    const jsonl = path.join(home, 'docs.jsonl');
    fs.writeFileSync(
      jsonl,
      [
        JSON.stringify({ text: docs[0] }),
        'not json',
        JSON.stringify({ body: 'x' }),
        '',
        JSON.stringify({ text: docs[1], id: 2 }),
      ].join('\n'),
    );
    // small units: a checkpoint every line or two, interrupted after the first, then continued
    const ac = new AbortController();
    await prepareDataset(
      home,
      { source: 'local', file: jsonl, valTokens: 0 },
      {},
      { ...FAST, unitChars: 10, signal: ac.signal, afterCommit: () => ac.abort() },
    ).catch((e: unknown) => {
      if (!isCancelled(e)) throw e;
    });
    expect(listDatasets(home).find((d) => d.id === 'docs')?.status).toBe('partial');
    const b = await prepareDataset(
      home,
      { source: 'local', file: jsonl, valTokens: 0 },
      {},
      { ...FAST, unitChars: 10 },
    );
    expect(b.resumed).toBe(true);
    const bm = readManifest(path.join(b.dir, 'manifest.json'));
    expect(
      tokensOf(
        b.dir,
        bm.files.map((f) => f.file),
      ),
    ).toEqual(docs.slice(0, 2).flatMap((d) => [EOT, ...ref(d)]));
    expect(bm.notes.join(' ')).toMatch(/Skipped 2 rows or lines/);
    expect(bm.files.map((f) => f.file)).toEqual(['docs_train_000001.bin']);

    const pq = path.join(home, 'web.parquet');
    fs.writeFileSync(pq, parquetOf(speeches.slice(0, 200), 30));
    const c = await prepareDataset(home, { source: 'local', file: pq, shardSize: 5_000 }, {}, FAST);
    const cm = readManifest(path.join(c.dir, 'manifest.json'));
    expect(
      tokensOf(
        c.dir,
        cm.files.map((f) => f.file),
      ),
    ).toEqual(speeches.slice(0, 200).flatMap((d) => [EOT, ...ref(d)]));
    expect(cm.tokens.val).toBeGreaterThan(0);
    expect(cm.tokens.val).toBeLessThanOrEqual(5_000);
  });

  it('local: a parquet file without a text column is a clear error', async () => {
    const pq = path.join(home, 'bad.parquet');
    fs.writeFileSync(
      pq,
      Buffer.from(parquetWriteBuffer({ columnData: [{ name: 'content', data: ['a', 'b'], type: 'STRING' }] })),
    );
    const e = await caught(prepareDataset(home, { source: 'local', file: pq }, {}, FAST));
    expect(e.code).toBe('BAD_DATA');
    expect(e.message).toContain(pq);
    expect(e.message).toMatch(/no "text" column \(its columns: content\)/);
  });

  it('builtin: seeded and deterministic, with val first and EOT before each story', async () => {
    const a = await prepareDataset(home, { source: 'builtin', sizeMb: 0.5, shardSize: 50_000, seed: 7 }, {}, FAST);
    const other = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-builtin-'));
    try {
      const b = await prepareDataset(other, { source: 'builtin', sizeMb: 0.5, shardSize: 50_000, seed: 7 }, {}, FAST);
      expect(readManifest(path.join(b.dir, 'manifest.json')).files).toEqual(
        readManifest(path.join(a.dir, 'manifest.json')).files,
      );
      const c = await prepareDataset(
        other,
        { source: 'builtin', sizeMb: 0.5, shardSize: 50_000, seed: 8, name: 'seed8' },
        {},
        FAST,
      );
      expect(readManifest(path.join(c.dir, 'manifest.json')).files[0]!.sha256).not.toBe(
        readManifest(path.join(a.dir, 'manifest.json')).files[0]!.sha256,
      );
    } finally {
      fs.rmSync(other, { recursive: true, force: true });
    }
    const m = readManifest(path.join(a.dir, 'manifest.json'));
    expect(m.files[0]!.split).toBe('val');
    expect(m.tokens.val).toBeGreaterThan(0);
    expect(m.tokens.train).toBeGreaterThan(m.tokens.val * 5);
    const val = readShardTokens(path.join(a.dir, m.files[0]!.file));
    expect(val[0]).toBe(EOT);
    expect(m.description).toMatch(/Synthetic/);
  });
});

describe('token shards', () => {
  function writeNpy(file: string, tokens: number[]): void {
    let header = `{'descr': '<u2', 'fortran_order': False, 'shape': (${tokens.length},), }`;
    header += ' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64) + '\n';
    const head = Buffer.alloc(10);
    Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(head);
    head.writeUInt16LE(header.length, 8);
    fs.writeFileSync(
      file,
      Buffer.concat([head, Buffer.from(header, 'latin1'), Buffer.from(Uint16Array.from(tokens).buffer)]),
    );
  }

  it('build-nanogpt .npy shards are read, and imported as a dataset with the same tokens', async () => {
    const dir = path.join(home, 'npy');
    fs.mkdirSync(dir);
    const val = Array.from({ length: 300 }, (_, i) => (i * 7) % 50257);
    const train = Array.from({ length: 500 }, (_, i) => (i * 13) % 50257);
    writeNpy(path.join(dir, 'edufineweb_val_000000.npy'), val);
    writeNpy(path.join(dir, 'edufineweb_train_000001.npy'), train);
    expect(Array.from(readShardTokens(path.join(dir, 'edufineweb_val_000000.npy')))).toEqual(val);
    const r = await prepareDataset(home, { source: 'local', file: dir, name: 'imported' }, {}, FAST);
    expect(r.summary.tokens).toEqual({ train: 500, val: 300 });
    expect(fs.readdirSync(r.dir).sort()).toEqual([
      'imported_train_000001.bin',
      'imported_val_000000.bin',
      'manifest.json',
    ]);
    expect(Array.from(readShardTokens(path.join(r.dir, 'imported_train_000001.bin')))).toEqual(train);
    expect(readShardLayout(path.join(r.dir, 'imported_val_000000.bin')).format).toBe('llmc');
    const loader = openShardLoader([path.join(dir, 'edufineweb_train_000001.npy')], { B: 2, T: 10 });
    const b = loader.nextBatch();
    expect(Array.from(b.inputs)).toEqual(train.slice(0, 20));
    expect(Array.from(b.targets)).toEqual(train.slice(1, 21));
  });

  const bad = ['shard_bad_magic.bin', 'shard_truncated.bin', 'shard_odd_bytes.bin'];
  it.skipIf(!hasFixture('fixtures/bad-inputs/shard_bad_magic.bin'))(
    'the corrupt fixture shards fail to load and to import, naming the file, and leave no dataset',
    async () => {
      for (const name of bad) {
        const file = sharedPath(`fixtures/bad-inputs/${name}`);
        let e: unknown;
        try {
          openShardLoader([file], { B: 1, T: 2 });
        } catch (x) {
          e = x;
        }
        expect(e, name).toBeInstanceOf(StudioError);
        expect((e as StudioError).code).toBe('BAD_SHARD');
        expect((e as StudioError).message).toContain(file);
      }
      const dir = path.join(home, 'shards');
      fs.mkdirSync(dir);
      writeNpy(path.join(dir, 'a_val_000000.npy'), [1, 2, 3]);
      fs.copyFileSync(sharedPath('fixtures/bad-inputs/shard_truncated.bin'), path.join(dir, 'a_train_000001.bin'));
      const err = await caught(prepareDataset(home, { source: 'local', file: dir, name: 'broken' }, {}, FAST));
      expect(err.code).toBe('BAD_SHARD');
      expect(err.message).toContain(path.join(dir, 'a_train_000001.bin'));
      expect(listDatasets(home).filter((d) => d.status === 'ready')).toEqual([]);
      expect(fs.existsSync(path.join(home, 'datasets', 'broken'))).toBe(false);
    },
  );

  it('a shard cut short after it was written is an error that names it', async () => {
    const r = await prepareDataset(home, { source: 'builtin', sizeMb: 0.1, name: 'cut' }, {}, FAST);
    const f = path.join(r.dir, 'cut_train_000001.bin');
    fs.truncateSync(f, fs.statSync(f).size - 3);
    expect(() => openShardLoader([f], { B: 1, T: 8 })).toThrow(
      new RegExp(`${f.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}.*odd number`),
    );
  });
});
