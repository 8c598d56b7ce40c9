/**
 * Token shard formats (pure: parsing and encoding of headers; file access lives in src/node/datasets/shards.ts).
 *
 * - llm.c: a header of 256 int32 (little-endian): [0] magic 20240520, [1] version 1, [2] token count, the rest 0;
 *   then `count` uint16 tokens. The file is exactly 1024 + 2·count bytes (llm.c's dataloader checks the same).
 * - build-nanogpt: NumPy `.npy` files of a 1-D `<u2` (uint16) array, as `np.save` writes them.
 *
 * Every check names the file, what was found and what was expected (see docs/ARCHITECTURE.md, "The data path").
 */
import { ErrorCode, StudioError } from '../../shared/errors';

export const SHARD_MAGIC = 20240520;
/** version 1: uint16 GPT-2 tokens. (llm.c's version 2 holds uint32 LLaMA 3 tokens.) */
export const SHARD_VERSION = 1;
export const SHARD_HEADER_INTS = 256;
export const SHARD_HEADER_BYTES = SHARD_HEADER_INTS * 4;
/** bytes per token in both formats */
export const TOKEN_BYTES = 2;

export type ShardFormat = 'llmc' | 'npy';

/** Where the tokens of a shard file are. */
export interface ShardLayout {
  format: ShardFormat;
  /** number of uint16 tokens */
  tokens: number;
  /** byte offset of the first token */
  dataOffset: number;
}

export type Split = 'train' | 'val';

/** How many leading bytes `parseShardLayout` needs at most (llm.c header; .npy headers are shorter in practice). */
export const SHARD_PROBE_BYTES = 4096;

const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"

const REPREPARE_HINT =
  'The file is not a GPT-2 token shard, or it is damaged (an interrupted copy?). Prepare the dataset again ' +
  '(gpt2-studio prepare ...), or copy the shard again from where it came from.';

function badShard(file: string, what: string, hint = REPREPARE_HINT): StudioError {
  return new StudioError(ErrorCode.BAD_SHARD, `The shard file "${file}" ${what}`, hint);
}

/** The 1024-byte llm.c header for a shard of `tokens` tokens. */
export function encodeShardHeader(tokens: number): Uint8Array {
  if (!Number.isInteger(tokens) || tokens < 0 || tokens > 0x7fffffff) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `A shard cannot hold ${tokens} tokens: llm.c's header stores the count as an int32.`,
      'Use a shard size below 2^31 tokens.',
    );
  }
  const header = new Uint8Array(SHARD_HEADER_BYTES);
  const view = new DataView(header.buffer);
  view.setInt32(0, SHARD_MAGIC, true);
  view.setInt32(4, SHARD_VERSION, true);
  view.setInt32(8, tokens, true);
  return header;
}

function isNpy(head: Uint8Array): boolean {
  return head.length >= NPY_MAGIC.length && NPY_MAGIC.every((b, i) => head[i] === b);
}

/**
 * Reads the layout of a shard from its first bytes (at least min(fileSize, SHARD_PROBE_BYTES) of them) and checks it
 * against the file's size. Throws BAD_SHARD naming `file` on any mismatch.
 */
export function parseShardLayout(head: Uint8Array, fileSize: number, file: string): ShardLayout {
  if (isNpy(head)) return parseNpyHeader(head, fileSize, file);
  return parseLlmcHeader(head, fileSize, file);
}

/** The llm.c header: magic, version, count, and an exact file size. */
export function parseLlmcHeader(head: Uint8Array, fileSize: number, file: string): ShardLayout {
  if (fileSize < SHARD_HEADER_BYTES || head.length < SHARD_HEADER_BYTES) {
    throw badShard(
      file,
      `has ${fileSize} bytes, fewer than the ${SHARD_HEADER_BYTES}-byte llm.c header (256 int32: magic ${SHARD_MAGIC}, version ${SHARD_VERSION}, token count).`,
    );
  }
  const view = new DataView(head.buffer, head.byteOffset, SHARD_HEADER_BYTES);
  const magic = view.getInt32(0, true);
  const version = view.getInt32(4, true);
  const count = view.getInt32(8, true);
  if (magic !== SHARD_MAGIC) {
    throw badShard(
      file,
      `starts with magic number ${magic}; an llm.c token shard starts with ${SHARD_MAGIC} (a build-nanogpt .npy shard with "\\x93NUMPY").`,
    );
  }
  if (version !== SHARD_VERSION) {
    const what = version === 2 ? ' (version 2 holds uint32 LLaMA 3 tokens)' : '';
    throw badShard(
      file,
      `has header version ${version}${what}; GPT-2 shards are version ${SHARD_VERSION} (uint16 tokens).`,
      "Use shards tokenized with GPT-2's BPE (llm.c dev/data/*.py without --model llama3, or gpt2-studio prepare).",
    );
  }
  if (count < 0) throw badShard(file, `has a negative token count (${count}) in its header; expected a count >= 0.`);
  const dataBytes = fileSize - SHARD_HEADER_BYTES;
  if (dataBytes % TOKEN_BYTES !== 0) {
    throw badShard(
      file,
      `has ${dataBytes} bytes after its ${SHARD_HEADER_BYTES}-byte header: an odd number, but tokens are 2-byte uint16 values (the header says ${count} tokens = ${count * TOKEN_BYTES} bytes).`,
    );
  }
  const expected = SHARD_HEADER_BYTES + count * TOKEN_BYTES;
  if (fileSize !== expected) {
    const found = dataBytes / TOKEN_BYTES;
    const how = fileSize < expected ? 'it is truncated' : 'it has extra bytes';
    throw badShard(
      file,
      `has ${fileSize} bytes (${found} tokens), but its header says ${count} tokens, so it should have ${expected} bytes: ${how}.`,
    );
  }
  return { format: 'llmc', tokens: count, dataOffset: SHARD_HEADER_BYTES };
}

