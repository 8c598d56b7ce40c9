/**
 * A dataset's manifest.json, and the workspace's dataset folders:
 *   <home>/datasets/<id>/             a finished dataset: shards (or a raw file) + manifest.json
 *   <home>/datasets/.<id>.partial/    a preparation in progress or interrupted (never listed as ready)
 *   <home>/downloads/<id>/            its downloads, `.part` files while incomplete
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { ErrorCode, StudioError } from '../../shared/errors';
import { SHARD_HEADER_BYTES, SHARD_MAGIC, SHARD_VERSION, type Split } from '../../core/data/shard';
import { folderBytes, readJsonIfPresent, writeFileAtomic } from '../fsutil';
import type { DatasetSummary, PrepareRequest } from '../../shared/api/datasets';
import { Workspace } from '../workspace';

export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_FORMAT = 'gpt2-studio-dataset';
export const MANIFEST_VERSION = 1;

const fileEntry = z.object({
  file: z.string(),
  split: z.enum(['train', 'val']).optional(),
  tokens: z.number().int().nonnegative().optional(),
  bytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

const inputEntry = z.object({
  name: z.string(),
  url: z.string().optional(),
  path: z.string().optional(),
  bytes: z.number().int().nonnegative(),
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
});

export const manifestSchema = z.object({
  format: z.literal(MANIFEST_FORMAT),
  version: z.literal(MANIFEST_VERSION),
  id: z.string(),
  title: z.string(),
  description: z.string(),
  kind: z.enum(['tokens', 'raw', 'sft']),
  source: z.object({
    id: z.string(),
    url: z.string().optional(),
    file: z.string().optional(),
    endpoint: z.string().optional(),
    /** the request's options that shape the data (limits, shard size, seed) */
    options: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
  }),
  tokenizer: z
    .object({
      name: z.literal('gpt2'),
      encoding: z.literal('r50k_base'),
      library: z.string(),
      vocabSize: z.number().int(),
      eot: z.number().int(),
      /** whether each document is preceded by <|endoftext|> */
      eotBeforeEachDocument: z.boolean(),
    })
    .optional(),
  shardFormat: z
    .object({
      name: z.literal('llm.c'),
      magic: z.literal(SHARD_MAGIC),
      version: z.literal(SHARD_VERSION),
      headerBytes: z.literal(SHARD_HEADER_BYTES),
      dtype: z.literal('uint16'),
    })
    .optional(),
  shardSize: z.number().int().positive().optional(),
  files: z.array(fileEntry),
  inputs: z.array(inputEntry),
  tokens: z.object({ train: z.number().int().nonnegative(), val: z.number().int().nonnegative() }),
  documents: z.number().int().nonnegative().optional(),
  examples: z.number().int().nonnegative().optional(),
  created: z.string(),
  notes: z.array(z.string()),
});

export type DatasetManifest = z.infer<typeof manifestSchema>;
export type ManifestFile = z.infer<typeof fileEntry>;
export type ManifestInput = z.infer<typeof inputEntry>;

export function datasetsDir(home: string): string {
  return new Workspace(home).datasets;
}
export function datasetDir(home: string, id: string): string {
  return new Workspace(home).dataset(id);
}
export function partialDir(home: string, id: string): string {
  return new Workspace(home).partialDataset(id);
}
export function downloadsDir(home: string, id: string): string {
  return new Workspace(home).downloads(id);
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$/;

/** Checks a dataset id: it names a folder, so letters, digits, `.`, `_`, `-`, starting with a letter or digit. */
export function checkDatasetId(id: string): string {
  if (!ID_RE.test(id) || id.includes('..')) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `"${id}" is not a valid dataset name.`,
      'Use 1 to 80 letters, digits, ".", "_" or "-", starting with a letter or digit (e.g. --name my-corpus).',
    );
  }
  return id;
}

/** Reads and checks a manifest; throws BAD_DATA naming the file. */
export function readManifest(file: string): DatasetManifest {
  const raw = readJsonIfPresent(file);
  if (raw === undefined) {
    throw new StudioError(
      fs.existsSync(file) ? ErrorCode.BAD_DATA : ErrorCode.FILE_NOT_FOUND,
      `The dataset manifest "${file}" is ${fs.existsSync(file) ? 'not JSON' : 'missing'}.`,
      'Prepare the dataset again (gpt2-studio prepare ...).',
    );
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    throw new StudioError(
      ErrorCode.BAD_DATA,
      `The dataset manifest "${file}" is not valid: ${z.prettifyError(parsed.error)}`,
      'It was written by another version or edited by hand; prepare the dataset again.',
    );
  }
  return parsed.data;
}

