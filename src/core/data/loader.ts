/**
 * The data loader's position logic, with the semantics of build-nanogpt's DataLoaderLite:
 *
 *   buf = tokens[pos : pos + B*T + 1];  x = buf[:-1].view(B, T);  y = buf[1:].view(B, T)
 *   pos += B*T*world
 *   if pos + B*T*world + 1 > len(tokens): next shard (wrapping at the end), pos = B*T*rank
 *
 * Rank r of `world` processes reads at `offset + B*T*r`, where `offset` is the same on every rank: the state
 * saved in a checkpoint is rank-independent. One deliberate difference: DataLoaderLite tests for the end of a shard
 * with each rank's own position (`B*T*rank` ahead of rank 0's), so near a shard's end a higher rank can move on a
 * step before rank 0 and the ranks read different shards. Here every rank uses the shared position (rank 0's
 * test), so at every step the ranks read consecutive, disjoint slices of the same shard. With world = 1 the two are
 * identical. Shards come from a ShardSource (files in src/node/datasets/loader.ts,
 * arrays in tests), so this module does no I/O of its own.
 *
 * Optional seeded shuffling, redone each epoch (one pass over the shards):
 * - `shards`: the order of the shards;
 * - `documents`: the order of the documents inside each shard. A document starts at an <|endoftext|> token (tokens
 *   before the first one form a document too). The shard's documents are concatenated in a permuted order, so a
 *   batch still holds whole documents back to back, but their order no longer repeats from epoch to epoch (the
 *   periodic loss pattern of build-nanogpt PR #52).
 */
import { ErrorCode, StudioError } from '../../shared/errors';
import type { Batch } from '../engine/types';
import { EOT_TOKEN } from '../model/config';
import { Rng } from '../random';

/** Where the tokens come from: shards known by their length before they are loaded. */
export interface ShardSource {
  /** number of shards */
  readonly count: number;
  /** the token count of shard i (from its header) */
  tokens(i: number): number;
  /** all tokens of shard i */
  load(i: number): Uint16Array;
  /** a name for messages (a file name) */
  name(i: number): string;
}

export interface ShuffleOptions {
  /** permute the shard order each epoch (default true when shuffling) */
  shards?: boolean;
  /** permute the documents inside each shard each epoch (default true when shuffling) */
  documents?: boolean;
}

export interface DataLoaderOptions {
  /** batch size (rows) per process */
  B: number;
  /** sequence length */
  T: number;
  /** this process's rank in [0, world) (default 0) */
  rank?: number;
  /** number of processes reading the same shards (default 1) */
  world?: number;
  /** false (default: DataLoaderLite's fixed order), true, or which parts to shuffle */
  shuffle?: boolean | ShuffleOptions;
  /** seed of the shuffles (default 1337) */
  seed?: number;
}

/** A rank-independent position; save it with a checkpoint to resume the exact batch sequence. */
export interface LoaderPosition {
  version: 1;
  /** passes over the shards so far */
  epoch: number;
  /** index into this epoch's shard order */
  shard: number;
  /** token offset of the next batch in that shard (rank 0's position) */
  offset: number;
}

/** A 32-bit mix of several integers, to derive independent seeds per epoch and shard. */
function mixSeed(...xs: number[]): number {
  let h = 0x811c9dc5;
  for (const x of xs) {
    h = Math.imul(h ^ (x >>> 0), 0x01000193) >>> 0;
    h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 0;
  }
  return h >>> 0;
}

/** An in-place Fisher-Yates shuffle. */
function permute<T>(xs: T[] | Uint32Array, rng: Rng): void {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = xs[i]!;
    xs[i] = xs[j]!;
    xs[j] = t;
  }
}

/** The shard's tokens with its documents in a permuted order (a new array; `tokens` is not modified). */
export function shuffleDocuments(tokens: Uint16Array, rng: Rng, eot = EOT_TOKEN): Uint16Array {
  const starts: number[] = [];
  if (tokens.length > 0 && tokens[0] !== eot) starts.push(0);
  for (let i = 0; i < tokens.length; i++) if (tokens[i] === eot) starts.push(i);
  if (starts.length <= 1) return tokens.slice();
  const order = Uint32Array.from(starts.keys());
  permute(order, rng);
  const out = new Uint16Array(tokens.length);
  let o = 0;
  for (const d of order) {
    const end = d + 1 < starts.length ? starts[d + 1]! : tokens.length;
    out.set(tokens.subarray(starts[d]!, end), o);
    o += end - starts[d]!;
  }
  return out;
}

export class DataLoader {
  readonly B: number;
  readonly T: number;
  readonly rank: number;
  readonly world: number;
  readonly seed: number;
  readonly shufflesShards: boolean;
  readonly shufflesDocuments: boolean;
  /** shards shorter than one step (B·T·world + 1 tokens), which are never read */
  readonly skipped: string[] = [];

  private readonly source: ShardSource;
  /** indices (into source) of the shards long enough to read */
  private readonly usable: number[];
  private epoch = 0;
  private order: number[] = [];
  private cursor = 0;
  private offset = 0;
  private tokens: Uint16Array = new Uint16Array(0);
  /** which (epoch, shard) `tokens` holds, to skip reloading */
  private loaded: { epoch: number; shard: number } | null = null;