/**
 * A NumPy .npy header (format versions 1.0, 2.0, 3.0): a 1-D little-endian uint16 array in C order, as
 * build-nanogpt's fineweb.py saves it.
 */
export function parseNpyHeader(head: Uint8Array, fileSize: number, file: string): ShardLayout {
  if (head.length < 10)
    throw badShard(file, `has a .npy signature but only ${head.length} bytes; a .npy header is at least 10 bytes.`);
  const major = head[6];
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  let headerLen: number;
  let start: number;
  if (major === 1) {
    headerLen = view.getUint16(8, true);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (head.length < 12) throw badShard(file, `is a .npy file of format ${major}.0 with a cut header.`);
    headerLen = view.getUint32(8, true);
    start = 12;
  } else {
    throw badShard(file, `is a .npy file of format version ${major}.${head[7]}; expected 1.0, 2.0 or 3.0.`);
  }
  const dataOffset = start + headerLen;
  if (dataOffset > head.length || dataOffset > fileSize) {
    throw badShard(
      file,
      `has a .npy header of ${headerLen} bytes, longer than the ${Math.min(head.length, fileSize)} bytes available.`,
    );
  }
  const text = new TextDecoder('latin1').decode(head.subarray(start, dataOffset));
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(text)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(text)?.[1];
  const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(text)?.[1];
  if (descr === undefined || fortran === undefined || shape === undefined) {
    throw badShard(
      file,
      `has a .npy header that is not a NumPy array description: ${JSON.stringify(text.trim().slice(0, 200))}.`,
    );
  }
  if (descr !== '<u2' && descr !== '|u2' && descr !== '=u2') {
    throw badShard(
      file,
      `is a .npy array of dtype '${descr}'; GPT-2 token shards are uint16 ('<u2').`,
      "Save the tokens with np.save(path, tokens.astype(np.uint16)), as build-nanogpt's fineweb.py does.",
    );
  }
  const dims = shape
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (dims.length !== 1 || !/^\d+$/.test(dims[0]!)) {
    throw badShard(
      file,
      `is a .npy array of shape (${shape}); a token shard is 1-D.`,
      'Flatten the array before saving it.',
    );
  }
  const count = Number(dims[0]);
  const expected = dataOffset + count * TOKEN_BYTES;
  if (fileSize !== expected) {
    const how = fileSize < expected ? 'it is truncated' : 'it has extra bytes';
    throw badShard(
      file,
      `has ${fileSize} bytes, but its .npy header describes ${count} uint16 tokens after ${dataOffset} header bytes, so it should have ${expected} bytes: ${how}.`,
    );
  }
  return { format: 'npy', tokens: count, dataOffset };
}

/** The file name of shard `index` of dataset `name`, as llm.c names them: `<name>_val_000000.bin`, `<name>_train_000001.bin`. */
export function shardFileName(name: string, split: Split, index: number): string {
  return `${name}_${split}_${String(index).padStart(6, '0')}.bin`;
}

/** The split of a shard file by its name (`..._val_...`, `..._train_...`), as llm.c and build-nanogpt name them. */
export function splitFromFileName(file: string): Split | null {
  const base = file.split(/[\\/]/).pop() ?? file;
  if (/(^|[_.-])val([_.-]|$)/i.test(base)) return 'val';
  if (/(^|[_.-])train([_.-]|$)/i.test(base)) return 'train';
  return null;
}
