/**
 * The native-cpu engine against PyTorch eager on the CPU, 2 threads each, measured in the same run on the same
 * configs (see docs/ARCHITECTURE.md, "Benchmarks"). Prints one JSON line per figure:
 *   train-c1-native-cpu, train-c2-native-cpu   training tokens/s (forward + backward + clipping + AdamW), the
 *                                              median step after a warm-up step; config holds the peak RSS of
 *                                              each side (ours measured in a child process of its own)
 *   sample-gpt2-native-cpu                     ms per generated token for a gpt2-shaped (124M) model with random
 *                                              weights and a KV cache (B = 1, prompt 16); ratio = peer ms / ours
 *
 *   node bin/run-ts.mjs bench/native.ts [--only c1|c2|sample] [--iters N] [--gemm blas|builtin]
 * bench/index.ts calls runNativeBench() with the same options.
 */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { makeConfig, type GPTConfig } from '../src/core/model/config';
import { initWeights } from '../src/core/model/init';
import { Rng } from '../src/core/random';
import { batchFromRows, trainStep } from '../src/core/train/step';
import { getEngine } from '../src/node/engines';
import { loadNativeAddon } from '../src/node/native/addon';
import { ensureTorch, lastJsonLine, median, printResult, referenceArgv, runReference, timeIt } from './lib';

const THREADS = 2;
const VOCAB = 50257;
const PADDED_VOCAB = 50304;

interface TrainConfig {
  id: 'c1' | 'c2';
  nLayer: number;
  nHead: number;
  nEmbd: number;
  B: number;
  T: number;
}

const TRAIN_CONFIGS: TrainConfig[] = [
  { id: 'c1', nLayer: 4, nHead: 4, nEmbd: 128, B: 8, T: 128 },
  { id: 'c2', nLayer: 6, nHead: 6, nEmbd: 384, B: 4, T: 256 },
];

const SAMPLE = { nLayer: 12, nHead: 12, nEmbd: 768, blockSize: 1024, prompt: 16, warmup: 4, tokens: 64 };

export interface NativeBenchOptions {
  /** c1, c2 or sample; all when unset */
  only?: string;
  /** timed training steps per config (default 5) */
  iters?: number;
  gemm?: 'blas' | 'builtin';
}

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..');
const log = (s: string) => process.stderr.write(`[bench native] ${s}\n`);
const peakRssMb = () => process.resourceUsage().maxRSS / 1024;

function trainModelConfig(c: TrainConfig): GPTConfig {
  return makeConfig({
    nLayer: c.nLayer,
    nHead: c.nHead,
    nEmbd: c.nEmbd,
    blockSize: c.T,
    vocabSize: VOCAB,
    paddedVocabSize: PADDED_VOCAB,
  });
}

/** In the child process: training tokens/s of native-cpu on one config, and this process's peak RSS. */
async function childTrain(c: TrainConfig, iters: number, gemm?: 'blas' | 'builtin'): Promise<void> {
  const engine = await getEngine('native-cpu', { gemm, threads: THREADS });
  const cfg = trainModelConfig(c);
  const model = await engine.createModel(cfg, initWeights(cfg, 1337));
  const rng = new Rng(1);
  const hyper = { gradClip: 1, adamw: { lr: 6e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 } };
  // batches drawn up front, as the reference does, so that token generation is not timed
  const batches = Array.from({ length: 8 }, () =>
    batchFromRows(
      Array.from({ length: c.B }, () => Array.from({ length: c.T + 1 }, () => rng.int(VOCAB))),
      c.T,
    ),
  );
  let i = 0;
  let loss = NaN;
  const times = await timeIt(
    async () => {
      loss = (await trainStep(model, [batches[i++ % batches.length]!], hyper)).loss;
    },
    { warmup: 1, iters },
  );
  model.dispose();
  process.stdout.write(
    JSON.stringify({ tps: (c.B * c.T) / median(times), loss, peakRssMb: peakRssMb(), detail: engine.info().detail }) +
      '\n',
  );
}

