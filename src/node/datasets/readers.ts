/**
 * Streaming input readers. Each turns one input file into "units": a few MB of text (or one parquet row group) that
 * the preparation tokenizes and then checkpoints after. A unit ends with the cursor where the next one starts, so a
 * resumed preparation reads on from there without reading the file from its start.
 *
 * Formats:
 * - `text-split`: one text file split as nanoGPT splits Tiny Shakespeare: the first 90% of its characters (code
 *   points, as Python counts them) are train, the rest val. Part 0 is the val range (read first: shard 0 is val),
 *   part 1 the train range.
 * - `text`: one text file, one document.
 * - `jsonl`: one JSON object a line; its `text` string is a document.
 * - `parquet`: a `text` column, one document a row; part k is row group k (read with hyparquet, decompressed with
 *   hyparquet-compressors: snappy, gzip, zstd, brotli, lz4).
 * - `builtin`: the synthetic stories (no file); part k is unit k of STORIES_PER_UNIT stories.
 *
 * Text is cut only at points that leave the tokens unchanged (see src/core/data/text.ts).
 */
import fs from 'node:fs';
import {
  asyncBufferFromFile,
  parquetMetadataAsync,
  parquetReadObjects,
  type AsyncBuffer,
  type FileMetaData,
} from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { ErrorCode, StudioError } from '../../shared/errors';
import { nextSafeCut } from '../../core/data/text';
import type { Split } from '../../core/data/shard';
import { fsError, throwIfCancelled } from './errors';
import type { Piece } from './pool';
import { STORIES_PER_UNIT, syntheticUnit } from './synthetic';

export type InputFormat = 'text-split' | 'text' | 'jsonl' | 'parquet' | 'builtin';

/** A position inside one input: a part (range or row group) and a byte offset in the file (or a running count). */
export interface Cursor {
  part: number;
  offset: number;
}

export interface Unit {
  pieces: Piece[];
  /** the split of every piece, for sources that decide it themselves (text-split, builtin) */
  split?: Split;
  /** where the next unit starts */
  next: Cursor;
  /** UTF-8 bytes of text in the unit */
  textBytes: number;
  /** documents that start in the unit */
  documents: number;
  /** rows or lines without a usable text, skipped */
  skipped: number;
  /** where the first skipped one is, for the notes */
  firstSkipped?: string;
}

export interface ReadOptions {
  /** `<|endoftext|>` before each document */
  eot: boolean;
  signal?: AbortSignal;
  /** characters per unit of a text (default 4M) */
  unitChars?: number;
  /** text-split: the train fraction (default 0.9) */
  trainFraction?: number;
  /** builtin: seed and size in bytes, and the fraction that is val */
  builtin?: { seed: number; bytes: number; valFraction: number };
}

const READ_BYTES = 4 << 20;
const DEFAULT_UNIT_CHARS = 4 << 20;
/** A text without any safe cut for this long is cut anyway (its tokens may differ at that one cut). */
const HARD_CUT_CHARS = 64 << 20;

/** Reads the units of an input from `from` on. */
export async function* readUnits(
  file: string,
  format: InputFormat,
  from: Cursor | null,
  opts: ReadOptions,
): AsyncGenerator<Unit> {
  switch (format) {
    case 'text-split':
      yield* readTextSplit(file, from, opts);
      return;
    case 'text':
      yield* readTextRange(file, 0, fileSize(file), from?.offset ?? 0, 0, opts.eot, undefined, opts);
      return;
    case 'jsonl':
      yield* readJsonl(file, from, opts);
      return;
    case 'parquet':
      yield* readParquet(file, from, opts);
      return;
    case 'builtin':
      yield* readBuiltin(from, opts);
      return;
  }
}

function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch (e) {
    throw fsError(e, 'reading', file);
  }
}

// ---------------------------------------------------------------------------------------------------------
// text

