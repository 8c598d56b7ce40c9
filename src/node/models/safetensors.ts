/**
 * Reading and writing the safetensors format (https://huggingface.co/docs/safetensors):
 *
 *   [8 bytes: header length N, little-endian u64][N bytes: JSON header][data section]
 *
 * The header maps each tensor name to {dtype, shape, data_offsets: [begin, end]}, offsets relative to the start of
 * the data section, plus an optional "__metadata__" map of strings. Everything is little-endian and row-major.
 *
 * Reading goes tensor by tensor with positioned reads, so a multi-GB file is never held in one buffer, and every
 * field of the header is checked before any data is read. F16, BF16 and F64 are converted to F32 on the way in.
 * Writing is F32 only, and atomic (temporary file, fsync, rename).
 */
import { fsyncDir } from '../fsutil';
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode, StudioError, isDiskFull } from '../../shared/errors';
import type { HostTensor } from '../../core/tensors';

/** The dtypes we can read, with their sizes in bytes. F64 is narrowed to F32. */
const DTYPE_SIZES = { F32: 4, F16: 2, BF16: 2, F64: 8 } as const;
export type SafetensorsDtype = keyof typeof DTYPE_SIZES;
const SUPPORTED_DTYPES_TEXT = 'F32, F16, BF16 (and F64, converted to F32)';

/** A header longer than this is treated as corrupt rather than allocated (real GPT-2 headers are ~15 KB). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;
/** Positioned reads and writes move at most this many bytes per call. */
const IO_CHUNK_BYTES = 64 * 1024 * 1024;

const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** byte offsets relative to the start of the data section (header.dataStart), end exclusive */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** absolute path of the file */
  file: string;
  /** size of the file in bytes */
  fileSize: number;
  /** N, the length of the JSON header in bytes */
  headerLength: number;
  /** absolute byte offset of the data section (8 + N) */
  dataStart: number;
  /** tensors in header order */
  tensors: SafetensorsEntry[];
  /** the "__metadata__" map, {} when absent */
  metadata: Record<string, string>;
}

const REDOWNLOAD_HINT = 'Re-download or re-export the file; it may be truncated or corrupt.';

function bad(file: string, what: string, hint = REDOWNLOAD_HINT, cause?: unknown): StudioError {
  return new StudioError(ErrorCode.BAD_SAFETENSORS, `Safetensors file ${file}: ${what}`, hint, { cause });
}

function ioError(file: string, action: string, e: unknown): StudioError {
  if (e instanceof StudioError) return e;
  const err = e as NodeJS.ErrnoException;
  if (err?.code === 'ENOENT') {
    return new StudioError(
      ErrorCode.FILE_NOT_FOUND,
      `No such file: ${file}.`,
      'Check the path; download or export the weights first.',
      { cause: e },
    );
  }
  const msg = err?.message ?? String(e);
  return bad(
    file,
    `could not ${action}: ${msg}.`,
    'Check that the path is a readable file and that the disk is healthy.',
    e,
  );
}

const fmtShape = (s: readonly number[]): string => `[${s.join(', ')}]`;

function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Reads exactly `length` bytes at `position` into `dest[offset..]`, in chunks; a short read means truncation. */
function readExactly(
  fd: number,
  file: string,
  dest: Uint8Array,
  offset: number,
  length: number,
  position: number,
): void {
  let done = 0;
  while (done < length) {
    const n = Math.min(IO_CHUNK_BYTES, length - done);
    let got: number;
    try {
      got = fs.readSync(fd, dest, offset + done, n, position + done);
    } catch (e) {
      throw ioError(file, `read bytes ${position + done}..${position + done + n}`, e);
    }
    if (got === 0) {
      throw bad(
        file,
        `unexpected end of file at byte ${position + done} while reading bytes ${position}..${position + length}.`,
      );
    }
    done += got;
  }
}

