/**
 * Preparing a dataset: plan (sources.ts) → fetch inputs (download.ts) → read units (readers.ts) → tokenize in the
 * worker pool (pool.ts) → llm.c shards (shards.ts) → manifest.json.
 *
 * Everything is written into `<home>/datasets/.<id>.partial/`, which the listing shows as partial and the loader
 * never reads. After every unit (a few MB of text, or a parquet row group) the shard being filled is fsynced and a
 * checkpoint (progress.json) records the input position, so a cancelled, failed or killed preparation continues
 * where it stopped when run again with the same request. When all is written, the manifest goes in and the folder
 * is renamed to `<home>/datasets/<id>/` in one step: a dataset is either complete or not there.
 *
 * Failures are of two kinds. Getting an input can fail in ways that running again fixes (the network, a proxy's
 * page, a corrupted download, a full disk): the partial folder and partial downloads stay for the next run. An
 * input whose content can never be prepared (empty, no text in it, a corrupt parquet file or shard) fails for good:
 * nothing of the attempt is kept, so the workspace is as it was and nothing is listed as resumable.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ErrorCode, StudioError } from '../../shared/errors';
import { CancelledError, fsError, throwIfCancelled } from './errors';
import { ensureDir, fsyncDir, readJsonIfPresent, writeFileAtomic } from '../fsutil';
import {
  checkDatasetId,
  datasetDir,
  datasetsDir,
  downloadsDir,
  MANIFEST_FILE,
  partialDir,
  readManifest,
  summarize,
  writeManifest,
  type DatasetManifest,
  type PartialInfo,
} from './manifest';
import { EMPTY_SINK, PartialMismatchError } from './shards';
import { getSource, maxBytesOf, type SourcePlan } from './sources';
import type { DatasetSummary, PrepareRequest } from '../../shared/api/datasets';
import {
  CHECKPOINT_FILE,
  Preparation,
  contentErrors,
  type Checkpoint,
  type PrepareHooks,
  type PrepareProgress,
} from './preparation';

export type { PrepareHooks, PrepareProgress };

const LOCK_FILE = 'lock.json';

export interface PrepareOutcome {
  id: string;
  dir: string;
  manifest: DatasetManifest;
  summary: DatasetSummary;
  /** the dataset existed and `overwrite` was not set: nothing was done */
  alreadyPrepared: boolean;
  /** an interrupted preparation was continued */
  resumed: boolean;
  seconds: number;
}

/** A request as it may be stored or shown: without the Hugging Face token. */
export function publicRequest(req: PrepareRequest): PrepareRequest {
  const out: PrepareRequest = { ...req };
  delete out.hfToken;
  return out;
}

/** The dataset id a request prepares: its name, else the source's default (for `local`, the file's name). */
export function resolveDatasetId(req: PrepareRequest): string {
  if (req.name !== undefined) return checkDatasetId(req.name);
  const def = getSource(req.source);
  if (req.source === 'local' && (req.file ?? req.url)) {
    const from =
      req.file !== undefined
        ? path.basename(path.resolve(req.file))
        : (new URL(req.url!).pathname.split('/').pop() ?? '');
    const base = from
      .replace(/\.[A-Za-z0-9]+$/, '')
      .replace(/[^A-Za-z0-9._-]+/g, '-')
      .replace(/^[^A-Za-z0-9]+/, '')
      .slice(0, 80);
    if (base) return checkDatasetId(base);
  }
  return checkDatasetId(def.info.defaultName);
}

/** The listing's view of a partial folder (its checkpoint). */
export function readPartialInfo(dir: string): PartialInfo | undefined {
  const c = readJsonIfPresent(path.join(dir, CHECKPOINT_FILE)) as Checkpoint | undefined;
  if (!c || c.version !== 1) return undefined;
  const shards = c.sink?.shards ?? [];
  const val =
    shards.filter((s) => s.split === 'val').reduce((n, s) => n + s.tokens, 0) +
    (c.sink?.open?.split === 'val' ? c.sink.open.tokens : 0);
  const train =
    shards.filter((s) => s.split === 'train').reduce((n, s) => n + s.tokens, 0) +
    (c.sink?.open?.split === 'train' ? c.sink.open.tokens : 0);
  const info: PartialInfo = {
    source: c.source,
    title: c.title,
    description: c.description,
    tokens: { train, val },
    shards: shards.length,
  };
  if (c.request && typeof c.request === 'object' && typeof c.request.source === 'string')
    info.request = publicRequest(c.request);
  return info;
}

