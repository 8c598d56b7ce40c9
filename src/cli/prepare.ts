/**
 * `gpt2-studio prepare` and `gpt2-studio datasets`. Both go through the Studio's DatasetService, as the app does;
 * `prepare` waits for its job and draws the progress on stderr: in place on a terminal, as a line every few seconds
 * otherwise (logs, CI).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ErrorCode, StudioError } from '../shared/errors';
import { z } from 'zod';
import { prepareRequest } from '../shared/schemas';
import { resolveHome } from '../node/workspace';
import { DatasetService, type DatasetServiceOptions } from '../node/datasets/service';
import { listSources } from '../node/datasets/sources';
import { prepareSftDataset } from '../node/datasets/sft';
import { isCancelled } from '../node/datasets/errors';
import type { PrepareProgress } from '../node/datasets/prepare';
import type {
  DatasetProgressEvent,
  DatasetSummary,
  DownloadProgressEvent,
  PrepareRequest,
} from '../shared/api/datasets';
import type { CliIo } from './common';

const PREPARE_USAGE = `gpt2-studio prepare: download and tokenize a dataset into llm.c shards

Usage:
  gpt2-studio prepare <source> [--name N] [--url U | --file F] [--max-files K] [--max-tokens M]
                      [--shard-size S] [--val-tokens V] [--endpoint URL] [--size-mb MB] [--seed N]
                      [--workers W] [--max-bytes N] [--keep-downloads] [--overwrite] [--json] [--home DIR]

Sources:
${'\0'}
  sft                Chat examples for fine-tuning: --file data.jsonl of {"prompt","response"} or
                     {"messages":[{"role","content"}]}; only the assistant's tokens count in the loss
Counts take K, M and B (or G) suffixes (--max-tokens 50M, --shard-size 100M). --max-bytes N is the largest input
file to read or download (default 50G): a larger file, or a stream that does not end, stops with an error.
Downloads are checked where the size or sha256 is known (Tiny Shakespeare, FineWeb's files); an HTML page served
in place of a file (a proxy or sign-in page) is refused; a pipe or a device given with --file is refused.
The Hugging Face endpoint is --endpoint,
else HF_ENDPOINT (e.g. https://hf-mirror.com), else https://huggingface.co; a token is read from HF_TOKEN.
An interrupted preparation (Ctrl-C, a network failure) continues where it stopped when run again.
The dataset goes to <home>/datasets/<name>/ (shards and manifest.json).
`;

const DATASETS_USAGE = `gpt2-studio datasets: list the workspace's datasets

Usage:
  gpt2-studio datasets [--json] [--home DIR]
`;

function parse<O extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: O, cmd: string) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `${cmd}: ${(e as Error).message}`,
      `Run "gpt2-studio ${cmd} --help" for the options.`,
    );
  }
}

/** A count such as 100M, 1.5B, 20k, 1e8 or 100_000_000. */
export function parseCount(
  v: string | undefined,
  flag: string,
  opts: { min?: number; allowFraction?: boolean } = {},
): number | undefined {
  if (v === undefined) return undefined;
  const m = /^\s*([0-9][0-9_,]*(?:\.[0-9]+)?(?:e[0-9]+)?)\s*([kmbg]?)\s*$/i.exec(v);
  const mult = m ? { '': 1, k: 1e3, m: 1e6, b: 1e9, g: 1e9 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'b' | 'g'] : NaN;
  const n = m ? Number(m[1]!.replace(/[_,]/g, '')) * mult : NaN;
  const min = opts.min ?? 1;
  if (!Number.isFinite(n) || n < min || (!opts.allowFraction && !Number.isInteger(n))) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `--${flag} ${v} is not valid.`,
      `Give --${flag} as ${opts.allowFraction ? 'a number' : 'a whole number'} >= ${min}, e.g. ${opts.allowFraction ? '4' : '100M'}.`,
    );
  }
  return n;
}

// ---------------------------------------------------------------------------------------------------------
// formatting

export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n / 1000;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

export function formatDuration(sec: number | undefined): string {
  if (sec === undefined || !Number.isFinite(sec)) return '--:--';
  const s = Math.round(sec);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${r}` : `${m}:${r}`;
}

function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return String(Math.round(n));
}

function bar(fraction: number | undefined, width = 20): string {
  if (fraction === undefined || !Number.isFinite(fraction)) return '';
  const f = Math.min(1, Math.max(0, fraction));
  const full = Math.round(f * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${String(Math.floor(f * 100)).padStart(3)}%`;
}

