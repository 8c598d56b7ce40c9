/**
 * datasets-preview and datasets-estimate on real files (Tiny Shakespeare, HellaSwag, parquet, shards, SFT JSONL),
 * and the request a job or an interrupted preparation carries so that it can be resumed from the Datasets page.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StudioError } from '../src/shared/errors';
import { decode, encode } from '../src/core/tokenizer';
import { estimatePreparation, setTokenizerSpeed, shardDiskBytes, tokenizerSpeed } from '../src/node/datasets/estimate';
import { prepareDataset, type PrepareHooks } from '../src/node/datasets/prepare';
import { previewDataset } from '../src/node/datasets/preview';
import { prepareSftDataset } from '../src/node/datasets/sft';
import { readShardTokens, writeShardFile } from '../src/node/datasets/shards';
import { isCancelled } from '../src/node/datasets/errors';
import { DatasetService } from '../src/node/datasets/service';
import { hasFixture, sharedPath } from './shared';

const present = hasFixture('data/tinyshakespeare.txt') && hasFixture('data/hellaswag_val_1000.jsonl');
const shakespearePath = sharedPath('data/tinyshakespeare.txt');
const shakespeareText = present ? fs.readFileSync(shakespearePath, 'utf8') : '';
const FAST: PrepareHooks = { progressIntervalMs: 0 };

let home: string;
beforeEach(() => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-prevest-'));
});
afterEach(() => {
  fs.rmSync(home, { recursive: true, force: true });
  setTokenizerSpeed(null);
});

async function caught(p: Promise<unknown> | (() => unknown)): Promise<StudioError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    if (e instanceof StudioError) return e;
    throw e;
  }
  throw new Error('expected a StudioError');
}

/** A fixed tokenizer speed, so that the seconds can be checked exactly. */
const SPEED = { bytesPerSec: 1_000_000, bytesPerToken: 4, sampleBytes: 262_144 };

