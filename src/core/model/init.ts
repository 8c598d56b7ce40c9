import { Rng } from '../random';
import type { NamedTensors } from '../tensors';
import { numel, paramSpecs, type GPTConfig } from './config';

/**
 * GPT-2 initialization as build-nanogpt does it: every weight normal(0, 0.02), the residual projections
 * (attn.c_proj, mlp.c_proj) scaled by (2 * n_layer)^-0.5, biases zero, LayerNorm weights one. wte is both the
 * token embedding and the output head (tied), so it is initialized once. Deterministic for a seed, on any engine.
 */
export function initWeights(c: GPTConfig, seed = 1337): NamedTensors {
  const rng = new Rng(seed);
  const out: NamedTensors = new Map();
  const std = 0.02;
  const scaled = std * (2 * c.nLayer) ** -0.5;
  for (const s of paramSpecs(c)) {
    const data = new Float32Array(numel(s.shape));
    if (s.init === 'ones') data.fill(1);
    else if (s.init === 'normal' || s.init === 'normal-scaled') {
      const sd = s.init === 'normal' ? std : scaled;
      for (let i = 0; i < data.length; i++) data[i] = rng.normal() * sd;
    }
    out.set(s.name, { shape: [...s.shape], data });
  }
  return out;
}
