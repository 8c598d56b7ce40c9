/**
 * A model worker thread: loads one model (a checkpoint or weights) and answers the inference calls of a
 * RemoteModel (remote-model.ts) one at a time, so that a forward pass of a 124M model never holds up the
 * service's event loop (the Electron main process, or the server). Results are transferred, not copied.
 */
import { parentPort } from 'node:worker_threads';
import { ErrorCode, StudioError, toPlainError } from '../../shared/errors';
import type { KVCache, Model } from '../../core/engine/types';
import { getEngine } from '../engines';
import { loadTarget } from '../evals/service';
import { loadGpt2Weights } from '../models/weights';
import type { ModelWorkerReply, ModelWorkerRequest } from './remote-model';

const port = parentPort;
if (!port) throw new Error('model-worker must run in a worker thread');

let model: Model | null = null;
const caches = new Map<number, KVCache | StudioError>();

function need(): Model {
  if (!model) throw new StudioError(ErrorCode.INTERNAL, 'The model worker has no model open.', 'Open one first.');
  return model;
}

/** A result array that owns its whole buffer, so that it can be transferred. */
function own(a: Float32Array): Float32Array<ArrayBuffer> {
  return a.byteOffset === 0 && a.byteLength === a.buffer.byteLength && a.buffer instanceof ArrayBuffer
    ? (a as Float32Array<ArrayBuffer>)
    : new Float32Array(a);
}

async function handle(m: ModelWorkerRequest): Promise<{ value: unknown; transfer?: ArrayBuffer[] }> {
  switch (m.op) {
    case 'open': {
      const loaded = loadTarget(m.home, m.target);
      const engine = await getEngine(m.engine);
      model = await engine.createModel(loaded.config, loaded.weights);
      loaded.weights.clear();
      return { value: { config: model.config, engine: model.engine, label: loaded.label, target: loaded.target } };
    }
    case 'logits': {
      const out = own(await need().logits(m.inputs, m.B, m.T));
      return { value: out, transfer: [out.buffer] };
    }
    case 'tokenLosses': {
      const out = own(await need().tokenLosses(m.batch));
      return { value: out, transfer: [out.buffer] };
    }
    case 'cacheCreate':
      try {
        caches.set(m.cacheId, need().createCache(m.batchSize, m.maxLength));
      } catch (e) {
        caches.set(
          m.cacheId,
          e instanceof StudioError
            ? e
            : new StudioError(ErrorCode.INTERNAL, String(e instanceof Error ? e.message : e), ''),
        );
      }
      return { value: null };
    case 'decode': {
      const c = caches.get(m.cacheId);
      if (!c)
        throw new StudioError(
          ErrorCode.INTERNAL,
          `No KV cache ${m.cacheId} in the model worker.`,
          'Create the cache first.',
        );
      if (c instanceof StudioError) throw c;
      const out = own(await need().decodeStep(c, m.tokens, m.S));
      return { value: out, transfer: [out.buffer] };
    }
    case 'cacheDispose': {
      const c = caches.get(m.cacheId);
      if (c && !(c instanceof StudioError)) c.dispose();
      caches.delete(m.cacheId);
      return { value: null };
    }
    case 'inspect': {
      const w = loadGpt2Weights(m.path);
      w.tensors.clear();
      return { value: { config: w.config, file: w.file, notes: w.notes } };
    }
    case 'dispose':
      for (const c of caches.values()) if (!(c instanceof StudioError)) c.dispose();
      caches.clear();
      model?.dispose();
      model = null;
      return { value: null };
  }
}

// one request at a time, in the order they came (a decode needs the cache created before it)
let queue: Promise<void> = Promise.resolve();
port.on('message', (m: ModelWorkerRequest) => {
  queue = queue.then(async () => {
    let reply: ModelWorkerReply;
    let transfer: ArrayBuffer[] = [];
    try {
      const r = await handle(m);
      reply = { id: m.id, ok: true, value: r.value };
      transfer = r.transfer ?? [];
    } catch (e) {
      reply = { id: m.id, ok: false, error: toPlainError(e) };
    }
    port.postMessage(reply, transfer);
  });
});
