/**
 * One preparation of a dataset, from its plan to its manifest: the downloads and local inputs read in order, their
 * text cut into tokenizer tasks for the worker pool, the tokens written into shards, and the progress checkpointed
 * (progress.json) after each committed unit so that a killed preparation resumes where it stopped. prepare.ts
 * decides whether to start, resume or start over, and moves the finished dataset into place.
 */
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
import path from 'node:path';
import { ErrorCode, StudioError } from '../../shared/errors';
import { EOT_TOKEN, GPT2_VOCAB_SIZE } from '../../core/model/config';
import { splitForTokenizer } from '../../core/data/text';
import {
  SHARD_HEADER_BYTES,
  SHARD_MAGIC,
  SHARD_VERSION,
  splitFromFileName,
  shardFileName,
  type Split,
} from '../../core/data/shard';
import { CancelledError, fsError, throwIfCancelled } from './errors';
import { checkHellaswag, unfinishedLastLine } from './hellaswag-file';
import { DownloadQueue, downloadFile, type DownloadOptions, type DownloadProgress } from './download';
import { fsyncDir, sha256File, writeFileAtomic } from '../fsutil';
import {
  downloadsDir,
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  partialDir,
  type DatasetManifest,
  type ManifestFile,
  type ManifestInput,
} from './manifest';
import { defaultWorkerCount, TokenizerPool, type Piece } from './pool';
import { RateMeter, throttle } from './progress';
import { readUnits, type Cursor } from './readers';
import { ShardSink, sha256FileSync, readShardLayout, readShardTokens, writeShardFile, type SinkState } from './shards';
import { maxBytesOf, type PlannedInput, type SourcePlan } from './sources';
import type { DatasetProgressEvent, PrepareRequest, PrepareStage } from '../../shared/api/datasets';

export const CHECKPOINT_FILE = 'progress.json';
/** characters of text per tokenizer request */
const TASK_CHARS = 256 * 1024;
const TOKENIZER_LIBRARY = 'gpt-tokenizer 4 (r50k_base)';

/** Progress of a preparation (the service adds the job's ids to make a DatasetProgressEvent). */

export type PrepareProgress = Omit<DatasetProgressEvent, 'jobId' | 'datasetId' | 'source'>;

export interface PrepareHooks {
  signal?: AbortSignal;
  onProgress?: (p: PrepareProgress) => void;
  onDownload?: (p: DownloadProgress) => void;
  /** called after each checkpoint with the number of units committed by this call (tests interrupt with it) */
  afterCommit?: (units: number) => void;
  /** download tuning (tests shorten the back-off) */
  download?: Pick<DownloadOptions, 'retries' | 'backoffMs' | 'maxBackoffMs' | 'connectTimeoutMs' | 'idleTimeoutMs'>;
  /** a running pool to use (the caller closes it); else one is started for this preparation */
  pool?: TokenizerPool;
  /** the tokenizer worker's entry for a pool started here (default: the sources') */
  workerEntry?: string;
  /** downloads at once (default 2) */
  downloadConcurrency?: number;
  /** time between progress reports (default 250 ms) */
  progressIntervalMs?: number;
  /** characters per unit of text (default 4M; tests make it small to get many checkpoints) */
  unitChars?: number;
}

/** What progress.json holds. */
export interface Checkpoint {
  version: 1;
  fingerprint: string;
  source: string;
  title: string;
  description: string;
  /** the input being read, and where in it */
  input: number;
  cursor: Cursor | null;
  sink: SinkState;
  /** finished inputs */
  inputs: ManifestInput[];
  documents: number;
  textBytes: number;
  skipped: number;
  skippedNotes: string[];
  /** the request (without the Hugging Face token), so that the listing can offer to resume it */
  request?: PrepareRequest;
}

/** Errors of getting an input (downloads, local files): running again may get past them. See the module comment. */
export const inputErrors = new WeakSet<object>();
/** Errors about an input's content, thrown while it was read: the same input fails the same way every time. */
export const contentErrors = new WeakSet<object>();

/** Codes of errors about an input's content. */
const FINAL_CODES: ReadonlySet<string> = new Set([ErrorCode.BAD_DATA, ErrorCode.BAD_SHARD, ErrorCode.BAD_ARGUMENT]);

interface FetchedInput {
  path: string;
  bytes: number;
  /** absent for generated input (builtin) */
  sha256?: string;
  downloaded: boolean;
}