/** Parses and validates the header of an open file. */
function readHeaderFd(fd: number, file: string): SafetensorsHeader {
  let fileSize: number;
  try {
    fileSize = fs.fstatSync(fd).size;
  } catch (e) {
    throw ioError(file, 'stat the file', e);
  }
  if (fileSize < 8) {
    throw bad(
      file,
      `the file is ${fileSize} bytes long${fileSize === 0 ? ' (empty)' : ''}; expected at least 8 bytes (the header length) and a JSON header.`,
    );
  }
  const lenBuf = new Uint8Array(8);
  readExactly(fd, file, lenBuf, 0, 8, 0);
  const headerLenBig = new DataView(lenBuf.buffer).getBigUint64(0, true);
  // Guard before converting or allocating: a garbage length can be up to 2^64.
  if (headerLenBig > BigInt(MAX_HEADER_BYTES)) {
    throw bad(
      file,
      `the header length is ${headerLenBig} bytes; expected at most ${MAX_HEADER_BYTES} bytes (this is not a safetensors file, or its first 8 bytes are corrupt).`,
    );
  }
  const headerLength = Number(headerLenBig);
  const dataStart = 8 + headerLength;
  if (dataStart > fileSize) {
    throw bad(
      file,
      `the header length is ${headerLength} bytes, so the header would span bytes 8..${dataStart}, but the file has only ${fileSize} bytes.`,
    );
  }
  const raw = new Uint8Array(headerLength);
  readExactly(fd, file, raw, 0, headerLength, 8);

  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
  } catch (e) {
    const preview = Buffer.from(raw.subarray(0, 60))
      .toString('latin1')
      .replace(/[^\x20-\x7e]/g, '.');
    throw bad(
      file,
      `the header (bytes 8..${dataStart}) is not valid UTF-8 JSON (${(e as Error).message}); it starts with "${preview}".`,
      REDOWNLOAD_HINT,
      e,
    );
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    const kind = parsed === null ? 'null' : Array.isArray(parsed) ? 'an array' : typeof parsed;
    throw bad(file, `the header (bytes 8..${dataStart}) is ${kind}; expected a JSON object of tensor entries.`);
  }

  const dataLength = fileSize - dataStart;
  const tensors: SafetensorsEntry[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(file, value);
      continue;
    }
    tensors.push(parseEntry(file, name, value, dataLength, dataStart));
  }

  // Tensors must not share bytes. Sorting a copy by begin lets us compare neighbours only.
  const byBegin = [...tensors].sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < byBegin.length; i++) {
    const prev = byBegin[i - 1]!;
    const cur = byBegin[i]!;
    if (cur.begin < prev.end) {
      throw bad(
        file,
        `tensor "${cur.name}" (data_offsets [${cur.begin}, ${cur.end}]) overlaps tensor "${prev.name}" (data_offsets [${prev.begin}, ${prev.end}]); expected disjoint byte ranges.`,
      );
    }
  }
  return { file, fileSize, headerLength, dataStart, tensors, metadata };
}

function parseMetadata(file: string, value: unknown): Record<string, string> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw bad(file, `"__metadata__" is ${JSON.stringify(value)}; expected an object of string values.`);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v !== 'string') {
      throw bad(file, `"__metadata__" key "${k}" is ${JSON.stringify(v)}; expected a string.`);
    }
    out[k] = v;
  }
  return out;
}

