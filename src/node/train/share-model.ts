/**
 * Multi-node data parallel: only rank 0 has the run's starting point (scratch init, imported weights, a checkpoint to
 * fine-tune or to resume), since only node 0's workspace owns the run. Every other rank receives the parameters,
 * and on a resume the AdamW state, from rank 0 over the communicator, in paramSpecs order, before step 0.
 */
import type { Collective, OptimizerState } from '../../core/engine/types';
import type { NamedTensors } from '../../core/tensors';
import { paramSpecs, type GPTConfig } from '../../core/model/config';

/** Every tensor of the model, in paramSpecs order, as one buffer (the other ranks fill theirs in the same order). */
function flatten(mc: GPTConfig, tensors: NamedTensors, what: string): Float32Array {
  const specs = paramSpecs(mc);
  const total = specs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
  const out = new Float32Array(total);
  let at = 0;
  for (const s of specs) {
    const t = tensors.get(s.name);
    const n = s.shape.reduce((a, b) => a * b, 1);
    if (!t || t.data.length !== n) throw new Error(`${what}: tensor ${s.name} is missing or has the wrong size`);
    out.set(t.data, at);
    at += n;
  }
  return out;
}

function unflatten(mc: GPTConfig, flat: Float32Array): NamedTensors {
  const out: NamedTensors = new Map();
  let at = 0;
  for (const s of paramSpecs(mc)) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    out.set(s.name, { shape: [...s.shape], data: flat.subarray(at, at + n) });
    at += n;
  }
  return out;
}

function size(mc: GPTConfig): number {
  return paramSpecs(mc).reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
}

/** Text through a float broadcast: its length, then its UTF-16 code units (exact in float32). */
async function sendText(dist: Collective, text: string): Promise<void> {
  await dist.broadcast(Float32Array.of(text.length));
  await dist.broadcast(Float32Array.from(text, (_, i) => text.charCodeAt(i)));
}

async function receiveText(dist: Collective): Promise<string> {
  const n = new Float32Array(1);
  await dist.broadcast(n);
  const codes = new Float32Array(n[0]!);
  await dist.broadcast(codes);
  let s = '';
  for (const c of codes) s += String.fromCharCode(c);
  return s;
}

/**
 * Rank 0: sends the model's shape, its weights (and the optimizer state when `optimizer` is given) to every other
 * rank. The shape goes first, since only rank 0 has read the weights or checkpoint that decide it.
 */
export async function sendModel(
  dist: Collective,
  mc: GPTConfig,
  weights: NamedTensors,
  optimizer?: OptimizerState,
): Promise<void> {
  await sendText(dist, JSON.stringify(mc));
  await dist.broadcast(flatten(mc, weights, 'weights'));
  if (optimizer) {
    await dist.broadcast(Float32Array.of(optimizer.step));
    await dist.broadcast(flatten(mc, optimizer.m, 'optimizer m'));
    await dist.broadcast(flatten(mc, optimizer.v, 'optimizer v'));
  }
}

/** A rank other than 0: receives what sendModel sends (the optimizer state when `optimizer` is true). */
export async function receiveModel(
  dist: Collective,
  optimizer: boolean,
): Promise<{ modelConfig: GPTConfig; weights: NamedTensors; optimizer?: OptimizerState }> {
  const mc = JSON.parse(await receiveText(dist)) as GPTConfig;
  const w = new Float32Array(size(mc));
  await dist.broadcast(w);
  if (!optimizer) return { modelConfig: mc, weights: unflatten(mc, w) };
  const step = new Float32Array(1);
  await dist.broadcast(step);
  const m = new Float32Array(size(mc));
  await dist.broadcast(m);
  const v = new Float32Array(size(mc));
  await dist.broadcast(v);
  return {
    modelConfig: mc,
    weights: unflatten(mc, w),
    optimizer: { step: step[0]!, m: unflatten(mc, m), v: unflatten(mc, v) },
  };
}