/** One run of a preparation, from its checkpoint. */
export class Preparation {
  private readonly part: string;
  private readonly queue: DownloadQueue;
  private readonly fetched = new Map<number, Promise<FetchedInput>>();
  /** aborts the downloads of this run when it fails (see abandon) */
  private readonly stop = new AbortController();
  /** the input being read, once fetched */
  private reading: FetchedInput | undefined;
  private readonly tokenRate = new RateMeter();
  private readonly byteRate = new RateMeter();
  private readonly tick: (force?: boolean) => boolean;
  private stage: PrepareStage = 'listing';
  private liveTextBytes: number;
  private textBytesTotal: number | undefined;
  private currentFile: string | undefined;
  private sink: ShardSink | undefined;
  private committedUnits = 0;

  constructor(
    private readonly home: string,
    private readonly id: string,
    private readonly req: PrepareRequest,
    private readonly plan: SourcePlan,
    private readonly ckpt: Checkpoint,
    private readonly hooks: PrepareHooks,
  ) {
    this.part = partialDir(home, id);
    this.queue = new DownloadQueue(hooks.downloadConcurrency ?? 2);
    this.tick = throttle(hooks.progressIntervalMs ?? 250);
    this.liveTextBytes = ckpt.textBytes;
    this.textBytesTotal = plan.textBytesTotal;
  }

  async execute(): Promise<DatasetManifest> {
    try {
      if (this.plan.kind === 'raw') return await this.raw();
      if (this.plan.kind === 'shards') return await this.importShards();
      return await this.tokenize();
    } catch (e) {
      if (e instanceof StudioError && !(e instanceof CancelledError) && !inputErrors.has(e) && FINAL_CODES.has(e.code))
        contentErrors.add(e);
      throw e;
    }
  }

  /** Stops the downloads started ahead for the next inputs (their partial files stay for a later run). */
  abandon(): void {
    this.stop.abort();
  }

  /**
   * After a final failure: deletes the downloaded file of the input being read (its content is what failed, and a
   * later run must fetch it again rather than fail on the same bytes).
   */
  discardFailedInput(): void {
    const f = this.reading;
    if (f?.downloaded) fs.rmSync(f.path, { force: true });
  }

  private what(): string {
    return `The preparation of "${this.id}"`;
  }

  // ---- inputs ----

  /** The local file of input i, downloading it first if needed; starts the downloads of the next inputs too. */
  private input(i: number): Promise<FetchedInput> {
    const ahead = this.queue.limit;
    for (let k = i; k < Math.min(this.plan.inputs.length, i + 1 + ahead); k++) {
      if (this.fetched.has(k)) continue;
      const p = this.fetch(this.plan.inputs[k]!);
      p.catch(() => undefined); // awaited when its turn comes; no unhandled rejection meanwhile
      this.fetched.set(k, p);
    }
    return this.fetched.get(i)!;
  }

  private async fetch(inp: PlannedInput): Promise<FetchedInput> {
    if (inp.format === 'builtin') return { path: '', bytes: 0, downloaded: false };
    const maxBytes = maxBytesOf(this.req);
    if (inp.path) {
      let st: fs.Stats;
      try {
        st = fs.statSync(inp.path);
      } catch (e) {
        throw fsError(e, 'reading', inp.path);
      }
      // checked again here, when it is read: the file may have been replaced or grown since it was planned
      if (!st.isFile()) {
        throw new StudioError(
          ErrorCode.BAD_ARGUMENT,
          `"${inp.path}" is not a regular file (a pipe, a device or a socket).`,
          'Give a regular file or a folder with --file; save what a pipe or a device produces to a file first.',
        );
      }
      if (st.size > maxBytes) {
        throw new StudioError(
          ErrorCode.BAD_ARGUMENT,
          `"${inp.path}" is ${st.size} bytes, more than the limit of ${maxBytes} bytes (--max-bytes).`,
          `If this file is what you want, pass a larger limit, e.g. --max-bytes ${Math.ceil((st.size * 2) / 1e9)}G.`,
        );
      }
      const sha256 = await sha256File(inp.path, this.hooks.signal);
      if (
        (inp.size !== undefined && st.size !== inp.size) ||
        (inp.sha256 !== undefined && sha256 !== inp.sha256.toLowerCase())
      ) {
        throw new StudioError(
          ErrorCode.BAD_DATA,
          `"${inp.path}" is not the published ${this.plan.title} file: it has ${st.size} bytes and sha256 ${sha256}; the published one has ${inp.size ?? 'any number of'} bytes${inp.sha256 ? ` and sha256 ${inp.sha256.toLowerCase()}` : ''}.`,
          'Pass the original file (a copy may have been cut short or changed, e.g. its line ends), or prepare your own text with the local source: gpt2-studio prepare local --file F.',
        );
      }
      return { path: inp.path, bytes: st.size, sha256, downloaded: false };
    }
    if (!inp.url) throw new StudioError(ErrorCode.INTERNAL, `Input "${inp.name}" has neither a URL nor a path.`, '');
    const dest = path.join(downloadsDir(this.home, this.id), inp.name);
    const signal = this.hooks.signal ? AbortSignal.any([this.hooks.signal, this.stop.signal]) : this.stop.signal;
    const r = await this.queue.run(() =>
      downloadFile(
        { url: inp.url!, dest, sha256: inp.sha256, size: inp.size, headers: inp.headers, maxBytes },
        {
          ...this.hooks.download,
          signal,
          networkHint: this.plan.networkHint,
          onProgress: (p) => this.hooks.onDownload?.(p),
        },
      ),
    );
    return { path: r.file, bytes: r.bytes, sha256: r.sha256, downloaded: true };
  }

