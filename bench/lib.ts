/**
 * Shared helpers for the benchmarks (see docs/ARCHITECTURE.md, "Benchmarks").
 *
 * - `median`, `timeIt`: timings are medians after warm-up.
 * - `printResult`: each benchmark prints exactly one JSON line `{name, figure, unit, peer, peerFigure, ratio}`.
 * - `ensureTorch`, `runReference`: the PyTorch peer (bench/reference/train_gpt2.py) runs on Debian's
 *   python3-torch, measured in the same run on the same machine and config.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { ErrorCode, StudioError } from '../src/shared/errors';

// ---------------------------------------------------------------------------------------------------------
// Timing

/** The median of `xs` (mean of the two middle values for an even count). Does not modify `xs`. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0)
    throw new StudioError(ErrorCode.BAD_ARGUMENT, 'median of an empty list', 'Time at least one iteration.');
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Runs `fn` `warmup` times untimed, then `iters` times timed; returns each timed iteration in seconds. */
export async function timeIt(fn: () => Promise<void>, opts: { warmup: number; iters: number }): Promise<number[]> {
  const { warmup, iters } = opts;
  if (!Number.isInteger(warmup) || warmup < 0) {
    throw new StudioError(ErrorCode.BAD_ARGUMENT, `timeIt: warmup must be an integer >= 0, got ${warmup}`);
  }
  if (!Number.isInteger(iters) || iters < 1) {
    throw new StudioError(ErrorCode.BAD_ARGUMENT, `timeIt: iters must be an integer >= 1, got ${iters}`);
  }
  for (let i = 0; i < warmup; i++) await fn();
  const seconds: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    await fn();
    seconds.push((performance.now() - t0) / 1000);
  }
  return seconds;
}

// ---------------------------------------------------------------------------------------------------------
// Result line

export interface BenchResult {
  /** Benchmark id, e.g. "train-c2-tfjs-node". */
  name: string;
  /** Our measured figure, e.g. tokens/sec. */
  figure: number;
  /** Unit of `figure` and `peerFigure`, e.g. "tokens/s". */
  unit: string;
  /** The peer measured alongside, e.g. "pytorch-1.13-cpu"; null when there is none. */
  peer: string | null;
  peerFigure: number | null;
  /** figure / peerFigure; null without a peer. */
  ratio: number | null;
  config?: Record<string, unknown>;
  notes?: string;
}

/** The result as one JSON line (no trailing newline), keys in a fixed order. Non-finite numbers become null. */
export function formatResult(r: BenchResult): string {
  const ordered: Record<string, unknown> = {
    name: r.name,
    figure: r.figure,
    unit: r.unit,
    peer: r.peer,
    peerFigure: r.peerFigure,
    ratio: r.ratio,
  };
  if (r.config !== undefined) ordered.config = r.config;
  if (r.notes !== undefined) ordered.notes = r.notes;
  // JSON.stringify escapes newlines inside strings, so the output is always a single line.
  return JSON.stringify(ordered);
}

/** Writes exactly one JSON line for `r` to stdout. */
export function printResult(r: BenchResult): void {
  process.stdout.write(formatResult(r) + '\n');
}

// ---------------------------------------------------------------------------------------------------------
// PyTorch peer

export type TorchCheck =
  | {
      ok: true;
      python: string;
      version: string;
      /** BLAS torch loaded: openblas | mkl | blis | reference | unknown */ blas: string;
    }
  | { ok: false; reason: string };

/**
 * Pythons to try, in order. Debian's python3-torch lives in /usr/lib/python3/dist-packages, which only the
 * system interpreter sees; a `python3` earlier on PATH (pyenv, venv) usually does not have it.
 */
const PYTHON_CANDIDATES = ['python3', '/usr/bin/python3'];

const TORCH_PROBE = [
  'import json, torch',
  'blas = "unknown"',
  'try:',
  '    maps = open("/proc/self/maps").read()',
  '    blas = next((n for n in ("openblas", "mkl", "blis") if n in maps), "reference" if "/blas/libblas.so" in maps else "unknown")',
  'except OSError:',
  '    pass',
  'print(json.dumps({"version": torch.__version__, "blas": blas}))',
].join('\n');