/** Preparations running in this process, by dataset folder (another process is kept out by lock.json). */
const active = new Set<string>();

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function acquireLock(dir: string, id: string): void {
  const file = path.join(dir, LOCK_FILE);
  const held = readJsonIfPresent(file) as { pid?: number; host?: string } | undefined;
  if (
    held &&
    typeof held.pid === 'number' &&
    held.pid !== process.pid &&
    held.host === os.hostname() &&
    pidAlive(held.pid)
  ) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `The dataset "${id}" is being prepared by another process (pid ${held.pid}).`,
      'Wait for it to finish, or stop that process; then run this again.',
    );
  }
  writeFileAtomic(file, JSON.stringify({ pid: process.pid, host: os.hostname(), started: new Date().toISOString() }));
}

/** Prepares (or continues preparing) the dataset of `req` in the workspace `home`. */
export async function prepareDataset(
  home: string,
  req: PrepareRequest,
  env: NodeJS.ProcessEnv = process.env,
  hooks: PrepareHooks = {},
): Promise<PrepareOutcome> {
  const t0 = performance.now();
  const source = getSource(req.source);
  const id = resolveDatasetId(req);
  const finalDir = datasetDir(home, id);
  const part = partialDir(home, id);
  ensureDir(datasetsDir(home));
  const done = (manifest: DatasetManifest, alreadyPrepared: boolean, resumed: boolean): PrepareOutcome => ({
    id,
    dir: finalDir,
    manifest,
    summary: summarize(finalDir, manifest),
    alreadyPrepared,
    resumed,
    seconds: (performance.now() - t0) / 1000,
  });

  if (fs.existsSync(path.join(finalDir, MANIFEST_FILE)) && !req.overwrite) {
    return done(readManifest(path.join(finalDir, MANIFEST_FILE)), true, false);
  }
  if (active.has(finalDir)) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `The dataset "${id}" is already being prepared.`,
      'Wait for that preparation to finish or cancel it.',
    );
  }
  active.add(finalDir);
  let locked = false;
  let current: Preparation | undefined;
  try {
    // a preparation that wrote its manifest but was stopped before the final rename
    if (fs.existsSync(path.join(part, MANIFEST_FILE)) && !fs.existsSync(path.join(part, CHECKPOINT_FILE))) {
      const m = readManifest(path.join(part, MANIFEST_FILE));
      moveIntoPlace(home, id, !!req.overwrite);
      return done(m, false, true);
    }
    hooks.onProgress?.({
      stage: 'listing',
      filesDone: 0,
      filesTotal: 0,
      tokens: 0,
      textBytes: 0,
      tokensPerSec: 0,
      bytesPerSec: 0,
      shards: 0,
    });
    throwIfCancelled(hooks.signal, `The preparation of "${id}"`);
    maxBytesOf(req);
    const plan = await source.plan(req, { env, signal: hooks.signal });
    const fingerprint = JSON.stringify(plan.fingerprint);
    ensureDir(part);
    acquireLock(part, id);
    locked = true;

    let ckpt = readJsonIfPresent(path.join(part, CHECKPOINT_FILE)) as Checkpoint | undefined;
    let resumed = !!ckpt && ckpt.version === 1 && ckpt.fingerprint === fingerprint;
    if (!resumed) ckpt = freshCheckpoint(part, fingerprint, req.source, plan, req);
    else if (!ckpt!.request) ckpt!.request = publicRequest(req);
    const run = new Preparation(home, id, req, plan, ckpt!, hooks);
    current = run;
    let manifest: DatasetManifest;
    try {
      manifest = await run.execute();
    } catch (e) {
      if (!(e instanceof PartialMismatchError)) throw e;
      // the partial folder does not match its checkpoint (files removed by hand?): start over
      resumed = false;
      run.abandon();
      const fresh = new Preparation(
        home,
        id,
        req,
        plan,
        freshCheckpoint(part, fingerprint, req.source, plan, req),
        hooks,
      );
      current = fresh;
      manifest = await fresh.execute();
    }
    // downloads started ahead for inputs that --max-tokens left unread stop here
    current.abandon();
    writeManifest(part, manifest);
    fs.rmSync(path.join(part, CHECKPOINT_FILE), { force: true });
    fs.rmSync(path.join(part, LOCK_FILE), { force: true });
    moveIntoPlace(home, id, !!req.overwrite);
    if (!req.keepDownloads) fs.rmSync(downloadsDir(home, id), { recursive: true, force: true });
    return done(manifest, false, resumed);
  } catch (e) {
    // downloads of the next inputs, started ahead, stop too (their partial files stay)
    current?.abandon();
    // the partial folder stays for a resume (only our lock goes), unless nothing was done in it or the input can
    // never be prepared: then the workspace is left as it was (downloaded parts stay in downloads/, where a new
    // attempt continues them; a downloaded file found unusable goes)
    if (locked) {
      fs.rmSync(path.join(part, LOCK_FILE), { force: true });
      const final = isFinalFailure(e, hooks.signal);
      if (final || nothingDone(part)) fs.rmSync(part, { recursive: true, force: true });
      if (final) current?.discardFailedInput();
    }
    try {
      // a download that failed before its first byte leaves an empty folder, which is not worth keeping
      fs.rmdirSync(downloadsDir(home, id));
    } catch {
      // not empty (partial downloads, kept for a resume) or not there
    }
    if (hooks.signal?.aborted && !(e instanceof CancelledError)) throw new CancelledError(`The preparation of "${id}"`);
    throw e;
  } finally {
    active.delete(finalDir);
  }
}