  private async awaitInput(i: number): Promise<FetchedInput> {
    const inp = this.plan.inputs[i]!;
    this.currentFile = inp.name;
    if (inp.url) this.setStage('downloading');
    let f: FetchedInput;
    try {
      f = await this.input(i);
    } catch (e) {
      if (typeof e === 'object' && e !== null) inputErrors.add(e);
      throw e;
    }
    this.reading = f;
    if (this.textBytesTotal === undefined && this.plan.inputs.length === 1 && inp.format !== 'parquet')
      this.textBytesTotal = f.bytes;
    return f;
  }

  private record(i: number, f: FetchedInput): ManifestInput {
    const inp = this.plan.inputs[i]!;
    const m: ManifestInput = { name: inp.name, bytes: f.bytes };
    if (f.sha256) m.sha256 = f.sha256;
    if (inp.url) m.url = inp.url;
    if (inp.path) m.path = inp.path;
    return m;
  }

  // ---- progress ----

  private setStage(stage: PrepareStage): void {
    if (this.stage === stage) return;
    this.stage = stage;
    this.report(true);
  }

  private report(force = false): void {
    if (!this.hooks.onProgress || !this.tick(force)) return;
    const tokens = this.sink?.tokens ?? 0;
    this.tokenRate.add(tokens);
    this.byteRate.add(this.liveTextBytes);
    const tokensTotal = this.req.maxTokens;
    const eta = tokensTotal !== undefined ? this.tokenRate.eta(tokensTotal) : this.byteRate.eta(this.textBytesTotal);
    this.hooks.onProgress({
      stage: this.stage,
      filesDone: this.ckpt.input,
      filesTotal: this.plan.inputs.length,
      file: this.currentFile,
      tokens,
      tokensTotal,
      textBytes: this.liveTextBytes,
      textBytesTotal: this.textBytesTotal,
      tokensPerSec: this.tokenRate.rate,
      bytesPerSec: this.byteRate.rate,
      etaSec: eta,
      shards: this.sink?.shards.length ?? 0,
    });
  }

  // ---- checkpoints ----

  private saveCheckpoint(): void {
    writeFileAtomic(path.join(this.part, CHECKPOINT_FILE), JSON.stringify(this.ckpt));
  }

  // ---- tokens ----