/**
 * The byte offset at which the first `fraction` of the file's code points end (two passes over the bytes). Only the
 * file's first `size` bytes (default: its size now) count, as the readers read no further: a file that grows while
 * it is read (a log being written) is still read to a fixed end.
 */
export async function codePointSplitOffset(
  file: string,
  fraction: number,
  signal?: AbortSignal,
  size = fileSize(file),
): Promise<number> {
  const count = async (stopAt: number): Promise<{ n: number; at: number }> => {
    const fh = await fs.promises.open(file, 'r');
    try {
      const buf = Buffer.allocUnsafe(READ_BYTES);
      let n = 0;
      let pos = 0;
      for (;;) {
        throwIfCancelled(signal, 'Reading the text');
        if (pos >= size) return { n, at: pos };
        const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - pos), pos);
        if (bytesRead === 0) return { n, at: pos };
        for (let i = 0; i < bytesRead; i++) {
          if ((buf[i]! & 0xc0) !== 0x80) {
            if (n === stopAt) return { n, at: pos + i };
            n++;
          }
        }
        pos += bytesRead;
      }
    } finally {
      await fh.close();
    }
  };
  const total = (await count(-1)).n;
  const k = Math.floor(total * fraction); // nanoGPT: int(n * 0.9)
  if (k >= total) return size;
  return (await count(k)).at;
}

async function* readTextSplit(file: string, from: Cursor | null, opts: ReadOptions): AsyncGenerator<Unit> {
  const size = fileSize(file);
  const cut = await codePointSplitOffset(file, opts.trainFraction ?? 0.9, opts.signal, size);
  // part 0: val = [cut, size); part 1: train = [0, cut)
  const start = from ?? { part: 0, offset: cut };
  if (start.part === 0) {
    yield* readTextRange(file, cut, size, Math.max(start.offset, cut), 0, opts.eot, 'val', opts);
  }
  const trainFrom = start.part === 1 ? start.offset : 0;
  yield* readTextRange(file, 0, cut, trainFrom, 1, opts.eot, 'train', opts);
}

/**
 * Units of the byte range [begin, end) of a text file, from byte `from` (a unit boundary), as one document that
 * starts at `begin`. `<|endoftext|>` goes before the document's first piece.
 */
async function* readTextRange(
  file: string,
  begin: number,
  end: number,
  from: number,
  part: number,
  eot: boolean,
  split: Split | undefined,
  opts: ReadOptions,
): AsyncGenerator<Unit> {
  const unitChars = opts.unitChars ?? DEFAULT_UNIT_CHARS;
  const what = `Reading "${file}"`;
  if (from >= end) {
    if (from === begin)
      yield { pieces: [], split, next: { part, offset: end }, textBytes: 0, documents: 0, skipped: 0 };
    return;
  }
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(file, 'r');
  } catch (e) {
    throw fsError(e, 'reading', file);
  }
  try {
    // fatal: invalid UTF-8 is an error (nanoGPT's open().read() fails too); ignoreBOM: a BOM stays in the text, so
    // byte offsets and character counts agree with the file
    const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
    const buf = Buffer.allocUnsafe(READ_BYTES);
    let pos = from; // next byte to read
    let text = ''; // decoded, not yet emitted
    let textStart = from; // byte offset of text[0]
    let first = from === begin;
    const emit = (t: string): Unit => {
      const bytes = Buffer.byteLength(t, 'utf8');
      textStart += bytes;
      const u: Unit = {
        pieces: [{ text: t, eot: eot && first }],
        split,
        next: { part, offset: textStart },
        textBytes: bytes,
        documents: first ? 1 : 0,
        skipped: 0,
      };
      first = false;
      return u;
    };
    while (pos < end) {
      throwIfCancelled(opts.signal, what);
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, end - pos), pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
      try {
        text += decoder.decode(buf.subarray(0, bytesRead), { stream: pos < end });
      } catch (e) {
        throw new StudioError(
          ErrorCode.BAD_DATA,
          `"${file}" is not valid UTF-8 text (between bytes ${pos - bytesRead} and ${pos}).`,
          'Convert it to UTF-8 (e.g. iconv -t UTF-8), or check that it is a text file.',
          { cause: e },
        );
      }
      while (text.length >= unitChars * 2) {
        let cut = nextSafeCut(text, unitChars, text.length - 1);
        if (cut < 0) {
          if (text.length < HARD_CUT_CHARS) break; // read more; a safe cut will come
          cut = unitChars;
          if (text.charCodeAt(cut - 1) >= 0xd800 && text.charCodeAt(cut - 1) <= 0xdbff) cut++; // not inside a pair
        }
        yield emit(text.slice(0, cut));
        text = text.slice(cut);
      }
    }
    if (text.length > 0 || first) {
      const u = emit(text);
      u.next.offset = end;
      yield u;
    }
  } finally {
    await fh.close();
  }
}

