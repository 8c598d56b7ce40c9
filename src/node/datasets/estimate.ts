/**
 * What a preparation will take, before it starts: bytes to download, tokens, bytes of shards on disk, and the time
 * to tokenize on this machine. Figures come from what is known without the network: the sources' published sizes,
 * the size of local files (parquet: the uncompressed size of the text column), and a tokenizer throughput measured
 * once in this process on a fixed sample. The download's time depends on the connection and is left out (the
 * notes say so, with the time at 100 Mbit/s for scale).
 */
import fs from 'node:fs';
import { SHARD_HEADER_BYTES, TOKEN_BYTES } from '../../core/data/shard';
import { encode } from '../../core/tokenizer';
import { defaultWorkerCount } from './pool';
import {
  BYTES_PER_TOKEN_ESTIMATE,
  DEFAULT_BUILTIN_MB,
  DEFAULT_SHARD_SIZE,
  FINEWEB_FILES,
  FINEWEB_TOKENS,
  FINEWEB_BYTES,
  HELLASWAG_BYTES,
  TINYSHAKESPEARE_BYTES,
  TINYSHAKESPEARE_TOKENS,
  getSource,
} from './sources';
import { parquetTextBytes } from './readers';
import { readShardLayout } from './shards';
import { syntheticStory } from './synthetic';
import type { DatasetEstimate, PrepareRequest } from '../../shared/api/datasets';

/** The tokenizer's speed on one thread, measured on the sample; and the sample's bytes per token. */
export interface TokenizerSpeed {
  bytesPerSec: number;
  /** UTF-8 bytes per token of the (synthetic) sample */
  bytesPerToken: number;
  sampleBytes: number;
}

let measured: TokenizerSpeed | null = null;

/** The fixed sample: the first synthetic stories (seed 1337), about 256 KB of simple English. */
function sample(): string {
  const parts: string[] = [];
  let n = 0;
  for (let i = 0; n < 256 * 1024; i++) {
    const s = syntheticStory(1337, i);
    parts.push(s);
    n += s.length + 2;
  }
  return parts.join('\n\n');
}

/** Measures the tokenizer on one thread (once per process; later calls return the same figures). */
export function tokenizerSpeed(): TokenizerSpeed {
  if (measured) return measured;
  const text = sample();
  encode(text.slice(0, 16 * 1024)); // warm-up: loads the BPE tables
  const bytes = Buffer.byteLength(text, 'utf8');
  const t0 = performance.now();
  const tokens = encode(text).length;
  const sec = Math.max(1e-3, (performance.now() - t0) / 1000);
  measured = { bytesPerSec: bytes / sec, bytesPerToken: bytes / tokens, sampleBytes: bytes };
  return measured;
}

/** For tests: forget the measured speed, or set one. */
export function setTokenizerSpeed(s: TokenizerSpeed | null): void {
  measured = s;
}

