/**
 * Checks of a HellaSwag JSONL file as a dataset preparation fetched it: a last line cut short (an interrupted
 * download), the wrong file (a proxy's HTML page, another data set), and the count of usable examples.
 */
import fs from 'node:fs';
import { ErrorCode, StudioError } from '../../shared/errors';
import { parseHellaswag } from '../../core/evals/hellaswag';
import { fsError } from './errors';

/**
 * The length in bytes of a JSONL file's last line when it is cut short: it does not end with a newline and is not
 * JSON. Undefined when the file ends with a whole line.
 */
export function unfinishedLastLine(file: string): number | undefined {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const size = fs.fstatSync(fd).size;
    if (size === 0) return undefined;
    // HellaSwag's lines are about 750 bytes; 1 MB holds the last one whole
    const n = Math.min(size, 1 << 20);
    const buf = Buffer.alloc(n);
    fs.readSync(fd, buf, 0, n, size - n);
    if (buf[n - 1] === 0x0a) return undefined;
    const tail = buf.subarray(buf.lastIndexOf(0x0a) + 1);
    try {
      JSON.parse(tail.toString('utf8'));
      return undefined;
    } catch {
      return tail.length;
    }
  } catch (e) {
    throw fsError(e, 'reading', file);
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Checks that a file looks like HellaSwag's JSONL; counts its usable examples and the malformed lines. */
export function checkHellaswag(file: string): { examples: number; notes: string[] } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw fsError(e, 'reading', file);
  }
  // the first line that parses must look like HellaSwag (a proxy's HTML page, or another data set, does not)
  for (const [i, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch {
      continue;
    }
    const o = obj as { ctx?: unknown; endings?: unknown };
    if (typeof o?.ctx !== 'string' || !Array.isArray(o.endings)) {
      throw new StudioError(
        ErrorCode.BAD_DATA,
        `"${file}" does not look like HellaSwag: line ${i + 1} has no "ctx" string and "endings" list.`,
        'Check the URL (--url) or the file (--file): it should be hellaswag_val.jsonl.',
      );
    }
    break;
  }
  let parsed: ReturnType<typeof parseHellaswag>;
  try {
    parsed = parseHellaswag(text, { source: file });
  } catch (e) {
    // nothing usable: more likely a wrong file or a proxy's page than a dataset to fix by hand
    if (e instanceof StudioError)
      throw new StudioError(
        e.code,
        e.message,
        'Check the URL (--url) or the file (--file); a proxy may have answered with an HTML page.',
        { cause: e },
      );
    throw e;
  }
  const bad = parsed.skipped.length;
  const notes =
    bad > 0
      ? [
          `${bad} malformed line${bad === 1 ? ' is' : 's are'} skipped (first: line ${parsed.skipped[0]!.line}, ${parsed.skipped[0]!.message}); the evaluation reports ${bad === 1 ? 'it' : 'them'} too.`,
        ]
      : [];
  return { examples: parsed.examples.length, notes };
}