  constructor(source: ShardSource, opts: DataLoaderOptions) {
    const { B, T } = opts;
    const rank = opts.rank ?? 0;
    const world = opts.world ?? 1;
    const check = (ok: boolean, what: string, hint: string): void => {
      if (!ok) throw new StudioError(ErrorCode.BAD_ARGUMENT, `Data loader: ${what}`, hint);
    };
    check(Number.isInteger(B) && B >= 1, `B must be an integer >= 1, got ${B}.`, 'Pass a positive batch size.');
    check(Number.isInteger(T) && T >= 1, `T must be an integer >= 1, got ${T}.`, 'Pass a positive sequence length.');
    check(
      Number.isInteger(world) && world >= 1,
      `world must be an integer >= 1, got ${world}.`,
      'Pass the number of processes.',
    );
    check(
      Number.isInteger(rank) && rank >= 0 && rank < world,
      `rank ${rank} is outside [0, ${world}).`,
      'Pass a rank below the world size.',
    );
    check(source.count > 0, 'there are no shards to read.', 'Prepare a dataset first (gpt2-studio prepare ...).');
    this.source = source;
    this.B = B;
    this.T = T;
    this.rank = rank;
    this.world = world;
    this.seed = (opts.seed ?? 1337) >>> 0;
    const sh = opts.shuffle ?? false;
    this.shufflesShards = sh === true || (typeof sh === 'object' && sh.shards !== false);
    this.shufflesDocuments = sh === true || (typeof sh === 'object' && sh.documents !== false);

    const need = this.stepTokens + 1;
    this.usable = [];
    for (let i = 0; i < source.count; i++) {
      if (source.tokens(i) >= need) this.usable.push(i);
      else this.skipped.push(source.name(i));
    }
    if (this.usable.length === 0) {
      const longest = Math.max(...Array.from({ length: source.count }, (_, i) => source.tokens(i)));
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `Data loader: one step reads B·T·world + 1 = ${B}·${T}·${world} + 1 = ${need} tokens, but the longest shard (of ${source.count}) has ${longest}.`,
        'Use a smaller batch size B or sequence length T, or a larger dataset.',
      );
    }
    this.reset();
  }

  /** tokens consumed per step by all ranks together */
  get stepTokens(): number {
    return this.B * this.T * this.world;
  }

  /** Back to the start of epoch 0 (DataLoaderLite.reset). */
  reset(): void {
    this.seek({ version: 1, epoch: 0, shard: 0, offset: 0 });
  }

  /** The position of the next batch. */
  get position(): LoaderPosition {
    return { version: 1, epoch: this.epoch, shard: this.cursor, offset: this.offset };
  }

  /** Continues from a saved position: the next batches are those that followed it. */
  restore(p: LoaderPosition): void {
    const bad = (what: string): StudioError =>
      new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `Data loader: cannot restore position ${JSON.stringify(p)}: ${what}.`,
        'Resume with the dataset and batch shape the checkpoint was trained with.',
      );
    if (p === null || typeof p !== 'object' || p.version !== 1)
      throw bad('unknown position format (expected version 1)');
    for (const k of ['epoch', 'shard', 'offset'] as const) {
      if (!Number.isInteger(p[k]) || p[k] < 0) throw bad(`${k} must be an integer >= 0`);
    }
    if (p.shard >= this.usable.length)
      throw bad(`shard ${p.shard} does not exist (this dataset has ${this.usable.length} usable shards)`);
    this.seek(p);
    if (this.offset + this.stepTokens + 1 > this.tokens.length)
      throw bad(
        `offset ${p.offset} is past the end of shard "${this.source.name(this.order[p.shard]!)}" (${this.tokens.length} tokens)`,
      );
  }

  /** The next (B, T) batch of this rank. */
  nextBatch(): Batch {
    const { B, T } = this;
    const n = B * T;
    const start = this.offset + n * this.rank;
    const buf = this.tokens.subarray(start, start + n + 1);
    const inputs = new Int32Array(n);
    const targets = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      inputs[i] = buf[i]!;
      targets[i] = buf[i + 1]!;
    }
    this.offset += this.stepTokens;
    if (this.offset + this.stepTokens + 1 > this.tokens.length) {
      const next = this.cursor + 1;
      if (next >= this.order.length) this.seek({ version: 1, epoch: this.epoch + 1, shard: 0, offset: 0 });
      else this.seek({ version: 1, epoch: this.epoch, shard: next, offset: 0 });
    }
    return { B, T, inputs, targets };
  }

  /** The shard order of an epoch (indices into the source). */
  shardOrder(epoch: number): number[] {
    const order = [...this.usable];
    if (this.shufflesShards) permute(order, new Rng(mixSeed(this.seed, epoch, 0x5a4d)));
    return order;
  }

  /** The name of the shard the next batch comes from. */
  get currentShardName(): string {
    return this.source.name(this.order[this.cursor]!);
  }

  private seek(p: LoaderPosition): void {
    if (p.epoch !== this.epoch || this.order.length === 0) this.order = this.shardOrder(p.epoch);
    this.epoch = p.epoch;
    this.cursor = p.shard;
    this.offset = p.offset;
    const shard = this.order[this.cursor]!;
    if (this.loaded && this.loaded.shard === shard && (this.loaded.epoch === p.epoch || !this.shufflesDocuments))
      return;
    let tokens = this.source.load(shard);
    if (tokens.length !== this.source.tokens(shard)) {
      throw new StudioError(
        ErrorCode.BAD_SHARD,
        `The shard "${this.source.name(shard)}" has ${tokens.length} tokens now, but ${this.source.tokens(shard)} when the loader opened it.`,
        'Do not change a dataset while a run reads it; prepare it under another name.',
      );
    }
    if (this.shufflesDocuments) tokens = shuffleDocuments(tokens, new Rng(mixSeed(this.seed, p.epoch, shard, 0xd0c5)));
    this.tokens = tokens;
    this.loaded = { epoch: p.epoch, shard };
  }
}
