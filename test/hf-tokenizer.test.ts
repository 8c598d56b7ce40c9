/**
 * The GPT-2 tokenizer files an HF export holds, derived from the studio's BPE ranks: read back by an encoder that
 * sees only vocab.json and merges.txt, they encode as the studio does.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HF_TOKENIZER_FILES, byteToUnicode, hfTokenizerFiles } from '../src/core/hf-tokenizer';
import { encode } from '../src/core/tokenizer';
import { readFolderEncoder, type FolderEncoder } from './support/gpt2-bpe-reader';
import { hasFixture, sharedPath } from './shared';

describe('GPT-2 tokenizer files for an HF folder', () => {
  let dir: string;
  let files: Record<string, string>;
  let reader: FolderEncoder;

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-hf-tok-'));
    files = hfTokenizerFiles({ modelMaxLength: 256 });
    for (const f of HF_TOKENIZER_FILES) fs.writeFileSync(path.join(dir, f), files[f]!);
    reader = readFolderEncoder(dir);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes every file, vocab.json with 50,257 tokens and merges.txt with 50,000 merges', () => {
    expect(Object.keys(files).sort()).toEqual([...HF_TOKENIZER_FILES].sort());
    expect(Object.keys(reader.vocab)).toHaveLength(50257);
    expect(reader.vocab['<|endoftext|>']).toBe(50256);
    expect(new Set(Object.values(reader.vocab)).size).toBe(50257);
    expect(reader.mergeCount).toBe(50000);
    const lines = files['merges.txt']!.split('\n');
    expect(lines[0]).toBe('#version: 0.2');
    // GPT-2's first merges: "Ġ t" makes token 256, "Ġ a" 257
    expect(lines.slice(1, 3)).toEqual(['Ġ t', 'Ġ a']);
    expect(reader.vocab['Ġt']).toBe(256);
    expect(reader.vocab['Ġa']).toBe(257);
  });

  it('maps bytes to characters as GPT-2 does', () => {
    const t = byteToUnicode();
    expect(t[0x41]).toBe('A');
    expect(t[0x20]).toBe('Ġ');
    expect(t[0x0a]).toBe('Ċ');
    expect(new Set(t).size).toBe(256);
  });

  it('encodes "Hello world" as [15496, 995] from vocab.json and merges.txt alone', () => {
    expect(reader.encode('Hello world')).toEqual([15496, 995]);
    expect(encode('Hello world')).toEqual([15496, 995]);
  });

  it.skipIf(!hasFixture('data/tinyshakespeare.txt'))(
    'agrees with the studio tokenizer on Tiny Shakespeare text',
    () => {
      const text = fs.readFileSync(sharedPath('data/tinyshakespeare.txt'), 'utf8');
      // a few paragraphs from different places: speakers, newlines, punctuation, contractions
      for (const start of [0, 20_000, 500_000, 1_000_000]) {
        const para = text.slice(start, start + 3000);
        const ids = reader.encode(para);
        expect(ids.length).toBeGreaterThan(500);
        expect(ids).toEqual(encode(para));
      }
    },
  );

  it('agrees on text outside ASCII, numbers and runs of spaces', () => {
    const text = "naïve café — 東京 🤖 it's 12345  spaced\n\n\ttabs  \n end ";
    expect(reader.encode(text)).toEqual(encode(text));
  });

  it('writes tokenizer.json as a byte-level BPE with the same vocabulary and merges', () => {
    const tj = JSON.parse(files['tokenizer.json']!) as {
      model: { type: string; vocab: Record<string, number>; merges: string[] };
      pre_tokenizer: { type: string; add_prefix_space: boolean };
      decoder: { type: string };
      added_tokens: { id: number; content: string; special: boolean }[];
    };
    expect(tj.model.type).toBe('BPE');
    expect(Object.keys(tj.model.vocab)).toHaveLength(50257);
    expect(tj.model.vocab).toEqual(reader.vocab);
    expect(tj.model.merges).toEqual(files['merges.txt']!.trimEnd().split('\n').slice(1));
    expect(tj.pre_tokenizer).toMatchObject({ type: 'ByteLevel', add_prefix_space: false });
    expect(tj.decoder.type).toBe('ByteLevel');
    expect(tj.added_tokens).toEqual([expect.objectContaining({ id: 50256, content: '<|endoftext|>', special: true })]);
  });

  it('names <|endoftext|> as bos, eos and unk, and the model context as the longest input', () => {
    expect(JSON.parse(files['tokenizer_config.json']!)).toMatchObject({
      tokenizer_class: 'GPT2Tokenizer',
      bos_token: '<|endoftext|>',
      eos_token: '<|endoftext|>',
      model_max_length: 256,
      add_prefix_space: false,
    });
    expect(JSON.parse(files['special_tokens_map.json']!)).toEqual({
      bos_token: '<|endoftext|>',
      eos_token: '<|endoftext|>',
      unk_token: '<|endoftext|>',
    });
    expect(JSON.parse(files['generation_config.json']!)).toEqual({ bos_token_id: 50256, eos_token_id: 50256 });
  });
});
