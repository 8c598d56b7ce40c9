/**
 * Data parallel on the native-cpu engine: training tokens/s of one small model at one total batch, run three ways in
 * the same run on this machine, each in processes of its own:
 *   train-dp-1proc-native-cpu   one process, every core's thread (the reference of the ratios)
 *   train-dp-2shm-native-cpu    two ranks over the shared-memory communicator ("shm:"), half the batch and half the
 *                               threads each
 *   train-dp-2mpi-native-cpu    two ranks over MPI ("mpi:world" under `mpirun -np 2 --bind-to none`), the same split;
 *                               skipped, saying why, without an MPI build or mpirun
 * A step is what a run's step is: forward + backward, the gradients' mean over the ranks, the loss's mean, the norm,
 * clipping and AdamW. Figure: the total batch's tokens over the median step time (after warm-up steps); ratio: against
 * one process.
 *
 *   node bin/run-ts.mjs bench/dp.ts [--iters N]      (npm run bench -- --only dp)
 */
import { spawn, spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Collective } from '../src/core/engine/types';
import { makeConfig } from '../src/core/model/config';
import { initWeights } from '../src/core/model/init';
import { Rng } from '../src/core/random';
import { accumulateGradients, applyUpdate, batchFromRows } from '../src/core/train/step';
import { nativeCpuEngine } from '../src/node/native';
import { loadNativeAddon } from '../src/node/native/addon';
import { lastJsonLine, median, printResult, timeIt } from './lib';

/** The model and the total batch (bench/native.ts's c1 shape, with the GPT-2 vocabulary: 7.2M parameters). */
const MODEL = { nLayer: 4, nHead: 4, nEmbd: 128, blockSize: 128, vocabSize: 50257, paddedVocabSize: 50304 };
const TOTAL_B = 8;
const T = 128;
const WARMUP = 2;

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..');
const runTs = path.join(repo, 'bin', 'run-ts.mjs');
const self = fileURLToPath(import.meta.url);
const log = (s: string) => process.stderr.write(`[bench dp] ${s}\n`);
const CORES = Math.max(1, os.cpus().length);

