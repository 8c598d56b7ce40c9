/** `gpt2-studio prepare` and `gpt2-studio datasets` against a loopback server. */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StudioError } from '../src/shared/errors';
import { datasetsCommand, parseCount, prepareCommand, ProgressView } from '../src/cli/prepare';
import { openDatasetLoader } from '../src/node/datasets/loader';
import { readShardTokens } from '../src/node/datasets/shards';
import { startLoopback, type Loopback } from './helpers/loopback';
import { hasFixture, repoRoot, sharedPath } from './shared';

const present = hasFixture('data/tinyshakespeare.txt');
let server: Loopback;
let home: string;

function io() {
  const r = { out: '', err: '' };
  return { r, io: { out: (s: string) => void (r.out += s), err: (s: string) => void (r.err += s) } };
}

beforeAll(async () => {
  server = await startLoopback({
    '/input.txt': {
      body: present ? fs.readFileSync(sharedPath('data/tinyshakespeare.txt')) : Buffer.alloc(0),
      chunkDelayMs: 2,
    },
  });
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-cli-datasets-'));
});
afterAll(async () => {
  await server?.close();
  if (home) fs.rmSync(home, { recursive: true, force: true });
});

describe.skipIf(!present)('gpt2-studio prepare / datasets', () => {
  it('prepare tinyshakespeare --url prints progress lines on stderr and the summary on stdout', async () => {
    const { r, io: cli } = io();
    const code = await prepareCommand(['tinyshakespeare', '--url', `${server.url}/input.txt`, '--home', home], cli, {
      tty: false,
      intervalMs: 0,
    });
    expect(code).toBe(0);
    expect(r.out).toMatch(/^tinyshakespeare: 301,966 train \+ 36,059 val tokens in 2 shards/);
    expect(r.err).toMatch(/^download {2}input\.txt {2}.* \/ 1\.12 MB {2}\[#+\.*\] +\d+% {2}.*\/s {2}ETA \d+:\d\d$/m);
    expect(r.err).toMatch(/^tokenize {2}.*tokens .*MB\/s .*tok\/s/m);
    expect(r.err).not.toContain('\r');
    // the same again: already there
    const again = io();
    expect(await prepareCommand(['tinyshakespeare', '--home', home], again.io, { tty: false })).toBe(0);
    expect(again.r.err).toMatch(/already prepared/);
  });

  it('datasets lists it, as a table and as JSON; the loader reads its shards', async () => {
    const t = io();
    expect(await datasetsCommand(['--home', home], t.io)).toBe(0);
    expect(t.r.out).toMatch(/^id +source +status +train tokens +val tokens +shards +size$/m);
    expect(t.r.out).toMatch(/^tinyshakespeare +tinyshakespeare +ready +301,966 +36,059 +2 /m);
    const j = io();
    expect(await datasetsCommand(['--json', '--home', home], j.io)).toBe(0);
    const list = JSON.parse(j.r.out);
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({
      id: 'tinyshakespeare',
      status: 'ready',
      tokens: { train: 301_966, val: 36_059 },
      shards: 2,
    });

    const loader = openDatasetLoader(home, 'tinyshakespeare', 'val', { B: 4, T: 64 });
    const val = readShardTokens(path.join(home, 'datasets', 'tinyshakespeare', 'tinyshakespeare_val_000000.bin'));
    const b = loader.nextBatch();
    expect(Array.from(b.inputs)).toEqual(Array.from(val.subarray(0, 256)));
    expect(Array.from(b.targets)).toEqual(Array.from(val.subarray(1, 257)));
    expect(() => openDatasetLoader(home, 'nope', 'train', { B: 1, T: 8 })).toThrow(/no dataset "nope".*/);
  });

  it('runs in a plain Node process (tsx loader, worker threads) with --json output', async () => {
    const sub = path.join(home, 'sub');
    // asynchronous: the loopback server lives in this process and must keep answering
    const child = spawn(process.execPath, [
      path.join(repoRoot, 'bin/run-ts.mjs'),
      path.join(repoRoot, 'test/helpers/cli-entry.ts'),
      'prepare',
      'tinyshakespeare',
      '--url',
      `${server.url}/input.txt`,
      '--home',
      sub,
      '--workers',
      '2',
      '--json',
      '--shard-size',
      '200K',
    ]);
    const res = { stdout: '', stderr: '', status: null as number | null };
    child.stdout.on('data', (d: Buffer) => (res.stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (res.stderr += d.toString()));
    res.status = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(res.stderr).not.toMatch(/error:/);
    expect(res.status).toBe(0);
    const out = JSON.parse(res.stdout);
    expect(out).toMatchObject({
      id: 'tinyshakespeare',
      tokens: { train: 301_966, val: 36_059 },
      shards: 3,
      alreadyPrepared: false,
    });
  });

  it('bad arguments are BAD_ARGUMENT errors with a hint', async () => {
    const cases: Array<[string[], RegExp]> = [
      [[], /needs a source/],
      [['nosuch'], /Unknown dataset source "nosuch"/],
      [['tinyshakespeare', '--url', 'ftp://x/y'], /not an http\(s\) URL/],
      [['tinyshakespeare', '--url', 'http://a/b', '--file', 'c'], /either --url or --file/],
      [['tinyshakespeare', '--shard-size', '12x'], /--shard-size 12x is not valid/],
      [['local'], /needs --file/],
      [['builtin', '--file', 'x.txt'], /--url and --file do not apply/],
      [['tinyshakespeare', '--name', '../evil'], /not a valid dataset name/],
    ];
    const empty = path.join(home, 'empty-home'); // no dataset there: every request is planned
    for (const [argv, re] of cases) {
      const { io: cli } = io();
      let e: unknown;
      try {
        await prepareCommand([...argv, '--home', empty], cli, { tty: false });
      } catch (x) {
        e = x;
      }
      expect(e, argv.join(' ')).toBeInstanceOf(StudioError);
      expect((e as StudioError).code).toBe('BAD_ARGUMENT');
      expect((e as StudioError).message).toMatch(re);
      expect((e as StudioError).hint).not.toBe('');
    }
  });

  it('--help lists the sources', async () => {
    const { r, io: cli } = io();
    expect(await prepareCommand(['--help'], cli)).toBe(0);
    for (const s of ['tinyshakespeare', 'fineweb-edu-10bt', 'hellaswag', 'local', 'builtin'])
      expect(r.out).toContain(s);
  });
});

describe('CLI helpers', () => {
  it('parseCount takes K, M, B suffixes and rejects the rest', () => {
    expect(parseCount('100M', 'x')).toBe(100_000_000);
    expect(parseCount('1.5B', 'x')).toBe(1_500_000_000);
    expect(parseCount('20k', 'x')).toBe(20_000);
    expect(parseCount('1e8', 'x')).toBe(1e8);
    expect(parseCount('100_000', 'x')).toBe(100_000);
    expect(parseCount(undefined, 'x')).toBeUndefined();
    expect(() => parseCount('1.5', 'x')).toThrow(/--x 1.5 is not valid/);
    expect(() => parseCount('-3', 'x')).toThrow(/not valid/);
    expect(parseCount('0.5', 'size-mb', { min: 0.001, allowFraction: true })).toBe(0.5);
  });

  it('the progress view rewrites one line on a terminal and prints periodic lines otherwise', () => {
    let t = 0;
    const tty = io();
    const v = new ProgressView(tty.io, true, 100, () => t);
    v.show('a', 's');
    t = 50;
    v.show('b', 's'); // too soon
    t = 200;
    v.show('c', 's');
    v.end();
    expect(tty.r.err).toBe('\ra\x1b[K\rc\x1b[K\n');
    const log = io();
    const w = new ProgressView(log.io, false, 5000, () => t);
    w.show('x', 's');
    t = 1000;
    w.show('y', 's'); // within 5 s
    w.show('z', 'other stage'); // a new stage always shows
    t = 7000;
    w.show('w', 'other stage');
    w.end();
    expect(log.r.err).toBe('x\nz\nw\n');
  });
});
