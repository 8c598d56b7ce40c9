/**
 * Shard files: reading llm.c `.bin` and build-nanogpt `.npy` shards, writing llm.c shards atomically, and the
 * ShardSink that a preparation streams tokens into (resumable: see ShardSink).
 *
 * Tokens are little-endian uint16 in both formats; the studio runs on little-endian machines (x64, arm64), where a
 * Uint16Array view of the bytes is the tokens.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode, StudioError } from '../../shared/errors';
import {
  encodeShardHeader,
  parseShardLayout,
  SHARD_HEADER_BYTES,
  SHARD_PROBE_BYTES,
  shardFileName,
  TOKEN_BYTES,
  type ShardLayout,
  type Split,
} from '../../core/data/shard';
import { fsError } from './errors';
import { fsyncDir, writeFileAtomic } from '../fsutil';

/** The layout of a shard file, read from its header and checked against its size. */
export function readShardLayout(file: string): ShardLayout {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const size = fs.fstatSync(fd).size;
    const head = new Uint8Array(Math.min(size, SHARD_PROBE_BYTES));
    fs.readSync(fd, head, 0, head.length, 0);
    return parseShardLayout(head, size, file);
  } catch (e) {
    throw fsError(e, 'reading the shard', file);
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** All tokens of a shard file (llm.c .bin or .npy), checked as readShardLayout checks it. */
export function readShardTokens(file: string): Uint16Array {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw fsError(e, 'reading the shard', file);
  }
  const layout = parseShardLayout(bytes.subarray(0, SHARD_PROBE_BYTES), bytes.length, file);
  const start = bytes.byteOffset + layout.dataOffset;
  if (start % TOKEN_BYTES === 0) return new Uint16Array(bytes.buffer, start, layout.tokens);
  // an odd offset (a .npy header of odd length) cannot back a Uint16Array view: copy
  return new Uint16Array(new Uint8Array(bytes.buffer, start, layout.tokens * TOKEN_BYTES).slice().buffer);
}

/** Writes tokens as an llm.c shard, atomically (temporary file, fsync, rename). */
export function writeShardFile(file: string, tokens: Uint16Array): void {
  writeFileAtomic(
    file,
    [encodeShardHeader(tokens.length), new Uint8Array(tokens.buffer, tokens.byteOffset, tokens.byteLength)],
    'writing the shard',
  );
}

/** The sha256 of a file, read synchronously (shards are read back right after they are written, from the cache). */
export function sha256FileSync(file: string): string {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 22);
  const fd = fs.openSync(file, 'r');
  try {
    let n: number;
    while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) hash.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

// ---------------------------------------------------------------------------------------------------------
// ShardSink

/** The partial dataset's files do not match its checkpoint (removed or edited by hand): it must start over. */
export class PartialMismatchError extends StudioError {
  constructor(message: string) {
    super(ErrorCode.BAD_SHARD, message, 'The preparation starts over.');
  }
}

/** A finished shard of a dataset. */
export interface ShardRecord {
  file: string;
  split: Split;
  tokens: number;
  bytes: number;
  sha256: string;
}

/** What a checkpoint stores of a sink: finished shards and the open one. */
export interface SinkState {
  shards: ShardRecord[];
  /** the shard being filled, in `<file>.part`; its first `tokens` tokens are committed */
  open: { index: number; split: Split; tokens: number } | null;
  /** whether the val shard is finished (nothing more goes to val) */
  valDone: boolean;
}

export interface SinkOptions {
  dir: string;
  /** the dataset id, the prefix of the file names */
  name: string;
  /** tokens per train shard */
  shardSize: number;
  /**
   * How tokens are assigned to val (shard 0):
   * - `count`: the first `valTokens` tokens (fineweb.py's rule: shard 0 is val), documents spill over;
   * - `explicit`: each append says its split; val comes first, train after.
   */
  split: { mode: 'count'; valTokens: number } | { mode: 'explicit' };
}

/** A sink's state before anything is written. */
export const EMPTY_SINK: SinkState = { shards: [], open: null, valDone: false };