function runChild(args: string[]): Record<string, unknown> {
  const r = spawnSync(
    process.execPath,
    [path.join(repo, 'bin', 'run-ts.mjs'), fileURLToPath(import.meta.url), ...args],
    {
      encoding: 'utf8',
      env: { ...process.env, OMP_NUM_THREADS: String(THREADS) },
      stdio: ['ignore', 'pipe', 'inherit'],
      timeout: 30 * 60_000,
    },
  );
  const line = lastJsonLine(r.stdout ?? '');
  if (r.status !== 0 || !line)
    throw new Error(`bench child ${args.join(' ')} failed (status ${r.status}): ${r.stdout}`);
  return line;
}

/** PyTorch's peak RSS on the same training config: a short run of train_gpt2.py under a getrusage wrapper. */
function peerPeakRssMb(python: string, c: TrainConfig): number | null {
  const argv = referenceArgv({
    mode: 'train',
    nLayer: c.nLayer,
    nHead: c.nHead,
    nEmbd: c.nEmbd,
    vocab: PADDED_VOCAB,
    blockSize: c.T,
    batch: c.B,
    seq: c.T,
    steps: 2,
    warmup: 1,
    threads: THREADS,
  });
  const wrapper = [
    'import json, resource, runpy, sys',
    'sys.argv = sys.argv[1:]',
    'try:',
    '    runpy.run_path(sys.argv[0], run_name="__main__")',
    'except SystemExit:',
    '    pass',
    'print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))',
  ].join('\n');
  const r = spawnSync(python, ['-c', wrapper, ...argv], { encoding: 'utf8', timeout: 30 * 60_000 });
  const line = lastJsonLine(r.stdout ?? '');
  return line && typeof line.peak_rss_mb === 'number' ? line.peak_rss_mb : null;
}

/** ms per token of native-cpu decoding a gpt2-shaped random model with the KV cache (in this process). */
async function nativeSampleMs(gemm?: 'blas' | 'builtin'): Promise<{ ms: number; detail: string }> {
  const engine = await getEngine('native-cpu', { gemm, threads: THREADS });
  const cfg = makeConfig({
    nLayer: SAMPLE.nLayer,
    nHead: SAMPLE.nHead,
    nEmbd: SAMPLE.nEmbd,
    blockSize: SAMPLE.blockSize,
  });
  const model = await engine.createModel(cfg, initWeights(cfg, 1337));
  try {
    const rng = new Rng(2);
    const cache = model.createCache(1, SAMPLE.prompt + SAMPLE.warmup + SAMPLE.tokens);
    let logits = await model.decodeStep(
      cache,
      Int32Array.from({ length: SAMPLE.prompt }, () => rng.int(VOCAB)),
      SAMPLE.prompt,
    );
    const argmax = (x: Float32Array) => {
      let b = 0;
      for (let j = 1; j < x.length; j++) if (x[j]! > x[b]!) b = j;
      return b;
    };
    const times = await timeIt(
      async () => {
        logits = await model.decodeStep(cache, Int32Array.of(argmax(logits)), 1);
      },
      { warmup: SAMPLE.warmup, iters: SAMPLE.tokens },
    );
    cache.dispose();
    return { ms: median(times) * 1000, detail: engine.info().detail };
  } finally {
    model.dispose();
  }
}

