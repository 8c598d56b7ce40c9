/**
 * Dataset requests (their code: src/node/datasets/handlers.ts) and the public shapes of the datasets service:
 * requests, summaries and push-event payloads.
 */
import type { PlainError } from '../errors';

/** What `prepare` takes. Every field but `source` is optional; each source uses the ones that apply to it. */
export interface PrepareRequest {
  /** a registered source: tinyshakespeare, fineweb-edu-10bt, hellaswag, local, builtin */
  source: string;
  /** the dataset's id, its folder under <home>/datasets (default: the source's name, e.g. "tinyshakespeare") */
  name?: string;
  /** download this URL instead of the source's default (one file) */
  url?: string;
  /** read this local file or folder instead of downloading */
  file?: string;
  /** fineweb-edu: use at most this many parquet files */
  maxFiles?: number;
  /** stop after this many tokens in all (val + train) */
  maxTokens?: number;
  /** tokens per train shard (default 100M, as build-nanogpt) */
  shardSize?: number;
  /** tokens in the val shard (shard 0) for sources split by count (default: see each source) */
  valTokens?: number;
  /** Hugging Face endpoint (default: HF_ENDPOINT, else https://huggingface.co) */
  endpoint?: string;
  /** Hugging Face token (default: HF_TOKEN) */
  hfToken?: string;
  /** builtin: megabytes of synthetic text (default 4) */
  sizeMb?: number;
  /** builtin: the generator's seed (default 1337) */
  seed?: number;
  /** tokenizer worker threads (default: cores - 1) */
  workers?: number;
  /** the largest input file to read or download, in bytes (default 50 GB); a larger one is an error */
  maxBytes?: number;
  /** keep the downloaded source files after a successful preparation (default false) */
  keepDownloads?: boolean;
  /** prepare again when the dataset exists; the old one is replaced only when the new one is complete */
  overwrite?: boolean;
}

export type DatasetKind = 'tokens' | 'raw' | 'sft';

/** A dataset as the Datasets page lists it. */
export interface DatasetSummary {
  id: string;
  title: string;
  /** the source it was prepared from */
  source: string;
  /** tokens: GPT-2 token shards for training; raw: a file kept as it is (HellaSwag) */
  kind: DatasetKind;
  /** ready: complete; partial: an interrupted preparation that `prepare` with the same request resumes */
  status: 'ready' | 'partial';
  /** the dataset's folder */
  path: string;
  description: string;
  tokens: { train: number; val: number };
  /** number of shard files (tokens) */
  shards: number;
  /** examples in a raw dataset (HellaSwag) */
  examples?: number;
  /** bytes on disk */
  bytes: number;
  /** ISO time of completion (ready datasets) */
  created?: string;
  notes: string[];
  /**
   * partial datasets: the request of the interrupted preparation (without the Hugging Face token), so that it can
   * be resumed from the list; absent when the preparation was started by an older version
   */
  request?: PrepareRequest;
}

/** A source in the registry, as the wizard shows it. */
export interface SourceInfo {
  id: string;
  title: string;
  /** what it is, in a sentence or two (the builtin corpus says that it is synthetic) */
  description: string;
  /** whether it downloads by default */
  network: boolean;
  kind: DatasetKind;
  /** the dataset id it gets when no name is given */
  defaultName: string;
  defaultUrl?: string;
  /** the PrepareRequest fields it uses */
  options: Array<Exclude<keyof PrepareRequest, 'source'>>;
}

export type PrepareStage = 'listing' | 'downloading' | 'tokenizing' | 'finishing';

/** A running preparation. */
export interface DatasetJob {
  jobId: string;
  datasetId: string;
  source: string;
  stage: PrepareStage;
  /** ISO time it started */
  started: string;
  /** what was asked (without the Hugging Face token): `prepare` with it again resumes the job once it stops */
  request: PrepareRequest;
}

/** `datasets-prepare` answers at once; progress and the end come as events. */
export interface PrepareStarted {
  jobId: string;
  datasetId: string;
}

/** Push event `dataset-progress`: a preparation advanced (at most a few per second). */
export interface DatasetProgressEvent {
  jobId: string;
  datasetId: string;
  source: string;
  stage: PrepareStage;
  /** input files finished / in all */
  filesDone: number;
  filesTotal: number;
  /** the input file being read */
  file?: string;
  /** tokens written, resumed ones included */
  tokens: number;
  /** the token limit, when one was given */
  tokensTotal?: number;
  /** bytes of input text tokenized (resumed ones included) and in all, when known */
  textBytes: number;
  textBytesTotal?: number;
  /** current rates (a few seconds' window) */
  tokensPerSec: number;
  bytesPerSec: number;
  /** seconds left, when a total is known */
  etaSec?: number;
  /** shard files written */
  shards: number;
}

/** Push event `dataset-status`: a preparation started, finished, failed or was cancelled. */
export interface DatasetStatusEvent {
  jobId: string;
  datasetId: string;
  source: string;
  status: 'running' | 'done' | 'failed' | 'cancelled';
  /** the dataset, when done */
  dataset?: DatasetSummary;
  /** why it failed */
  error?: PlainError;
  /** whether `prepare` with the same request continues where it stopped */
  resumable?: boolean;
}

/** Push event `download-progress` (already in StudioEvents): one file's download advanced. */
export interface DownloadProgressEvent {
  /** the job id */
  id: string;
  url: string;
  bytes: number;
  total?: number;
  bytesPerSec: number;
  etaSec?: number;
}

/** `datasets-preview`: the start of a dataset, decoded. */
export interface DatasetPreview {
  id: string;
  /** which part was decoded: the val shard, the first train shard, or a raw file's first lines */
  split: 'val' | 'train' | 'raw';
  text: string;
  /** tokens decoded (0 for a raw dataset) */
  tokens: number;
  /** the decoded tokens' ids, in order (absent for a raw dataset) */
  ids?: number[];
  /**
   * what each token adds to `text` (joined, they are `text`): the token decoded alone, except that a character
   * whose bytes span tokens shows on the token that completes it (the ones before add '')
   */
  pieces?: string[];
}

/** `datasets-estimate`: what a preparation will take, before it starts; null where it cannot be known. */
export interface DatasetEstimate {
  /** bytes to download (0 for a local or builtin source) */
  downloadBytes: number | null;
  /** tokens it will write */
  tokens: number | null;
  /** bytes of shards on disk (2 per token, plus headers) */
  diskBytes: number | null;
  /** seconds to download and tokenize on this machine */
  seconds: number | null;
  /** how each figure was reached, one line each */
  notes: string[];
}

export type DatasetsHandlers = {
  'datasets-list': () => Promise<DatasetSummary[]>;
  'datasets-sources': () => Promise<SourceInfo[]>;
  'datasets-jobs': () => Promise<DatasetJob[]>;
  'datasets-prepare': (req: PrepareRequest) => Promise<PrepareStarted>;
  'datasets-cancel': (arg: { jobId: string }) => Promise<{ cancelled: boolean }>;
  'datasets-remove': (arg: { id: string }) => Promise<{ removed: boolean }>;
  'datasets-preview': (arg: { id: string; chars?: number }) => Promise<DatasetPreview>;
  'datasets-estimate': (req: PrepareRequest) => Promise<DatasetEstimate>;
};