function parseEntry(
  file: string,
  name: string,
  value: unknown,
  dataLength: number,
  dataStart: number,
): SafetensorsEntry {
  const where = `tensor "${name}"`;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw bad(
      file,
      `${where} has header entry ${JSON.stringify(value)}; expected an object with dtype, shape and data_offsets.`,
    );
  }
  const v = value as Record<string, unknown>;
  const dtype = v.dtype;
  if (typeof dtype !== 'string' || !Object.prototype.hasOwnProperty.call(DTYPE_SIZES, dtype)) {
    throw bad(
      file,
      `${where} has dtype ${JSON.stringify(dtype)}, which is not supported; supported dtypes are ${SUPPORTED_DTYPES_TEXT}.`,
      'Convert the file to float32, float16 or bfloat16 (e.g. with safetensors in Python), then import it again.',
    );
  }
  const shape = v.shape;
  if (!Array.isArray(shape) || !shape.every(isNonNegInt)) {
    throw bad(file, `${where} has shape ${JSON.stringify(shape)}; expected an array of non-negative integers.`);
  }
  const offsets = v.data_offsets;
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegInt)) {
    throw bad(
      file,
      `${where} has data_offsets ${JSON.stringify(offsets)}; expected two non-negative integers [begin, end].`,
    );
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) {
    throw bad(file, `${where} has data_offsets [${begin}, ${end}]; expected begin <= end.`);
  }
  if (end > dataLength) {
    throw bad(
      file,
      `${where} has data_offsets [${begin}, ${end}], past the end of the data section, which is ${dataLength} bytes (file bytes ${dataStart}..${dataStart + dataLength}).`,
    );
  }
  const size = DTYPE_SIZES[dtype as SafetensorsDtype];
  const count = (shape as number[]).reduce((a, b) => a * b, 1);
  const expectedBytes = count * size;
  if (expectedBytes !== end - begin) {
    throw bad(
      file,
      `${where} has shape ${fmtShape(shape as number[])} and dtype ${dtype}, which need ${count} x ${size} = ${expectedBytes} bytes, but its data_offsets [${begin}, ${end}] hold ${end - begin} bytes.`,
    );
  }
  return { name, dtype: dtype as SafetensorsDtype, shape: [...(shape as number[])], begin, end };
}

// ---- dtype conversion ------------------------------------------------------------------------------------------

let f16Table: Float32Array | null = null;

/** All 65536 half-precision values as float32, built once (256 KB). Exact: every f16 value is an f32 value. */
function halfTable(): Float32Array {
  if (f16Table) return f16Table;
  const table = new Float32Array(65536);
  const bits = new Uint32Array(table.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) {
      // zero or subnormal: mant * 2^-24, exact in f32 (multiplying 0 by -1 gives -0, keeping the sign)
      table[h] = mant * 2 ** -24 * (sign ? -1 : 1);
    } else if (exp === 31) {
      // inf (mant 0) or NaN (payload kept in the top mantissa bits)
      bits[h] = sign | 0x7f800000 | (mant << 13);
    } else {
      // normal: rebias the exponent from 15 to 127 and widen the mantissa from 10 to 23 bits
      bits[h] = sign | ((exp - 15 + 127) << 23) | (mant << 13);
    }
  }
  f16Table = table;
  return table;
}

/** Converts `count` elements of `dtype` from little-endian bytes in `src` into `dest[destOffset..]`. */
function convertInto(
  dtype: SafetensorsDtype,
  src: Uint8Array,
  count: number,
  dest: Float32Array,
  destOffset: number,
): void {
  const view = new DataView(src.buffer, src.byteOffset, src.byteLength);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < count; i++) dest[destOffset + i] = view.getFloat32(i * 4, true);
      break;
    case 'F16': {
      const table = halfTable();
      for (let i = 0; i < count; i++) dest[destOffset + i] = table[view.getUint16(i * 2, true)]!;
      break;
    }
    case 'BF16': {
      // bfloat16 is the top half of a float32: shifting the bits up is exact, incl. subnormals, inf and NaN
      const bits = new Uint32Array(dest.buffer, dest.byteOffset, dest.length);
      for (let i = 0; i < count; i++) bits[destOffset + i] = view.getUint16(i * 2, true) << 16;
      break;
    }
    case 'F64':
      for (let i = 0; i < count; i++) dest[destOffset + i] = view.getFloat64(i * 8, true);
      break;
  }
}

// ---- reading -----------------------------------------------------------------------------------------------------

/**
 * An open safetensors file: its validated header, and positioned reads of one tensor at a time.
 * Close it when done (readSafetensors does).
 */
export class SafetensorsReader {
  readonly header: SafetensorsHeader;
  private fd: number | null;
  private readonly byName: Map<string, SafetensorsEntry>;

  private constructor(fd: number, header: SafetensorsHeader) {
    this.fd = fd;
    this.header = header;
    this.byName = new Map(header.tensors.map((t) => [t.name, t]));
  }

