/**
 * A GPT-2 encoder that knows nothing but an HF folder's vocab.json and merges.txt: the byte-to-unicode table, the
 * GPT-2 pre-tokenization pattern, then merges by rank. It checks the exported tokenizer files on their own, apart
 * from the code that wrote them.
 */
import fs from 'node:fs';
import path from 'node:path';

const SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

function bytesToUnicode(): Map<number, string> {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const m = new Map<number, string>();
  for (const b of keep) m.set(b, String.fromCodePoint(b));
  let extra = 0;
  for (let b = 0; b < 256; b++) if (!m.has(b)) m.set(b, String.fromCodePoint(256 + extra++));
  return m;
}

export interface FolderEncoder {
  vocab: Record<string, number>;
  mergeCount: number;
  encode(text: string): number[];
}

export function readFolderEncoder(dir: string): FolderEncoder {
  const vocab = JSON.parse(fs.readFileSync(path.join(dir, 'vocab.json'), 'utf8')) as Record<string, number>;
  const lines = fs.readFileSync(path.join(dir, 'merges.txt'), 'utf8').split('\n');
  if (lines[0] !== '#version: 0.2') throw new Error(`merges.txt starts with ${JSON.stringify(lines[0])}`);
  const rank = new Map<string, number>();
  for (const line of lines.slice(1)) {
    if (!line) continue;
    const parts = line.split(' ');
    if (parts.length !== 2) throw new Error(`merges.txt line ${JSON.stringify(line)} is not "a b"`);
    rank.set(line, rank.size);
  }
  const b2u = bytesToUnicode();
  const utf8 = new TextEncoder();

  const bpe = (word: string[]): string[] => {
    let w = word;
    for (;;) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < w.length; i++) {
        const r = rank.get(`${w[i]} ${w[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) return w;
      const [a, b] = [w[best]!, w[best + 1]!];
      // every occurrence of the best pair, left to right
      const next: string[] = [];
      for (let i = 0; i < w.length; i++) {
        if (i + 1 < w.length && w[i] === a && w[i + 1] === b) {
          next.push(a + b);
          i++;
        } else next.push(w[i]!);
      }
      w = next;
    }
  };

  return {
    vocab,
    mergeCount: rank.size,
    encode(text) {
      const ids: number[] = [];
      for (const piece of text.match(SPLIT) ?? []) {
        const chars = [...utf8.encode(piece)].map((b) => b2u.get(b)!);
        for (const tok of bpe(chars)) {
          const id = vocab[tok];
          if (id === undefined) throw new Error(`token ${JSON.stringify(tok)} is not in vocab.json`);
          ids.push(id);
        }
      }
      return ids;
    },
  };
}
