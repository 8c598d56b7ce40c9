import { ErrorCode, StudioError } from '../shared/errors';
import { numel, type ParamSpec } from './model/config';

/** A tensor held in host memory, row-major. This is how weights move between files, engines and checkpoints. */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/** Tensors by GPT-2 name (`wte.weight`, `h.0.attn.c_attn.weight`, ...), in the engine layout of ParamSpec. */
export type NamedTensors = Map<string, HostTensor>;

export function sumOfSquares(t: HostTensor): number {
  let s = 0;
  const d = t.data;
  for (let i = 0; i < d.length; i++) s += d[i]! * d[i]!;
  return s;
}

/** Transposes a 2-D tensor [r, c] into a new [c, r] tensor. */
export function transpose2d(t: HostTensor): HostTensor {
  const r = t.shape[0]!;
  const c = t.shape[1]!;
  const out = new Float32Array(r * c);
  const src = t.data;
  for (let i = 0; i < r; i++) {
    const row = i * c;
    for (let j = 0; j < c; j++) out[j * r + i] = src[row + j]!;
  }
  return { shape: [c, r], data: out };
}

/** The tensor of a parameter, checked against its spec; the error names the tensor and both shapes. */
export function checkParamTensor(w: NamedTensors, s: ParamSpec, what = 'weights'): HostTensor {
  const t = w.get(s.name);
  if (!t)
    throw new StudioError(
      ErrorCode.BAD_WEIGHTS,
      `The ${what} have no tensor "${s.name}" (expected shape [${s.shape}]).`,
      'Use weights made for this model config.',
    );
  if (
    t.shape.length !== s.shape.length ||
    t.shape.some((d, i) => d !== s.shape[i]) ||
    t.data.length !== numel(s.shape)
  ) {
    throw new StudioError(
      ErrorCode.BAD_WEIGHTS,
      `The ${what} tensor "${s.name}" has shape [${t.shape}], expected [${s.shape}].`,
      'The weights were made for another model config; pick the matching preset or config.',
    );
  }
  return t;
}