  static open(file: string): SafetensorsReader {
    const abs = path.resolve(file);
    let fd: number;
    try {
      fd = fs.openSync(abs, 'r');
    } catch (e) {
      throw ioError(abs, 'open the file', e);
    }
    try {
      return new SafetensorsReader(fd, readHeaderFd(fd, abs));
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  get file(): string {
    return this.header.file;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  entry(name: string): SafetensorsEntry {
    const e = this.byName.get(name);
    if (!e)
      throw bad(
        this.file,
        `has no tensor named "${name}".`,
        'Check the tensor name; list the names with readSafetensorsHeader.',
      );
    return e;
  }

  /** Reads one tensor as float32 into a new array. */
  read(name: string): HostTensor {
    const e = this.entry(name);
    const data = new Float32Array(e.shape.reduce((a, b) => a * b, 1));
    this.readInto(name, data);
    return { shape: [...e.shape], data };
  }

  /**
   * Reads one tensor as float32 into the start of `dest`, which must hold at least its element count (a larger
   * `dest`, e.g. a padded embedding, keeps its remaining elements). Returns the element count.
   */
  readInto(name: string, dest: Float32Array): number {
    if (this.fd === null)
      throw bad(this.file, `was read after it was closed.`, 'This is a bug in the caller; open the file again.');
    const e = this.entry(name);
    const size = DTYPE_SIZES[e.dtype];
    const count = (e.end - e.begin) / size;
    if (dest.length < count) {
      throw bad(
        this.file,
        `tensor "${name}" has ${count} elements but the destination holds ${dest.length}.`,
        'This is a bug in the caller.',
      );
    }
    const position = this.header.dataStart + e.begin;
    if (e.dtype === 'F32' && HOST_IS_LITTLE_ENDIAN) {
      // Fast path: the file's bytes are the array's bytes; read straight into the destination.
      const bytes = new Uint8Array(dest.buffer, dest.byteOffset, count * 4);
      readExactly(this.fd, this.file, bytes, 0, count * 4, position);
      return count;
    }
    // Other dtypes: read a bounded chunk of raw bytes at a time and convert it into place.
    const perChunk = Math.max(1, Math.floor(IO_CHUNK_BYTES / size));
    const scratch = new Uint8Array(Math.min(count, perChunk) * size);
    for (let done = 0; done < count; done += perChunk) {
      const n = Math.min(perChunk, count - done);
      readExactly(this.fd, this.file, scratch, 0, n * size, position + done * size);
      convertInto(e.dtype, scratch.subarray(0, n * size), n, dest, done);
    }
    return count;
  }

  close(): void {
    if (this.fd !== null) {
      fs.closeSync(this.fd);
      this.fd = null;
    }
  }
}

/** Opens `file`, validates its header (see the module comment) and returns it, without reading tensor data. */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  const r = SafetensorsReader.open(file);
  r.close();
  return r.header;
}

export interface ReadSafetensorsOptions {
  /** read only the tensors whose name passes */
  filter?: (name: string) => boolean;
}

/** Reads every tensor (or those passing `filter`) as float32, in header order, one positioned read per tensor. */
export function readSafetensors(file: string, opts: ReadSafetensorsOptions = {}): Map<string, HostTensor> {
  const r = SafetensorsReader.open(file);
  try {
    const out = new Map<string, HostTensor>();
    for (const t of r.header.tensors) {
      if (opts.filter && !opts.filter(t.name)) continue;
      out.set(t.name, r.read(t.name));
    }
    return out;
  } finally {
    r.close();
  }
}

// ---- writing -----------------------------------------------------------------------------------------------------

/** A tensor to write whose data is produced only when its turn comes, so that a writer holds one at a time. */
export interface TensorSource {
  name: string;
  shape: number[];
  /** returns the float32 data, row-major, of numel(shape) elements */
  data: () => Float32Array;
}

/** Writes F32 tensors to `file` in insertion order; see writeSafetensorsFrom. */
export function writeSafetensors(
  file: string,
  tensors: Map<string, HostTensor>,
  metadata?: Record<string, string>,
): void {
  const sources: TensorSource[] = [];
  for (const [name, t] of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== n) {
      throw bad(
        path.resolve(file),
        `cannot write tensor "${name}": shape ${fmtShape(t.shape)} has ${n} elements but its data has ${t.data.length}.`,
        'This is a bug in the caller: fix the tensor before saving.',
      );
    }
    sources.push({ name, shape: t.shape, data: () => t.data });
  }
  writeSafetensorsFrom(file, sources, metadata);
}

/**
 * Writes F32 tensors to `file`, in the given order, with each tensor's data requested only when it is written.
 * The JSON header is padded with spaces to a multiple of 8 bytes, so the data section is 8-byte aligned.
 * Atomic: the bytes go to `file.tmp-<pid>`, which is fsynced and renamed over `file`; on any failure the
 * temporary file is removed and `file` is left as it was.
 */
export function writeSafetensorsFrom(
  file: string,
  sources: readonly TensorSource[],
  metadata?: Record<string, string>,
): void {
  const abs = path.resolve(file);
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string')
        throw bad(
          abs,
          `cannot write metadata key "${k}" = ${JSON.stringify(v)}; expected a string.`,
          'Convert metadata values to strings.',
        );
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const s of sources) {
    if (s.name === '__metadata__' || s.name.length === 0 || Object.prototype.hasOwnProperty.call(header, s.name)) {
      throw bad(
        abs,
        `cannot write a tensor named ${JSON.stringify(s.name)}: the name is empty, reserved or repeated.`,
        'Give every tensor a unique, non-empty name.',
      );
    }
    if (!s.shape.every(isNonNegInt)) {
      throw bad(
        abs,
        `cannot write tensor "${s.name}" with shape ${JSON.stringify(s.shape)}; expected non-negative integers.`,
        'This is a bug in the caller.',
      );
    }
    const bytes = s.shape.reduce((a, b) => a * b, 1) * 4;
    header[s.name] = { dtype: 'F32', shape: s.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length), 0);