/** Open MPI refuses root without these; harmless otherwise. */
const MPI_ENV = { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' };

interface ChildArgs {
  id: string | null;
  rank: number;
  world: number;
  threads: number;
  iters: number;
}

/** In a child: this rank's steps; rank 0 prints {tps, stepMs, loss}. */
async function child(a: ChildArgs): Promise<void> {
  const engine = nativeCpuEngine({ threads: a.threads });
  let dist: Collective | null = null;
  if (a.id) dist = await engine.dataParallel.join(a.id, a.rank, a.world, 60_000);
  const cfg = makeConfig(MODEL);
  const model = await engine.createModel(cfg, initWeights(cfg, 1337));
  const B = TOTAL_B / a.world;
  // each rank its own rows, drawn up front so that token generation is not timed
  const rng = new Rng(1 + a.rank);
  const batches = Array.from({ length: 4 }, () =>
    batchFromRows(
      Array.from({ length: B }, () => Array.from({ length: T + 1 }, () => rng.int(MODEL.vocabSize))),
      T,
    ),
  );
  const hyper = { gradClip: 1, adamw: { lr: 6e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 } };
  const reduce = dist ? (m: Parameters<Collective['allReduceGrads']>[0]) => dist!.allReduceGrads(m) : undefined;
  let i = 0;
  let loss = NaN;
  const times = await timeIt(
    async () => {
      const r = await accumulateGradients(model, [batches[i++ % batches.length]!], reduce);
      loss = dist ? (await dist.allReduceMean([r.loss]))[0]! : r.loss;
      applyUpdate(model, r.norm, hyper);
    },
    { warmup: WARMUP, iters: a.iters },
  );
  model.dispose();
  dist?.dispose();
  const step = median(times);
  if (a.rank === 0)
    process.stdout.write(JSON.stringify({ tps: (TOTAL_B * T) / step, stepMs: step * 1000, loss }) + '\n');
}

/** Runs the processes of one way; resolves with rank 0's line. */
function runWay(procs: { cmd: string; args: string[]; env?: NodeJS.ProcessEnv }[]): Promise<Record<string, unknown>> {
  return Promise.all(
    procs.map(
      (p) =>
        new Promise<string>((resolve, reject) => {
          const c = spawn(p.cmd, p.args, {
            cwd: repo,
            env: p.env ?? process.env,
            stdio: ['ignore', 'pipe', 'inherit'],
          });
          let out = '';
          c.stdout.on('data', (d) => (out += d));
          const timer = setTimeout(() => c.kill('SIGKILL'), 5 * 60_000);
          c.on('error', reject);
          c.on('close', (code) => {
            clearTimeout(timer);
            if (code === 0) resolve(out);
            else reject(new Error(`${p.cmd} ${p.args.slice(-8).join(' ')} exited with ${code}: ${out.slice(-500)}`));
          });
        }),
    ),
  ).then((outs) => {
    for (const o of outs) {
      const line = lastJsonLine(o);
      if (line && typeof line.tps === 'number') return line;
    }
    throw new Error('no rank printed its figure');
  });
}

const childArgs = (a: Partial<ChildArgs> & { iters: number; threads: number }) => [
  runTs,
  self,
  '--child',
  '--iters',
  String(a.iters),
  '--threads',
  String(a.threads),
  ...(a.id ? ['--id', a.id, '--rank', String(a.rank ?? 0), '--world', String(a.world ?? 1)] : []),
];

/** Why MPI cannot be measured here, or null. */
function mpiMissing(): string | null {
  const load = loadNativeAddon();
  if (!load.ok) return load.reason;
  if (!load.addon.mpiInfo().available)
    return 'the native build has no MPI (install libopenmpi-dev, then npm run build:native)';
  if (spawnSync('sh', ['-c', 'command -v mpirun']).status !== 0) return 'mpirun is not on PATH (install openmpi-bin)';
  return null;
}

export async function runDpBench(iters = 16): Promise<void> {
  const load = loadNativeAddon();
  if (!load.ok) {
    log(`skipped: the native engine is not available: ${load.reason}. ${load.hint}`);
    return;
  }
  const perRank = Math.max(1, Math.floor(CORES / 2));
  const config = {
    n_layer: MODEL.nLayer,
    n_head: MODEL.nHead,
    n_embd: MODEL.nEmbd,
    vocab: MODEL.paddedVocabSize,
    T,
    total_B: TOTAL_B,
    cores: CORES,
  };
  const loadAvg = () => Number(os.loadavg()[0]!.toFixed(2));

  log(`1 process, B=${TOTAL_B}, ${CORES} threads, ${iters} timed steps`);
  let load0 = loadAvg();
  const one = await runWay([{ cmd: process.execPath, args: childArgs({ iters, threads: CORES }) }]);
  const base = one.tps as number;
  printResult({
    name: 'train-dp-1proc-native-cpu',
    figure: base,
    unit: 'tokens/s',
    peer: null,
    peerFigure: null,
    ratio: null,
    config: { ...config, ranks: 1, threads_per_rank: CORES, step_ms: one.stepMs, load_avg: [load0, loadAvg()] },
  });

  log(`2 ranks over shared memory, B=${TOTAL_B / 2} each, ${perRank} threads each`);
  load0 = loadAvg();
  const id = nativeCpuEngine().dataParallel.newId('shm');
  const shm = await runWay(
    [0, 1].map((rank) => ({
      cmd: process.execPath,
      args: childArgs({ iters, threads: perRank, id, rank, world: 2 }),
    })),
  );
  printResult({
    name: 'train-dp-2shm-native-cpu',
    figure: shm.tps as number,
    unit: 'tokens/s',
    peer: 'native-cpu-1-process',
    peerFigure: base,
    ratio: (shm.tps as number) / base,
    config: {
      ...config,
      ranks: 2,
      threads_per_rank: perRank,
      comm: 'shm',
      step_ms: shm.stepMs,
      load_avg: [load0, loadAvg()],
    },
  });

  const why = mpiMissing();
  if (why) {
    log(`2 ranks over MPI: skipped: ${why}`);
    return;
  }
  log(`2 ranks over MPI (mpi:world, mpirun -np 2 --bind-to none), B=${TOTAL_B / 2} each, ${perRank} threads each`);
  load0 = loadAvg();
  const mpi = await runWay([
    {
      cmd: 'mpirun',
      args: [
        '--allow-run-as-root',
        '--oversubscribe',
        '--bind-to',
        'none',
        '-np',
        '2',
        process.execPath,
        ...childArgs({ iters, threads: perRank, id: 'mpi:world', rank: -1, world: -1 }),
      ],
      env: MPI_ENV,
    },
  ]);
  printResult({
    name: 'train-dp-2mpi-native-cpu',
    figure: mpi.tps as number,
    unit: 'tokens/s',
    peer: 'native-cpu-1-process',
    peerFigure: base,
    ratio: (mpi.tps as number) / base,
    config: {
      ...config,
      ranks: 2,
      threads_per_rank: perRank,
      comm: 'mpi:world',
      mpi: load.addon.mpiInfo().version?.split(',')[0] ?? null,
      step_ms: mpi.stepMs,
      load_avg: [load0, loadAvg()],
    },
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      iters: { type: 'string', default: '16' },
      child: { type: 'boolean', default: false },
      threads: { type: 'string' },
      id: { type: 'string' },
      rank: { type: 'string' },
      world: { type: 'string' },
      // bench/index.ts passes its other arguments to every benchmark
      only: { type: 'string' },
      gemm: { type: 'string' },
    },
    strict: false,
  });
  const iters = Number(values.iters);
  if (!Number.isInteger(iters) || iters < 1) throw new Error(`--iters ${String(values.iters)}: a positive integer`);
  if (values.child) {
    let rank = Number(values.rank ?? 0);
    let world = Number(values.world ?? 1);
    if (rank < 0) {
      // under mpirun: MPI's rank and size (Open MPI's variables, or MPICH's)
      rank = Number(process.env.OMPI_COMM_WORLD_RANK ?? process.env.PMI_RANK ?? 0);
      world = Number(process.env.OMPI_COMM_WORLD_SIZE ?? process.env.PMI_SIZE ?? 1);
    }
    await child({
      id: typeof values.id === 'string' ? values.id : null,
      rank,
      world,
      threads: Number(values.threads ?? CORES),
      iters,
    });
    return;
  }
  await runDpBench(iters);
}

if (process.argv[1] && path.resolve(process.argv[1]) === self) await main();
