import { encode as bpeEncode } from 'gpt-tokenizer/encoding/r50k_base';
import ranks from 'gpt-tokenizer/bpeRanks/r50k_base';
import { EOT_TOKEN, GPT2_VOCAB_SIZE } from './model/config';

/**
 * GPT-2's byte-level BPE (r50k_base). Encoding is gpt-tokenizer's; decoding goes through our own token -> bytes
 * table, so that a character split across tokens is never decoded half-way (gpt-tokenizer's decode keeps a
 * shared streaming decoder whose leftover bytes would leak into the next call).
 */
export const EOT = EOT_TOKEN;
export const EOT_TEXT = '<|endoftext|>';

let tokenBytes: Uint8Array[] | null = null;

function table(): Uint8Array[] {
  if (tokenBytes) return tokenBytes;
  const enc = new TextEncoder();
  const t: Uint8Array[] = new Array(GPT2_VOCAB_SIZE);
  for (let id = 0; id < ranks.length; id++) {
    const v = ranks[id]!;
    t[id] = typeof v === 'string' ? enc.encode(v) : Uint8Array.from(v);
  }
  t[EOT_TOKEN] = enc.encode(EOT_TEXT);
  tokenBytes = t;
  return t;
}

/** Encodes text. `<|endoftext|>` in the text is plain text unless `allowSpecial` is set. */
export function encode(text: string, opts: { allowSpecial?: boolean } = {}): number[] {
  return opts.allowSpecial
    ? bpeEncode(text, { allowedSpecial: new Set([EOT_TEXT]) })
    : bpeEncode(text, { disallowedSpecial: new Set() });
}

/** The raw bytes of a token sequence. Throws on an id outside GPT-2's vocabulary. */
export function tokensToBytes(tokens: ArrayLike<number>): Uint8Array {
  const t = table();
  let n = 0;
  for (let i = 0; i < tokens.length; i++) {
    const b = t[tokens[i]!];
    if (!b) throw new RangeError(`Token id ${tokens[i]} is outside GPT-2's vocabulary (0..${GPT2_VOCAB_SIZE - 1}).`);
    n += b.length;
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (let i = 0; i < tokens.length; i++) {
    const b = t[tokens[i]!]!;
    out.set(b, o);
    o += b.length;
  }
  return out;
}

/** Decodes a whole token sequence. Invalid UTF-8 (only possible for a cut sequence) becomes U+FFFD. */
export function decode(tokens: ArrayLike<number>): string {
  return new TextDecoder('utf-8').decode(tokensToBytes(tokens));
}

/**
 * Decodes tokens as they arrive. `push` returns only complete characters; bytes of a character that spans
 * tokens are held until the rest arrives. `flush` returns whatever is left.
 */
export class StreamDecoder {
  private readonly decoder = new TextDecoder('utf-8');

  push(token: number | ArrayLike<number>): string {
    const ids = typeof token === 'number' ? [token] : token;
    return this.decoder.decode(tokensToBytes(ids), { stream: true });
  }

  flush(): string {
    return this.decoder.decode();
  }
}
