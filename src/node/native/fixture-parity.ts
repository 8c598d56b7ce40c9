/**
 * Parity of an engine with the PyTorch reference fixture (fixtures/gpt2-tiny of the shared folder), for Settings and
 * `gpt2-studio engines`: the logits and per-token losses of its forward pass, and its six-step training trajectory,
 * with the tolerances of the fixture's README. The fixture ships with the development checkout, not with the app:
 * where it is absent, the check is skipped and the engines are compared with tfjs only (./parity.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Engine } from '../../core/engine/types';
import { learningRate } from '../../core/schedule';
import { sumOfSquares } from '../../core/tensors';
import { batchFromRows, trainStep } from '../../core/train/step';
import { loadGpt2Weights } from '../models/weights';
import { nativeRoot } from './addon';

/** The fixture's tolerances (its README): logits and per-token losses absolute, the trajectory relative. */
export const FIXTURE_TOLERANCE = {
  logits: 1e-4,
  losses: 1e-4,
  trainLossRel: 1e-5,
  gradNormRel: 1e-3,
  sumSquaresRel: 1e-4,
} as const;

interface FixtureExpected {
  forward: {
    input_ids: number[][];
    targets: number[][];
    logits_first_64_vocab: number[][][];
    per_token_loss: number[][];
  };
  train: {
    hyper: {
      max_lr: number;
      min_lr_ratio: number;
      warmup_steps: number;
      max_steps: number;
      weight_decay: number;
      betas: [number, number];
      eps: number;
      grad_clip: number;
      seq_len: number;
    };
    batches: number[][][][];
    losses: number[];
    grad_norms: number[];
    final_sum_of_squares: Record<string, number>;
  };
}

/** The gpt2-tiny fixture folder: GPT2_STUDIO_SHARED, else the shared folder beside the checkout; null if absent. */
export function findFixture(env: NodeJS.ProcessEnv = process.env): string | null {
  const native = nativeRoot();
  const shared = env.GPT2_STUDIO_SHARED ?? (native ? path.join(native, '..', '..', 'shared') : null);
  if (!shared) return null;
  const dir = path.join(shared, 'fixtures', 'gpt2-tiny');
  return existsSync(path.join(dir, 'expected.json')) && existsSync(path.join(dir, 'model.safetensors')) ? dir : null;
}

export interface FixtureParity {
  pass: boolean;
  summary: string;
}

export async function checkFixtureParity(engine: Engine, dir: string): Promise<FixtureParity> {
  const exp = JSON.parse(readFileSync(path.join(dir, 'expected.json'), 'utf8')) as FixtureExpected;
  const tol = FIXTURE_TOLERANCE;
  const f = exp.forward;
  const B = f.input_ids.length;
  const T = f.input_ids[0]!.length;
  let logitErr = 0;
  let lossErr = 0;
  const w = loadGpt2Weights(dir);
  let model = await engine.createModel(w.config, w.tensors);
  try {
    const V = model.config.vocabSize;
    const logits = await model.logits(Int32Array.from(f.input_ids.flat()), B, T);
    for (let i = 0; i < B * T; i++) {
      for (let j = 0; j < 64; j++)
        logitErr = Math.max(
          logitErr,
          Math.abs(logits[i * V + j]! - f.logits_first_64_vocab[Math.floor(i / T)]![i % T]![j]!),
        );
    }
    const losses = await model.tokenLosses({
      B,
      T,
      inputs: Int32Array.from(f.input_ids.flat()),
      targets: Int32Array.from(f.targets.flat()),
    });
    for (let i = 0; i < B * T; i++)
      lossErr = Math.max(lossErr, Math.abs(losses[i]! - f.per_token_loss[Math.floor(i / T)]![i % T]!));
  } finally {
    model.dispose();
  }
  // the six optimizer steps, from fresh weights
  const tr = exp.train;
  const h = tr.hyper;
  const sched = { maxLr: h.max_lr, minLrRatio: h.min_lr_ratio, warmupSteps: h.warmup_steps, maxSteps: h.max_steps };
  let trainLossRel = 0;
  let gradNormRel = 0;
  let sumSquaresRel = 0;
  model = await engine.createModel(w.config, loadGpt2Weights(dir).tensors);
  try {
    for (let s = 0; s < tr.batches.length; s++) {
      const lr = learningRate(sched, s);
      const micro = tr.batches[s]!.map((rows) => batchFromRows(rows, h.seq_len));
      const r = await trainStep(model, micro, {
        gradClip: h.grad_clip,
        adamw: { lr, beta1: h.betas[0], beta2: h.betas[1], eps: h.eps, weightDecay: h.weight_decay },
      });
      trainLossRel = Math.max(trainLossRel, Math.abs(r.loss - tr.losses[s]!) / tr.losses[s]!);
      gradNormRel = Math.max(gradNormRel, Math.abs(r.norm - tr.grad_norms[s]!) / tr.grad_norms[s]!);
    }
    const fin = await model.exportWeights();
    for (const [name, want] of Object.entries(tr.final_sum_of_squares)) {
      const t = fin.get(name);
      sumSquaresRel = Math.max(sumSquaresRel, t ? Math.abs(sumOfSquares(t) - want) / want : Infinity);
    }
  } finally {
    model.dispose();
  }
  const pass =
    logitErr < tol.logits &&
    lossErr < tol.losses &&
    trainLossRel < tol.trainLossRel &&
    gradNormRel < tol.gradNormRel &&
    sumSquaresRel < tol.sumSquaresRel;
  const e = (x: number) => x.toExponential(1);
  return {
    pass,
    summary:
      `${pass ? 'pass' : 'FAIL'} against the PyTorch fixture (gpt2-tiny): logits ${e(logitErr)}, token losses ${e(lossErr)}, ` +
      `6-step losses ${e(trainLossRel)} rel, grad norms ${e(gradNormRel)} rel, final sums of squares ${e(sumSquaresRel)} rel`,
  };
}