export function writeManifest(dir: string, m: DatasetManifest): void {
  writeFileAtomic(path.join(dir, MANIFEST_FILE), JSON.stringify(manifestSchema.parse(m), null, 2) + '\n');
}

/** A finished dataset's manifest, or a FILE_NOT_FOUND error that lists the datasets there are. */
export function openDataset(home: string, id: string): { dir: string; manifest: DatasetManifest } {
  const dir = datasetDir(home, checkDatasetId(id));
  if (!fs.existsSync(path.join(dir, MANIFEST_FILE))) {
    const known = listDatasets(home)
      .filter((d) => d.status === 'ready')
      .map((d) => d.id);
    const partial = fs.existsSync(partialDir(home, id));
    throw new StudioError(
      ErrorCode.FILE_NOT_FOUND,
      partial
        ? `The dataset "${id}" is not finished: its preparation was interrupted.`
        : `There is no dataset "${id}" in ${datasetsDir(home)}.`,
      partial
        ? 'Run the same gpt2-studio prepare command again to finish it.'
        : `Prepare it with gpt2-studio prepare. Datasets there: ${known.join(', ') || 'none'}.`,
    );
  }
  return { dir, manifest: readManifest(path.join(dir, MANIFEST_FILE)) };
}

/** The shard files of one split of a finished dataset, in order. */
export function datasetShardFiles(home: string, id: string, split: Split): string[] {
  const { dir, manifest } = openDataset(home, id);
  if (manifest.kind !== 'tokens') {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `The dataset "${id}" holds ${manifest.title} as it is, not tokens for training.`,
      'Train on a token dataset (tinyshakespeare, fineweb-edu-10bt, builtin, local).',
    );
  }
  return manifest.files.filter((f) => f.split === split).map((f) => path.join(dir, f.file));
}

export function summarize(dir: string, m: DatasetManifest): DatasetSummary {
  const s: DatasetSummary = {
    id: m.id,
    title: m.title,
    source: m.source.id,
    kind: m.kind,
    status: 'ready',
    path: dir,
    description: m.description,
    tokens: m.tokens,
    shards: m.kind === 'raw' ? 0 : m.files.filter((f) => f.file.endsWith('.bin') || f.file.endsWith('.npy')).length,
    bytes: folderBytes(dir),
    created: m.created,
    notes: m.notes,
  };
  if (m.examples !== undefined) s.examples = m.examples;
  return s;
}

/** What a partial folder's checkpoint tells the listing (see prepare.ts). */
export interface PartialInfo {
  source: string;
  title: string;
  description: string;
  tokens: { train: number; val: number };
  shards: number;
  /** the request that started it (without the Hugging Face token) */
  request?: PrepareRequest;
}

/** Every dataset in the workspace, finished or partial, sorted by id. */
export function listDatasets(home: string, readPartial?: (dir: string) => PartialInfo | undefined): DatasetSummary[] {
  const root = datasetsDir(home);
  if (!fs.existsSync(root)) return [];
  const out: DatasetSummary[] = [];
  for (const e of fs.readdirSync(root, { withFileTypes: true })) {
    if (!e.isDirectory()) continue;
    const dir = path.join(root, e.name);
    const partial = /^\.(.+)\.partial$/.exec(e.name);
    if (partial) {
      const info = readPartial?.(dir);
      out.push({
        id: partial[1]!,
        title: info?.title ?? partial[1]!,
        source: info?.source ?? 'unknown',
        kind: 'tokens',
        status: 'partial',
        path: dir,
        description: info?.description ?? '',
        tokens: info?.tokens ?? { train: 0, val: 0 },
        shards: info?.shards ?? 0,
        bytes: folderBytes(dir),
        notes: ['The preparation was interrupted. Run the same prepare again to continue, or remove it.'],
        ...(info?.request ? { request: info.request } : {}),
      });
      continue;
    }
    if (e.name.startsWith('.')) continue;
    const file = path.join(dir, MANIFEST_FILE);
    if (!fs.existsSync(file)) continue;
    try {
      out.push(summarize(dir, readManifest(file)));
    } catch (err) {
      out.push({
        id: e.name,
        title: e.name,
        source: 'unknown',
        kind: 'tokens',
        status: 'partial',
        path: dir,
        description: '',
        tokens: { train: 0, val: 0 },
        shards: 0,
        bytes: folderBytes(dir),
        notes: [`Its manifest cannot be read: ${(err as Error).message}`],
      });
    }
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : a.status < b.status ? 1 : -1));
}