// ---------------------------------------------------------------------------------------------------------
// JSONL

async function* readJsonl(file: string, from: Cursor | null, opts: ReadOptions): AsyncGenerator<Unit> {
  const unitChars = opts.unitChars ?? DEFAULT_UNIT_CHARS;
  const end = fileSize(file);
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(file, 'r');
  } catch (e) {
    throw fsError(e, 'reading', file);
  }
  try {
    const buf = Buffer.allocUnsafe(READ_BYTES);
    let pos = from?.offset ?? 0; // next byte to read
    let lineStart = pos; // byte offset of `pending`'s first byte
    let pending: Buffer = Buffer.alloc(0);
    let unit: Unit = newUnit(lineStart);
    let unitText = 0;
    const decoder = new TextDecoder('utf-8', { fatal: false });

    function newUnit(at: number): Unit {
      return { pieces: [], next: { part: 0, offset: at }, textBytes: 0, documents: 0, skipped: 0 };
    }
    const take = (line: Buffer, endOffset: number): Unit | null => {
      const raw = decoder.decode(line).trim();
      if (raw !== '') {
        let text: unknown;
        try {
          text = (JSON.parse(raw) as { text?: unknown } | null)?.text;
        } catch {
          text = undefined;
        }
        if (typeof text === 'string') {
          unit.pieces.push({ text, eot: opts.eot });
          unit.documents++;
          unit.textBytes += Buffer.byteLength(text, 'utf8');
          unitText += text.length;
        } else {
          unit.skipped++;
          unit.firstSkipped ??= `the line at byte ${endOffset - line.length}`;
        }
      }
      unit.next = { part: 0, offset: endOffset };
      if (unitText >= unitChars) {
        const done = unit;
        unit = newUnit(endOffset);
        unitText = 0;
        return done;
      }
      return null;
    };

    while (pos < end) {
      throwIfCancelled(opts.signal, `Reading "${file}"`);
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
      let chunk = Buffer.concat([pending, buf.subarray(0, bytesRead)]);
      let nl: number;
      while ((nl = chunk.indexOf(0x0a)) >= 0) {
        const line = chunk.subarray(0, nl);
        lineStart += nl + 1;
        const done = take(line, lineStart);
        if (done) yield done;
        chunk = chunk.subarray(nl + 1);
      }
      pending = Buffer.from(chunk);
    }
    // the last line may fill a unit (then `unit` is a fresh, empty one)
    const full = pending.length > 0 ? take(pending, end) : null;
    // the last unit (possibly empty) moves the cursor to the end of the file
    const last = full ?? unit;
    last.next = { part: 0, offset: end };
    yield last;
  } finally {
    await fh.close();
  }
}

// ---------------------------------------------------------------------------------------------------------
// parquet

