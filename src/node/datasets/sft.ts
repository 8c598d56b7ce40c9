/**
 * SFT datasets: JSONL of {"prompt", "response"} or {"messages": [...]}, rendered with the chat template
 * (src/core/chat.ts) into a token stream plus a loss mask of the same length. Stored like the other datasets in
 * `<home>/datasets/<id>/`: llm.c token shards (`sft_val_000000.bin`, `sft_train_000001.bin`) and beside each a
 * `.mask` file with one byte per token (1 = counts in the loss). The first 10% of the examples (at least one)
 * are the val split.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode, StudioError } from '../../shared/errors';
import { parseSftExample, renderChat } from '../../core/chat';
import { GPT2_VOCAB_SIZE, EOT_TOKEN } from '../../core/model/config';
import type { Batch } from '../../core/engine/types';
import type { BatchSource } from '../../core/train/trainer';
import { SHARD_HEADER_BYTES, SHARD_MAGIC, SHARD_VERSION } from '../../core/data/shard';
import { ensureDir, fsyncDir, writeFileAtomic } from '../fsutil';
import {
  checkDatasetId,
  datasetDir,
  MANIFEST_FILE,
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  openDataset,
  readManifest,
  type DatasetManifest,
} from './manifest';
import { readShardTokens, sha256FileSync, writeShardFile } from './shards';

export interface SftPrepareResult {
  id: string;
  dir: string;
  examples: { train: number; val: number };
  tokens: { train: number; val: number };
  skipped: { line: number; message: string }[];
}

/** Reads the JSONL, renders each example, and writes the dataset atomically (temp folder, then rename). */
export function prepareSftDataset(
  home: string,
  opts: { file: string; name?: string; strict?: boolean; overwrite?: boolean },
): SftPrepareResult {
  const file = path.resolve(opts.file);
  if (!fs.existsSync(file))
    throw new StudioError(
      ErrorCode.FILE_NOT_FOUND,
      `SFT data file ${file} does not exist.`,
      'Pass --file with a JSONL file of {"prompt","response"} or {"messages":[...]} objects.',
    );
  const id = checkDatasetId(
    opts.name ??
      path
        .basename(file)
        .replace(/\.[^.]+$/, '')
        .replace(/[^A-Za-z0-9._-]+/g, '-'),
  );
  const finalDir = datasetDir(home, id);
  if (fs.existsSync(path.join(finalDir, MANIFEST_FILE)) && !opts.overwrite) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `The dataset "${id}" already exists.`,
      'Pick another --name, or pass --overwrite to replace it.',
    );
  }
  const rendered: { tokens: number[]; mask: number[] }[] = [];
  const skipped: { line: number; message: string }[] = [];
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  lines.forEach((raw, i) => {
    if (raw.trim() === '') return;
    let o: unknown;
    let why: string | null = null;
    try {
      o = JSON.parse(raw);
    } catch {
      why = 'not valid JSON';
    }
    const msgs = why ? why : parseSftExample(o);
    if (typeof msgs === 'string') {
      if (opts.strict)
        throw new StudioError(
          ErrorCode.BAD_DATA,
          `${file}, line ${i + 1}: ${msgs}.`,
          'Fix the line, or leave out --strict to skip malformed lines.',
        );
      skipped.push({ line: i + 1, message: msgs });
      return;
    }
    rendered.push(renderChat(msgs));
  });
  if (rendered.length < 2) {
    throw new StudioError(
      ErrorCode.BAD_DATA,
      `${file} has ${rendered.length} usable example(s); SFT needs at least 2 (one for val).`,
      'Add examples: one JSON object per line.',
    );
  }
  const nVal = Math.max(1, Math.floor(rendered.length / 10));
  const splits = { val: rendered.slice(0, nVal), train: rendered.slice(nVal) };
  const tmp = path.join(path.dirname(finalDir), `.${id}.sft-tmp-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  ensureDir(tmp);
  try {
    const files: DatasetManifest['files'] = [];
    const tokens = { train: 0, val: 0 };
    (['val', 'train'] as const).forEach((split, idx) => {
      const ex = splits[split];
      const n = ex.reduce((s, e) => s + e.tokens.length, 0);
      const t = new Uint16Array(n);
      const m = new Uint8Array(n);
      let o = 0;
      for (const e of ex) {
        t.set(e.tokens, o);
        m.set(e.mask, o);
        o += e.tokens.length;
      }
      const base = `sft_${split}_${String(idx).padStart(6, '0')}`;
      writeShardFile(path.join(tmp, `${base}.bin`), t);
      writeFileAtomic(path.join(tmp, `${base}.mask`), m);
      for (const f of [`${base}.bin`, `${base}.mask`]) {
        const p = path.join(tmp, f);
        files.push({
          file: f,
          split,
          tokens: f.endsWith('.bin') ? n : undefined,
          bytes: fs.statSync(p).size,
          sha256: sha256FileSync(p),
        });
      }
      tokens[split] = n;
    });
    const manifest: DatasetManifest = {
      format: MANIFEST_FORMAT,
      version: MANIFEST_VERSION,
      id,
      title: `SFT: ${path.basename(file)}`,
      description: `${rendered.length} conversations rendered with the chat template; only the assistant's words (and the closing <|endoftext|>) count in the loss.`,
      kind: 'sft',
      source: { id: 'sft', file, options: {} },
      tokenizer: {
        name: 'gpt2',
        encoding: 'r50k_base',
        library: 'gpt-tokenizer',
        vocabSize: GPT2_VOCAB_SIZE,
        eot: EOT_TOKEN,
        eotBeforeEachDocument: true,
      },
      shardFormat: {
        name: 'llm.c',
        magic: SHARD_MAGIC,
        version: SHARD_VERSION,
        headerBytes: SHARD_HEADER_BYTES,
        dtype: 'uint16',
      },
      files,
      inputs: [{ name: path.basename(file), path: file, bytes: fs.statSync(file).size }],
      tokens,
      examples: rendered.length,
      created: new Date().toISOString(),
      notes: skipped.length
        ? [
            `${skipped.length} malformed line(s) skipped: ${skipped
              .slice(0, 5)
              .map((s) => s.line)
              .join(', ')}${skipped.length > 5 ? ', ...' : ''}`,
          ]
        : [],
    };
    writeFileAtomic(path.join(tmp, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
    fsyncDir(tmp);
    if (fs.existsSync(finalDir)) fs.rmSync(finalDir, { recursive: true, force: true });
    fs.renameSync(tmp, finalDir);
    fsyncDir(path.dirname(finalDir));
    return { id, dir: finalDir, examples: { train: splits.train.length, val: splits.val.length }, tokens, skipped };
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

export function isSftDataset(home: string, id: string): boolean {
  try {
    return openDataset(home, id).manifest.kind === 'sft';
  } catch {
    return false;
  }
}

/** The tokens and mask of one split of an SFT dataset. */
export function readSftSplit(
  home: string,
  id: string,
  split: 'train' | 'val',
): { tokens: Uint16Array; mask: Uint8Array } | null {
  const { dir } = openDataset(home, id);
  const m = readManifest(path.join(dir, MANIFEST_FILE));
  const bin = m.files.find((f) => f.split === split && f.file.endsWith('.bin'));
  if (!bin) return null;
  const tokens = readShardTokens(path.join(dir, bin.file));
  const maskFile = path.join(dir, bin.file.replace(/\.bin$/, '.mask'));
  const mask = new Uint8Array(fs.readFileSync(maskFile));
  if (mask.length !== tokens.length) {
    throw new StudioError(
      ErrorCode.BAD_DATA,
      `${maskFile} holds ${mask.length} mask bytes for ${tokens.length} tokens.`,
      'Prepare the SFT dataset again.',
    );
  }
  return { tokens, mask };
}

/** The rows of T+1 tokens that fit in n tokens, up to B; null when not even one does. */
export function fitRows(n: number, B: number, T: number): number | null {
  const rows = Math.min(B, Math.floor((n - 1) / T));
  return rows >= 1 ? rows : null;
}

/**
 * Batches over an SFT stream, with DataLoaderLite's semantics (B*T+1 tokens, advance by B*T, wrap), where a
 * position counts in the loss only when its target token is masked in.
 */
export function sftSource(
  data: { tokens: Uint16Array; mask: Uint8Array },
  B: number,
  T: number,
  opts: { shrinkToFit?: boolean } = {},
): BatchSource {
  const n = data.tokens.length;
  // a small val split may hold fewer than B rows: evaluate on the rows it has (training always gets B)
  if (opts.shrinkToFit) B = fitRows(n, B, T) ?? B;
  if (n < B * T + 1) {
    throw new StudioError(
      ErrorCode.BAD_DATA,
      `The SFT split has ${n} tokens, fewer than one batch of B*T+1 = ${B * T + 1}.`,
      'Lower batch_size or seq_len, or add examples.',
    );
  }
  let pos = 0;
  return {
    next(): Batch {
      const inputs = new Int32Array(B * T);
      const targets = new Int32Array(B * T);
      const mask = new Float32Array(B * T);
      for (let i = 0; i < B * T; i++) {
        inputs[i] = data.tokens[pos + i]!;
        targets[i] = data.tokens[pos + i + 1]!;
        mask[i] = data.mask[pos + i + 1]!;
      }
      pos += B * T;
      if (pos + B * T + 1 > n) pos = 0;
      return { B, T, inputs, targets, mask };
    },
    getState: () => ({ pos }),
    setState: (s) => {
      pos = (s as { pos: number }).pos;
    },
    reset: () => {
      pos = 0;
    },
  };
}