const mb = (n: number): string =>
  n >= 1e9 ? `${(n / 1e9).toFixed(1)} GB` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e3).toFixed(0)} KB`;
const num = (n: number): string => Math.round(n).toLocaleString('en-US');
const secs = (s: number): string =>
  s < 90 ? `${Math.max(1, Math.round(s))} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`;

/** Bytes of shards for `tokens` tokens: val first (its own shard), then train shards of `shardSize`. */
export function shardDiskBytes(tokens: number, valTokens: number, shardSize: number): number {
  const val = Math.min(tokens, valTokens);
  const train = tokens - val;
  const shards = (val > 0 ? 1 : 0) + Math.ceil(train / shardSize);
  return tokens * TOKEN_BYTES + shards * SHARD_HEADER_BYTES;
}

/** Size and time estimates of a preparation. Local files are read (sizes, parquet metadata); nothing is downloaded. */
export async function estimatePreparation(req: PrepareRequest): Promise<DatasetEstimate> {
  const def = getSource(req.source);
  const notes: string[] = [];
  const shardSize = req.shardSize ?? DEFAULT_SHARD_SIZE;
  const workers = req.workers ?? defaultWorkerCount();
  let downloadBytes: number | null = 0;
  let tokens: number | null = null;
  /** text to tokenize, in bytes */
  let textBytes: number | null = null;
  let rawBytes = 0;
  let valFraction = 0.1;

  // the plan checks the request (paths, limits, URLs) as `prepare` will; only the FineWeb Hub listing needs the
  // network, and it is not asked for
  const hub = req.source === 'fineweb-edu-10bt' && req.url === undefined && req.file === undefined;
  const plan = hub ? null : await def.plan(req, { env: {} });

  switch (req.source) {
    case 'tinyshakespeare': {
      const file = plan?.inputs[0]?.path;
      const size = file ? fs.statSync(file).size : TINYSHAKESPEARE_BYTES;
      downloadBytes = file ? 0 : TINYSHAKESPEARE_BYTES;
      textBytes = size;
      tokens = Math.round((size * TINYSHAKESPEARE_TOKENS) / TINYSHAKESPEARE_BYTES);
      if (file)
        notes.push(
          `Tokens: ${num(tokens)} from the file's ${mb(size)} at Tiny Shakespeare's ${(TINYSHAKESPEARE_BYTES / TINYSHAKESPEARE_TOKENS).toFixed(2)} bytes per token.`,
        );
      else if (req.url !== undefined)
        notes.push(
          `Download: about ${mb(TINYSHAKESPEARE_BYTES)} if ${req.url} serves Tiny Shakespeare (its size is not known before the download).`,
        );
      else
        notes.push(
          `Download: ${mb(TINYSHAKESPEARE_BYTES)} (input.txt, char-rnn), which gives ${num(TINYSHAKESPEARE_TOKENS)} tokens (301,966 train + 36,059 val).`,
        );
      break;
    }
    case 'fineweb-edu-10bt': {
      const perFileTokens = FINEWEB_TOKENS / FINEWEB_FILES;
      const perFileBytes = FINEWEB_BYTES / FINEWEB_FILES;
      if (plan && plan.inputs.some((i) => i.path)) {
        // local parquet: the text column's uncompressed size
        let compressed = 0;
        let text = 0;
        for (const i of plan.inputs) {
          compressed += fs.statSync(i.path!).size;
          text += await parquetTextBytes(i.path!);
        }
        downloadBytes = 0;
        textBytes = text;
        tokens = Math.round(text / BYTES_PER_TOKEN_ESTIMATE);
        notes.push(
          `Tokens: about ${num(tokens)}, from ${mb(text)} of text in ${plan.inputs.length} parquet file${plan.inputs.length === 1 ? '' : 's'} (${mb(compressed)} on disk) at about ${BYTES_PER_TOKEN_ESTIMATE} bytes per token (an estimate).`,
        );
      } else {
        const files = req.url !== undefined ? 1 : Math.min(req.maxFiles ?? FINEWEB_FILES, FINEWEB_FILES);
        tokens = Math.round(files * perFileTokens);
        downloadBytes = Math.round(files * perFileBytes);
        notes.push(
          req.url !== undefined
            ? `One parquet file from ${req.url}: sized as an average sample-10BT file (about ${mb(perFileBytes)}, ${num(perFileTokens)} tokens).`
            : `sample-10BT is about ${num(FINEWEB_TOKENS)} tokens in ${FINEWEB_FILES} parquet files (about ${mb(FINEWEB_BYTES)}): about ${mb(perFileBytes)} and ${num(perFileTokens)} tokens a file. ${files < FINEWEB_FILES ? `Limited to ${files} file${files === 1 ? '' : 's'}.` : 'All files.'}`,
        );
        textBytes = tokens * BYTES_PER_TOKEN_ESTIMATE;
      }
      break;
    }
    case 'hellaswag': {
      const file = plan?.inputs[0]?.path;
      rawBytes = file ? fs.statSync(file).size : HELLASWAG_BYTES;
      downloadBytes = file ? 0 : HELLASWAG_BYTES;
      tokens = 0;
      textBytes = 0;
      notes.push(
        `${file ? `The file (${mb(rawBytes)})` : `One JSONL file of about ${mb(HELLASWAG_BYTES)}`} is kept as it is for the HellaSwag evaluation: no tokens are written.`,
      );
      break;
    }
    case 'local': {
      const inputs = plan?.inputs ?? [];
      if (req.url !== undefined) {
        downloadBytes = null;
        notes.push(`The size of ${req.url} is not known before the download: no estimate of the tokens.`);
        break;
      }
      downloadBytes = 0;
      if (plan?.kind === 'shards') {
        tokens = inputs.reduce((n, i) => n + readShardLayout(i.path!).tokens, 0);
        textBytes = 0;
        notes.push(
          `Tokens: ${num(tokens)}, read from the headers of ${inputs.length} shard file${inputs.length === 1 ? '' : 's'} (imported as they are).`,
        );
        break;
      }
      const onDisk = inputs.reduce((n, i) => n + fs.statSync(i.path!).size, 0);
      textBytes = plan?.textBytesTotal ?? onDisk;
      tokens = Math.round(textBytes / BYTES_PER_TOKEN_ESTIMATE);
      const parquet = inputs.some((i) => i.format === 'parquet');
      notes.push(
        `Tokens: about ${num(tokens)}, an estimate from ${mb(textBytes)} of ${parquet ? 'text (parquet: the text column, uncompressed)' : 'text on disk'} in ${inputs.length} file${inputs.length === 1 ? '' : 's'} at about ${BYTES_PER_TOKEN_ESTIMATE} bytes per token (English prose; code and other languages take more tokens).`,
      );
      if (inputs.length === 1 && inputs[0]!.format === 'text-split') valFraction = 0.1;
      break;
    }
    case 'builtin': {
      const speed = tokenizerSpeed();
      const bytes = Math.round((req.sizeMb ?? DEFAULT_BUILTIN_MB) * 1e6);
      textBytes = bytes;
      tokens = Math.round(bytes / speed.bytesPerToken);
      notes.push(
        `Generated here: ${mb(bytes)} of synthetic stories, about ${num(tokens)} tokens at the ${speed.bytesPerToken.toFixed(2)} bytes per token measured on a sample of them. No download.`,
      );
      break;
    }
    default: {
      downloadBytes = null;
      notes.push(`No estimate for the source "${req.source}".`);
    }
  }

  if (tokens !== null && req.maxTokens !== undefined && req.maxTokens < tokens) {
    const frac = req.maxTokens / tokens;
    notes.push(
      `Stops at --max-tokens ${num(req.maxTokens)} (${(frac * 100).toFixed(frac < 0.01 ? 2 : 0)}% of the input).`,
    );
    if (req.source === 'fineweb-edu-10bt' && plan === null && downloadBytes !== null) {
      const perFileTokens = FINEWEB_TOKENS / FINEWEB_FILES;
      const needed = Math.max(1, Math.ceil(req.maxTokens / perFileTokens));
      const files = Math.min(Math.round(downloadBytes / (FINEWEB_BYTES / FINEWEB_FILES)), needed);
      downloadBytes = Math.round(files * (FINEWEB_BYTES / FINEWEB_FILES));
      notes.push(
        `Download: the ${files} file${files === 1 ? '' : 's'} that hold${files === 1 ? 's' : ''} that many tokens (one more may start downloading ahead).`,
      );
    }
    if (textBytes !== null) textBytes = textBytes * frac;
    tokens = req.maxTokens;
  }

  let diskBytes: number | null = null;
  if (req.source === 'hellaswag') diskBytes = rawBytes;
  else if (tokens !== null) {
    const val = req.valTokens ?? Math.min(shardSize, Math.max(1, Math.round(tokens * valFraction)));
    diskBytes = shardDiskBytes(tokens, val, shardSize);
    if (req.keepDownloads && downloadBytes) {
      diskBytes += downloadBytes;
      notes.push('Disk: the downloaded files are kept as well (--keep-downloads).');
    } else if (downloadBytes && req.source === 'fineweb-edu-10bt') {
      notes.push(
        'Disk: each parquet file is deleted once tokenized; while it runs, up to about three of them are on disk as well.',
      );
    }
  }

  let seconds: number | null = null;
  if (textBytes !== null) {
    const speed = tokenizerSpeed();
    seconds = textBytes / (speed.bytesPerSec * workers);
    if (textBytes > 0) {
      notes.push(
        `Tokenizing: about ${secs(seconds)} at ${(speed.bytesPerSec / 1e6).toFixed(2)} MB/s per worker (measured here on a ${mb(speed.sampleBytes)} sample) × ${workers} worker${workers === 1 ? '' : 's'}; real speed-ups are a little below the worker count.`,
      );
    }
  }
  if (downloadBytes === null || downloadBytes > 0) {
    notes.push(
      downloadBytes === null
        ? 'Download: its size and time are unknown until it starts.'
        : `Download: not included in the time, since the connection's speed is unknown (${mb(downloadBytes)} take about ${secs((downloadBytes * 8) / 100e6)} at 100 Mbit/s).`,
    );
  }
  return { downloadBytes, tokens, diskBytes: diskBytes === null ? null : Math.round(diskBytes), seconds, notes };
}