describe('datasets-estimate', () => {
  it('Tiny Shakespeare: 1.1 MB download, 338,025 tokens, two shards, seconds from the tokenizer speed × workers', async () => {
    setTokenizerSpeed(SPEED);
    const e = await estimatePreparation({ source: 'tinyshakespeare', workers: 2 });
    expect(e.downloadBytes).toBe(1_115_394);
    expect(e.tokens).toBe(338_025);
    expect(e.diskBytes).toBe(338_025 * 2 + 2 * 1024);
    expect(e.seconds).toBeCloseTo(1_115_394 / (2 * 1_000_000), 6);
    expect(e.notes.join('\n')).toMatch(/not included in the time/);
    expect(e.notes.join('\n')).toMatch(/× 2 workers/);
    // more workers, less time; a token limit caps tokens and time
    const four = await estimatePreparation({ source: 'tinyshakespeare', workers: 4 });
    expect(four.seconds).toBeCloseTo(e.seconds! / 2, 6);
    const capped = await estimatePreparation({ source: 'tinyshakespeare', workers: 2, maxTokens: 100_000 });
    expect(capped.tokens).toBe(100_000);
    expect(capped.seconds).toBeCloseTo(e.seconds! * (100_000 / 338_025), 6);
    expect(capped.notes.join('\n')).toMatch(/--max-tokens 100,000/);
  });

  it.skipIf(!present)(
    'Tiny Shakespeare from a local file: no download, sized from the file, matching the real preparation',
    async () => {
      const e = await estimatePreparation({ source: 'tinyshakespeare', file: shakespearePath });
      expect(e.downloadBytes).toBe(0);
      expect(e.tokens).toBe(338_025);
      const r = await prepareDataset(home, { source: 'tinyshakespeare', file: shakespearePath, workers: 1 }, {}, FAST);
      expect(r.summary.tokens.train + r.summary.tokens.val).toBe(e.tokens);
      // the estimate of the disk is the real size of the shards (the manifest aside)
      const shardBytes = r.manifest.files.reduce((n, f) => n + f.bytes, 0);
      expect(e.diskBytes).toBe(shardBytes);
    },
  );

  it('FineWeb-edu sample-10BT: 10B tokens in 14 files, limited by --max-files or --max-tokens', async () => {
    setTokenizerSpeed(SPEED);
    const all = await estimatePreparation({ source: 'fineweb-edu-10bt', workers: 1 });
    expect(all.tokens).toBe(10_000_000_000);
    expect(all.downloadBytes).toBe(28_000_000_000);
    expect(all.seconds).toBeCloseTo((10e9 * 4.2) / 1e6, 0);
    expect(all.notes.join('\n')).toMatch(/14 parquet files/);
    const two = await estimatePreparation({ source: 'fineweb-edu-10bt', maxFiles: 2 });
    expect(two.tokens).toBe(Math.round((2 * 10e9) / 14));
    expect(two.downloadBytes).toBe(4_000_000_000);
    const few = await estimatePreparation({ source: 'fineweb-edu-10bt', maxTokens: 1_000_000 });
    expect(few.tokens).toBe(1_000_000);
    expect(few.downloadBytes).toBe(2_000_000_000); // one file holds them
    expect(few.notes.join('\n')).toMatch(/1 file that holds/);
    const many = await estimatePreparation({ source: 'fineweb-edu-10bt', maxTokens: 2_000_000_000 });
    expect(many.downloadBytes).toBe(6_000_000_000); // 3 files of ~714M tokens
    // a bad limit is refused as `prepare` refuses it
    expect((await caught(estimatePreparation({ source: 'fineweb-edu-10bt', url: 'ftp://x/y.parquet' }))).code).toBe(
      'BAD_ARGUMENT',
    );
  });

  it('HellaSwag: one ~7.5 MB JSONL kept as it is, no tokens, no tokenizing time', async () => {
    const e = await estimatePreparation({ source: 'hellaswag' });
    expect(e.tokens).toBe(0);
    expect(e.downloadBytes).toBe(7_500_000);
    expect(e.diskBytes).toBe(7_500_000);
    expect(e.seconds).toBe(0);
    expect(e.notes.join('\n')).toMatch(/no tokens/);
  });

  it.skipIf(!present)(
    'local: text, a folder, parquet (its text column) and shards, from their size on disk, said to be estimates',
    async () => {
      setTokenizerSpeed(SPEED);
      const txt = path.join(home, 'corpus.txt');
      fs.writeFileSync(txt, shakespeareText);
      const one = await estimatePreparation({ source: 'local', file: txt, workers: 1 });
      expect(one.downloadBytes).toBe(0);
      expect(one.tokens).toBe(Math.round(1_115_394 / 4.2));
      expect(one.seconds).toBeCloseTo(1_115_394 / 1e6, 6);
      expect(one.notes[0]).toMatch(/an estimate/);
      // honest within a third of the real count for English text
      const real = await prepareDataset(home, { source: 'local', file: txt, workers: 1 }, {}, FAST);
      const realTokens = real.summary.tokens.train + real.summary.tokens.val;
      expect(Math.abs(one.tokens! - realTokens) / realTokens).toBeLessThan(0.34);

      const folder = path.join(home, 'folder');
      fs.mkdirSync(folder);
      fs.writeFileSync(path.join(folder, 'a.txt'), 'x'.repeat(4200));
      fs.writeFileSync(path.join(folder, 'b.jsonl'), `${JSON.stringify({ text: 'y'.repeat(8000) })}\n`);
      fs.writeFileSync(path.join(folder, 'notes.bak'), 'z'.repeat(100_000)); // not an input: left out
      const f = await estimatePreparation({ source: 'local', file: folder });
      const folderBytes = 4200 + fs.statSync(path.join(folder, 'b.jsonl')).size;
      expect(f.tokens).toBe(Math.round(folderBytes / 4.2));

      const docs = shakespeareText.split('\n\n').slice(0, 500);
      const pq = path.join(home, 'docs.parquet');
      fs.writeFileSync(
        pq,
        Buffer.from(
          parquetWriteBuffer({ columnData: [{ name: 'text', data: docs, type: 'STRING' }], rowGroupSize: 100 }),
        ),
      );
      const p = await estimatePreparation({ source: 'local', file: pq });
      const textBytes = docs.reduce((n, d) => n + Buffer.byteLength(d) + 4, 0); // + the length prefix of each value
      expect(p.tokens).toBeGreaterThan(Math.round((textBytes * 0.8) / 4.2));
      expect(p.tokens).toBeLessThan(Math.round((textBytes * 1.2) / 4.2));
      expect(p.notes[0]).toMatch(/parquet/);

      const shards = path.join(home, 'shards');
      fs.mkdirSync(shards);
      writeShardFile(path.join(shards, 'x_val_000000.bin'), new Uint16Array(1000));
      writeShardFile(path.join(shards, 'x_train_000001.bin'), new Uint16Array(5000));
      const s = await estimatePreparation({ source: 'local', file: shards });
      expect(s.tokens).toBe(6000);
      expect(s.seconds).toBe(0);
    },
  );

  it('local: a URL has no size estimate; a missing file is FILE_NOT_FOUND naming it; no file at all is refused', async () => {
    const u = await estimatePreparation({ source: 'local', url: 'http://127.0.0.1:9/corpus.txt' });
    expect(u.tokens).toBeNull();
    expect(u.downloadBytes).toBeNull();
    expect(u.notes.join('\n')).toMatch(/not known before the download/);
    const missing = path.join(home, 'nope.txt');
    const e = await caught(estimatePreparation({ source: 'local', file: missing }));
    expect(e.code).toBe('FILE_NOT_FOUND');
    expect(e.message).toContain(missing);
    expect((await caught(estimatePreparation({ source: 'local' }))).message).toMatch(/needs --file/);
    expect((await caught(estimatePreparation({ source: 'nope' }))).message).toMatch(/Unknown dataset source "nope"/);
  });

  it('builtin: sizeMb at the bytes per token measured on the stories, close to the real preparation', async () => {
    const e = await estimatePreparation({ source: 'builtin', sizeMb: 1 });
    expect(e.downloadBytes).toBe(0);
    const r = await prepareDataset(home, { source: 'builtin', sizeMb: 1, workers: 1 }, {}, FAST);
    const real = r.summary.tokens.train + r.summary.tokens.val;
    expect(Math.abs(e.tokens! - real) / real).toBeLessThan(0.05);
    expect(e.notes.join('\n')).toMatch(/No download/);
  });

  it('the tokenizer speed is measured once in the process and reused', () => {
    const a = tokenizerSpeed();
    expect(a.bytesPerSec).toBeGreaterThan(10_000);
    expect(a.bytesPerToken).toBeGreaterThan(2);
    expect(a.bytesPerToken).toBeLessThan(8);
    expect(tokenizerSpeed()).toBe(a);
  });

  it('shard bytes: 2 per token and a 1 KiB header per shard, val in its own shard', () => {
    expect(shardDiskBytes(250, 50, 100)).toBe(500 + 3 * 1024);
    expect(shardDiskBytes(100, 0, 100)).toBe(200 + 1024);
  });
});

