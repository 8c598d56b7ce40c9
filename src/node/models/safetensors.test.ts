import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode, StudioError } from '../../shared/errors';
import type { HostTensor } from '../../core/tensors';
import {
  readSafetensors,
  readSafetensorsHeader,
  SafetensorsReader,
  writeSafetensors,
  writeSafetensorsFrom,
} from './safetensors';
import { loadGpt2Weights } from './weights';

// The shared fixtures live next to the repository (../shared), or where GPT2_STUDIO_SHARED says.
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const shared = process.env.GPT2_STUDIO_SHARED ?? path.resolve(repoRoot, '../shared');
const badDir = path.join(shared, 'fixtures', 'bad-inputs');
const tinyFile = path.join(shared, 'fixtures', 'gpt2-tiny', 'model.safetensors');
const haveBad = fs.existsSync(badDir);
const haveTiny = fs.existsSync(tinyFile);
if (!haveBad)
  console.warn(`skipping the bad-input safetensors tests: no fixtures at ${badDir} (set GPT2_STUDIO_SHARED)`);
if (!haveTiny)
  console.warn(`skipping the gpt2-tiny safetensors tests: no fixture at ${tinyFile} (set GPT2_STUDIO_SHARED)`);

let tmp = '';
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-studio-st-'));
});
afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Calls fn and returns the StudioError it throws (fails the test if it throws something else or nothing). */
function catchStudio(fn: () => unknown): StudioError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(StudioError);
    return e as StudioError;
  }
  throw new Error('expected a StudioError, but nothing was thrown');
}

/** Builds a safetensors file by hand: an 8-byte length, the given header text, then the given data bytes. */
function handMade(file: string, header: unknown, data: Uint8Array, headerLength?: number): void {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerLength ?? json.length));
  fs.writeFileSync(file, Buffer.concat([len, json, data]));
}

const u16le = (values: number[]): Uint8Array => {
  const b = Buffer.alloc(values.length * 2);
  values.forEach((v, i) => b.writeUInt16LE(v, i * 2));
  return b;
};
const bitsOf = (a: Float32Array): number[] => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

