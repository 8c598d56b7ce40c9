/**
 * Models that run in a worker thread (model-worker.ts): a RemoteModel has the inference half of the Model
 * interface (logits, per-token losses, KV-cache decoding) and forwards each call to its worker, so that the
 * service's event loop (the Electron main process, or the server) stays free while a large model computes. Each
 * opened model has its own worker; dispose() ends it.
 */
import { Worker } from 'node:worker_threads';
import { ErrorCode, StudioError, type PlainError } from '../../shared/errors';
import type { ModelTarget } from '../../shared/models';
import type { Batch, KVCache, Model } from '../../core/engine/types';
import type { GPTConfig } from '../../core/model/config';
import { getEngine } from '../engines';
import type { EvalTarget } from '../store';

export type ModelWorkerRequest = { id: number } & (
  | { op: 'open'; home: string; target: ModelTarget; engine: string }
  | { op: 'logits'; inputs: Int32Array; B: number; T: number }
  | { op: 'tokenLosses'; batch: Batch }
  | { op: 'cacheCreate'; cacheId: number; batchSize: number; maxLength?: number }
  | { op: 'decode'; cacheId: number; tokens: Int32Array; S: number }
  | { op: 'cacheDispose'; cacheId: number }
  | { op: 'dispose' }
  | { op: 'inspect'; path: string }
);

export type ModelWorkerReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: PlainError };

type Payload<O extends ModelWorkerRequest['op']> = Omit<Extract<ModelWorkerRequest, { op: O }>, 'id' | 'op'>;

/** The model worker's entry from the sources (the built app passes its bundle, out/main/model-worker.mjs). */
export const MODEL_WORKER_ENTRY: URL = new URL('./model-worker.mjs', import.meta.url);

export interface OpenedModel {
  model: Model;
  config: GPTConfig;
  /** what the model is called in results */
  label: string;
  /** the resolved target, with a checkpoint's step filled in */
  target: EvalTarget;
}

class WorkerClient {
  private next = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  private ended: StudioError | null = null;

  constructor(readonly worker: Worker) {
    worker.on('message', (r: ModelWorkerReply) => {
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      if (r.ok) p.resolve(r.value);
      else p.reject(StudioError.fromPlain(r.error));
    });
    worker.on('error', (e) => this.fail(`failed: ${e instanceof Error ? e.message : String(e)}`));
    worker.on('exit', (code) => this.fail(`stopped (exit code ${code})`));
  }

  private fail(why: string): void {
    this.ended ??= new StudioError(
      ErrorCode.INTERNAL,
      `The model worker ${why}.`,
      'Try again; if it happens again, the model may not fit in memory.',
    );
    for (const p of this.pending.values()) p.reject(this.ended);
    this.pending.clear();
  }

  call<O extends ModelWorkerRequest['op']>(op: O, payload: Payload<O>): Promise<unknown> {
    if (this.ended) return Promise.reject(this.ended);
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, op, ...payload });
    });
  }

  /** Sends without waiting for the reply (its failure shows at the next call that needs it). */
  post<O extends ModelWorkerRequest['op']>(op: O, payload: Payload<O>): void {
    this.call(op, payload).catch(() => undefined);
  }
}

class RemoteCache implements KVCache {
  length = 0;
  private disposed = false;
  constructor(
    private readonly client: WorkerClient,
    readonly id: number,
    readonly batchSize: number,
  ) {}
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.client.post('cacheDispose', { cacheId: this.id });
  }
}

const inferenceOnly = (what: string) =>
  new StudioError(
    ErrorCode.INTERNAL,
    `${what} is not available on a model opened for inference.`,
    'Train in a run: its worker holds a full model.',
  );

export class RemoteModel implements Model {
  private nextCache = 1;
  private disposed = false;

  constructor(
    private readonly client: WorkerClient,
    readonly config: GPTConfig,
    readonly engine: string,
  ) {}

  async logits(inputs: Int32Array, B: number, T: number): Promise<Float32Array> {
    return (await this.client.call('logits', { inputs, B, T })) as Float32Array;
  }

  async tokenLosses(batch: Batch): Promise<Float32Array> {
    return (await this.client.call('tokenLosses', { batch })) as Float32Array;
  }

  createCache(batchSize: number, maxLength?: number): KVCache {
    const cache = new RemoteCache(this.client, this.nextCache++, batchSize);
    this.client.post('cacheCreate', { cacheId: cache.id, batchSize, maxLength });
    return cache;
  }

  async decodeStep(cache: KVCache, tokens: Int32Array, S = 1): Promise<Float32Array> {
    if (!(cache instanceof RemoteCache))
      throw new StudioError(
        ErrorCode.INTERNAL,
        'A KV cache from another model was passed to decodeStep.',
        'Create the cache with this model.',
      );
    const out = (await this.client.call('decode', { cacheId: cache.id, tokens, S })) as Float32Array;
    cache.length += S;
    return out;
  }

  forwardBackward(): Promise<number> {
    throw inferenceOnly('Training');
  }
  zeroGrad(): void {
    throw inferenceOnly('Training');
  }
  gradNorm(): Promise<number> {
    throw inferenceOnly('Training');
  }
  scaleGrads(): void {
    throw inferenceOnly('Training');
  }
  adamwStep(): void {
    throw inferenceOnly('Training');
  }
  exportWeights(): never {
    throw inferenceOnly('Exporting weights');
  }
  loadWeights(): void {
    throw inferenceOnly('Loading weights');
  }
  exportOptimizerState(): never {
    throw inferenceOnly('The optimizer state');
  }
  loadOptimizerState(): void {
    throw inferenceOnly('The optimizer state');
  }

  /** Frees the model and ends its worker. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const w = this.client.worker;
    this.client.call('dispose', {}).then(
      () => void w.terminate(),
      () => void w.terminate(),
    );
  }
}

/**
 * Opens a model in its own worker thread. "auto" is resolved here first (the parity check runs once per process,
 * not once per worker), and the worker loads the weights itself, so that reading a large file does not block
 * the caller either.
 */
export async function openRemoteModel(
  home: string,
  target: ModelTarget,
  engine = 'auto',
  entry: URL | string = MODEL_WORKER_ENTRY,
): Promise<OpenedModel> {
  const concrete = engine === 'auto' ? (await getEngine('auto')).name : engine;
  const worker = new Worker(entry);
  const client = new WorkerClient(worker);
  try {
    const info = (await client.call('open', { home, target, engine: concrete })) as {
      config: GPTConfig;
      engine: string;
      label: string;
      target: EvalTarget;
    };
    return {
      model: new RemoteModel(client, info.config, info.engine),
      config: info.config,
      label: info.label,
      target: info.target,
    };
  } catch (e) {
    await worker.terminate();
    throw e;
  }
}

/** What checking GPT-2 weights found (loadGpt2Weights, without the tensors). */
export interface InspectedWeights {
  config: GPTConfig;
  /** the safetensors file that was read */
  file: string;
  notes: string[];
}

/**
 * Reads and checks GPT-2 weights (every tensor) in a worker thread, so that a 500 MB file does not hold the
 * service's event loop; throws the loader's error (which names the file) when they are not valid.
 */
export async function inspectWeights(
  weightsPath: string,
  entry: URL | string = MODEL_WORKER_ENTRY,
): Promise<InspectedWeights> {
  const worker = new Worker(entry);
  const client = new WorkerClient(worker);
  try {
    return (await client.call('inspect', { path: weightsPath })) as InspectedWeights;
  } finally {
    await worker.terminate();
  }
}