export async function runNativeBench(opts: NativeBenchOptions = {}): Promise<void> {
  const iters = opts.iters ?? 5;
  const load = loadNativeAddon();
  if (!load.ok) {
    log(`skipped: the native engine is not available: ${load.reason}. ${load.hint}`);
    return;
  }
  const torch = ensureTorch();
  if (!torch.ok) log(`no PyTorch peer: ${torch.reason}`);
  const peerName = torch.ok ? `pytorch-${torch.version}-eager-cpu-${THREADS}threads` : null;

  // the 1-minute load average around each figure: on a shared machine, other work skews both sides unevenly
  const loadAvg = () => Number(os.loadavg()[0]!.toFixed(2));
  for (const c of TRAIN_CONFIGS.filter((x) => !opts.only || x.id === opts.only)) {
    const load0 = loadAvg();
    log(`${c.id}: native-cpu, ${iters} timed steps (child process)`);
    const ours = runChild([
      '--child-train',
      c.id,
      '--iters',
      String(iters),
      ...(opts.gemm ? ['--gemm', opts.gemm] : []),
    ]);
    let peerFigure: number | null = null;
    let peerRss: number | null = null;
    if (torch.ok) {
      log(`${c.id}: PyTorch ${torch.version} eager, ${THREADS} threads, ${iters} timed steps`);
      peerFigure = runReference({
        mode: 'train',
        nLayer: c.nLayer,
        nHead: c.nHead,
        nEmbd: c.nEmbd,
        vocab: PADDED_VOCAB,
        blockSize: c.T,
        batch: c.B,
        seq: c.T,
        steps: iters,
        warmup: 1,
        threads: THREADS,
        python: torch.python,
      }).tokensPerSec;
      log(`${c.id}: PyTorch peak RSS (2 more steps)`);
      peerRss = peerPeakRssMb(torch.python, c);
    }
    const tps = ours.tps as number;
    printResult({
      name: `train-${c.id}-native-cpu`,
      figure: tps,
      unit: 'tokens/s',
      peer: peerName,
      peerFigure,
      ratio: peerFigure ? tps / peerFigure : null,
      config: {
        n_layer: c.nLayer,
        n_head: c.nHead,
        n_embd: c.nEmbd,
        B: c.B,
        T: c.T,
        vocab: PADDED_VOCAB,
        threads: THREADS,
        engine: ours.detail,
        peak_rss_mb: Math.round(ours.peakRssMb as number),
        peer_peak_rss_mb: peerRss === null ? null : Math.round(peerRss),
        load_avg: [load0, loadAvg()],
      },
    });
  }

  if (!opts.only || opts.only === 'sample') {
    const load0 = loadAvg();
    log('sample: native-cpu, gpt2 124M random weights, KV cache');
    const ours = await nativeSampleMs(opts.gemm);
    let peerMs: number | null = null;
    if (torch.ok) {
      log(`sample: PyTorch ${torch.version} with a KV cache`);
      const script = path.join(here, 'reference', 'sample_gpt2.py');
      const r = spawnSync(
        torch.python,
        [
          script,
          '--tokens',
          String(SAMPLE.tokens),
          '--prompt',
          String(SAMPLE.prompt),
          '--warmup',
          String(SAMPLE.warmup),
          '--threads',
          String(THREADS),
        ],
        {
          encoding: 'utf8',
          timeout: 30 * 60_000,
        },
      );
      const line = lastJsonLine(r.stdout ?? '');
      if (line && typeof line.ms_per_token === 'number') peerMs = line.ms_per_token;
      else log(`sample: the PyTorch peer failed (status ${r.status}): ${(r.stderr ?? '').slice(-500)}`);
    }
    printResult({
      name: 'sample-gpt2-native-cpu',
      figure: ours.ms,
      unit: 'ms/token',
      peer: peerName,
      peerFigure: peerMs,
      ratio: peerMs ? peerMs / ours.ms : null,
      config: {
        model: 'gpt2 124M (random)',
        batch: 1,
        prompt: SAMPLE.prompt,
        tokens: SAMPLE.tokens,
        threads: THREADS,
        engine: ours.detail,
        load_avg: [load0, loadAvg()],
      },
      notes: 'ratio = peer ms / our ms (above 1: faster than the peer)',
    });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      only: { type: 'string' },
      iters: { type: 'string', default: '5' },
      gemm: { type: 'string' },
      'child-train': { type: 'string' },
    },
  });
  const gemm = values.gemm === 'blas' || values.gemm === 'builtin' ? values.gemm : undefined;
  if (values.gemm !== undefined && !gemm) throw new Error(`--gemm ${values.gemm}: use blas or builtin`);
  const iters = Number(values.iters);
  if (values['child-train']) {
    const c = TRAIN_CONFIGS.find((x) => x.id === values['child-train']);
    if (!c) throw new Error(`unknown config ${values['child-train']}`);
    await childTrain(c, iters, gemm);
    return;
  }
  await runNativeBench({ only: values.only, iters, gemm });
}

// run as a script (not when bench/index.ts imports runNativeBench)
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