  private async tokenize(): Promise<DatasetManifest> {
    const { plan, req, ckpt, hooks } = this;
    const sink = new ShardSink(
      { dir: this.part, name: this.id, shardSize: plan.shardSize, split: plan.split },
      ckpt.sink,
    );
    this.sink = sink;
    const maxTokens = req.maxTokens;
    let pool = hooks.pool;
    let limitHit = maxTokens !== undefined && sink.tokens >= maxTokens;
    let finished = false;

    interface Job {
      tokens: Promise<Uint16Array>;
      split?: Split;
      textBytes: number;
      /** set on a unit's last job: what to checkpoint once it is written */
      end?: {
        input: number;
        cursor: Cursor;
        documents: number;
        textBytes: number;
        skipped: number;
        firstSkipped?: string;
      };
    }
    const inflight: Job[] = [];

    try {
      const startInput = ckpt.input;
      if (!limitHit && startInput < plan.inputs.length) {
        // start the first download before the pool: the workers start while it runs
        if (plan.inputs[startInput]!.url) {
          this.currentFile = plan.inputs[startInput]!.name;
          this.setStage('downloading');
        }
        void this.input(startInput);
        pool ??= await TokenizerPool.start(req.workers ?? defaultWorkerCount(), hooks.workerEntry);
      }
      const maxInflight = (pool?.size ?? 1) * 2 + 2;

      const consume = async (): Promise<void> => {
        throwIfCancelled(hooks.signal, this.what());
        const job = inflight.shift()!;
        let tokens = await job.tokens;
        if (limitHit) return;
        if (maxTokens !== undefined && sink.tokens + tokens.length >= maxTokens) {
          tokens = tokens.subarray(0, maxTokens - sink.tokens);
          limitHit = true;
        }
        sink.append(tokens, job.split);
        this.liveTextBytes += job.textBytes;
        if (job.end && !limitHit) {
          ckpt.sink = sink.commit();
          ckpt.input = job.end.input;
          ckpt.cursor = job.end.cursor;
          ckpt.documents += job.end.documents;
          ckpt.textBytes += job.end.textBytes;
          if (job.end.skipped > 0) {
            ckpt.skipped += job.end.skipped;
            if (ckpt.skippedNotes.length < 5 && job.end.firstSkipped)
              ckpt.skippedNotes.push(`${plan.inputs[job.end.input]!.name}: ${job.end.firstSkipped}`);
          }
          this.saveCheckpoint();
          this.committedUnits++;
          hooks.afterCommit?.(this.committedUnits);
        } else if (job.end) {
          ckpt.documents += job.end.documents;
        }
        this.report();
      };

      for (let i = startInput; i < plan.inputs.length && !limitHit; i++) {
        const f = await this.awaitInput(i);
        this.setStage('tokenizing');
        const inp = plan.inputs[i]!;
        const format = inp.format;
        if (format === 'raw' || format === 'shard')
          throw new StudioError(
            ErrorCode.INTERNAL,
            `Input "${inp.name}" of format ${format} in a token preparation.`,
            '',
          );
        const from = i === startInput ? ckpt.cursor : null;
        for await (const unit of readUnits(f.path, format, from, {
          eot: plan.eot,
          signal: hooks.signal,
          unitChars: hooks.unitChars,
          builtin: plan.builtin,
        })) {
          throwIfCancelled(hooks.signal, this.what());
          const tasks = toTasks(unit.pieces);
          const end = {
            input: i,
            cursor: unit.next,
            documents: unit.documents,
            textBytes: unit.textBytes,
            skipped: unit.skipped,
            firstSkipped: unit.firstSkipped,
          };
          if (tasks.length === 0)
            inflight.push({ tokens: Promise.resolve(new Uint16Array(0)), split: unit.split, textBytes: 0, end });
          tasks.forEach((t, k) => {
            const p = pool!.encode(t.pieces);
            p.catch(() => undefined);
            inflight.push({
              tokens: p,
              split: unit.split,
              textBytes: t.bytes,
              end: k === tasks.length - 1 ? end : undefined,
            });
          });
          while (inflight.length >= maxInflight && !limitHit) await consume();
          if (limitHit) break;
        }
        while (inflight.length > 0 && !limitHit) await consume();
        throwIfCancelled(hooks.signal, this.what());
        ckpt.inputs.push(this.record(i, f));
        if (!limitHit) {
          ckpt.input = i + 1;
          ckpt.cursor = null;
          this.saveCheckpoint();
          if (f.downloaded && !req.keepDownloads) fs.rmSync(f.path, { force: true });
        }
      }
      const state = sink.finish();
      finished = true;
      this.setStage('finishing');
      return this.tokenManifest(state);
    } finally {
      if (!finished) sink.abandon();
      if (pool && pool !== hooks.pool) await pool.close();
    }
  }

