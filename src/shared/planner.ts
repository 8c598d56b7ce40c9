/**
 * The New run page's planner: what a run config costs before it starts. Pure arithmetic over a validated run
 * config, so that the renderer can show it as the user types (src/core is not reachable from the renderer).
 *
 * The parameter count and FLOPs follow src/core/model/config.ts (paramSpecs, flopsPerToken), which
 * planner.test.ts checks against the core's own functions.
 */
import { estimateRunTime, type StepTiming, type TimeEstimate } from './estimate';
import { gradAccumSteps, resolveModelShape, totalSteps, type RunConfig } from './run-config';

/** A complete model shape (the preset merged with the explicit fields). */
export interface PlanShape {
  nLayer: number;
  nHead: number;
  nEmbd: number;
  blockSize: number;
  vocabSize: number;
  paddedVocabSize: number;
}

/** The model shape of a validated config. */
export function planShape(c: RunConfig): PlanShape {
  const s = resolveModelShape(c.model);
  return {
    nLayer: s.n_layer!,
    nHead: s.n_head!,
    nEmbd: s.n_embd!,
    blockSize: s.block_size!,
    vocabSize: s.vocab_size,
    paddedVocabSize: s.padded_vocab_size,
  };
}

/**
 * The shape a run actually trains: the config's when it starts from scratch; the init weights' or checkpoint's
 * otherwise (the worker builds the model from those, whatever model.preset says). See runs-shape.
 */
export interface TrainedShape {
  shape: PlanShape;
  params: number;
  source: 'config' | 'weights' | 'checkpoint';
  /** the weights or checkpoint it was read from */
  path?: string;
}

/** A key that is equal for two configs of the same model shape (layers, heads, width, context, vocab). */
export function shapeKey(s: PlanShape): string {
  return `${s.nLayer}L-${s.nHead}H-${s.nEmbd}C-${s.blockSize}T-${s.paddedVocabSize}V`;
}

/**
 * A key that is equal for two configs whose steps take the same time on one machine: the same model shape,
 * micro-batch (B, T) and engine.
 */
export function timingKey(s: PlanShape, c: Pick<RunConfig, 'batch_size' | 'seq_len' | 'engine'>): string {
  return `${shapeKey(s)}|${c.batch_size}x${c.seq_len}|${c.engine}`;
}

/**
 * Parameters of a GPT-2, counting the tied wte once with its padded rows, as the engines allocate them:
 * wte (Vp, C) + wpe (T, C) + per layer [ln_1 2C, c_attn 3C*C + 3C, attn c_proj C*C + C, ln_2 2C, c_fc 4C*C + 4C,
 * mlp c_proj 4C*C + C] + ln_f 2C.
 */
export function paramCount(s: PlanShape): number {
  const C = s.nEmbd;
  const perLayer = 2 * C + (3 * C * C + 3 * C) + (C * C + C) + 2 * C + (4 * C * C + 4 * C) + (4 * C * C + C);
  return s.paddedVocabSize * C + s.blockSize * C + s.nLayer * perLayer + 2 * C;
}

/**
 * Training FLOPs per token (forward + backward): 6N + 12*L*C*T, where N excludes wpe (a lookup, not a matmul) and
 * the second term is attention's scores and weighted sum at context T (PaLM appendix B; nanoGPT's estimate_mfu).
 */
export function flopsPerToken(s: PlanShape, seqLen: number): number {
  const n = paramCount(s) - s.blockSize * s.nEmbd;
  return 6 * n + 12 * s.nLayer * s.nEmbd * seqLen;
}

/**
 * Floats of activations that one micro-batch (B, T) keeps for the backward pass, counted as llm.c's
 * ActivationTensors: per layer ln_1, qkv (3C), atty, attproj, residual2, ln_2, fch and fch_gelu (4C each),
 * fcproj, residual3 = 18C per token, two (NH, T) attention maps per token (preatt, att) and four layernorm
 * statistics; then encoded and ln_f (2C), the logits and probs (2Vp) and three scalars per token.
 */
export function activationFloats(s: PlanShape, batchSize: number, seqLen: number): number {
  const C = s.nEmbd;
  const perTokenPerLayer = 18 * C + 2 * s.nHead * seqLen + 4;
  const perToken = s.nLayer * perTokenPerLayer + 2 * C + 2 * s.paddedVocabSize + 3;
  return batchSize * seqLen * perToken;
}

export interface MemoryPlan {
  /** weights, fp32 */
  params: number;
  /** gradients, fp32 */
  grads: number;
  /** AdamW m and v, fp32 */
  optimizer: number;
  /** one micro-batch's activations and their gradients, fp32 (see activationFloats) */
  activations: number;
  total: number;
}

/** Where the plan's time comes from: a calibration of this machine, or a finished run of the same shape and batch. */
export type TimingSource =
  | { kind: 'calibration'; timing: StepTiming; measuredAt: number; runningRuns: number; microSteps: number }
  | { kind: 'run'; timing: StepTiming; runId: string; runName: string };

export interface RunPlan {
  shape: PlanShape;
  params: number;
  flopsPerToken: number;
  tokensPerStep: number;
  gradAccumSteps: number;
  steps: number;
  totalTokens: number;
  totalFlops: number;
  /** bytes */
  memory: MemoryPlan;
  /** seconds, from a measured timing; undefined when none is known */
  seconds?: number;
  /** the parts of `seconds` (start-up, steps, evaluations, samples, checkpoints) */
  time?: TimeEstimate;
  timing?: TimingSource;
}

export interface PlanOptions {
  /** the shape the run trains, when it is not the config's (init weights or checkpoint; see TrainedShape) */
  shape?: PlanShape;
  /** a timing of the same shape and micro-batch, for the time */
  timing?: TimingSource;
}

const FP32 = 4;

/** The plan of a validated config, for the shape it trains; a timing of the same shape and micro-batch gives the time. */
export function planRun(c: RunConfig, opts: PlanOptions = {}): RunPlan {
  const shape = opts.shape ?? planShape(c);
  const params = paramCount(shape);
  const fpt = flopsPerToken(shape, c.seq_len);
  const steps = totalSteps(c);
  const totalTokens = steps * c.total_batch_size;
  const activations = 2 * activationFloats(shape, c.batch_size, c.seq_len) * FP32;
  const memory: MemoryPlan = {
    params: params * FP32,
    grads: params * FP32,
    optimizer: 2 * params * FP32,
    activations,
    total: 4 * params * FP32 + activations,
  };
  const plan: RunPlan = {
    shape,
    params,
    flopsPerToken: fpt,
    tokensPerStep: c.total_batch_size,
    gradAccumSteps: gradAccumSteps(c),
    steps,
    totalTokens,
    totalFlops: fpt * totalTokens,
    memory,
  };
  if (opts.timing && opts.timing.timing.microStepMs > 0) {
    plan.timing = opts.timing;
    plan.time = estimateRunTime(c, opts.timing.timing, { params });
    plan.seconds = plan.time.seconds;
  }
  return plan;
}