  const tmp = `${abs}.tmp-${process.pid}`;
  let fd: number | null = null;
  try {
    fd = fs.openSync(tmp, 'w');
    let pos = 0;
    pos = writeAll(fd, tmp, prefix, pos);
    pos = writeAll(fd, tmp, json, pos);
    for (const s of sources) {
      const n = s.shape.reduce((a, b) => a * b, 1);
      const data = s.data();
      if (data.length !== n) {
        throw bad(
          abs,
          `cannot write tensor "${s.name}": shape ${fmtShape(s.shape)} has ${n} elements but its data has ${data.length}.`,
          'This is a bug in the caller: fix the tensor before saving.',
        );
      }
      pos = writeAll(fd, tmp, toLittleEndianBytes(data), pos);
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    fs.renameSync(tmp, abs);
  } catch (e) {
    if (fd !== null) {
      try {
        fs.closeSync(fd);
      } catch {
        // already failing; the original error is the one to report
      }
    }
    fs.rmSync(tmp, { force: true });
    if (e instanceof StudioError) throw e;
    if (isDiskFull(e)) {
      throw new StudioError(
        ErrorCode.DISK_FULL,
        `The disk is full: ${abs} could not be written (${(e as Error).message}).`,
        `Free space on the disk that holds ${path.dirname(abs)} (delete old checkpoints or datasets, or move the workspace with --home), then resume; the file was not left half-written.`,
        { cause: e },
      );
    }
    throw bad(
      abs,
      `could not be written: ${(e as Error).message}.`,
      'Check that the folder exists and is writable, and that the disk has free space.',
      e,
    );
  }
  fsyncDir(path.dirname(abs));
}

/** The bytes of a float32 array in little-endian order (a view when the host is little-endian, else a copy). */
function toLittleEndianBytes(data: Float32Array): Uint8Array {
  if (HOST_IS_LITTLE_ENDIAN) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(data.byteLength);
  const view = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i]!, true);
  return out;
}

function writeAll(fd: number, file: string, bytes: Uint8Array, position: number): number {
  let done = 0;
  while (done < bytes.length) {
    const n = fs.writeSync(fd, bytes, done, Math.min(IO_CHUNK_BYTES, bytes.length - done), position + done);
    if (n <= 0) throw new Error(`write to ${file} made no progress at byte ${position + done}`);
    done += n;
  }
  return position + done;
}

/** Re-exported for the weights and checkpoint code. */
export { fsyncDir };