  private tokenManifest(state: SinkState): DatasetManifest {
    const { plan, ckpt } = this;
    const files: ManifestFile[] = state.shards.map((s) => ({
      file: s.file,
      split: s.split,
      tokens: s.tokens,
      bytes: s.bytes,
      sha256: s.sha256,
    }));
    const sum = (split: Split): number =>
      state.shards.filter((s) => s.split === split).reduce((n, s) => n + s.tokens, 0);
    const tokens = { train: sum('train'), val: sum('val') };
    if (tokens.train + tokens.val === 0) {
      throw new StudioError(
        ErrorCode.BAD_DATA,
        `The inputs of "${this.id}" hold no text to tokenize (${plan.inputs.map((i) => i.name).join(', ')}: ${ckpt.textBytes} bytes of text${ckpt.skipped > 0 ? `, ${ckpt.skipped} rows or lines without a "text" string` : ''}).`,
        'Check the files: a text file must not be empty, JSONL needs a "text" string on each line, parquet a "text" column. Nothing of this attempt was kept; fix the input, then prepare it again.',
      );
    }
    const notes = [...plan.notes];
    if (ckpt.skipped > 0)
      notes.push(
        `Skipped ${ckpt.skipped} rows or lines without a "text" string (first: ${ckpt.skippedNotes.join('; ')}).`,
      );
    if (this.req.maxTokens !== undefined && tokens.train + tokens.val >= this.req.maxTokens)
      notes.push(`Stopped at --max-tokens ${this.req.maxTokens.toLocaleString('en-US')}.`);
    if (tokens.train === 0)
      notes.push('There are no train tokens: the whole input went to val. Use --val-tokens or a larger input.');
    if (tokens.val === 0) notes.push('There is no val shard.');
    return {
      ...this.manifestBase('tokens', ckpt.inputs),
      tokenizer: {
        name: 'gpt2',
        encoding: 'r50k_base',
        library: TOKENIZER_LIBRARY,
        vocabSize: GPT2_VOCAB_SIZE,
        eot: EOT_TOKEN,
        eotBeforeEachDocument: plan.eot,
      },
      shardFormat: {
        name: 'llm.c',
        magic: SHARD_MAGIC,
        version: SHARD_VERSION,
        headerBytes: SHARD_HEADER_BYTES,
        dtype: 'uint16',
      },
      shardSize: plan.shardSize,
      files,
      tokens,
      documents: ckpt.documents,
      notes,
    };
  }

  private manifestBase(kind: 'tokens' | 'raw', inputs: ManifestInput[]): DatasetManifest {
    const { plan } = this;
    const source: DatasetManifest['source'] = { id: this.req.source, options: plan.options };
    if (plan.url) source.url = plan.url;
    if (plan.file) source.file = plan.file;
    if (plan.endpoint) source.endpoint = plan.endpoint;
    return {
      format: MANIFEST_FORMAT,
      version: MANIFEST_VERSION,
      id: this.id,
      title: plan.title,
      description: plan.description,
      kind,
      source,
      files: [],
      inputs,
      tokens: { train: 0, val: 0 },
      created: new Date().toISOString(),
      notes: [...plan.notes],
    };
  }

  // ---- raw (HellaSwag) ----

  private async raw(): Promise<DatasetManifest> {
    const f = await this.awaitInput(0);
    throwIfCancelled(this.hooks.signal, this.what());
    this.setStage('finishing');
    const inp = this.plan.inputs[0]!;
    // a download whose size is not published can only be checked by its structure: a connection closed early
    // without a length usually ends the file inside a line, and the published file has a known number of examples
    const refetch = (e: StudioError): StudioError => {
      fs.rmSync(f.path, { force: true });
      inputErrors.add(e);
      return e;
    };
    if (f.downloaded) {
      const cut = unfinishedLastLine(f.path);
      if (cut !== undefined) {
        throw refetch(
          new StudioError(
            ErrorCode.NETWORK,
            `The download of ${inp.url} ends inside a line (its last ${cut} bytes are not a whole JSON line): the connection was probably closed early.`,
            'The file was deleted. Run the same command again to download it again; if it keeps ending early, check the URL (--url) or use a copy with --file.',
          ),
        );
      }
    }
    const { examples, notes } = checkHellaswag(f.path);
    if (f.downloaded && inp.examples !== undefined && examples !== inp.examples) {
      throw refetch(
        new StudioError(
          ErrorCode.BAD_DATA,
          `The HellaSwag file downloaded from ${inp.url} holds ${examples} usable examples; the published validation split has ${inp.examples}.`,
          'The file was deleted. Run the same command again; if it happens again, the server sends another file: check the URL, or use a copy of hellaswag_val.jsonl with --file.',
        ),
      );
    }
    const dest = path.join(this.part, inp.name);
    try {
      if (f.downloaded) fs.renameSync(f.path, dest);
      else {
        const tmp = `${dest}.tmp-${process.pid}`;
        fs.copyFileSync(f.path, tmp);
        const fd = fs.openSync(tmp, 'r+');
        fs.fsyncSync(fd);
        fs.closeSync(fd);
        fs.renameSync(tmp, dest);
      }
      fsyncDir(this.part);
    } catch (e) {
      throw fsError(e, 'copying', dest);
    }
    return {
      ...this.manifestBase('raw', [this.record(0, f)]),
      files: [{ file: inp.name, bytes: f.bytes, sha256: f.sha256 ?? sha256FileSync(dest) }],
      examples,
      notes: [...this.plan.notes, ...notes],
    };
  }