const INSTALL_HINT =
  'Install it with: sudo apt-get install -y python3-torch libopenblas0-pthread (Debian/Ubuntu), ' +
  'then run the benchmark again.';

let torchCache: TorchCheck | undefined;

function probeTorch(): { python: string; version: string; blas: string } | { tried: string[] } {
  const tried: string[] = [];
  for (const python of PYTHON_CANDIDATES) {
    const res = spawnSync(python, ['-c', TORCH_PROBE], { encoding: 'utf8', timeout: 120_000 });
    if (res.status === 0) {
      const line = lastJsonLine(res.stdout);
      if (line && typeof line.version === 'string') {
        return { python, version: line.version, blas: typeof line.blas === 'string' ? line.blas : 'unknown' };
      }
    }
    tried.push(`${python}: ${res.error ? res.error.message : tail(res.stderr, 200).trim() || `exit ${res.status}`}`);
  }
  return { tried };
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** apt-get with progress on stderr (stdout stays clean for result lines). Returns true on success. */
function aptGet(args: string[]): boolean {
  process.stderr.write(`[bench] apt-get ${args.join(' ')}\n`);
  const res = spawnSync('apt-get', args, {
    stdio: ['ignore', 2, 2],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  if (res.error) process.stderr.write(`[bench] apt-get failed to start: ${res.error.message}\n`);
  return res.status === 0;
}

function aptInstall(packages: string[]): boolean {
  if (aptGet(['install', '-y', ...packages])) return true;
  process.stderr.write('[bench] install failed; running apt-get update and trying again\n');
  return aptGet(['update']) && aptGet(['install', '-y', ...packages]);
}

/**
 * Finds a Python with PyTorch for the reference peer. When none has it and we run as root, installs Debian's
 * python3-torch (and OpenBLAS, without which torch falls back to the ~30x slower reference BLAS). Otherwise
 * the reason says how to install it. The answer is cached for the process.
 */
export function ensureTorch(): TorchCheck {
  if (torchCache?.ok) return torchCache;
  let found = probeTorch();
  if ('tried' in found) {
    if (!isRoot()) {
      return { ok: false, reason: `PyTorch not found (${found.tried.join('; ')}). ${INSTALL_HINT}` };
    }
    process.stderr.write('[bench] PyTorch not found; installing Debian python3-torch (this takes a few minutes)\n');
    if (!aptInstall(['python3-torch', 'libopenblas0-pthread'])) {
      return { ok: false, reason: `apt-get install python3-torch failed (see the apt output above). ${INSTALL_HINT}` };
    }
    found = probeTorch();
    if ('tried' in found) {
      return { ok: false, reason: `python3-torch installed but import torch still fails (${found.tried.join('; ')}).` };
    }
  }
  if (found.blas === 'reference') {
    const msg = 'torch uses the reference BLAS (libblas3), which makes the peer ~30x slower than it should be';
    if (isRoot()) {
      process.stderr.write(`[bench] ${msg}; installing libopenblas0-pthread\n`);
      if (aptInstall(['libopenblas0-pthread'])) {
        const again = probeTorch();
        if (!('tried' in again)) found = again;
      }
    } else {
      process.stderr.write(`[bench] warning: ${msg}. Install it with: sudo apt-get install -y libopenblas0-pthread\n`);
    }
  }
  torchCache = { ok: true, python: found.python, version: found.version, blas: found.blas };
  return torchCache;
}

export interface ReferenceArgs {
  mode: 'train' | 'forward';
  nLayer: number;
  nHead: number;
  nEmbd: number;
  vocab: number;
  blockSize: number;
  batch: number;
  seq: number;
  /** Timed steps. */
  steps: number;
  /** Untimed steps before timing. */
  warmup: number;
  threads: number;
  /** Python interpreter; defaults to the one ensureTorch() finds. */
  python?: string;
  /** Kill the run after this long (default 30 min). */
  timeoutMs?: number;
}

/** The JSON line train_gpt2.py prints. */
export interface ReferenceRaw {
  mode: 'train' | 'forward';
  tokens_per_step: number;
  median_step_s: number;
  tokens_per_sec: number;
  steps: number;
  torch_version: string;
  threads: number;
  blas?: string;
}

export interface ReferenceResult {
  tokensPerSec: number;
  medianStepS: number;
  raw: ReferenceRaw;
}

/** Path of the PyTorch reference script, resolved from this file. */
export const REFERENCE_SCRIPT = fileURLToPath(new URL('./reference/train_gpt2.py', import.meta.url));

/** The command-line arguments for train_gpt2.py. */
export function referenceArgv(a: ReferenceArgs): string[] {
  const ints: Array<[string, number]> = [
    ['--n-layer', a.nLayer],
    ['--n-head', a.nHead],
    ['--n-embd', a.nEmbd],
    ['--vocab', a.vocab],
    ['--block-size', a.blockSize],
    ['--batch', a.batch],
    ['--seq', a.seq],
    ['--steps', a.steps],
    ['--warmup', a.warmup],
    ['--threads', a.threads],
  ];
  const argv = [REFERENCE_SCRIPT, '--mode', a.mode];
  for (const [flag, v] of ints) {
    if (!Number.isInteger(v) || v < 0)
      throw new StudioError(ErrorCode.BAD_ARGUMENT, `runReference: ${flag} must be a non-negative integer, got ${v}`);
    argv.push(flag, String(v));
  }
  return argv;
}

/**
 * Runs the PyTorch reference synchronously and returns its median step time and throughput.
 * Throws a StudioError (ENGINE_UNAVAILABLE) that names the command and carries the stderr tail on failure.
 */
export function runReference(args: ReferenceArgs): ReferenceResult {
  let python = args.python;
  if (python === undefined) {
    const t = ensureTorch();
    if (!t.ok)
      throw new StudioError(ErrorCode.ENGINE_UNAVAILABLE, `PyTorch reference unavailable: ${t.reason}`, INSTALL_HINT);
    python = t.python;
  }
  const argv = referenceArgv(args);
  const cmd = [python, ...argv].join(' ');
  const res: SpawnSyncReturns<string> = spawnSync(python, argv, {
    encoding: 'utf8',
    timeout: args.timeoutMs ?? 30 * 60_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  const fail = (what: string, cause?: unknown): StudioError =>
    new StudioError(
      ErrorCode.ENGINE_UNAVAILABLE,
      `PyTorch reference ${what}: ${cmd}\n--- stderr (tail) ---\n${tail(res.stderr ?? '', 2000)}`,
      'Run the command by hand to see the full output.',
      cause === undefined ? undefined : { cause },
    );
  if (res.error) throw fail(`failed to run (${res.error.message})`, res.error);
  if (res.signal) throw fail(`was killed by ${res.signal}`);
  if (res.status !== 0) throw fail(`exited with status ${res.status}`);
  const raw = lastJsonLine(res.stdout);
  if (!raw) throw fail(`printed no JSON line (stdout tail: ${JSON.stringify(tail(res.stdout, 300))})`);
  const tokensPerSec = raw.tokens_per_sec;
  const medianStepS = raw.median_step_s;
  if (
    typeof tokensPerSec !== 'number' ||
    !Number.isFinite(tokensPerSec) ||
    typeof medianStepS !== 'number' ||
    !Number.isFinite(medianStepS)
  ) {
    throw fail(`printed an unexpected result: ${JSON.stringify(raw)}`);
  }
  return { tokensPerSec, medianStepS, raw: raw as unknown as ReferenceRaw };
}

// ---------------------------------------------------------------------------------------------------------
// Small helpers

/** The last line of `text` that parses as a JSON object, or null. */
export function lastJsonLine(text: string): Record<string, unknown> | null {
  const lines = text.split(/\r?\n/);
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!.trim();
    if (!line.startsWith('{')) continue;
    try {
      const v: unknown = JSON.parse(line);
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
    } catch {
      // not JSON; keep looking
    }
  }
  return null;
}

function tail(text: string, n: number): string {
  return text.length <= n ? text : '…' + text.slice(text.length - n);
}