/** One line for a download. */
export function downloadLine(
  p: Pick<DownloadProgressEvent, 'url' | 'bytes' | 'total' | 'bytesPerSec' | 'etaSec'>,
): string {
  const name = decodeURIComponent(p.url.split('/').pop() ?? p.url);
  const amount = p.total !== undefined ? `${formatBytes(p.bytes)} / ${formatBytes(p.total)}` : formatBytes(p.bytes);
  const parts = [
    `download  ${name}`,
    amount,
    bar(p.total ? p.bytes / p.total : undefined),
    `${formatBytes(p.bytesPerSec)}/s`,
  ];
  if (p.total !== undefined) parts.push(`ETA ${formatDuration(p.etaSec)}`);
  return parts.filter(Boolean).join('  ');
}

/** One line for tokenization (or another stage). */
export function prepareLine(p: PrepareProgress & { source?: string; datasetId?: string }): string {
  if (p.stage === 'listing')
    return `prepare   ${p.source ?? ''}${p.datasetId && p.datasetId !== p.source ? ` as ${p.datasetId}` : ''}`;
  if (p.stage === 'finishing' && p.tokens === 0) return 'finishing';
  if (p.stage === 'downloading') return `download  ${p.file ?? ''} (file ${p.filesDone + 1} of ${p.filesTotal})`;
  const fraction =
    p.tokensTotal !== undefined
      ? p.tokens / p.tokensTotal
      : p.textBytesTotal
        ? p.textBytes / p.textBytesTotal
        : undefined;
  const parts = [
    `${p.stage === 'finishing' ? 'finishing' : 'tokenize '} ${formatCount(p.tokens)} tokens`,
    `${formatBytes(p.textBytes)} text`,
    bar(fraction),
    `${(p.bytesPerSec / 1e6).toFixed(1)} MB/s`,
    `${formatCount(p.tokensPerSec)} tok/s`,
  ];
  if (fraction !== undefined) parts.push(`ETA ${formatDuration(p.etaSec)}`);
  if (p.filesTotal > 1) parts.push(`file ${Math.min(p.filesDone + 1, p.filesTotal)}/${p.filesTotal}`);
  parts.push(`${p.shards} shard${p.shards === 1 ? '' : 's'}`);
  return parts.filter(Boolean).join('  ');
}

/**
 * Draws progress on stderr: on a terminal, one line rewritten in place (at most ~10 times a second); otherwise a
 * line every `intervalMs` and at each change of stage.
 */
export class ProgressView {
  private lastWrite = -Infinity;
  private lastStage = '';
  private drawn = false;

  constructor(
    private readonly io: CliIo,
    private readonly tty: boolean,
    private readonly intervalMs = tty ? 100 : 5000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  show(line: string, stage: string, force = false): void {
    const t = this.now();
    const changed = stage !== this.lastStage;
    if (!force && !changed && t - this.lastWrite < this.intervalMs) return;
    this.lastWrite = t;
    this.lastStage = stage;
    if (this.tty) {
      const width = Math.max(20, (process.stderr.columns ?? 120) - 1);
      this.io.err(`\r${line.slice(0, width)}\x1b[K`);
      this.drawn = true;
    } else {
      this.io.err(line + '\n');
    }
  }

  /** Ends the in-place line before other output. */
  end(): void {
    if (this.tty && this.drawn) this.io.err('\n');
    this.drawn = false;
  }
}

// ---------------------------------------------------------------------------------------------------------
// commands

function summaryLine(d: DatasetSummary, seconds?: number): string {
  const t =
    d.kind === 'tokens'
      ? `${d.tokens.train.toLocaleString('en-US')} train + ${d.tokens.val.toLocaleString('en-US')} val tokens in ${d.shards} shard${d.shards === 1 ? '' : 's'}`
      : `${(d.examples ?? 0).toLocaleString('en-US')} examples`;
  return `${d.id}: ${t}, ${formatBytes(d.bytes)} → ${d.path}${seconds !== undefined ? ` (${seconds.toFixed(1)} s)` : ''}`;
}

export interface PrepareCommandOptions {
  /** draw progress in place (default: whether stderr is a terminal) */
  tty?: boolean;
  /** time between progress lines when not a terminal (default 5 s) */
  intervalMs?: number;
  /** environment (HF_ENDPOINT, HF_TOKEN, GPT2_STUDIO_HOME; default process.env) */
  env?: NodeJS.ProcessEnv;
  /** preparation tuning (tests: short back-off and stall time-outs) */
  hooks?: DatasetServiceOptions['hooks'];
}

/** `prepare sft --file data.jsonl [--name N] [--overwrite] [--json]`: chat examples with a loss mask. */
function prepareSft(
  a: { file?: string; name?: string; overwrite?: boolean; json?: boolean; home?: string },
  io: CliIo,
): number {
  if (!a.file)
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      'prepare sft needs --file.',
      'Pass a JSONL file of {"prompt","response"} or {"messages":[{"role","content"}]} objects.',
    );
  const home = resolveHome({ flag: a.home });
  const r = prepareSftDataset(home, { file: a.file, name: a.name, overwrite: a.overwrite });
  for (const s of r.skipped) io.err(`warning: line ${s.line}: ${s.message}; skipped\n`);
  if (a.json) io.out(JSON.stringify(r) + '\n');
  else
    io.out(
      `${r.id}: ${r.examples.train} train + ${r.examples.val} val conversations, ${r.tokens.train.toLocaleString('en-US')} + ${r.tokens.val.toLocaleString('en-US')} tokens -> ${r.dir}\n`,
    );
  return 0;
}

