/**
 * The registry of dataset sources. A source turns a PrepareRequest into a plan: the input files (to download or
 * read in place), their format, whether each document gets an <|endoftext|>, and how val is chosen. The
 * preparation (prepare.ts) does the rest, the same way for every source. `registerSource` adds one.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode, StudioError } from '../../shared/errors';
import type { SinkOptions } from './shards';
import { checkUrl } from './download';
import { HF_MIRROR_HINT, hfHeaders, hfResolveUrl, listHfDatasetFiles, resolveHfEndpoint, resolveHfToken } from './hf';
import { parquetTextBytes, type InputFormat } from './readers';
import { SYNTHETIC_DESCRIPTION } from './synthetic';
import type { DatasetKind, PrepareRequest, SourceInfo } from '../../shared/api/datasets';

export const DEFAULT_SHARD_SIZE = 100_000_000;
/**
 * The largest input file a preparation reads or downloads, unless --max-bytes says otherwise: far above any real
 * input (FineWeb's parquet files are about 2 GB each), and low enough that a stream that never ends (a URL that
 * keeps sending, a file that keeps growing) stops with an error before it fills the disk.
 */
export const DEFAULT_MAX_INPUT_BYTES = 50_000_000_000;
/** GPT-2's BPE averages a little over 4 bytes of English per token; used only to estimate sizes. */
export const BYTES_PER_TOKEN_ESTIMATE = 4.2;

/** One input of a plan: a URL to download, or a local file. */
export interface PlannedInput {
  /** a file name (for downloads/<id>/ and the manifest) */
  name: string;
  url?: string;
  path?: string;
  sha256?: string;
  size?: number;
  /** HellaSwag: the number of examples the published file holds, checked after the download */
  examples?: number;
  headers?: Record<string, string>;
  /** `raw`: kept as it is (HellaSwag); `shard`: an existing .bin/.npy token shard */
  format: InputFormat | 'raw' | 'shard';
}

export interface SourcePlan {
  kind: DatasetKind | 'shards';
  title: string;
  description: string;
  inputs: PlannedInput[];
  /** <|endoftext|> before each document */
  eot: boolean;
  split: SinkOptions['split'];
  shardSize: number;
  /** what must be equal for an interrupted preparation to be continued (else it starts over) */
  fingerprint: Record<string, unknown>;
  notes: string[];
  /** added to network errors' hints */
  networkHint?: string;
  builtin?: { seed: number; bytes: number; valFraction: number };
  /** text bytes to tokenize in all, when known in advance (progress) */
  textBytesTotal?: number;
  /** the options recorded in the manifest */
  options: Record<string, string | number | boolean>;
  /** where it came from, for the manifest */
  url?: string;
  file?: string;
  endpoint?: string;
}

export interface SourceContext {
  env: NodeJS.ProcessEnv;
  signal?: AbortSignal;
}

export interface SourceDefinition {
  info: SourceInfo;
  plan(req: PrepareRequest, ctx: SourceContext): Promise<SourcePlan>;
}

const registry = new Map<string, SourceDefinition>();

export function registerSource(def: SourceDefinition): void {
  registry.set(def.info.id, def);
}

export function getSource(id: string): SourceDefinition {
  const def = registry.get(id);
  if (!def) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `Unknown dataset source "${id}".`,
      `Sources: ${[...registry.keys()].join(', ')}.`,
    );
  }
  return def;
}

export function listSources(): SourceInfo[] {
  return [...registry.values()].map((d) => d.info);
}

// ---------------------------------------------------------------------------------------------------------
// helpers

function bad(message: string, hint: string): StudioError {
  return new StudioError(ErrorCode.BAD_ARGUMENT, message, hint);
}

function shardSizeOf(req: PrepareRequest): number {
  const s = req.shardSize ?? DEFAULT_SHARD_SIZE;
  if (!Number.isInteger(s) || s < 1 || s > 0x7fffffff)
    throw bad(`--shard-size ${s} is not valid.`, 'Give a whole number of tokens between 1 and 2^31-1 (e.g. 100M).');
  return s;
}

function positiveInt(v: number | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || v < 1)
    throw bad(`--${flag} ${v} is not valid.`, `Give --${flag} as a whole number >= 1.`);
  return v;
}