/**
 * Streams tokens into llm.c shards: shard 0 is val, shards 1, 2, ... are train, each of `shardSize` tokens but the
 * last. The shard being filled is `<file>.part`; it is renamed to its name when full or at `finish`, so a shard
 * with its final name is always complete.
 *
 * Resuming: `commit` fsyncs and returns the state to store in a checkpoint. A sink constructed from that state
 * drops whatever was appended after it (the `.part` file is truncated, later shards are deleted), so the
 * preparation continues from the checkpoint's input position with exactly the tokens it had then.
 */
export class ShardSink {
  private readonly opts: SinkOptions;
  private state: SinkState;
  private fd: number | undefined;
  /** byte position of the next write in the open file (positional writes: no O_APPEND, which ignores positions) */
  private pos = 0;

  constructor(opts: SinkOptions, state: SinkState = EMPTY_SINK) {
    this.opts = opts;
    this.state = structuredClone(state);
    this.restoreFiles();
  }

  get shards(): readonly ShardRecord[] {
    return this.state.shards;
  }

  /** tokens written, the open shard's included */
  get tokens(): number {
    return this.state.shards.reduce((s, x) => s + x.tokens, 0) + (this.state.open?.tokens ?? 0);
  }

  /** Appends tokens (to `split` in explicit mode; ignored in count mode). */
  append(tokens: Uint16Array, split: Split = 'train'): void {
    const explicit = this.opts.split.mode === 'explicit';
    if (explicit && split === 'val' && this.state.valDone) {
      throw new StudioError(
        ErrorCode.INTERNAL,
        `Shard writer of "${this.opts.name}": val tokens arrived after the val shard was closed.`,
        'A source must yield its val part first.',
      );
    }
    let rest = tokens;
    while (rest.length > 0) {
      let open = this.state.open;
      if (open && explicit && split === 'train' && open.split === 'val') {
        this.closeOpen();
        open = null;
      }
      if (!open) open = this.openNext(explicit ? split : undefined);
      const room = this.capacity(open.split) - open.tokens;
      const take = Math.min(room, rest.length);
      this.write(rest.subarray(0, take));
      open.tokens += take;
      rest = rest.subarray(take);
      if (open.tokens >= this.capacity(open.split)) this.closeOpen();
    }
    // in explicit mode the first train tokens also close an empty val part
    if (explicit && split === 'train' && !this.state.valDone) this.state.valDone = true;
  }

  /** Makes everything appended so far durable and returns the state to checkpoint. */
  commit(): SinkState {
    if (this.fd !== undefined) {
      try {
        fs.fsyncSync(this.fd);
      } catch (e) {
        throw fsError(e, 'writing the shard', this.openPath());
      }
    }
    fsyncDir(this.opts.dir);
    return structuredClone(this.state);
  }

  /** Closes the open shard (if it holds tokens) and returns the final state. */
  finish(): SinkState {
    if (this.state.open) {
      if (this.state.open.tokens > 0) this.closeOpen();
      else this.dropOpen();
    }
    fsyncDir(this.opts.dir);
    return structuredClone(this.state);
  }

  /** Closes the open file without finishing it (cancel, error); a later sink resumes from the last commit. */
  abandon(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }

  private capacity(split: Split): number {
    if (split === 'train') return this.opts.shardSize;
    return this.opts.split.mode === 'count' ? this.opts.split.valTokens : Infinity;
  }

  private pathOf(index: number, split: Split): string {
    return path.join(this.opts.dir, shardFileName(this.opts.name, split, index));
  }

  private openPath(): string {
    const o = this.state.open;
    return o ? `${this.pathOf(o.index, o.split)}.part` : this.opts.dir;
  }

