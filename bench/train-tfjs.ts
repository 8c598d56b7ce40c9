/**
 * Training throughput (forward + backward + clipping + AdamW, tokens/s) of the tfjs engine
 * against PyTorch eager on the CPU (2 threads), measured in the same run on the same configs.
 * Each figure is printed as one JSON line (see bench/lib.ts). Options: --configs c1,c2 --iters N.
 */
import { parseArgs } from 'node:util';
import { makeConfig } from '../src/core/model/config';
import { initWeights } from '../src/core/model/init';
import { Rng } from '../src/core/random';
import { batchFromRows, trainStep } from '../src/core/train/step';
import { getEngine } from '../src/node/engines';
import { ensureTorch, median, printResult, runReference, timeIt } from './lib';

interface BenchConfig {
  id: string;
  nLayer: number;
  nHead: number;
  nEmbd: number;
  B: number;
  T: number;
}

const CONFIGS: BenchConfig[] = [
  { id: 'c1', nLayer: 4, nHead: 4, nEmbd: 128, B: 8, T: 128 },
  { id: 'c2', nLayer: 6, nHead: 6, nEmbd: 384, B: 4, T: 256 },
];
const VOCAB = 50257;
const PADDED_VOCAB = 50304;
const THREADS = 2;

async function tfjsTrainTokensPerSec(c: BenchConfig, iters: number): Promise<{ tps: number; backend: string }> {
  const engine = await getEngine('tfjs');
  const cfg = makeConfig({
    nLayer: c.nLayer,
    nHead: c.nHead,
    nEmbd: c.nEmbd,
    blockSize: c.T,
    vocabSize: VOCAB,
    paddedVocabSize: PADDED_VOCAB,
  });
  const model = await engine.createModel(cfg, initWeights(cfg, 1337));
  const rng = new Rng(1);
  const hyper = { gradClip: 1, adamw: { lr: 6e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 } };
  try {
    const times = await timeIt(
      async () => {
        const rows = Array.from({ length: c.B }, () => Array.from({ length: c.T + 1 }, () => rng.int(VOCAB)));
        await trainStep(model, [batchFromRows(rows, c.T)], hyper);
      },
      { warmup: 1, iters },
    );
    return { tps: (c.B * c.T) / median(times), backend: engine.info().detail };
  } finally {
    model.dispose();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { configs: { type: 'string' }, iters: { type: 'string', default: '3' } } });
  const iters = Number(values.iters);
  const torch = ensureTorch();
  if (!torch.ok) process.stderr.write(`[bench] no PyTorch peer: ${torch.reason}\n`);
  for (const c of CONFIGS.filter((x) => !values.configs || values.configs.split(',').includes(x.id))) {
    process.stderr.write(`[bench] ${c.id}: tfjs, ${iters} timed steps\n`);
    const ours = await tfjsTrainTokensPerSec(c, iters);
    let peerFigure: number | null = null;
    let peer: string | null = null;
    if (torch.ok) {
      process.stderr.write(`[bench] ${c.id}: PyTorch ${torch.version} eager, ${THREADS} threads\n`);
      const ref = runReference({
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
      });
      peerFigure = ref.tokensPerSec;
      peer = `pytorch-${torch.version}-eager-cpu-${THREADS}threads`;
    }
    printResult({
      name: `train-${c.id}-tfjs`,
      figure: ours.tps,
      unit: 'tokens/s',
      peer,
      peerFigure,
      ratio: peerFigure ? ours.tps / peerFigure : null,
      config: {
        n_layer: c.nLayer,
        n_head: c.nHead,
        n_embd: c.nEmbd,
        B: c.B,
        T: c.T,
        vocab: PADDED_VOCAB,
        backend: ours.backend,
      },
    });
  }
}

await main();
