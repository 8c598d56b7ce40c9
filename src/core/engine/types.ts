import type { GPTConfig } from '../model/config';
import type { NamedTensors } from '../tensors';
import type { EngineInfo, EngineFacts } from '../../shared/api/app';
export type { EngineInfo, EngineFacts };

/**
 * A (B, T) batch of token ids. `targets[b, t]` is the token that should follow `inputs[b, t]`; a negative target,
 * or a 0 in `mask`, leaves that position out of the loss.
 */
export interface Batch {
  B: number;
  T: number;
  /** (B, T) token ids */
  inputs: Int32Array;
  /** (B, T) next-token ids; -1 = ignore */
  targets: Int32Array;
  /** (B, T) optional loss mask, 1 = counts, 0 = ignored */
  mask?: Float32Array;
}

/** AdamW hyper-parameters, PyTorch's names and defaults as build-nanogpt sets them. */
export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** AdamW state for checkpoints: the step count and the m and v of every parameter, by parameter name. */
export interface OptimizerState {
  step: number;
  m: NamedTensors;
  v: NamedTensors;
}

/** A decoding state for one batch of sequences, advanced one position per `step`. */
export interface KVCache {
  /** rows in the batch */
  readonly batchSize: number;
  /** positions filled so far */
  readonly length: number;
  dispose(): void;
}

/** A GPT-2 instance on some engine: its parameters, gradients and optimizer state live inside it. */
export interface Model {
  readonly config: GPTConfig;
  /** engine name, e.g. "tfjs" */
  readonly engine: string;

  /**
   * Forward and backward over one micro-batch. The gradients of `lossScale * loss` are added to the gradient
   * buffers (so pass 1/gradAccumSteps for accumulation). Returns the unscaled mean loss over counted positions.
   */
  forwardBackward(batch: Batch, lossScale: number): Promise<number>;
  /** Sets every gradient buffer to zero. */
  zeroGrad(): void;
  /** The global L2 norm of all gradients. */
  gradNorm(): Promise<number>;
  /** Multiplies every gradient by `factor` (used for clipping). */
  scaleGrads(factor: number): void;
  /** One AdamW update with decay on rank >= 2 tensors only, exactly as torch.optim.AdamW computes it. */
  adamwStep(h: AdamWHyper): void;

  /** Logits (B, T, vocabSize) of the real vocabulary, for a forward pass without gradients. */
  logits(inputs: Int32Array, B: number, T: number): Promise<Float32Array>;
  /** Per-position cross-entropy (B, T) of `targets` (NaN where not counted), without gradients. */
  tokenLosses(batch: Batch): Promise<Float32Array>;

  /** A KV cache for up to `maxLength` positions (<= blockSize) and `batchSize` rows. */
  createCache(batchSize: number, maxLength?: number): KVCache;
  /**
   * Feeds `tokens` (batchSize, S) at the next S positions (S = 1 for one step, S = prompt length to prefill)
   * and returns the logits (batchSize, vocabSize) at the last of them.
   */
  decodeStep(cache: KVCache, tokens: Int32Array, S?: number): Promise<Float32Array>;

  /** Parameters by GPT-2 name, in engine layout (see ParamSpec). */
  exportWeights(): Promise<NamedTensors>;
  loadWeights(w: NamedTensors): void;
  exportOptimizerState(): Promise<OptimizerState>;
  loadOptimizerState(s: OptimizerState): void;

  dispose(): void;
}

/**
 * Data parallel: this process's place among `world` processes that train one model together, each on its own
 * share of every batch. Every rank makes the same calls in the same order.
 */
export interface Collective {
  readonly rank: number;
  readonly world: number;
  /** Replaces the gradients of `model` with their mean over all ranks (the same bits on every rank). */
  allReduceGrads(model: Model): Promise<void>;
  /** The element-wise mean of `values` over all ranks. */
  allReduceMean(values: number[]): Promise<number[]>;
  /** In place: `data` becomes rank 0's `data` on every rank (every rank passes the same length). */
  broadcast(data: Float32Array): Promise<void>;
  /** Makes the other ranks' waiting calls fail instead of hang (when this rank gives up). */
  abort(): void;
  dispose(): void;
}

/** How an engine joins processes into a Collective. */
export interface DataParallel {
  /**
   * A new communicator id, made by rank 0 and handed to the other ranks by the parent process. `kind`: shared memory
   * (one machine), NCCL (GPUs) or MPI (an "mpi:port:" id: rank 0 must join in the process that made it); without it,
   * GPT2_STUDIO_COMM, else the engine's best.
   */
  newId(kind?: 'shm' | 'nccl' | 'mpi'): string;
  /**
   * Joins rank `rank` of `world`; resolves once every rank has joined. The id is one of newId's, or (native-cpu with
   * MPI) "mpi:world": the MPI_COMM_WORLD of the mpirun / srun job, where rank and world must be MPI's.
   */
  join(id: string, rank: number, world: number, timeoutMs?: number): Promise<Collective>;
}

export interface Engine {
  readonly name: string;
  info(): EngineInfo;
  /** Builds a model from weights (engine layout), e.g. from initWeights() or an imported file. */
  createModel(config: GPTConfig, weights: NamedTensors): Promise<Model>;
  /** Data parallel over processes, for the engines that have it. */
  readonly dataParallel?: DataParallel;
}