/** Whether a preparation failed for good: its input's content is unusable (not the network, a cancel or the disk). */
function isFinalFailure(e: unknown, signal: AbortSignal | undefined): boolean {
  return !signal?.aborted && typeof e === 'object' && e !== null && contentErrors.has(e);
}

/** Whether a partial folder holds no progress (only a checkpoint at the start), or no checkpoint at all. */
function nothingDone(part: string): boolean {
  const c = readJsonIfPresent(path.join(part, CHECKPOINT_FILE)) as Checkpoint | undefined;
  if (fs.existsSync(path.join(part, MANIFEST_FILE))) return false;
  if (!c) return fs.existsSync(part) && fs.readdirSync(part).length === 0;
  return c.input === 0 && c.cursor === null && c.sink.shards.length === 0 && !c.sink.open;
}

/** Empties the partial folder (keeping the lock) and returns a checkpoint at the start. */
function freshCheckpoint(
  part: string,
  fingerprint: string,
  source: string,
  plan: SourcePlan,
  req: PrepareRequest,
): Checkpoint {
  for (const f of fs.readdirSync(part))
    if (f !== LOCK_FILE) fs.rmSync(path.join(part, f), { recursive: true, force: true });
  const c: Checkpoint = {
    version: 1,
    fingerprint,
    source,
    title: plan.title,
    description: plan.description,
    input: 0,
    cursor: null,
    sink: EMPTY_SINK,
    inputs: [],
    documents: 0,
    textBytes: 0,
    skipped: 0,
    skippedNotes: [],
    request: publicRequest(req),
  };
  writeFileAtomic(path.join(part, CHECKPOINT_FILE), JSON.stringify(c));
  return c;
}

/** Renames the finished partial folder to the dataset's folder (replacing an older one when overwriting). */
function moveIntoPlace(home: string, id: string, overwrite: boolean): void {
  const finalDir = datasetDir(home, id);
  const part = partialDir(home, id);
  let old: string | undefined;
  try {
    if (fs.existsSync(finalDir)) {
      if (!overwrite && fs.existsSync(path.join(finalDir, MANIFEST_FILE))) {
        throw new StudioError(
          ErrorCode.BAD_ARGUMENT,
          `The dataset "${id}" appeared while this one was prepared.`,
          'Prepare under another --name, or pass --overwrite.',
        );
      }
      old = path.join(datasetsDir(home), `.${id}.old-${process.pid}`);
      fs.renameSync(finalDir, old);
    }
    fs.renameSync(part, finalDir);
    fsyncDir(datasetsDir(home));
  } catch (e) {
    throw fsError(e, 'moving the finished dataset to', finalDir);
  }
  if (old) fs.rmSync(old, { recursive: true, force: true });
}