  /** Starts the next shard: val (shard 0) unless it is done or empty by design, else the next train shard. */
  private openNext(split: Split | undefined): NonNullable<SinkState['open']> {
    const wantVal = split === undefined ? this.capacity('val') > 0 : split === 'val';
    const s: Split = wantVal && !this.state.valDone ? 'val' : 'train';
    // shard 0 is val; train shards are numbered on from 1
    const index = s === 'val' ? 0 : 1 + this.state.shards.filter((x) => x.split === 'train').length;
    const file = `${this.pathOf(index, s)}.part`;
    try {
      this.fd = fs.openSync(file, 'w');
      fs.writeSync(this.fd, encodeShardHeader(0), 0, SHARD_HEADER_BYTES, 0);
    } catch (e) {
      throw fsError(e, 'creating the shard', file);
    }
    this.pos = SHARD_HEADER_BYTES;
    this.state.open = { index, split: s, tokens: 0 };
    return this.state.open;
  }

  private write(tokens: Uint16Array): void {
    if (tokens.length === 0) return;
    try {
      const bytes = new Uint8Array(tokens.buffer, tokens.byteOffset, tokens.byteLength);
      let done = 0;
      while (done < bytes.length) done += fs.writeSync(this.fd!, bytes, done, bytes.length - done, this.pos + done);
      this.pos += bytes.length;
    } catch (e) {
      throw fsError(e, 'writing the shard', this.openPath());
    }
  }

  /** Writes the header's count, fsyncs, renames `.part` to the shard's name and records it. */
  private closeOpen(): void {
    const o = this.state.open!;
    const part = this.openPath();
    const file = this.pathOf(o.index, o.split);
    try {
      if (this.fd === undefined) this.fd = fs.openSync(part, 'r+');
      fs.writeSync(this.fd, encodeShardHeader(o.tokens), 0, SHARD_HEADER_BYTES, 0);
      fs.fsyncSync(this.fd);
      fs.closeSync(this.fd);
      this.fd = undefined;
      fs.renameSync(part, file);
    } catch (e) {
      throw fsError(e, 'finishing the shard', part);
    }
    const bytes = SHARD_HEADER_BYTES + o.tokens * TOKEN_BYTES;
    this.state.shards.push({
      file: path.basename(file),
      split: o.split,
      tokens: o.tokens,
      bytes,
      sha256: sha256FileSync(file),
    });
    if (o.split === 'val') this.state.valDone = true;
    this.state.open = null;
  }

  private dropOpen(): void {
    const part = this.openPath();
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
    fs.rmSync(part, { force: true });
    this.state.open = null;
  }

  /**
   * Makes the folder match the state: finished shards present with their size, the open shard's `.part` cut to its
   * committed tokens (a shard finished after the checkpoint goes back to `.part`), anything newer deleted.
   */
  private restoreFiles(): void {
    const dir = this.opts.dir;
    const keep = new Set<string>();
    for (const s of this.state.shards) {
      const f = path.join(dir, s.file);
      const size = fs.existsSync(f) ? fs.statSync(f).size : -1;
      if (size !== s.bytes) {
        throw new PartialMismatchError(
          `The partial dataset's shard "${f}" has ${size < 0 ? 'gone' : `${size} bytes`}; its checkpoint says ${s.bytes} bytes.`,
        );
      }
      keep.add(s.file);
    }
    const o = this.state.open;
    if (o) {
      const file = this.pathOf(o.index, o.split);
      const part = `${file}.part`;
      if (fs.existsSync(file)) fs.renameSync(file, part);
      const need = SHARD_HEADER_BYTES + o.tokens * TOKEN_BYTES;
      const size = fs.existsSync(part) ? fs.statSync(part).size : -1;
      if (size < need) {
        throw new PartialMismatchError(
          `The partial dataset's open shard "${part}" has ${size < 0 ? 'gone' : `${size} bytes`}; its checkpoint says at least ${need}.`,
        );
      }
      this.fd = fs.openSync(part, 'r+');
      fs.ftruncateSync(this.fd, need);
      this.pos = need;
      keep.add(path.basename(part));
    }
    // shards written after the checkpoint
    const prefix = `${this.opts.name}_`;
    for (const f of fs.readdirSync(dir)) {
      if (f.startsWith(prefix) && /_(val|train)_\d{6}\.bin(\.part)?$/.test(f) && !keep.has(f))
        fs.rmSync(path.join(dir, f), { force: true });
    }
  }
}