/** `gpt2-studio prepare <source> ...`; returns the exit code (130 when interrupted). */
export async function prepareCommand(argv: string[], io: CliIo, opts: PrepareCommandOptions = {}): Promise<number> {
  const { values: a, positionals } = parse(
    argv,
    {
      name: { type: 'string' },
      url: { type: 'string' },
      file: { type: 'string' },
      'max-files': { type: 'string' },
      'max-tokens': { type: 'string' },
      'shard-size': { type: 'string' },
      'val-tokens': { type: 'string' },
      endpoint: { type: 'string' },
      'size-mb': { type: 'string' },
      seed: { type: 'string' },
      workers: { type: 'string' },
      'max-bytes': { type: 'string' },
      'keep-downloads': { type: 'boolean', default: false },
      overwrite: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      home: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    'prepare',
  );
  if (a.help) {
    io.out(
      PREPARE_USAGE.replace(
        '\0',
        listSources()
          .map((s) => `  ${s.id.padEnd(18)} ${s.title}`)
          .join('\n'),
      ),
    );
    return 0;
  }
  if (positionals.length !== 1) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      positionals.length === 0 ? 'prepare needs a source.' : `prepare takes one source; got ${positionals.join(' ')}.`,
      `Sources: ${listSources()
        .map((s) => s.id)
        .join(', ')}. Example: gpt2-studio prepare tinyshakespeare`,
    );
  }
  if (positionals[0] === 'sft') return prepareSft(a, io);
  const req: PrepareRequest = { source: positionals[0]! };
  if (a.name !== undefined) req.name = a.name;
  if (a.url !== undefined) req.url = a.url;
  if (a.file !== undefined) req.file = a.file;
  if (a.endpoint !== undefined) req.endpoint = a.endpoint;
  const counts: Array<
    [
      keyof PrepareRequest & ('maxFiles' | 'maxTokens' | 'shardSize' | 'valTokens' | 'workers' | 'seed' | 'maxBytes'),
      string | undefined,
      string,
      number,
    ]
  > = [
    ['maxFiles', a['max-files'], 'max-files', 1],
    ['maxTokens', a['max-tokens'], 'max-tokens', 1],
    ['shardSize', a['shard-size'], 'shard-size', 1],
    ['valTokens', a['val-tokens'], 'val-tokens', 0],
    ['workers', a.workers, 'workers', 1],
    ['seed', a.seed, 'seed', 0],
    ['maxBytes', a['max-bytes'], 'max-bytes', 1],
  ];
  for (const [key, v, flag, min] of counts) {
    const n = parseCount(v, flag, { min });
    if (n !== undefined) req[key] = n;
  }
  const sizeMb = parseCount(a['size-mb'], 'size-mb', { min: 0.001, allowFraction: true });
  if (sizeMb !== undefined) req.sizeMb = sizeMb;
  if (a['keep-downloads']) req.keepDownloads = true;
  if (a.overwrite) req.overwrite = true;

  // the request the app would send, checked by the same schema as datasets-prepare's
  const checked = prepareRequest.safeParse(req);
  if (!checked.success)
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `prepare: ${z.prettifyError(checked.error)}`,
      'Run "gpt2-studio prepare --help" for the options.',
    );
  const env = opts.env ?? process.env;
  const home = resolveHome({ flag: a.home, env });
  const view = new ProgressView(io, opts.tty ?? process.stderr.isTTY === true, opts.intervalMs);
  const svc = new DatasetService({
    home,
    env,
    hooks: opts.hooks,
    events: {
      progress: (p: DatasetProgressEvent) => view.show(prepareLine(p), p.stage, p.stage === 'finishing'),
      download: (p: DownloadProgressEvent) =>
        view.show(downloadLine(p), `download:${p.url}`, p.total !== undefined && p.bytes === p.total),
    },
  });
  const { jobId } = await svc.prepare(req);
  const onSigint = (): void => {
    view.end();
    io.err('stopping… (Ctrl-C again to quit at once)\n');
    process.removeListener('SIGINT', onSigint);
    void svc.cancel({ jobId });
  };
  process.on('SIGINT', onSigint);
  try {
    const outcome = await svc.wait(jobId);
    view.end();
    if (a.json)
      io.out(
        JSON.stringify({
          ...outcome.summary,
          alreadyPrepared: outcome.alreadyPrepared,
          resumed: outcome.resumed,
          seconds: outcome.seconds,
        }) + '\n',
      );
    else {
      if (outcome.alreadyPrepared && outcome.summary.source !== req.source) {
        io.err(
          `"${outcome.id}" already exists, prepared from ${outcome.summary.source}: nothing was done. Pass --name to prepare this under another name, or --overwrite to replace it.\n`,
        );
      } else if (outcome.alreadyPrepared)
        io.err(`"${outcome.id}" is already prepared (pass --overwrite to prepare it again).\n`);
      else if (outcome.resumed) io.err('continued an interrupted preparation\n');
      io.out(summaryLine(outcome.summary, outcome.alreadyPrepared ? undefined : outcome.seconds) + '\n');
      for (const n of outcome.summary.notes) io.out(`note: ${n}\n`);
    }
    return 0;
  } catch (e) {
    view.end();
    if (isCancelled(e)) {
      io.err('cancelled: what was finished is kept; run the same command again to continue.\n');
      return 130;
    }
    throw e;
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}

