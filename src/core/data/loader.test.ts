import { describe, expect, it } from 'vitest';
import { StudioError } from '../../shared/errors';
import { Rng } from '../random';
import { DataLoader, shuffleDocuments, type ShardSource } from './loader';

const EOT = 50256;

/** Shards held in memory; counts loads. */
class ArraySource implements ShardSource {
  loads = 0;
  constructor(readonly shards: Uint16Array[]) {}
  get count(): number {
    return this.shards.length;
  }
  tokens(i: number): number {
    return this.shards[i]!.length;
  }
  load(i: number): Uint16Array {
    this.loads++;
    return this.shards[i]!;
  }
  name(i: number): string {
    return `shard${i}`;
  }
}

/** Shards whose token at position p of shard s is (s*1000 + p) % 50000: every batch shows where it came from. */
function numbered(lengths: number[]): Uint16Array[] {
  return lengths.map((n, s) => Uint16Array.from({ length: n }, (_, p) => (s * 1000 + p) % 50000));
}

/** build-nanogpt's DataLoaderLite, transcribed line by line. */
class DataLoaderLite {
  private shard = 0;
  private tokens: Uint16Array;
  private pos: number;
  constructor(
    private readonly shards: Uint16Array[],
    private readonly B: number,
    private readonly T: number,
    private readonly rank: number,
    private readonly world: number,
  ) {
    this.tokens = shards[0]!;
    this.pos = B * T * rank;
  }
  nextBatch(): { x: number[]; y: number[] } {
    const { B, T } = this;
    const buf = Array.from(this.tokens.subarray(this.pos, this.pos + B * T + 1));
    const x = buf.slice(0, -1);
    const y = buf.slice(1);
    this.pos += B * T * this.world;
    if (this.pos + (B * T * this.world + 1) > this.tokens.length) {
      this.shard = (this.shard + 1) % this.shards.length;
      this.tokens = this.shards[this.shard]!;
      this.pos = B * T * this.rank;
    }
    return { x, y };
  }
}

const rows = (b: { inputs: Int32Array; targets: Int32Array }) => ({
  x: Array.from(b.inputs),
  y: Array.from(b.targets),
});