describe.skipIf(!present)('datasets-preview', () => {
  it('decodes the first ~2,000 characters of the val shard, exactly the start of the val text', async () => {
    await prepareDataset(home, { source: 'tinyshakespeare', file: shakespearePath, workers: 1 }, {}, FAST);
    const svc = new DatasetService({ home, env: {} });
    const p = await svc.preview({ id: 'tinyshakespeare' });
    expect(p.split).toBe('val');
    expect(p.text.length).toBeGreaterThanOrEqual(2000);
    expect(p.text.length).toBeLessThan(2100);
    const cut = Math.floor(shakespeareText.length * 0.9);
    expect(p.text).toBe(shakespeareText.slice(cut, cut + p.text.length));
    // no more tokens than needed: one fewer decodes to less than 2,000 characters
    const val = readShardTokens(path.join(home, 'datasets', 'tinyshakespeare', 'tinyshakespeare_val_000000.bin'));
    expect(decode(val.subarray(0, p.tokens))).toBe(p.text);
    expect(decode(val.subarray(0, p.tokens - 1)).length).toBeLessThan(2000);
    // each token's id and piece: the pieces make the text, each the token decoded alone
    expect(p.ids).toEqual([...val.subarray(0, p.tokens)]);
    expect(p.pieces).toHaveLength(p.tokens);
    expect(p.pieces!.join('')).toBe(p.text);
    p.ids!.forEach((id, i) => expect(p.pieces![i]).toBe(decode([id])));
    const short = await svc.preview({ id: 'tinyshakespeare', chars: 100 });
    expect(short.text.length).toBeGreaterThanOrEqual(100);
    expect(short.text.length).toBeLessThan(130);
  });

  it('a dataset without val tokens previews its first train shard', async () => {
    const dir = path.join(home, 'shards');
    fs.mkdirSync(dir);
    const tokens = Uint16Array.from([15496, 995, 11, 703, 389, 345, 30]); // "Hello world, how are you?"
    writeShardFile(path.join(dir, 'only_train_000001.bin'), tokens);
    writeShardFile(path.join(dir, 'only_val_000000.bin'), new Uint16Array(0));
    await prepareDataset(home, { source: 'local', file: dir, name: 'imported' }, {}, FAST);
    const p = previewDataset(home, 'imported');
    expect(p).toEqual({
      id: 'imported',
      split: 'train',
      text: 'Hello world, how are you?',
      tokens: 7,
      ids: [...tokens],
      pieces: ['Hello', ' world', ',', ' how', ' are', ' you', '?'],
    });
  });

  it('a character whose bytes span tokens shows on the token that completes it', async () => {
    const dir = path.join(home, 'shards');
    fs.mkdirSync(dir);
    const ids = encode('a 🤖 b');
    writeShardFile(path.join(dir, 'bot_train_000001.bin'), Uint16Array.from(ids));
    writeShardFile(path.join(dir, 'bot_val_000000.bin'), Uint16Array.from(ids));
    await prepareDataset(home, { source: 'local', file: dir, name: 'bot' }, {}, FAST);
    const p = previewDataset(home, 'bot');
    expect(p.text).toBe('a 🤖 b');
    expect(p.ids).toEqual(ids);
    // the robot's four bytes are more than one token: the ones before the last add nothing
    expect(ids.length).toBeGreaterThan(4);
    expect(p.pieces!.join('')).toBe('a 🤖 b');
    expect(p.pieces!.filter((x) => x === '').length).toBeGreaterThan(0);
    expect(p.pieces!.some((x) => x.includes('🤖'))).toBe(true);
  });

  it('HellaSwag (raw) shows its first whole lines', async () => {
    const file = sharedPath('data/hellaswag_val_1000.jsonl');
    await prepareDataset(home, { source: 'hellaswag', file }, {}, FAST);
    const p = previewDataset(home, 'hellaswag');
    expect(p.split).toBe('raw');
    expect(p.tokens).toBe(0);
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    const shown = p.text.split('\n');
    expect(shown.length).toBeGreaterThanOrEqual(1);
    expect(shown).toEqual(lines.slice(0, shown.length));
    expect(p.text.length).toBeGreaterThanOrEqual(2000);
    for (const l of shown) expect(JSON.parse(l)).toHaveProperty('ctx');
  });

  it('an SFT dataset decodes with its chat template', async () => {
    const file = path.join(home, 'chat.jsonl');
    const rows = Array.from({ length: 12 }, (_, i) =>
      JSON.stringify({ prompt: `What is ${i} plus ${i}?`, response: `It is ${2 * i}.` }),
    );
    fs.writeFileSync(file, rows.join('\n') + '\n');
    prepareSftDataset(home, { file, name: 'chat' });
    const p = previewDataset(home, 'chat');
    expect(p.split).toBe('val');
    expect(p.text).toContain('User: What is 0 plus 0?');
    expect(p.text).toContain('Assistant: It is 0.');
  });

  it('a missing or unfinished dataset is an error that says which', async () => {
    const e = await caught(() => previewDataset(home, 'ghost'));
    expect(e.code).toBe('FILE_NOT_FOUND');
    expect(e.message).toMatch(/no dataset "ghost"/);
  });
});