describe('writeSafetensors / readSafetensors round trip', () => {
  it('is bit-exact for F32, including special values, scalars and empty tensors, and keeps insertion order', () => {
    const special = new Float32Array([
      0,
      -0,
      1,
      -1.5,
      Math.PI,
      1e-45,
      -1.17549435e-38,
      3.4028234e38,
      Infinity,
      -Infinity,
      NaN,
    ]);
    // a NaN with a payload: check the bits survive, not just the NaN-ness
    new Uint32Array(special.buffer)[10] = 0x7fc12345;
    const random = new Float32Array(6 * 7);
    for (let i = 0; i < random.length; i++) random[i] = Math.sin(i * 12.9898) * 43758.5453;
    const tensors = new Map<string, HostTensor>([
      ['z.last.first', { shape: [11], data: special }],
      ['a.matrix', { shape: [6, 7], data: random }],
      ['scalar', { shape: [], data: new Float32Array([42]) }],
      ['empty', { shape: [0, 3], data: new Float32Array(0) }],
    ]);
    const file = path.join(tmp, 'rt.safetensors');
    writeSafetensors(file, tensors, { format: 'pt', note: 'hello' });

    const h = readSafetensorsHeader(file);
    expect(h.headerLength % 8).toBe(0);
    expect(h.dataStart).toBe(8 + h.headerLength);
    expect(h.metadata).toEqual({ format: 'pt', note: 'hello' });
    expect(h.tensors.map((t) => t.name)).toEqual(['z.last.first', 'a.matrix', 'scalar', 'empty']);
    expect(h.tensors.map((t) => [t.begin, t.end])).toEqual([
      [0, 44],
      [44, 212],
      [212, 216],
      [216, 216],
    ]);
    expect(h.tensors.every((t) => t.dtype === 'F32')).toBe(true);
    // the padding is spaces, and the file ends exactly at the last tensor
    const raw = fs.readFileSync(file);
    expect(raw.subarray(8, 8 + h.headerLength).toString('utf8')).toMatch(/^\{.*\} *$/);
    expect(raw.length).toBe(h.dataStart + 216);

    const back = readSafetensors(file);
    expect([...back.keys()]).toEqual([...tensors.keys()]);
    for (const [name, t] of tensors) {
      const b = back.get(name)!;
      expect(b.shape).toEqual(t.shape);
      expect(bitsOf(b.data)).toEqual(bitsOf(t.data));
    }
    expect(fs.readdirSync(tmp)).toEqual(['rt.safetensors']);
  });

  it('reads only the tensors that pass the filter, and one tensor at a time through the reader', () => {
    const file = path.join(tmp, 'f.safetensors');
    writeSafetensors(
      file,
      new Map([
        ['keep', { shape: [2], data: new Float32Array([1, 2]) }],
        ['drop', { shape: [3], data: new Float32Array([3, 4, 5]) }],
      ]),
    );
    const some = readSafetensors(file, { filter: (n) => n !== 'drop' });
    expect([...some.keys()]).toEqual(['keep']);

    const r = SafetensorsReader.open(file);
    try {
      const dest = new Float32Array(5).fill(-7);
      expect(r.readInto('drop', dest)).toBe(3);
      expect(Array.from(dest)).toEqual([3, 4, 5, -7, -7]);
      expect(catchStudio(() => r.read('nope')).message).toContain('"nope"');
    } finally {
      r.close();
    }
  });

  it('replaces an existing file atomically and leaves it untouched (and no temporary file) when writing fails', () => {
    const file = path.join(tmp, 'model.safetensors');
    writeSafetensors(file, new Map([['a', { shape: [1], data: new Float32Array([1]) }]]));
    const before = fs.readFileSync(file);

    // fails half-way through the data: after the header and the first tensor are written
    const err = catchStudio(() =>
      writeSafetensorsFrom(file, [
        { name: 'a', shape: [1], data: () => new Float32Array([2]) },
        {
          name: 'b',
          shape: [2],
          data: () => {
            throw new Error('disk on fire');
          },
        },
      ]),
    );
    expect(err.code).toBe(ErrorCode.BAD_SAFETENSORS);
    expect(err.message).toContain(file);
    expect(err.message).toContain('disk on fire');
    expect(fs.readFileSync(file).equals(before)).toBe(true);
    expect(fs.readdirSync(tmp)).toEqual(['model.safetensors']);

    // a data length that disagrees with the shape is refused before anything is written
    const bad = catchStudio(() =>
      writeSafetensors(
        path.join(tmp, 'other.safetensors'),
        new Map([['x', { shape: [2, 2], data: new Float32Array(3) }]]),
      ),
    );
    expect(bad.message).toMatch(/"x".*\[2, 2\].*4 elements.*3/);
    expect(fs.readdirSync(tmp)).toEqual(['model.safetensors']);

    writeSafetensors(file, new Map([['a', { shape: [1], data: new Float32Array([3]) }]]));
    expect(Array.from(readSafetensors(file).get('a')!.data)).toEqual([3]);
    expect(fs.readdirSync(tmp)).toEqual(['model.safetensors']);
  });
});

