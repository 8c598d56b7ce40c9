/**
 * The start of a finished dataset as text, for the Datasets page: the tokens of its val shard (else its first
 * train shard) decoded until about `chars` characters, or a raw dataset's first lines. Only the bytes needed are
 * read, so a 100M-token shard previews as fast as a small one.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode, StudioError } from '../../shared/errors';
import { StreamDecoder } from '../../core/tokenizer';
import { TOKEN_BYTES } from '../../core/data/shard';
import { fsError } from './errors';
import { openDataset } from './manifest';
import { readShardLayout } from './shards';
import type { DatasetPreview } from '../../shared/api/datasets';

export const DEFAULT_PREVIEW_CHARS = 2000;
/** tokens read beyond the bound of `chars`, for a preview that ends in a long token */
const STEP = 64;

function readRange(file: string, offset: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    let got = 0;
    while (got < length) {
      const n = fs.readSync(fd, buf, got, length - got, offset + got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got);
  } catch (e) {
    throw fsError(e, 'reading', file);
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * Decodes the first tokens of a shard until the text holds at least `chars` characters (or the shard ends), with
 * each token's id and the piece of text it adds.
 */
export function previewShard(
  file: string,
  chars: number,
): { text: string; tokens: number; ids: number[]; pieces: string[] } {
  const layout = readShardLayout(file);
  // a token is at least one byte of text; a character is at most four: 4 tokens a character bound the read
  const want = Math.min(layout.tokens, chars * 4 + STEP);
  const bytes = readRange(file, layout.dataOffset, want * TOKEN_BYTES);
  const n = bytes.length / TOKEN_BYTES;
  const dec = new StreamDecoder();
  const ids: number[] = [];
  const pieces: string[] = [];
  let length = 0;
  // one token at a time: the count is the tokens that reach `chars`, and each token's piece is known
  for (let i = 0; i < n && length < chars; i++) {
    const id = bytes.readUInt16LE(i * TOKEN_BYTES);
    const piece = dec.push(id);
    ids.push(id);
    pieces.push(piece);
    length += piece.length;
  }
  const rest = dec.flush();
  if (rest && pieces.length > 0) pieces[pieces.length - 1] += rest;
  return { text: pieces.join(''), tokens: ids.length, ids, pieces };
}

/** The first whole lines of a text file that make at least `chars` characters (the first line cut if longer). */
export function previewLines(file: string, chars: number): string {
  const want = chars * 4 + 4096;
  const buf = readRange(file, 0, want);
  const cut = buf.length === want;
  const lines = buf.toString('utf8').split('\n');
  // the last piece is cut in the middle when the read stopped before the end of the file, or empty after a final newline
  lines.pop();
  if (!cut && buf.length > 0 && buf[buf.length - 1] !== 0x0a) lines.push(buf.toString('utf8').split('\n').at(-1)!);
  const out: string[] = [];
  let n = 0;
  for (let i = 0; i < lines.length && n < chars; i++) {
    const line = lines[i]!;
    out.push(line);
    n += line.length + 1;
  }
  if (out.length === 0) return buf.toString('utf8').slice(0, chars);
  return out.join('\n');
}

/** The start of a finished dataset, decoded. A partial or missing dataset is an error that says so. */
export function previewDataset(home: string, id: string, chars = DEFAULT_PREVIEW_CHARS): DatasetPreview {
  const { dir, manifest } = openDataset(home, id);
  if (manifest.kind === 'raw') {
    const f = manifest.files[0];
    if (!f)
      throw new StudioError(
        ErrorCode.BAD_DATA,
        `The dataset "${id}" lists no file in its manifest.`,
        'Prepare it again.',
      );
    return { id, split: 'raw', text: previewLines(path.join(dir, f.file), chars), tokens: 0 };
  }
  const bins = manifest.files.filter((f) => f.file.endsWith('.bin'));
  const pick = bins.find((f) => f.split === 'val' && (f.tokens ?? 1) > 0) ?? bins.find((f) => f.split === 'train');
  if (!pick)
    throw new StudioError(
      ErrorCode.BAD_DATA,
      `The dataset "${id}" has no token shard to preview.`,
      'Prepare it again.',
    );
  const { text, tokens, ids, pieces } = previewShard(path.join(dir, pick.file), chars);
  return { id, split: pick.split === 'val' ? 'val' : 'train', text, tokens, ids, pieces };
}
