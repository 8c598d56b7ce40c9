import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { encode } from '../tokenizer';
import { hasFixture, sharedPath } from '../../../test/shared';
import { isSafeCut, nextSafeCut, splitForTokenizer, splitIndexByCodePoints } from './text';

const joinedTokens = (pieces: string[]): number[] => pieces.flatMap((p) => encode(p));

describe('safe cuts for tokenization', () => {
  it('cuts before a single space or after a single newline between non-space characters only', () => {
    expect(isSafeCut('ab cd', 2)).toBe(true); // "ab| cd"
    expect(isSafeCut('ab\ncd', 3)).toBe(true); // "ab\n|cd"
    expect(isSafeCut('ab  cd', 2)).toBe(false); // two spaces
    expect(isSafeCut('ab  cd', 3)).toBe(false);
    expect(isSafeCut('ab\n\ncd', 4)).toBe(false); // two newlines group differently at a text's end
    expect(isSafeCut('abcd', 2)).toBe(false); // inside a word
    expect(isSafeCut('ab \ncd', 2)).toBe(false);
  });

  it('every cut it allows leaves the tokens unchanged on tricky text', () => {
    const text =
      "He said: don't 'twas 123 456 ...!? ünïcödé 😀 x\ny\n\nz\t\tw  v\r\nu — end. It's 3.5 cm\n'quoted'\n 'lead";
    let cuts = 0;
    for (let i = 0; i < text.length; i++) {
      if (!isSafeCut(text, i)) continue;
      cuts++;
      expect(joinedTokens([text.slice(0, i), text.slice(i)]), `cut at ${i}`).toEqual(encode(text));
    }
    expect(cuts).toBeGreaterThan(15);
    expect(nextSafeCut(text, 0)).toBeGreaterThan(0);
  });

  it.skipIf(!hasFixture('data/tinyshakespeare.txt'))(
    "pieces of Tiny Shakespeare tokenize to exactly the whole text's tokens",
    () => {
      const text = fs.readFileSync(sharedPath('data/tinyshakespeare.txt'), 'utf8').slice(0, 300_000);
      const whole = encode(text);
      for (const target of [1000, 7777, 65536]) {
        const pieces = splitForTokenizer(text, target);
        expect(pieces.length).toBeGreaterThan(1);
        expect(pieces.join('')).toBe(text);
        expect(joinedTokens(pieces)).toEqual(whole);
      }
    },
  );

  it('leaves a text without safe cuts whole', () => {
    const text = 'x'.repeat(10_000);
    expect(splitForTokenizer(text, 100)).toEqual([text]);
  });
});

describe('splitIndexByCodePoints', () => {
  it('splits as Python slices data[:int(n*0.9)] (code points, not UTF-16 units)', () => {
    expect(splitIndexByCodePoints('abcdefghij', 0.9)).toBe(9);
    // 10 code points, 2 of them astral (2 UTF-16 units each): int(10*0.9) = 9 code points = 11 units
    const s = '😀😀abcdefgh';
    expect([...s].length).toBe(10);
    expect(splitIndexByCodePoints(s, 0.9)).toBe(11);
    expect(splitIndexByCodePoints('', 0.9)).toBe(0);
  });
});