describe('dtype conversion', () => {
  it('converts F16 exactly, including subnormals, signed zero, infinities and NaN', () => {
    const cases: Array<[number, number]> = [
      [0x3c00, 1],
      [0xc000, -2],
      [0x3555, 0.333251953125],
      [0x7bff, 65504], // largest finite
      [0x0400, 2 ** -14], // smallest normal
      [0x0001, 2 ** -24], // smallest subnormal
      [0x03ff, 1023 * 2 ** -24], // largest subnormal
      [0x8001, -(2 ** -24)],
      [0x0000, 0],
      [0x7c00, Infinity],
      [0xfc00, -Infinity],
    ];
    const bits = [...cases.map((c) => c[0]), 0x8000, 0x7e00, 0xfe01];
    const file = path.join(tmp, 'f16.safetensors');
    handMade(
      file,
      { __metadata__: { format: 'pt' }, h: { dtype: 'F16', shape: [bits.length], data_offsets: [0, bits.length * 2] } },
      u16le(bits),
    );
    const t = readSafetensors(file).get('h')!;
    expect(t.shape).toEqual([bits.length]);
    cases.forEach(([, want], i) => expect(t.data[i]).toBe(want));
    expect(Object.is(t.data[cases.length], -0)).toBe(true);
    expect(Number.isNaN(t.data[cases.length + 1])).toBe(true);
    expect(Number.isNaN(t.data[cases.length + 2])).toBe(true);
  });

  it('converts BF16 exactly (it is the top half of a float32)', () => {
    const cases: Array<[number, number]> = [
      [0x3f80, 1],
      [0xc040, -3],
      [0x4049, 3.140625],
      [0x7f7f, 3.3895313892515355e38], // largest finite
      [0x0001, 2 ** -133], // a float32 subnormal
      [0x7f80, Infinity],
      [0xff80, -Infinity],
    ];
    const bits = [...cases.map((c) => c[0]), 0x7fc0];
    const file = path.join(tmp, 'bf16.safetensors');
    handMade(
      file,
      { b: { dtype: 'BF16', shape: [2, bits.length / 2], data_offsets: [0, bits.length * 2] } },
      u16le(bits),
    );
    const t = readSafetensors(file).get('b')!;
    expect(t.shape).toEqual([2, 4]);
    cases.forEach(([, want], i) => expect(t.data[i]).toBe(want));
    expect(Number.isNaN(t.data[cases.length])).toBe(true);
  });

  it('narrows F64 to the nearest F32, next to an F32 tensor in the same file', () => {
    const f64 = Buffer.alloc(3 * 8);
    [0.1, -1e300, 2.5].forEach((v, i) => f64.writeDoubleLE(v, i * 8));
    const f32 = Buffer.alloc(2 * 4);
    [7.25, -0.5].forEach((v, i) => f32.writeFloatLE(v, i * 4));
    const file = path.join(tmp, 'mixed.safetensors');
    handMade(
      file,
      {
        d: { dtype: 'F64', shape: [3], data_offsets: [0, 24] },
        s: { dtype: 'F32', shape: [2], data_offsets: [24, 32] },
      },
      Buffer.concat([f64, f32]),
    );
    const all = readSafetensors(file);
    expect(Array.from(all.get('d')!.data)).toEqual([Math.fround(0.1), -Infinity, 2.5]);
    expect(Array.from(all.get('s')!.data)).toEqual([7.25, -0.5]);
  });
});

describe.skipIf(!haveBad)('malformed files in ../shared/fixtures/bad-inputs', () => {
  // What each file's error must say besides its name (see the README there).
  const expectedText: Record<string, RegExp> = {
    'st_empty.safetensors': /0 bytes long \(empty\).*expected at least 8 bytes/,
    'st_header_longer_than_file.safetensors': /header length is 10000 bytes.*bytes 8\.\.10008.*only 114 bytes/,
    'st_header_not_json.safetensors': /header \(bytes 8\.\.20\) is not valid UTF-8 JSON.*\{not json!!\}/,
    'st_offsets_past_end.safetensors':
      /"wte\.weight".*data_offsets \[0, 64\].*past the end of the data section, which is 32 bytes/,
    'st_shape_vs_bytes.safetensors': /"wte\.weight".*shape \[4, 3\].*48 bytes.*hold 32 bytes/,
    'st_unsupported_dtype.safetensors': /"wte\.weight" has dtype "I64".*not supported.*F32, F16, BF16/,
  };
  const files = haveBad
    ? fs
        .readdirSync(badDir)
        .filter((f) => /^st_.*\.safetensors$/.test(f))
        .sort()
    : [];

  it('holds the six documented broken files', () => {
    expect(files).toEqual(Object.keys(expectedText).sort());
  });

  it.each(files)('%s gives a BAD_SAFETENSORS error naming the file and the cause, and writes nothing', (name) => {
    const file = path.join(badDir, name);
    const listing = fs.readdirSync(badDir);
    for (const attempt of [
      () => readSafetensorsHeader(file),
      () => readSafetensors(file),
      () => loadGpt2Weights(file),
    ]) {
      const err = catchStudio(attempt);
      expect(err.code).toBe(ErrorCode.BAD_SAFETENSORS);
      expect(err.message).toContain(name);
      expect(err.message).toMatch(expectedText[name]!);
      expect(err.hint.length).toBeGreaterThan(10);
    }
    expect(fs.readdirSync(badDir)).toEqual(listing);
  });
});