/** The parquet file's metadata, with a check that it has a top-level `text` column. */
export async function parquetTextMetadata(file: string): Promise<{ buffer: AsyncBuffer; metadata: FileMetaData }> {
  let buffer: AsyncBuffer;
  let metadata: FileMetaData;
  try {
    buffer = await asyncBufferFromFile(file);
    metadata = await parquetMetadataAsync(buffer);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code) throw fsError(e, 'reading', file);
    throw new StudioError(
      ErrorCode.BAD_DATA,
      `"${file}" is not a readable parquet file: ${(e as Error).message}.`,
      'Check that the file is complete (an interrupted download?) and is parquet.',
      { cause: e },
    );
  }
  const columns = metadata.schema.slice(1).map((s) => s.name);
  if (!columns.includes('text')) {
    throw new StudioError(
      ErrorCode.BAD_DATA,
      `The parquet file "${file}" has no "text" column (its columns: ${columns.join(', ') || 'none'}).`,
      'A dataset file needs a string column named "text", one document a row (as FineWeb has).',
    );
  }
  return { buffer, metadata };
}

/** Uncompressed bytes of the `text` column (an estimate of the text's size, for progress). */
export async function parquetTextBytes(file: string): Promise<number> {
  const { metadata } = await parquetTextMetadata(file);
  let n = 0;
  for (const rg of metadata.row_groups) {
    for (const c of rg.columns)
      if (c.meta_data?.path_in_schema[0] === 'text') n += Number(c.meta_data.total_uncompressed_size);
  }
  return n;
}

async function* readParquet(file: string, from: Cursor | null, opts: ReadOptions): AsyncGenerator<Unit> {
  const { buffer, metadata } = await parquetTextMetadata(file);
  let rowStart = 0;
  const groups = metadata.row_groups;
  for (let g = 0; g < groups.length; g++) {
    const rows = Number(groups[g]!.num_rows);
    if (g < (from?.part ?? 0)) {
      rowStart += rows;
      continue;
    }
    throwIfCancelled(opts.signal, `Reading "${file}"`);
    let objects: Array<Record<string, unknown>>;
    try {
      objects = await parquetReadObjects({
        file: buffer,
        metadata,
        columns: ['text'],
        rowStart,
        rowEnd: rowStart + rows,
        compressors,
      });
    } catch (e) {
      throw new StudioError(
        ErrorCode.BAD_DATA,
        `Row group ${g} of the parquet file "${file}" cannot be read: ${(e as Error).message}.`,
        'The file may be damaged or use an unsupported encoding; download it again.',
        { cause: e },
      );
    }
    const unit: Unit = { pieces: [], next: { part: g + 1, offset: 0 }, textBytes: 0, documents: 0, skipped: 0 };
    objects.forEach((row, i) => {
      const text = row.text;
      if (typeof text === 'string') {
        unit.pieces.push({ text, eot: opts.eot });
        unit.documents++;
        unit.textBytes += Buffer.byteLength(text, 'utf8');
      } else {
        unit.skipped++;
        unit.firstSkipped ??= `row ${rowStart + i}`;
      }
    });
    rowStart += rows;
    yield unit;
  }
}

// ---------------------------------------------------------------------------------------------------------
// builtin

async function* readBuiltin(from: Cursor | null, opts: ReadOptions): AsyncGenerator<Unit> {
  const b = opts.builtin;
  if (!b) throw new StudioError(ErrorCode.INTERNAL, 'The builtin reader needs its seed and size.', '');
  let unit = from?.part ?? 0;
  let bytes = from?.offset ?? 0; // bytes generated before `unit`
  while (bytes < b.bytes) {
    throwIfCancelled(opts.signal, 'Generating the synthetic corpus');
    const split: Split = bytes < b.bytes * b.valFraction ? 'val' : 'train';
    const stories = syntheticUnit(b.seed, unit);
    const textBytes = stories.reduce((s, t) => s + Buffer.byteLength(t, 'utf8'), 0);
    bytes += textBytes;
    unit++;
    yield {
      pieces: stories.map((text) => ({ text, eot: opts.eot })),
      split,
      next: { part: unit, offset: bytes },
      textBytes,
      documents: STORIES_PER_UNIT,
      skipped: 0,
    };
  }
}