  // ---- imported shards ----

  private async importShards(): Promise<DatasetManifest> {
    const inputs: FetchedInput[] = [];
    for (let i = 0; i < this.plan.inputs.length; i++) inputs.push(await this.awaitInput(i));
    this.setStage('finishing');
    // every file is checked before anything is written
    const layouts = inputs.map((f) => readShardLayout(f.path));
    const named = inputs.map((f) => splitFromFileName(f.path));
    const anyVal = named.includes('val');
    const splits: Split[] = named.map((s, i) => s ?? (anyVal ? 'train' : i === 0 ? 'val' : 'train'));
    // val shards first (shard 0), then train, each in file-name order
    const order = inputs
      .map((_, i) => i)
      .sort((a, b) => (splits[a] === splits[b] ? a - b : splits[a] === 'val' ? -1 : 1));
    const files: ManifestFile[] = [];
    let index = 0;
    for (const i of order) {
      throwIfCancelled(this.hooks.signal, this.what());
      const file = shardFileName(this.id, splits[i]!, index++);
      const dest = path.join(this.part, file);
      const tokens = readShardTokens(inputs[i]!.path);
      writeShardFile(dest, tokens);
      files.push({
        file,
        split: splits[i]!,
        tokens: layouts[i]!.tokens,
        bytes: SHARD_HEADER_BYTES + 2 * layouts[i]!.tokens,
        sha256: sha256FileSync(dest),
      });
    }
    const sum = (split: Split): number =>
      files.filter((f) => f.split === split).reduce((n, f) => n + (f.tokens ?? 0), 0);
    const notes = [...this.plan.notes];
    if (layouts.some((l) => l.format === 'npy'))
      notes.push('build-nanogpt .npy shards were converted to llm.c .bin shards (same tokens).');
    if (!anyVal)
      notes.push(`No file name says "val": the first file (${path.basename(inputs[0]!.path)}) is the val shard.`);
    return {
      ...this.manifestBase(
        'tokens',
        inputs.map((f, i) => this.record(i, f)),
      ),
      tokenizer: {
        name: 'gpt2',
        encoding: 'r50k_base',
        library: 'imported',
        vocabSize: GPT2_VOCAB_SIZE,
        eot: EOT_TOKEN,
        eotBeforeEachDocument: true,
      },
      shardFormat: {
        name: 'llm.c',
        magic: SHARD_MAGIC,
        version: SHARD_VERSION,
        headerBytes: SHARD_HEADER_BYTES,
        dtype: 'uint16',
      },
      files,
      tokens: { train: sum('train'), val: sum('val') },
      notes,
    };
  }
}

/** Groups and cuts pieces into tokenizer requests of about TASK_CHARS characters. */
function toTasks(pieces: Piece[]): Array<{ pieces: Piece[]; bytes: number }> {
  const tasks: Array<{ pieces: Piece[]; bytes: number }> = [];
  let cur: Piece[] = [];
  let chars = 0;
  const flush = (): void => {
    if (cur.length === 0) return;
    tasks.push({ pieces: cur, bytes: cur.reduce((n, p) => n + Buffer.byteLength(p.text, 'utf8'), 0) });
    cur = [];
    chars = 0;
  };
  for (const p of pieces) {
    const parts = p.text.length > TASK_CHARS ? splitForTokenizer(p.text, TASK_CHARS) : [p.text];
    parts.forEach((text, k) => {
      if (chars + text.length > TASK_CHARS) flush();
      cur.push({ text, eot: p.eot && k === 0 });
      chars += text.length;
    });
  }
  flush();
  return tasks;
}