describe('header validation of hand-made files', () => {
  const check = (header: unknown, data: Uint8Array, pattern: RegExp, headerLength?: number): void => {
    const file = path.join(tmp, 'bad.safetensors');
    handMade(file, header, data, headerLength);
    const err = catchStudio(() => readSafetensors(file));
    expect(err.code).toBe(ErrorCode.BAD_SAFETENSORS);
    expect(err.message).toContain(file);
    expect(err.message).toMatch(pattern);
  };
  const entry = (begin: number, end: number, shape = [(end - begin) / 4]) => ({
    dtype: 'F32',
    shape,
    data_offsets: [begin, end],
  });

  it('refuses an absurd header length before allocating it', () => {
    check({}, new Uint8Array(0), /header length is 1099511627776 bytes; expected at most 104857600/, 2 ** 40);
  });
  it('refuses a header that is JSON but not an object', () => {
    check([1, 2], new Uint8Array(0), /is an array; expected a JSON object/);
    check('null', new Uint8Array(0), /is null; expected a JSON object/);
  });
  it('refuses overlapping tensors', () => {
    check(
      { a: entry(0, 16), b: entry(8, 24) },
      new Uint8Array(24),
      /"b" \(data_offsets \[8, 24\]\) overlaps tensor "a" \(data_offsets \[0, 16\]\)/,
    );
  });
  it('refuses negative, reversed or fractional offsets and bad shapes', () => {
    check(
      { a: { dtype: 'F32', shape: [1], data_offsets: [-4, 0] } },
      new Uint8Array(8),
      /data_offsets \[-4,0\]; expected two non-negative integers/,
    );
    check(
      { a: { dtype: 'F32', shape: [0], data_offsets: [8, 4] } },
      new Uint8Array(8),
      /\[8, 4\]; expected begin <= end/,
    );
    check(
      { a: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } },
      new Uint8Array(8),
      /shape \[1\.5\]; expected an array of non-negative integers/,
    );
    check({ a: 'oops' }, new Uint8Array(0), /"a" has header entry "oops"/);
  });
  it('refuses metadata that is not a map of strings', () => {
    check({ __metadata__: { step: 3 } }, new Uint8Array(0), /"__metadata__" key "step" is 3; expected a string/);
  });
  it('says FILE_NOT_FOUND, with the path, for a missing file', () => {
    const missing = path.join(tmp, 'nope.safetensors');
    const err = catchStudio(() => readSafetensors(missing));
    expect(err.code).toBe(ErrorCode.FILE_NOT_FOUND);
    expect(err.message).toContain(missing);
  });
});

describe.skipIf(!haveTiny)('the gpt2-tiny fixture file', () => {
  it('has a valid header with the HF GPT-2 names and reads tensor by tensor', () => {
    const h = readSafetensorsHeader(tinyFile);
    expect(h.metadata).toEqual({ format: 'pt' });
    expect(h.tensors.length).toBe(30); // 26 parameters + 2 mask buffers per layer
    const cAttn = h.tensors.find((t) => t.name === 'h.0.attn.c_attn.weight')!;
    expect(cAttn).toMatchObject({ dtype: 'F32', shape: [32, 96] });
    const t = readSafetensors(tinyFile, { filter: (n) => n === 'h.0.attn.c_attn.weight' });
    expect(t.get('h.0.attn.c_attn.weight')!.data.length).toBe(32 * 96);
    // the data matches the bytes at the offsets the header gives
    const raw = fs.readFileSync(tinyFile);
    expect(t.get('h.0.attn.c_attn.weight')!.data[5]).toBe(raw.readFloatLE(h.dataStart + cAttn.begin + 5 * 4));
  });
});