describe.skipIf(!present)('the request travels with a job and an interrupted preparation (never the token)', () => {
  it('jobs list their request; a partial dataset lists the request that resumes it', async () => {
    const file = path.join(home, 'input.txt');
    fs.writeFileSync(file, shakespeareText);
    const ac = new AbortController();
    const req = { source: 'local', file, name: 'ts', workers: 1, hfToken: 'hf_secret_value' };
    const err = await prepareDataset(
      home,
      req,
      {},
      { ...FAST, unitChars: 40_000, signal: ac.signal, afterCommit: (n) => n === 3 && ac.abort() },
    ).catch((e: unknown) => e);
    expect(isCancelled(err)).toBe(true);
    const svc = new DatasetService({ home, env: {}, hooks: { unitChars: 40_000 } });
    const [partial] = await svc.list();
    expect(partial!.status).toBe('partial');
    expect(partial!.request).toEqual({ source: 'local', file, name: 'ts', workers: 1 });
    const ckpt = fs.readFileSync(path.join(home, 'datasets', '.ts.partial', 'progress.json'), 'utf8');
    expect(ckpt).not.toContain('hf_secret_value');
    expect(await caught(() => previewDataset(home, 'ts'))).toMatchObject({
      code: 'FILE_NOT_FOUND',
      message: expect.stringMatching(/not finished/),
    });

    // resuming with the listed request finishes it, and the job carries the request (without a token)
    const { jobId } = await svc.prepare({ ...partial!.request!, hfToken: 'hf_other' });
    const [job] = await svc.jobs();
    expect(job!.jobId).toBe(jobId);
    expect(job!.request).toEqual({ source: 'local', file, name: 'ts', workers: 1 });
    const done = await svc.wait(jobId);
    expect(done.resumed).toBe(true);
    expect(done.summary.status).toBe('ready');
  });
});

describe('download progress while the server stalls', () => {
  it('reports the bytes received so far even when no more arrive (a heartbeat, not only on data)', async () => {
    const http = await import('node:http');
    const { downloadFile } = await import('../src/node/datasets/download');
    const body = Buffer.alloc(300_000, 97);
    const sockets = new Set<import('node:net').Socket>();
    const srv = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-length': String(body.length) });
      res.write(body.subarray(0, 200_000)); // then nothing, until the client gives up
    });
    srv.on('connection', (s) => sockets.add(s));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as import('node:net').AddressInfo).port;
    const ac = new AbortController();
    const seen: number[] = [];
    const p = downloadFile(
      { url: `http://127.0.0.1:${port}/x.txt`, dest: path.join(home, 'dl', 'x.txt') },
      {
        retries: 0,
        signal: ac.signal,
        progressIntervalMs: 250,
        onProgress: (e) => {
          seen.push(e.bytes);
          if (e.bytes === 200_000) ac.abort();
        },
      },
    );
    const err = await p.catch((e: unknown) => e);
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => srv.close(() => r()));
    expect(isCancelled(err)).toBe(true);
    expect(seen.at(-1)).toBe(200_000);
  });
});
