/**
 * GPT-2's tokenizer in the files of a Hugging Face model folder (vocab.json, merges.txt, tokenizer.json,
 * tokenizer_config.json, special_tokens_map.json, generation_config.json), derived from the BPE ranks the studio
 * encodes with (r50k_base), so an exported folder loads with `AutoTokenizer` and encodes exactly as the studio did.
 *
 * The ranks give each token's bytes and id but not the merge that made it. Token id 256 + k is merge k, so the pair
 * of merge k is what BPE over that token's bytes gives when only tokens below it may be formed: it stops at two
 * parts, and those are the pair.
 */
import ranks from 'gpt-tokenizer/bpeRanks/r50k_base';
import { EOT_TOKEN, GPT2_VOCAB_SIZE } from './model/config';
import { EOT_TEXT } from './tokenizer';

/** byte-level BPE starts from the 256 single bytes; every id from here on is one merge */
const FIRST_MERGE_ID = 256;
export const GPT2_MERGES = EOT_TOKEN - FIRST_MERGE_ID;

/**
 * GPT-2's byte -> character table: printable bytes stand for themselves, the others (controls, space, and a few
 * Latin-1 gaps) take the characters from U+0100 on, in byte order, so every token is a visible string with no space.
 */
export function byteToUnicode(): string[] {
  const table: string[] = new Array(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCharCode(printable ? b : next++);
  }
  return table;
}

/** The bytes of every ordinary token (ids 0..50255), in id order. */
function tokenBytes(): Uint8Array[] {
  const enc = new TextEncoder();
  const out: Uint8Array[] = [];
  for (let id = 0; id < EOT_TOKEN; id++) {
    const v = ranks[id];
    if (v === undefined)
      throw new Error(`The GPT-2 ranks table has ${ranks.length} entries; token id ${id} is missing.`);
    out.push(typeof v === 'string' ? enc.encode(v) : Uint8Array.from(v));
  }
  return out;
}

/** bytes as a one-char-per-byte string: a cheap, exact map key */
const keyOf = (bytes: Uint8Array, from = 0, to = bytes.length): string => {
  let s = '';
  for (let i = from; i < to; i++) s += String.fromCharCode(bytes[i]!);
  return s;
};

export interface Gpt2Bpe {
  /** token (in byte-to-unicode characters) -> id, <|endoftext|> included: 50,257 entries */
  vocab: Map<string, number>;
  /** merge k (creating id 256 + k) as its two tokens, in byte-to-unicode characters */
  merges: [string, string][];
}

let cached: Gpt2Bpe | null = null;

/** The vocabulary and the merges, derived once per process (about a second) and kept. */
export function gpt2Bpe(): Gpt2Bpe {
  if (cached) return cached;
  const bytes = tokenBytes();
  const b2u = byteToUnicode();
  const idOf = new Map<string, number>();
  for (let id = 0; id < bytes.length; id++) idOf.set(keyOf(bytes[id]!), id);

  const vocab = new Map<string, number>();
  const show = (b: Uint8Array, from: number, to: number): string => {
    let s = '';
    for (let i = from; i < to; i++) s += b2u[b[i]!]!;
    return s;
  };
  for (let id = 0; id < bytes.length; id++) vocab.set(show(bytes[id]!, 0, bytes[id]!.length), id);
  vocab.set(EOT_TEXT, EOT_TOKEN);

  const merges: [string, string][] = [];
  for (let id = FIRST_MERGE_ID; id < EOT_TOKEN; id++) {
    const b = bytes[id]!;
    // part boundaries: parts[i]..parts[i+1]; start from single bytes
    const cuts: number[] = [];
    for (let i = 0; i <= b.length; i++) cuts.push(i);
    while (cuts.length > 3) {
      let best = -1;
      let bestId = id;
      for (let i = 0; i + 2 < cuts.length; i++) {
        const r = idOf.get(keyOf(b, cuts[i]!, cuts[i + 2]!));
        if (r !== undefined && r < bestId) {
          bestId = r;
          best = i;
        }
      }
      if (best < 0) break;
      cuts.splice(best + 1, 1);
    }
    if (cuts.length !== 3)
      throw new Error(
        `GPT-2 token ${id} (${JSON.stringify(show(b, 0, b.length))}) does not come from one merge of earlier tokens; the ranks table is not GPT-2's.`,
      );
    merges.push([show(b, cuts[0]!, cuts[1]!), show(b, cuts[1]!, cuts[2]!)]);
  }
  if (vocab.size !== GPT2_VOCAB_SIZE)
    throw new Error(`The derived GPT-2 vocabulary has ${vocab.size} tokens, expected ${GPT2_VOCAB_SIZE}.`);
  cached = { vocab, merges };
  return cached;
}

const json = (v: unknown): string => JSON.stringify(v, null, 2) + '\n';

const eotAdded = {
  content: EOT_TEXT,
  single_word: false,
  lstrip: false,
  rstrip: false,
  normalized: true,
  special: true,
};

let bigFiles: { vocab: string; merges: string; tokenizer: string } | null = null;

/**
 * The tokenizer and generation files of an HF GPT-2 folder, by file name. `modelMaxLength` is the model's context
 * (n_positions), which the tokenizer reports as its longest input.
 */
export function hfTokenizerFiles(opts: { modelMaxLength: number }): Record<string, string> {
  if (!bigFiles) {
    const { vocab, merges } = gpt2Bpe();
    const vocabObj = Object.fromEntries(vocab);
    const mergeLines = merges.map(([a, b]) => `${a} ${b}`);
    bigFiles = {
      vocab: JSON.stringify(vocabObj),
      merges: ['#version: 0.2', ...mergeLines].join('\n') + '\n',
      tokenizer: JSON.stringify({
        version: '1.0',
        truncation: null,
        padding: null,
        added_tokens: [{ id: EOT_TOKEN, ...eotAdded }],
        normalizer: null,
        pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
        post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
        decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
        model: {
          type: 'BPE',
          dropout: null,
          unk_token: null,
          continuing_subword_prefix: '',
          end_of_word_suffix: '',
          fuse_unk: false,
          vocab: vocabObj,
          merges: mergeLines,
        },
      }),
    };
  }
  const special = { bos_token: EOT_TEXT, eos_token: EOT_TEXT, unk_token: EOT_TEXT };
  return {
    'vocab.json': bigFiles.vocab,
    'merges.txt': bigFiles.merges,
    'tokenizer.json': bigFiles.tokenizer,
    'tokenizer_config.json': json({
      add_bos_token: false,
      add_prefix_space: false,
      added_tokens_decoder: { [String(EOT_TOKEN)]: eotAdded },
      ...special,
      clean_up_tokenization_spaces: false,
      errors: 'replace',
      model_max_length: opts.modelMaxLength,
      tokenizer_class: 'GPT2Tokenizer',
    }),
    'special_tokens_map.json': json(special),
    'generation_config.json': json({ bos_token_id: EOT_TOKEN, eos_token_id: EOT_TOKEN }),
  };
}

/** The names of the files `hfTokenizerFiles` gives, in the order they are written. */
export const HF_TOKENIZER_FILES = [
  'vocab.json',
  'merges.txt',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'generation_config.json',
] as const;
