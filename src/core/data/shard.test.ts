import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { StudioError } from '../../shared/errors';
import { hasFixture, sharedPath } from '../../../test/shared';
import {
  encodeShardHeader,
  parseShardLayout,
  SHARD_HEADER_BYTES,
  SHARD_MAGIC,
  shardFileName,
  splitFromFileName,
} from './shard';

function llmc(count: number, dataTokens = count, patch?: (v: DataView) => void): Uint8Array {
  const b = new Uint8Array(SHARD_HEADER_BYTES + dataTokens * 2);
  b.set(encodeShardHeader(count));
  patch?.(new DataView(b.buffer));
  return b;
}

function npy(descr: string, shape: string, count: number, extra = 0): Uint8Array {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const bytes = new Uint8Array(10 + header.length + count * 2 + extra);
  bytes.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(bytes.buffer).setUint16(8, header.length, true);
  bytes.set(new TextEncoder().encode(header), 10);
  return bytes;
}

function err(f: () => unknown): StudioError {
  try {
    f();
  } catch (e) {
    if (e instanceof StudioError) return e;
    throw e;
  }
  throw new Error('expected a StudioError');
}

describe('llm.c shard header', () => {
  it('encodes magic 20240520, version 1 and the count as int32 little-endian, the rest zero', () => {
    const h = encodeShardHeader(123456);
    expect(h.length).toBe(1024);
    const v = new DataView(h.buffer);
    expect([v.getInt32(0, true), v.getInt32(4, true), v.getInt32(8, true)]).toEqual([20240520, 1, 123456]);
    expect(h.subarray(12).every((b) => b === 0)).toBe(true);
  });

  it('parses a well-formed shard', () => {
    const b = llmc(5);
    expect(parseShardLayout(b, b.length, 'x.bin')).toEqual({ format: 'llmc', tokens: 5, dataOffset: 1024 });
  });

  it('rejects a wrong magic, naming the file, the value found and the one expected', () => {
    const b = llmc(4, 4, (v) => v.setInt32(0, SHARD_MAGIC + 1, true));
    const e = err(() => parseShardLayout(b, b.length, '/d/a.bin'));
    expect(e.code).toBe('BAD_SHARD');
    expect(e.message).toContain('/d/a.bin');
    expect(e.message).toContain(String(SHARD_MAGIC + 1));
    expect(e.message).toContain(String(SHARD_MAGIC));
  });

  it('rejects version 2 (uint32 LLaMA 3 tokens)', () => {
    const b = llmc(4, 8, (v) => v.setInt32(4, 2, true));
    expect(err(() => parseShardLayout(b, b.length, 'v2.bin')).message).toMatch(/version 2.*GPT-2 shards are version 1/);
  });

  it('rejects a count larger than the data, and extra bytes', () => {
    const short = llmc(100, 8);
    const e = err(() => parseShardLayout(short, short.length, 't.bin'));
    expect(e.message).toMatch(/says 100 tokens.*should have 1224 bytes.*truncated/);
    const long = llmc(4, 6);
    expect(err(() => parseShardLayout(long, long.length, 'l.bin')).message).toMatch(/extra bytes/);
  });

  it('rejects an odd number of data bytes and a file shorter than the header', () => {
    const odd = new Uint8Array(SHARD_HEADER_BYTES + 17);
    odd.set(encodeShardHeader(8));
    expect(err(() => parseShardLayout(odd, odd.length, 'o.bin')).message).toMatch(/17 bytes after .* odd number/);
    const tiny = new Uint8Array(100);
    expect(err(() => parseShardLayout(tiny, tiny.length, 'tiny.bin')).message).toMatch(
      /100 bytes, fewer than the 1024-byte/,
    );
  });
});

describe('build-nanogpt .npy shard header', () => {
  it('parses a 1-D <u2 array', () => {
    const b = npy('<u2', '(7,)', 7);
    const l = parseShardLayout(b, b.length, 'f.npy');
    expect(l.format).toBe('npy');
    expect(l.tokens).toBe(7);
    expect(l.dataOffset % 64).toBe(0);
  });

  it('rejects another dtype, another rank, and a wrong size', () => {
    const i32 = npy('<i4', '(7,)', 14);
    expect(err(() => parseShardLayout(i32, i32.length, 'a.npy')).message).toMatch(/dtype '<i4'.*uint16/);
    const twoD = npy('<u2', '(2, 3)', 6);
    expect(err(() => parseShardLayout(twoD, twoD.length, 'b.npy')).message).toMatch(/shape \(2, 3\).*1-D/);
    const cut = npy('<u2', '(7,)', 5);
    expect(err(() => parseShardLayout(cut, cut.length, 'c.npy')).message).toMatch(
      /describes 7 uint16 tokens.*truncated/,
    );
  });
});

describe('shard names', () => {
  it('follows llm.c: <name>_val_000000.bin, <name>_train_000001.bin', () => {
    expect(shardFileName('tinyshakespeare', 'val', 0)).toBe('tinyshakespeare_val_000000.bin');
    expect(shardFileName('fw', 'train', 12)).toBe('fw_train_000012.bin');
    expect(splitFromFileName('/x/edufineweb_val_000000.npy')).toBe('val');
    expect(splitFromFileName('edufineweb_train_000003.npy')).toBe('train');
    expect(splitFromFileName('data.bin')).toBe(null);
  });
});

const badDir = 'fixtures/bad-inputs';
describe.skipIf(!hasFixture(badDir))('the malformed shards of ../shared/fixtures/bad-inputs', () => {
  const expected: Record<string, RegExp> = {
    'shard_bad_magic.bin': /starts with magic number 20240521; an llm\.c token shard starts with 20240520/,
    'shard_truncated.bin': /header says 100 tokens, so it should have 1224 bytes: it is truncated/,
    'shard_odd_bytes.bin': /17 bytes after its 1024-byte header: an odd number/,
  };
  for (const [name, re] of Object.entries(expected)) {
    it(`${name}: BAD_SHARD naming the file, what was found and what was expected`, () => {
      const file = sharedPath(path.join(badDir, name));
      const bytes = new Uint8Array(fs.readFileSync(file));
      const e = err(() => parseShardLayout(bytes, bytes.length, file));
      expect(e.code).toBe('BAD_SHARD');
      expect(e.message).toContain(file);
      expect(e.message).toMatch(re);
      expect(e.hint).not.toBe('');
    });
  }
});
