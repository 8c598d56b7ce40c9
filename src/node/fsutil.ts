/** File helpers: atomic writes, directory fsync, hashing. */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { CancelledError, fsError } from './datasets/errors';

/** fsync a folder, so that a rename or a new file in it survives a crash (a no-op where folders cannot be opened). */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Windows cannot open a folder; there, rename is already durable enough.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * Writes `data` (or its parts, in order) to `file` atomically: a temporary file beside it, fsync, rename, fsync
 * of the folder. `what` names the write in an error message.
 */
export function writeFileAtomic(
  file: string,
  data: string | Uint8Array | readonly Uint8Array[],
  what = 'writing',
): void {
  const tmp = `${file}.tmp-${process.pid}`;
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'w');
    const parts = typeof data === 'string' ? [Buffer.from(data, 'utf8')] : data instanceof Uint8Array ? [data] : data;
    for (const p of parts) fs.writeSync(fd, p);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
    fsyncDir(path.dirname(file));
  } catch (e) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw fsError(e, what, file);
  }
}

/** Parses a JSON file, or returns undefined when it is absent or unreadable as JSON. */
export function readJsonIfPresent(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** The sha256 (hex) of a file's bytes, streamed. */
export async function sha256File(file: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20, signal }))
      hash.update(chunk as Buffer);
  } catch (e) {
    if (signal?.aborted) throw new CancelledError(`Reading "${file}"`);
    throw fsError(e, 'reading', file);
  }
  return hash.digest('hex');
}

/** Total bytes of the files in a folder (not recursive). */
export function folderBytes(dir: string): number {
  let n = 0;
  for (const f of fs.readdirSync(dir, { withFileTypes: true }))
    if (f.isFile()) n += fs.statSync(path.join(dir, f.name)).size;
  return n;
}

/** Creates a folder (and its parents), mapping errors to StudioErrors. */
export function ensureDir(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw fsError(e, 'creating the folder', dir);
  }
}