describe('DataLoader (DataLoaderLite semantics)', () => {
  it('yields x = buf[:-1], y = buf[1:], advances by B*T, moves to the next shard and wraps, as DataLoaderLite', () => {
    const shards = numbered([100, 57, 80]);
    const B = 2;
    const T = 8;
    const ours = new DataLoader(new ArraySource(shards), { B, T });
    const ref = new DataLoaderLite(shards, B, T, 0, 1);
    for (let i = 0; i < 40; i++) expect(rows(ours.nextBatch()), `batch ${i}`).toEqual(ref.nextBatch());
    // the first batch by the definition
    const fresh = new DataLoader(new ArraySource(shards), { B, T }).nextBatch();
    expect(fresh.B).toBe(2);
    expect(fresh.T).toBe(8);
    expect(Array.from(fresh.inputs)).toEqual(Array.from(shards[0]!.subarray(0, 16)));
    expect(Array.from(fresh.targets)).toEqual(Array.from(shards[0]!.subarray(1, 17)));
  });

  it('rank r of w sees exactly its slice: the ranks together make the world-size batch', () => {
    const shards = numbered([400, 333, 250]);
    const B = 2;
    const T = 5;
    const world = 3;
    const loaders = Array.from(
      { length: world },
      (_, r) => new DataLoader(new ArraySource(shards), { B, T, rank: r, world }),
    );
    // DataLoaderLite decides the shard switch from each rank's own position, so its ranks can disagree at a shard's
    // end; ours decide from the shared position (rank 0's test), which DataLoaderLite's rank 0 matches
    const ref0 = new DataLoaderLite(shards, B, T, 0, world);
    const big = new DataLoader(new ArraySource(shards), { B: B * world, T }); // one process with B*world rows
    for (let step = 0; step < 30; step++) {
      const parts = loaders.map((l) => rows(l.nextBatch()));
      expect(parts[0], `step ${step} rank 0`).toEqual(ref0.nextBatch());
      const all = rows(big.nextBatch());
      expect(parts.flatMap((p) => p.x)).toEqual(all.x);
      expect(parts.flatMap((p) => p.y)).toEqual(all.y);
      // rank r's rows are rows r*B .. (r+1)*B-1 of the step: consecutive, disjoint slices of one shard
      for (let r = 1; r < world; r++) expect(parts[r]!.x[0]).toBe(parts[r - 1]!.x[0]! + B * T);
    }
  });

  it('saving and restoring the position reproduces the next 10 batches (in order and shuffled, on another rank too)', () => {
    const shards = numbered([300, 200, 260]).map((s, k) => {
      for (let i = 7 + k; i < s.length; i += 23) s[i] = EOT; // documents
      return s;
    });
    for (const shuffle of [false, true]) {
      const a = new DataLoader(new ArraySource(shards), { B: 2, T: 7, shuffle, seed: 42, world: 2, rank: 1 });
      for (let i = 0; i < 37; i++) a.nextBatch();
      const saved = JSON.parse(JSON.stringify(a.position));
      const next = Array.from({ length: 10 }, () => rows(a.nextBatch()));
      const b = new DataLoader(new ArraySource(shards), { B: 2, T: 7, shuffle, seed: 42, world: 2, rank: 1 });
      b.restore(saved);
      expect(Array.from({ length: 10 }, () => rows(b.nextBatch()))).toEqual(next);
      expect(saved.epoch).toBeGreaterThan(0); // the 37 steps crossed an epoch
    }
  });

  it('shuffling is seeded: the same seed gives the same batches, another seed or epoch another order, same tokens', () => {
    const shards = numbered([500, 500, 500, 500]).map((s) => {
      for (let i = 0; i < s.length; i += 50) s[i] = EOT;
      return s;
    });
    const run = (seed: number) => {
      const l = new DataLoader(new ArraySource(shards), { B: 1, T: 49, shuffle: true, seed });
      return Array.from({ length: 40 }, () => rows(l.nextBatch()).x);
    };
    expect(run(1)).toEqual(run(1));
    expect(run(1)).not.toEqual(run(2));
    const plain = new DataLoader(new ArraySource(shards), { B: 1, T: 49 });
    const ordered = Array.from({ length: 40 }, () => rows(plain.nextBatch()).x);
    expect(run(1)).not.toEqual(ordered);
    // shard orders differ between epochs
    const l = new DataLoader(new ArraySource(shards), { B: 1, T: 49, shuffle: true, seed: 3 });
    const orders = [0, 1, 2, 3, 4].map((e) => l.shardOrder(e).join());
    expect(new Set(orders).size).toBeGreaterThan(1);
  });

  it('shuffleDocuments permutes whole documents and keeps every token', () => {
    const t = Uint16Array.from([EOT, 5, 6, EOT, 1, 2, EOT, 3, EOT, 4, 4, 4]);
    const s = shuffleDocuments(t, new Rng(7));
    expect([...s].sort((a, b) => a - b)).toEqual([...t].sort((a, b) => a - b));
    const docs = (u: Uint16Array) => {
      const out: string[] = [];
      let cur: number[] = [];
      for (const x of u) {
        if (x === EOT && cur.length) {
          out.push(cur.join());
          cur = [];
        }
        cur.push(x);
      }
      out.push(cur.join());
      return out.sort();
    };
    expect(docs(s)).toEqual(docs(t));
    expect(Array.from(t)).toEqual([EOT, 5, 6, EOT, 1, 2, EOT, 3, EOT, 4, 4, 4]); // input untouched
    expect(Array.from(s)).not.toEqual(Array.from(t));
  });

  it('skips shards shorter than one step and refuses when none is long enough', () => {
    const shards = numbered([100, 10, 100]);
    const l = new DataLoader(new ArraySource(shards), { B: 2, T: 8 });
    expect(l.skipped).toEqual(['shard1']);
    let e: unknown;
    try {
      new DataLoader(new ArraySource(numbered([10, 12])), { B: 4, T: 8 });
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(StudioError);
    expect((e as StudioError).message).toMatch(
      /B·T·world \+ 1 = 4·8·1 \+ 1 = 33 tokens, but the longest shard \(of 2\) has 12/,
    );
  });

  it('reloads a shard only when it changes, and rejects a bad restore', () => {
    const src = new ArraySource(numbered([1000]));
    const l = new DataLoader(src, { B: 1, T: 10 });
    for (let i = 0; i < 250; i++) l.nextBatch();
    expect(src.loads).toBe(1);
    expect(() => l.restore({ version: 1, epoch: 0, shard: 5, offset: 0 })).toThrow(/shard 5 does not exist/);
    expect(() => l.restore({ version: 1, epoch: 0, shard: 0, offset: 995 })).toThrow(/past the end/);
  });
});
