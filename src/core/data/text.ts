/**
 * Where a text may be cut so that tokenizing the pieces separately gives exactly the tokens of the whole.
 *
 * GPT-2's BPE first splits text with the pattern
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * and merges bytes only inside each piece. A cut is safe when it falls on a piece boundary that the pattern
 * finds both in the whole text and in the two halves. Two kinds are:
 *   1. before a single space that sits between two non-space characters ("abc| def"): the space always starts
 *      the next piece (" def", " 1", " ."), and the piece before it ends at the non-space character;
 *   2. after a single newline between two non-space characters ("abc\n|Def"): that newline is a piece of its
 *      own, in the whole text (`\s+`) and at the end of the first half (`\s+(?!\S)`).
 * A run of two or more spaces or newlines is never cut: `\s+(?!\S)` groups them differently at a text's end.
 * The tests check the claim against whole-text tokenization of Tiny Shakespeare.
 */

const isSpace = (c: number): boolean =>
  c === 0x20 ||
  (c >= 0x09 && c <= 0x0d) ||
  c === 0x85 ||
  c === 0xa0 ||
  c === 0x1680 ||
  (c >= 0x2000 && c <= 0x200a) ||
  c === 0x2028 ||
  c === 0x2029 ||
  c === 0x202f ||
  c === 0x205f ||
  c === 0x3000 ||
  c === 0xfeff;

/** True when cutting `text` before index `i` (0 < i < length) leaves the tokens unchanged. */
export function isSafeCut(text: string, i: number): boolean {
  if (i <= 1 || i >= text.length - 1) return false;
  const c = text.charCodeAt(i);
  const prev = text.charCodeAt(i - 1);
  // kind 1: "x| y"
  if (c === 0x20 && !isSpace(prev) && !isSpace(text.charCodeAt(i + 1))) return true;
  // kind 2: "x\n|y"
  if (prev === 0x0a && !isSpace(c) && !isSpace(text.charCodeAt(i - 2))) return true;
  return false;
}

/** The first safe cut at or after `from` and before `to`, or -1. A newline cut is preferred within `to`. */
export function nextSafeCut(text: string, from: number, to = text.length): number {
  const end = Math.min(to, text.length - 1);
  let space = -1;
  for (let i = Math.max(from, 2); i < end; i++) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && text.charCodeAt(i - 1) !== 0x0a) continue;
    if (!isSafeCut(text, i)) continue;
    if (text.charCodeAt(i - 1) === 0x0a) return i;
    if (space < 0) space = i;
  }
  return space;
}

/**
 * Cuts `text` into pieces of about `target` UTF-16 units (more when no safe cut is near) whose tokenizations,
 * concatenated, equal the tokenization of `text`.
 */
export function splitForTokenizer(text: string, target: number): string[] {
  if (text.length <= target * 1.5) return [text];
  const out: string[] = [];
  let start = 0;
  while (text.length - start > target * 1.5) {
    const cut = nextSafeCut(text, start + target);
    if (cut < 0) break;
    out.push(text.slice(start, cut));
    start = cut;
  }
  out.push(text.slice(start));
  return out;
}

/**
 * The UTF-16 index at which the first `fraction` of the text's characters end, counting characters as Python
 * does (code points): nanoGPT's `data[:int(n*0.9)]`, `data[int(n*0.9):]`.
 */
export function splitIndexByCodePoints(text: string, fraction: number): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0xdc00 || c > 0xdfff) n++; // a low surrogate continues the code point before it
  }
  const k = Math.floor(n * fraction);
  let seen = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xdc00 && c <= 0xdfff) continue;
    if (seen === k) return i;
    seen++;
  }
  return text.length;
}