function nonNegInt(v: number | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || v < 0)
    throw bad(`--${flag} ${v} is not valid.`, `Give --${flag} as a whole number >= 0.`);
  return v;
}

function onlyOne(req: PrepareRequest): void {
  if (req.url !== undefined && req.file !== undefined)
    throw bad('Give either --url or --file, not both.', '--url downloads a file; --file reads one from this machine.');
}

/** The limit on one input's size in bytes (--max-bytes). */
export function maxBytesOf(req: PrepareRequest): number {
  const v = req.maxBytes ?? DEFAULT_MAX_INPUT_BYTES;
  if (!Number.isInteger(v) || v < 1)
    throw bad(
      `--max-bytes ${v} is not valid.`,
      'Give --max-bytes as a whole number of bytes >= 1, e.g. 50G (the default).',
    );
  return v;
}

/** What a file that is neither a regular file nor a folder is, in words. */
function kindOf(st: fs.Stats): string {
  if (st.isFIFO()) return 'a named pipe (FIFO)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * The absolute path of --file: a regular file or a folder. A pipe or a device is refused before anything reads it:
 * reading a FIFO waits for a writer that may never come, and /dev/zero never ends.
 */
function localPath(file: string): string {
  const p = path.resolve(file);
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch {
    throw new StudioError(
      ErrorCode.FILE_NOT_FOUND,
      `No such file or folder: "${p}".`,
      'Check the path given with --file.',
    );
  }
  if (!st.isFile() && !st.isDirectory()) {
    throw bad(
      `--file "${p}" is ${kindOf(st)}, not a regular file.`,
      'Give a regular file or a folder with --file. To prepare what a pipe or a device produces, save it to a file first (e.g. command > corpus.txt).',
    );
  }
  return p;
}

/** A stable description of a local file, so that a changed file restarts an interrupted preparation. */
function fileStamp(p: string): Record<string, unknown> {
  const st = fs.statSync(p);
  return { path: p, size: st.size, mtimeMs: Math.round(st.mtimeMs) };
}

function urlFileName(url: string, fallback: string): string {
  const base = decodeURIComponent(new URL(url).pathname.split('/').pop() ?? '');
  return /^[A-Za-z0-9._-]{1,120}$/.test(base) ? base : fallback;
}

const TEXT_EXTENSIONS = ['.txt', '.text', '.md'];

/** The format of a file by its extension; any other extension is text when the file is named on its own. */
function formatOf(file: string): InputFormat | 'shard' {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.bin' || ext === '.npy') return 'shard';
  if (ext === '.jsonl' || ext === '.ndjson' || ext === '.json') return 'jsonl';
  if (ext === '.parquet') return 'parquet';
  return 'text';
}

/** Whether a file in a folder is an input: a known extension (other files, like backups, are left out). */
function isInputFile(file: string): boolean {
  const ext = path.extname(file).toLowerCase();
  return ['.bin', '.npy', '.jsonl', '.ndjson', '.json', '.parquet', ...TEXT_EXTENSIONS].includes(ext);
}

function limitOptions(req: PrepareRequest, shardSize: number): Record<string, string | number | boolean> {
  const o: Record<string, string | number | boolean> = { shardSize };
  if (req.maxTokens !== undefined) o.maxTokens = req.maxTokens;
  if (req.maxFiles !== undefined) o.maxFiles = req.maxFiles;
  if (req.valTokens !== undefined) o.valTokens = req.valTokens;
  return o;
}

/** val = the first N tokens; by default about 10% of the expected total, at most one shard. */
function countSplit(
  req: PrepareRequest,
  shardSize: number,
  expectedTokens: number | undefined,
): { mode: 'count'; valTokens: number } {
  const explicit = nonNegInt(req.valTokens, 'val-tokens');
  if (explicit !== undefined) return { mode: 'count', valTokens: explicit };
  const limit = req.maxTokens !== undefined ? req.maxTokens : expectedTokens;
  const val = limit === undefined ? shardSize : Math.min(shardSize, Math.max(1, Math.round(limit * 0.1)));
  return { mode: 'count', valTokens: val };
}

// ---------------------------------------------------------------------------------------------------------
// tinyshakespeare

export const TINYSHAKESPEARE_URL =
  'https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt';
/** input.txt's size, and its GPT-2 tokens (301,966 train + 36,059 val, as nanoGPT splits it) */
export const TINYSHAKESPEARE_BYTES = 1_115_394;
/** input.txt's sha256: every download of it (from --url too) is checked against this and its size */
export const TINYSHAKESPEARE_SHA256 = '86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed';
export const TINYSHAKESPEARE_TOKENS = 338_025;

registerSource({
  info: {
    id: 'tinyshakespeare',
    title: 'Tiny Shakespeare',
    description:
      "About 40,000 lines of Shakespeare's plays (1.1 MB), from char-rnn. Split 90/10 by characters into train and val, as nanoGPT does: 301,966 and 36,059 GPT-2 tokens.",
    network: true,
    kind: 'tokens',
    defaultName: 'tinyshakespeare',
    defaultUrl: TINYSHAKESPEARE_URL,
    options: ['name', 'url', 'file', 'shardSize', 'maxTokens', 'workers', 'keepDownloads', 'overwrite'],
  },
  async plan(req) {
    onlyOne(req);
    const shardSize = shardSizeOf(req);
    // a copy given with --file is checked as a download is: another text is the local source's job
    const input: PlannedInput =
      req.file !== undefined
        ? {
            name: path.basename(req.file),
            path: localPath(req.file),
            format: 'text-split',
            size: TINYSHAKESPEARE_BYTES,
            sha256: TINYSHAKESPEARE_SHA256,
          }
        : {
            name: 'input.txt',
            url: checkUrl(req.url ?? TINYSHAKESPEARE_URL).href,
            format: 'text-split',
            size: TINYSHAKESPEARE_BYTES,
            sha256: TINYSHAKESPEARE_SHA256,
          };
    if (input.path && fs.statSync(input.path).isDirectory())
      throw bad(
        `--file "${input.path}" is a folder; Tiny Shakespeare is one text file.`,
        'Pass the input.txt file, or use the local source for a folder.',
      );
    return {
      kind: 'tokens',
      title: 'Tiny Shakespeare',
      description:
        "Tiny Shakespeare, split 90/10 by characters as nanoGPT does (no <|endoftext|>, as nanoGPT's prepare.py).",
      inputs: [input],
      // nanoGPT's shakespeare/prepare.py encodes each half with encode_ordinary and adds no <|endoftext|>
      eot: false,
      split: { mode: 'explicit' },
      shardSize,
      fingerprint: {
        source: 'tinyshakespeare',
        input: input.url ?? fileStamp(input.path!),
        shardSize,
        maxTokens: req.maxTokens,
      },
      notes: [],
      options: limitOptions(req, shardSize),
      url: input.url,
      file: input.path,
      textBytesTotal: input.path ? fs.statSync(input.path).size : undefined,
    };
  },
});

// ---------------------------------------------------------------------------------------------------------
// fineweb-edu sample-10BT

export const FINEWEB_REPO = 'HuggingFaceFW/fineweb-edu';
export const FINEWEB_FOLDER = 'sample/10BT';
/**
 * What the Hub lists for sample/10BT, for estimates before the listing: about 10B GPT-2 tokens in 14 parquet files
 * (000_00000.parquet to 013_00000.parquet) of about 28 GB in all. The preparation itself uses the live listing.
 */
export const FINEWEB_FILES = 14;
export const FINEWEB_TOKENS = 10_000_000_000;
export const FINEWEB_BYTES = 28_000_000_000;

registerSource({
  info: {
    id: 'fineweb-edu-10bt',
    title: 'FineWeb-edu sample-10BT',
    description:
      'About 10B GPT-2 tokens of educational web pages (HuggingFaceFW/fineweb-edu, sample/10BT), the data of build-nanogpt. Parquet files from the Hugging Face Hub (about 28 GB), tokenized into 100M-token shards; shard 0 is val. Limit it to a number of files or of tokens (--max-files, --max-tokens on the command line).',
    network: true,
    kind: 'tokens',
    defaultName: 'fineweb-edu-10bt',
    options: [
      'name',
      'url',
      'file',
      'maxFiles',
      'maxTokens',
      'shardSize',
      'valTokens',
      'endpoint',
      'hfToken',
      'workers',
      'keepDownloads',
      'overwrite',
    ],
  },
  async plan(req, ctx) {
    onlyOne(req);
    const shardSize = shardSizeOf(req);
    const maxFiles = positiveInt(req.maxFiles, 'max-files');
    positiveInt(req.maxTokens, 'max-tokens');
    const endpoint = resolveHfEndpoint(req.endpoint, ctx.env);
    const token = resolveHfToken(req.hfToken, ctx.env);
    let inputs: PlannedInput[];
    if (req.file !== undefined) {
      inputs = localFiles(localPath(req.file), ['parquet']);
    } else if (req.url !== undefined) {
      const u = checkUrl(req.url).href;
      inputs = [{ name: urlFileName(u, 'data.parquet'), url: u, format: 'parquet', headers: hfHeaders(token) }];
    } else {
      const files = (
        await listHfDatasetFiles({ endpoint, repo: FINEWEB_REPO, folder: FINEWEB_FOLDER, token, signal: ctx.signal })
      ).filter((f) => f.path.endsWith('.parquet'));
      if (files.length === 0) {
        throw new StudioError(
          ErrorCode.BAD_DATA,
          `The Hub at ${endpoint} lists no parquet files under ${FINEWEB_REPO}/${FINEWEB_FOLDER}.`,
          `The endpoint may be a mirror without this dataset. ${HF_MIRROR_HINT}`,
        );
      }
      inputs = files.map((f) => ({
        name: f.path.split('/').join('__'),
        url: hfResolveUrl(endpoint, FINEWEB_REPO, f.path),
        sha256: f.sha256,
        size: f.size >= 0 ? f.size : undefined,
        headers: hfHeaders(token),
        format: 'parquet',
      }));
    }
    if (maxFiles !== undefined) inputs = inputs.slice(0, maxFiles);
    const notes: string[] = [];
    const split = countSplit(req, shardSize, undefined);
    if (req.valTokens === undefined && req.maxTokens !== undefined && split.valTokens < shardSize)
      notes.push(`val: the first ${split.valTokens.toLocaleString('en-US')} tokens (10% of --max-tokens).`);
    return {
      kind: 'tokens',
      title: 'FineWeb-edu sample-10BT',
      description:
        "FineWeb-edu sample-10BT (HuggingFaceFW/fineweb-edu), each document preceded by <|endoftext|> as in build-nanogpt's fineweb.py; shard 0 is val.",
      inputs,
      eot: true,
      split,
      shardSize,
      // the endpoint is left out on purpose: a mirror serves the same files
      fingerprint: {
        source: 'fineweb-edu-10bt',
        inputs: inputs.map((i) => i.sha256 ?? i.url ?? fileStamp(i.path!)),
        shardSize,
        maxTokens: req.maxTokens,
        split,
      },
      notes,
      networkHint: HF_MIRROR_HINT,
      options: limitOptions(req, shardSize),
      url: req.url,
      file: req.file !== undefined ? path.resolve(req.file) : undefined,
      endpoint: req.file === undefined && req.url === undefined ? endpoint : undefined,
    };
  },
});

/** The inputs of a local file or folder (sorted by name), keeping only the allowed formats. */
function localFiles(p: string, allowed: Array<InputFormat | 'shard'>): PlannedInput[] {
  const files = fs.statSync(p).isDirectory()
    ? fs
        .readdirSync(p, { withFileTypes: true })
        .filter((e) => e.isFile() && !e.name.startsWith('.') && isInputFile(e.name))
        .map((e) => path.join(p, e.name))
        .sort()
    : [p];
  const out: PlannedInput[] = [];
  for (const f of files) {
    const format = formatOf(f);
    if (allowed.includes(format)) out.push({ name: path.basename(f), path: f, format });
  }
  if (out.length === 0) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `"${p}" holds no ${allowed.map((a) => (a === 'shard' ? '.bin/.npy' : a === 'text' ? '.txt' : `.${a}`)).join(', ')} files.`,
      'Point --file at a file or a folder of such files.',
    );
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// hellaswag

export const HELLASWAG_URL = 'https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_val.jsonl';
/**
 * About the size of hellaswag_val.jsonl, for estimates: 10,042 examples at the 747 bytes per line measured on a
 * random sample of 1,000 of them.
 */
export const HELLASWAG_BYTES = 7_500_000;
/**
 * The examples of the published hellaswag_val.jsonl. Its exact size and hash are not recorded here, so a download
 * is checked by its structure instead: every line whole (a body cut short ends inside one) and, from the default
 * URL, this many examples.
 */
export const HELLASWAG_EXAMPLES = 10_042;

registerSource({
  info: {
    id: 'hellaswag',
    title: 'HellaSwag (val)',
    description:
      'The 10,042 validation examples of HellaSwag (rowanz/hellaswag), kept as they are for the HellaSwag evaluation.',
    network: true,
    kind: 'raw',
    defaultName: 'hellaswag',
    defaultUrl: HELLASWAG_URL,
    options: ['name', 'url', 'file', 'overwrite'],
  },
  async plan(req) {
    onlyOne(req);
    const input: PlannedInput =
      req.file !== undefined
        ? { name: 'hellaswag_val.jsonl', path: localPath(req.file), format: 'raw' }
        : {
            name: 'hellaswag_val.jsonl',
            url: checkUrl(req.url ?? HELLASWAG_URL).href,
            format: 'raw',
            ...(req.url === undefined ? { examples: HELLASWAG_EXAMPLES } : {}),
          };
    return {
      kind: 'raw',
      title: 'HellaSwag (val)',
      description: 'HellaSwag validation split, one example a line (ctx, endings, label), for evaluation.',
      inputs: [input],
      eot: false,
      split: { mode: 'explicit' },
      shardSize: DEFAULT_SHARD_SIZE,
      fingerprint: { source: 'hellaswag', input: input.url ?? fileStamp(input.path!) },
      notes: [],
      options: {},
      url: input.url,
      file: input.path,
    };
  },
});

// ---------------------------------------------------------------------------------------------------------
// local

registerSource({
  info: {
    id: 'local',
    title: 'Your own text',
    description:
      'A text file (split 90/10 by characters), a folder of .txt files (one document each), JSONL with a "text" field, or parquet with a "text" column, from this machine or a URL. Existing llm.c .bin or build-nanogpt .npy shards are imported as they are.',
    network: false,
    kind: 'tokens',
    defaultName: 'local',
    options: ['name', 'url', 'file', 'maxTokens', 'shardSize', 'valTokens', 'workers', 'keepDownloads', 'overwrite'],
  },
  async plan(req) {
    onlyOne(req);
    if (req.file === undefined && req.url === undefined)
      throw bad(
        'The local source needs --file PATH (or --url URL).',
        'Example: gpt2-studio prepare local --file corpus.txt --name my-corpus',
      );
    const shardSize = shardSizeOf(req);
    positiveInt(req.maxTokens, 'max-tokens');
    let inputs: PlannedInput[];
    if (req.url !== undefined) {
      const u = checkUrl(req.url).href;
      const name = urlFileName(u, 'input.txt');
      inputs = [{ name, url: u, format: formatOf(name) }];
    } else {
      inputs = localFiles(localPath(req.file!), ['text', 'jsonl', 'parquet', 'shard']);
    }
    const shards = inputs.filter((i) => i.format === 'shard');
    if (shards.length > 0 && shards.length < inputs.length) {
      throw bad(
        `"${req.file}" mixes token shards (.bin/.npy) with text files.`,
        'Import shards and prepare text as separate datasets.',
      );
    }
    const base = {
      url: req.url,
      file: req.file !== undefined ? path.resolve(req.file) : undefined,
      options: limitOptions(req, shardSize),
      shardSize,
      notes: [] as string[],
    };
    const stamp = (i: PlannedInput): unknown => i.url ?? fileStamp(i.path!);
    if (shards.length > 0) {
      return {
        ...base,
        kind: 'shards',
        title: `Imported shards (${inputs.length})`,
        description: `Token shards imported from ${req.file}.`,
        inputs,
        eot: true,
        split: { mode: 'explicit' },
        fingerprint: { source: 'local-shards', inputs: inputs.map(stamp) },
      };
    }
    // one text file: nanoGPT's 90/10 character split; otherwise documents, val = the first ~10% of the tokens
    const only = inputs.length === 1 ? inputs[0] : undefined;
    if (only?.format === 'text') {
      only.format = 'text-split';
      const bytes = only.path ? fs.statSync(only.path).size : undefined;
      return {
        ...base,
        kind: 'tokens',
        title: only.name,
        description: `${only.name}, split 90/10 by characters into train and val (as nanoGPT splits Tiny Shakespeare), each part preceded by <|endoftext|>.`,
        inputs,
        eot: true,
        split: { mode: 'explicit' },
        fingerprint: { source: 'local', inputs: inputs.map(stamp), shardSize, maxTokens: req.maxTokens },
        textBytesTotal: bytes,
      };
    }
    let textBytes: number | undefined = 0;
    for (const i of inputs) {
      if (!i.path) textBytes = undefined;
      else if (textBytes !== undefined)
        textBytes += i.format === 'parquet' ? await parquetTextBytes(i.path) : fs.statSync(i.path).size;
    }
    const split = countSplit(
      req,
      shardSize,
      textBytes === undefined ? undefined : Math.round(textBytes / BYTES_PER_TOKEN_ESTIMATE),
    );
    if (req.valTokens === undefined)
      base.notes.push(
        `val: the first ${split.valTokens.toLocaleString('en-US')} tokens (about 10%${req.maxTokens === undefined ? ', estimated from the input size' : ' of --max-tokens'}).`,
      );
    return {
      ...base,
      kind: 'tokens',
      title: req.file !== undefined ? path.basename(path.resolve(req.file)) : inputs[0]!.name,
      description: `${inputs.length} file${inputs.length === 1 ? '' : 's'} of documents, each preceded by <|endoftext|>; shard 0 (val) holds the first tokens.`,
      inputs,
      eot: true,
      split,
      fingerprint: { source: 'local', inputs: inputs.map(stamp), shardSize, maxTokens: req.maxTokens, split },
      textBytesTotal: textBytes,
    };
  },
});

// ---------------------------------------------------------------------------------------------------------
// builtin

export const DEFAULT_BUILTIN_MB = 4;
/** Bumped when the generator changes, so that an interrupted preparation of the old corpus starts over. */
const SYNTHETIC_VERSION = 1;

registerSource({
  info: {
    id: 'builtin',
    title: 'Synthetic stories (offline)',
    description: SYNTHETIC_DESCRIPTION,
    network: false,
    kind: 'tokens',
    defaultName: 'builtin',
    options: ['name', 'sizeMb', 'seed', 'maxTokens', 'shardSize', 'workers', 'overwrite'],
  },
  async plan(req) {
    if (req.url !== undefined || req.file !== undefined) {
      throw bad(
        'The builtin source generates its text; --url and --file do not apply to it.',
        'Use the local source for your own file: gpt2-studio prepare local --file F.',
      );
    }
    const shardSize = shardSizeOf(req);
    const mb = req.sizeMb ?? DEFAULT_BUILTIN_MB;
    if (!Number.isFinite(mb) || mb <= 0 || mb > 10_000)
      throw bad(`--size-mb ${mb} is not valid.`, 'Give a size in MB between 0 and 10000 (default 4).');
    const seed = req.seed ?? 1337;
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)
      throw bad(`--seed ${seed} is not valid.`, 'Give a whole number between 0 and 2^32-1.');
    const bytes = Math.round(mb * 1e6);
    return {
      kind: 'tokens',
      title: 'Synthetic stories',
      description: SYNTHETIC_DESCRIPTION,
      inputs: [{ name: 'synthetic-stories', format: 'builtin' }],
      eot: true,
      split: { mode: 'explicit' },
      shardSize,
      fingerprint: { source: 'builtin', version: SYNTHETIC_VERSION, seed, bytes, shardSize, maxTokens: req.maxTokens },
      notes: [`Generated from seed ${seed}: ${mb} MB of text; val is the first 10% of the stories.`],
      builtin: { seed, bytes, valFraction: 0.1 },
      textBytesTotal: bytes,
      options: { ...limitOptions(req, shardSize), sizeMb: mb, seed },
    };
  },
});
