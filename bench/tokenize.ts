/**
 * Tokenization benchmark (issue: datasets): GPT-2 BPE throughput on Tiny Shakespeare ×10 (11.2 MB), and end-to-end
 * preparation throughput. One JSON line per figure (bench/lib.ts):
 *
 * - tokenize-pool-1w: MB/s of the tokenizer pool with 1 worker; peer: gpt-tokenizer on the main thread over the
 *   same pieces (the pool's overhead is the ratio's distance from 1);
 * - tokenize-pool-2w: MB/s with 2 workers; peer: the 1-worker pool (the ratio is the scaling);
 * - prepare-e2e: MB/s of `prepare local --file <the ×10 text>` (read, split 90/10, tokenize with the default pool,
 *   write shards, hash, manifest), worker start-up included; no peer.
 *
 * The text repeats ten times, so gpt-tokenizer's per-word cache is warm after the first copy: these figures are for
 * English prose, the cache's best case, as the benchmark defines it. Timings are medians after one warm-up.
 * Run: node bin/run-ts.mjs bench/tokenize.ts [--iters N] [--file tinyshakespeare.txt]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { splitForTokenizer } from '../src/core/data/text';
import { encode } from '../src/core/tokenizer';
import { TokenizerPool, defaultWorkerCount } from '../src/node/datasets/pool';
import { prepareDataset } from '../src/node/datasets/prepare';
import { median, printResult, timeIt } from './lib';

const TASK_CHARS = 256 * 1024;

async function main(): Promise<void> {
  const here = path.dirname(new URL(import.meta.url).pathname);
  const { values } = parseArgs({
    options: {
      iters: { type: 'string', default: '3' },
      file: {
        type: 'string',
        default: process.env.GPT2_STUDIO_SHARED
          ? path.join(process.env.GPT2_STUDIO_SHARED, 'data/tinyshakespeare.txt')
          : path.join(here, '../../shared/data/tinyshakespeare.txt'),
      },
    },
  });
  const iters = Number(values.iters);
  if (!fs.existsSync(values.file)) {
    process.stderr.write(
      `[bench] ${values.file} is missing: set GPT2_STUDIO_SHARED or pass --file; skipping the tokenization benchmark\n`,
    );
    return;
  }
  const once = fs.readFileSync(values.file, 'utf8');
  const text = once.repeat(10);
  const mb = Buffer.byteLength(text, 'utf8') / 1e6;
  const pieces = splitForTokenizer(text, TASK_CHARS);
  const config = {
    text: `${path.basename(values.file)} x10`,
    megabytes: Number(mb.toFixed(3)),
    pieces: pieces.length,
    pieceChars: TASK_CHARS,
    cpus: os.availableParallelism(),
  };

  // the peer: gpt-tokenizer on the main thread, same pieces
  process.stderr.write(`[bench] main thread: ${mb.toFixed(1)} MB, ${iters} timed runs\n`);
  let mainTokens = 0;
  const mainTimes = await timeIt(
    async () => {
      mainTokens = 0;
      for (const p of pieces) mainTokens += encode(p).length;
    },
    { warmup: 1, iters },
  );
  const mainMBs = mb / median(mainTimes);

  const poolMBs: Record<number, number> = {};
  for (const workers of [1, 2]) {
    process.stderr.write(`[bench] pool of ${workers} worker(s)\n`);
    const pool = await TokenizerPool.start(workers);
    try {
      let tokens = 0;
      const times = await timeIt(
        async () => {
          const parts = await Promise.all(pieces.map((p) => pool.encode([{ text: p, eot: false }])));
          tokens = parts.reduce((n, t) => n + t.length, 0);
        },
        { warmup: 1, iters },
      );
      if (tokens !== mainTokens)
        throw new Error(`pool of ${workers} produced ${tokens} tokens, the main thread ${mainTokens}`);
      poolMBs[workers] = mb / median(times);
    } finally {
      await pool.close();
    }
  }
  printResult({
    name: 'tokenize-pool-1w',
    figure: poolMBs[1]!,
    unit: 'MB/s',
    peer: 'gpt-tokenizer-main-thread',
    peerFigure: mainMBs,
    ratio: poolMBs[1]! / mainMBs,
    config: { ...config, workers: 1, tokens: mainTokens },
    notes: 'target: >= 10 MB/s per core',
  });
  printResult({
    name: 'tokenize-pool-2w',
    figure: poolMBs[2]!,
    unit: 'MB/s',
    peer: 'tokenize-pool-1w',
    peerFigure: poolMBs[1]!,
    ratio: poolMBs[2]! / poolMBs[1]!,
    config: { ...config, workers: 2, perWorkerMBs: Number((poolMBs[2]! / 2).toFixed(2)) },
    notes:
      config.cpus < 3
        ? `only ${config.cpus} CPUs: the main thread (shard writing, dispatch) shares them with the 2 workers`
        : undefined,
  });

  // end to end: prepare local --file, fresh workspace each time
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-bench-tokenize-'));
  try {
    const input = path.join(tmp, 'shakespeare_x10.txt');
    fs.writeFileSync(input, text);
    let n = 0;
    let tokens = 0;
    const times = await timeIt(
      async () => {
        const home = path.join(tmp, `home-${n++}`);
        const r = await prepareDataset(home, { source: 'local', file: input, name: 'bench' }, {});
        tokens = r.summary.tokens.train + r.summary.tokens.val;
      },
      { warmup: 1, iters },
    );
    printResult({
      name: 'prepare-e2e',
      figure: mb / median(times),
      unit: 'MB/s',
      peer: null,
      peerFigure: null,
      ratio: null,
      config: { ...config, workers: defaultWorkerCount(), tokens, seconds: Number(median(times).toFixed(3)) },
      notes:
        'prepare local --file (text split 90/10): read, tokenize in the pool, write and hash shards, manifest; worker start-up included',
    });
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
