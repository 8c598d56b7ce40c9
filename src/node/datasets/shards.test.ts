import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PartialMismatchError, readShardTokens, ShardSink, type SinkOptions } from './shards';

let dir = '';
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-sink-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const seq = (from: number, n: number): Uint16Array => Uint16Array.from({ length: n }, (_, i) => from + i);
const all = (files: string[]): number[] => files.flatMap((f) => Array.from(readShardTokens(path.join(dir, f))));

describe('ShardSink', () => {
  const count: SinkOptions = { dir: '', name: 'd', shardSize: 10, split: { mode: 'count', valTokens: 4 } };

  it('count mode: shard 0 holds the first valTokens tokens, then shards of shardSize; documents spill over', () => {
    const s = new ShardSink({ ...count, dir });
    s.append(seq(0, 7));
    s.append(seq(7, 20));
    const st = s.finish();
    expect(st.shards.map((x) => [x.file, x.split, x.tokens])).toEqual([
      ['d_val_000000.bin', 'val', 4],
      ['d_train_000001.bin', 'train', 10],
      ['d_train_000002.bin', 'train', 10],
      ['d_train_000003.bin', 'train', 3],
    ]);
    expect(all(st.shards.map((x) => x.file))).toEqual(Array.from(seq(0, 27)));
    expect(fs.readdirSync(dir).some((f) => f.endsWith('.part'))).toBe(false);
  });

  it('explicit mode: val appends go to shard 0, the first train append closes it', () => {
    const s = new ShardSink({ dir, name: 'e', shardSize: 5, split: { mode: 'explicit' } });
    s.append(seq(100, 12), 'val');
    s.append(seq(0, 7), 'train');
    expect(() => s.append(seq(0, 1), 'val')).toThrow(/val tokens arrived after/);
    const st = s.finish();
    expect(st.shards.map((x) => [x.file, x.tokens])).toEqual([
      ['e_val_000000.bin', 12],
      ['e_train_000001.bin', 5],
      ['e_train_000002.bin', 2],
    ]);
  });

  it('a sink built from a checkpoint drops what came after it, even a shard finished after it', () => {
    const a = new ShardSink({ ...count, dir });
    a.append(seq(0, 9)); // val 4 + 5 in train shard 1 (open)
    const ckpt = a.commit();
    a.append(seq(9, 30)); // finishes shard 1 and 2, opens 3: all after the checkpoint
    a.abandon();
    expect(fs.readdirSync(dir).sort()).toContain('d_train_000002.bin');
    const b = new ShardSink({ ...count, dir }, ckpt);
    expect(fs.readdirSync(dir).sort()).toEqual(['d_train_000001.bin.part', 'd_val_000000.bin']);
    expect(b.tokens).toBe(9);
    b.append(seq(9, 18));
    const st = b.finish();
    expect(all(st.shards.map((x) => x.file))).toEqual(Array.from(seq(0, 27)));
  });

  it('a missing shard is a mismatch that makes the preparation start over', () => {
    const a = new ShardSink({ ...count, dir });
    a.append(seq(0, 6));
    const ckpt = a.commit();
    a.abandon();
    fs.rmSync(path.join(dir, 'd_val_000000.bin'));
    expect(() => new ShardSink({ ...count, dir }, ckpt)).toThrow(PartialMismatchError);
  });
});
