import type { AdamWHyper, Batch, Model } from '../engine/types';

export interface StepHyper {
  adamw: AdamWHyper;
  /** global-norm clipping threshold; 0 disables clipping */
  gradClip: number;
}

export interface StepResult {
  /** mean loss over the micro-steps (each micro-step's loss divided by their count, summed) */
  loss: number;
  /** global gradient norm before clipping */
  norm: number;
}

/**
 * Forward and backward over the micro-batches of one step, accumulating gradients (each loss divided by the
 * number of micro-steps, as build-nanogpt does). Returns the mean loss and the global norm before clipping.
 * `reduce`, under data parallel, averages the gradients over the ranks (the loss returned is this rank's).
 */
export async function accumulateGradients(
  model: Model,
  micro: Batch[],
  reduce?: (m: Model) => Promise<void>,
): Promise<StepResult> {
  const n = micro.length;
  model.zeroGrad();
  let loss = 0;
  for (const mb of micro) loss += (await model.forwardBackward(mb, 1 / n)) / n;
  // data parallel: the gradients become their mean over the ranks before the norm is taken
  if (reduce) await reduce(model);
  return { loss, norm: await model.gradNorm() };
}

/** Clipping as torch.nn.utils.clip_grad_norm_ does it (coefficient max / (norm + 1e-6), only when < 1), then AdamW. */
export function applyUpdate(model: Model, norm: number, h: StepHyper): void {
  if (h.gradClip > 0) {
    const coef = h.gradClip / (norm + 1e-6);
    if (coef < 1) model.scaleGrads(coef);
  }
  model.adamwStep(h.adamw);
}

/** One optimizer step of the build-nanogpt recipe: accumulation, clipping, AdamW. */
export async function trainStep(model: Model, micro: Batch[], h: StepHyper): Promise<StepResult> {
  const r = await accumulateGradients(model, micro);
  applyUpdate(model, r.norm, h);
  return r;
}

/** Splits rows of T+1 tokens into (inputs, targets) = (row[:-1], row[1:]). */
export function batchFromRows(rows: ArrayLike<number>[], T: number): Batch {
  const B = rows.length;
  const inputs = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  rows.forEach((r, b) => {
    for (let t = 0; t < T; t++) {
      inputs[b * T + t] = r[t]!;
      targets[b * T + t] = r[t + 1]!;
    }
  });
  return { B, T, inputs, targets };
}