/** `gpt2-studio datasets [--json]`. */
export async function datasetsCommand(
  argv: string[],
  io: CliIo,
  opts: { env?: NodeJS.ProcessEnv } = {},
): Promise<number> {
  const { values: a, positionals } = parse(
    argv,
    {
      json: { type: 'boolean', default: false },
      home: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    'datasets',
  );
  if (a.help) {
    io.out(DATASETS_USAGE);
    return 0;
  }
  if (positionals.length > 0)
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `datasets takes no arguments; got ${positionals.join(' ')}.`,
      'Run "gpt2-studio datasets --help".',
    );
  const home = resolveHome({ flag: a.home, env: opts.env ?? process.env });
  const list = await new DatasetService({ home }).list();
  if (a.json) {
    io.out(JSON.stringify(list) + '\n');
    return 0;
  }
  if (list.length === 0) {
    io.out(
      `No datasets in ${home}/datasets. Prepare one with: gpt2-studio prepare tinyshakespeare (or builtin, offline)\n`,
    );
    return 0;
  }
  const rows = list.map((d) => [
    d.id,
    d.source,
    d.status,
    d.kind === 'tokens' ? d.tokens.train.toLocaleString('en-US') : '-',
    d.kind === 'tokens' ? d.tokens.val.toLocaleString('en-US') : `${d.examples ?? 0} examples`,
    String(d.shards),
    formatBytes(d.bytes),
  ]);
  const head = ['id', 'source', 'status', 'train tokens', 'val tokens', 'shards', 'size'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string =>
    r
      .map((c, i) => (i >= 3 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd() + '\n';
  io.out(line(head));
  for (const r of rows) io.out(line(r));
  for (const d of list) if (d.status === 'partial') io.out(`${d.id}: ${d.notes.join(' ')}\n`);
  return 0;
}
