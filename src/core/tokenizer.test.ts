import { describe, expect, it } from 'vitest';
import { readFileSync, existsSync } from 'node:fs';
import { decode, encode, EOT, StreamDecoder } from './tokenizer';
import { sharedPath } from '../../test/shared';

describe('GPT-2 tokenizer', () => {
  it('encodes "Hello world" as GPT-2 does', () => {
    expect(encode('Hello world')).toEqual([15496, 995]);
    expect(decode([15496, 995])).toBe('Hello world');
  });

  it('treats <|endoftext|> as text unless asked, and as 50256 when allowed', () => {
    expect(encode('<|endoftext|>', { allowSpecial: true })).toEqual([EOT]);
    expect(encode('<|endoftext|>')).not.toContain(EOT);
    expect(decode([EOT])).toBe('<|endoftext|>');
  });

  it('streams characters that span tokens without ever emitting a broken one', () => {
    const text = 'naïve — 日本語 😀🎉 done';
    const ids = encode(text);
    // at least one token must be a partial character, or this test proves nothing
    const partial = ids.some((id) => decode([id]).includes('\uFFFD'));
    expect(partial).toBe(true);
    const sd = new StreamDecoder();
    let out = '';
    for (const id of ids) {
      const piece = sd.push(id);
      expect(piece).not.toContain('\uFFFD');
      out += piece;
    }
    out += sd.flush();
    expect(out).toBe(text);
  });

  const shakespeare = sharedPath('data/tinyshakespeare.txt');
  it.skipIf(!existsSync(shakespeare))('round-trips all of Tiny Shakespeare (338,025 tokens)', () => {
    const text = readFileSync(shakespeare, 'utf8');
    const ids = encode(text);
    expect(ids.length).toBe(338025);
    expect(decode(ids)).toBe(text);
  });
});
