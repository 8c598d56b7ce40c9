/**
 * The WGSL compute kernels of the native-webgpu engine: llm.c's layer set (encoder, layernorm, matmul, attention,
 * GELU, residual, cross-entropy, AdamW, global norm), forward and backward. Every kernel reads its sizes and offsets
 * from a small uniform block (`Uniform`), so one compiled pipeline serves every shape; the few constants that must be
 * known at compile time (the head size of attention, the matmul's transposes) make separate pipelines.
 *
 * Conventions: tensors are flat `array<f32>` in row-major order; a matmul weight is (out, in) as in PyTorch's Linear;
 * elementwise kernels take 256 threads per workgroup over a 2-D grid of workgroups (65535 is the most per dimension),
 * and derive the flat index from `num_workgroups`.
 */

export type FieldType = 'u32' | 'f32';

/** A uniform block: named 32-bit fields, packed in order (the block is padded to 16-byte multiples). */
export class Uniform {
  readonly wgsl: string;
  readonly bytes: number;
  constructor(readonly fields: readonly (readonly [string, FieldType])[]) {
    this.wgsl = `struct Params {\n${fields.map(([n, t]) => `  ${n}: ${t},`).join('\n')}\n}`;
    this.bytes = Math.max(16, Math.ceil((fields.length * 4) / 16) * 16);
  }
  /** Writes the values into `view` at byte `offset`; a missing field is an error. */
  pack(view: DataView, offset: number, values: Record<string, number>): void {
    this.fields.forEach(([n, t], i) => {
      const v = values[n];
      if (v === undefined || !Number.isFinite(v)) throw new Error(`uniform field ${n} is ${v}`);
      if (t === 'u32') {
        if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`uniform field ${n} = ${v} is not a u32`);
        view.setUint32(offset + i * 4, v, true);
      } else view.setFloat32(offset + i * 4, v, true);
    });
  }
}

export interface KernelSource {
  /** a name for errors and the profile */
  name: string;
  code: string;
  uniform: Uniform;
  /** the storage bindings after the uniform (binding 0), in order: read-only or read-write */
  bindings: readonly ('read' | 'rw')[];
}

const FLAT_INDEX = /* wgsl */ `
fn flat(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 { return (wid.y * nwg.x + wid.x) * 256u + lid; }`;

function header(
  u: Uniform,
  bindings: readonly ('read' | 'rw')[],
  names: readonly string[],
  types?: readonly string[],
): string {
  const lines = [u.wgsl, '@group(0) @binding(0) var<uniform> p: Params;'];
  bindings.forEach((b, i) => {
    const ty = types?.[i] ?? 'array<f32>';
    lines.push(`@group(0) @binding(${i + 1}) var<storage, ${b === 'rw' ? 'read_write' : 'read'}> ${names[i]}: ${ty};`);
  });
  return lines.join('\n');
}

function kernel(
  name: string,
  fields: readonly (readonly [string, FieldType])[],
  bindings: readonly (readonly [string, 'read' | 'rw', string?])[],
  body: string,
  /** directives that must come first, e.g. "enable f16;" */
  preamble = '',
): KernelSource {
  const uniform = new Uniform(fields);
  const kinds = bindings.map((b) => b[1]);
  return {
    name,
    uniform,
    bindings: kinds,
    code: `${preamble}${header(
      uniform,
      kinds,
      bindings.map((b) => b[0]),
      bindings.map((b) => b[2] ?? 'array<f32>'),
    )}\n${FLAT_INDEX}\n${body}`,
  };
}

const I32 = 'array<i32>';

// ---- encoder ----------------------------------------------------------------------------------------------------

/**
 * out[n, c] = (first ? wpe[pos0 + n % T, c] : out[n, c]) + wte[tok[n] - v0, c] for tokens in [v0, v0 + vCount).
 * The token embedding is bound in slices of rows so that no binding passes the adapter's limit.
 */
export const encoderForward = kernel(
  'encoder_forward',
  [
    ['N', 'u32'],
    ['T', 'u32'],
    ['C', 'u32'],
    ['pos0', 'u32'],
    ['v0', 'u32'],
    ['vCount', 'u32'],
    ['first', 'u32'],
  ],
  [
    ['outp', 'rw'],
    ['tok', 'read', I32],
    ['wte', 'read'],
    ['wpe', 'read'],
  ],
  /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= p.N * p.C) { return; }
  let n = i / p.C;
  let c = i % p.C;
  var acc: f32;
  if (p.first == 1u) { acc = wpe[(p.pos0 + n % p.T) * p.C + c]; } else { acc = outp[i]; }
  let t = u32(tok[n]);
  if (t >= p.v0 && t < p.v0 + p.vCount) { acc = acc + wte[(t - p.v0) * p.C + c]; }
  outp[i] = acc;
}`,
);

/** dwpe[t, c] += sum over b of dout[b, t, c]: one thread per (t, c), so no two threads write one place. */
export const encoderBackwardPos = kernel(
  'encoder_backward_wpe',
  [
    ['B', 'u32'],
    ['T', 'u32'],
    ['C', 'u32'],
  ],
  [
    ['dwpe', 'rw'],
    ['dout', 'read'],
  ],
  /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= p.T * p.C) { return; }
  var s = 0.0;
  for (var b = 0u; b < p.B; b++) { s = s + dout[b * p.T * p.C + i]; }
  dwpe[i] = dwpe[i] + s;
}`,
);

/**
 * dwte[tok[n] - v0, c] += dout[n, c] for tokens in the slice: one thread per channel walks the positions in order,
 * so repeated tokens add up in a fixed order (deterministic, no atomics).
 */
export const encoderBackwardTok = kernel(
  'encoder_backward_wte',
  [
    ['N', 'u32'],
    ['C', 'u32'],
    ['v0', 'u32'],
    ['vCount', 'u32'],
  ],
  [
    ['dwte', 'rw'],
    ['dout', 'read'],
    ['tok', 'read', I32],
  ],
  /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let c = flat(wid, nwg, li);
  if (c >= p.C) { return; }
  for (var n = 0u; n < p.N; n++) {
    let t = u32(tok[n]);
    if (t >= p.v0 && t < p.v0 + p.vCount) {
      let j = (t - p.v0) * p.C + c;
      dwte[j] = dwte[j] + dout[n * p.C + c];
    }
  }
}`,
);

// ---- layernorm --------------------------------------------------------------------------------------------------

const ROW_REDUCE = /* wgsl */ `
var<workgroup> red: array<f32, 64>;
fn rowSum(x: f32, li: u32) -> f32 {
  red[li] = x;
  workgroupBarrier();
  var s = 32u;
  while (s > 0u) {
    if (li < s) { red[li] = red[li] + red[li + s]; }
    workgroupBarrier();
    s = s / 2u;
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}`;

/** One workgroup of 64 per row: mean, then variance about it (two passes, as llm.c), then the normalized row. */
export const layernormForward = kernel(
  'layernorm_forward',
  [
    ['N', 'u32'],
    ['C', 'u32'],
    ['eps', 'f32'],
  ],
  [
    ['outp', 'rw'],
    ['mean', 'rw'],
    ['rstd', 'rw'],
    ['inp', 'read'],
    ['w', 'read'],
    ['b', 'read'],
  ],
  /* wgsl */ `${ROW_REDUCE}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let n = wid.y * nwg.x + wid.x;
  if (n >= p.N) { return; }
  let base = n * p.C;
  var s = 0.0;
  for (var c = li; c < p.C; c += 64u) { s = s + inp[base + c]; }
  let m = rowSum(s, li) / f32(p.C);
  var v = 0.0;
  for (var c = li; c < p.C; c += 64u) { let d = inp[base + c] - m; v = v + d * d; }
  let r = 1.0 / sqrt(rowSum(v, li) / f32(p.C) + p.eps);
  for (var c = li; c < p.C; c += 64u) { outp[base + c] = (inp[base + c] - m) * r * w[c] + b[c]; }
  if (li == 0u) { mean[n] = m; rstd[n] = r; }
}`,
);

/** dinp[n, :] += the layernorm's input gradient; one workgroup of 64 per row. */
export const layernormBackwardInput = kernel(
  'layernorm_backward_input',
  [
    ['N', 'u32'],
    ['C', 'u32'],
  ],
  [
    ['dinp', 'rw'],
    ['dout', 'read'],
    ['inp', 'read'],
    ['w', 'read'],
    ['mean', 'read'],
    ['rstd', 'read'],
  ],
  /* wgsl */ `${ROW_REDUCE}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let n = wid.y * nwg.x + wid.x;
  if (n >= p.N) { return; }
  let base = n * p.C;
  let m = mean[n];
  let r = rstd[n];
  var a = 0.0;
  var b2 = 0.0;
  for (var c = li; c < p.C; c += 64u) {
    let norm = (inp[base + c] - m) * r;
    let dn = w[c] * dout[base + c];
    a = a + dn;
    b2 = b2 + dn * norm;
  }
  let dmean = rowSum(a, li) / f32(p.C);
  let dnm = rowSum(b2, li) / f32(p.C);
  for (var c = li; c < p.C; c += 64u) {
    let norm = (inp[base + c] - m) * r;
    let dn = w[c] * dout[base + c];
    dinp[base + c] = dinp[base + c] + (dn - dmean - norm * dnm) * r;
  }
}`,
);

/** dw[c] += sum_n dout * norm, db[c] += sum_n dout: one thread per channel, rows in order. */
export const layernormBackwardParams = kernel(
  'layernorm_backward_params',
  [
    ['N', 'u32'],
    ['C', 'u32'],
  ],
  [
    ['dw', 'rw'],
    ['db', 'rw'],
    ['dout', 'read'],
    ['inp', 'read'],
    ['mean', 'read'],
    ['rstd', 'read'],
  ],
  /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let c = flat(wid, nwg, li);
  if (c >= p.C) { return; }
  var sw = 0.0;
  var sb = 0.0;
  for (var n = 0u; n < p.N; n++) {
    let g = dout[n * p.C + c];
    sw = sw + g * (inp[n * p.C + c] - mean[n]) * rstd[n];
    sb = sb + g;
  }
  dw[c] = dw[c] + sw;
  db[c] = db[c] + sb;
}`,
);

// ---- matmul -----------------------------------------------------------------------------------------------------

export interface MatmulVariant {
  /** A is stored (K, M) and read transposed */
  transA: boolean;
  /** B is stored (N, K) and read transposed (a PyTorch Linear weight in the forward pass) */
  transB: boolean;
  /** C += result instead of C = result */
  accumulate: boolean;
  /** + bias[n] */
  bias: boolean;
  /** operands rounded to f16 in workgroup memory, products summed in f32 (needs the shader-f16 feature) */
  f16?: boolean;
}

/** Tile sizes of the matmul: a 64 x 64 block of C per workgroup of 8 x 8 threads, 8 x 8 per thread, K in 16s. */
export const MATMUL_TILE = { M: 64, N: 64, K: 16 } as const;

/**
 * C[m, n] (+)= sum_k A(m, k) B(k, n) (+ bias[n]): a tiled matmul that stages 64 x 16 blocks of A and 16 x 64 of B
 * in workgroup memory. Offsets and leading dimensions are in elements, so one binding can hold several operands
 * (a slice of the logits, a vocabulary slice of the embedding).
 */
export function matmul(v: MatmulVariant): KernelSource {
  const name = `matmul_${v.transA ? 't' : 'n'}${v.transB ? 't' : 'n'}${v.accumulate ? '_acc' : ''}${v.bias ? '_bias' : ''}${v.f16 ? '_f16' : ''}`;
  const cast = v.f16 ? 'f16' : '';
  const tile = v.f16 ? 'vec4<f16>' : 'vec4<f32>';
  const widen = (x: string): string => (v.f16 ? `vec4<f32>(${x})` : x);
  const bindings: [string, 'read' | 'rw'][] = [
    ['Cm', 'rw'],
    ['A', 'read'],
    ['Bm', 'read'],
  ];
  if (v.bias) bindings.push(['bias', 'read']);
  // loads: 1024 values of each tile over 64 threads; the index order follows memory so reads are contiguous.
  // As holds the tile as [k][m] and Bs as [k][n], four floats to a vec4.
  const loadA = v.transA
    ? `let k = idx / 64u; let m = idx % 64u; let gm = row0 + m; let gk = k0 + k;
       var x = 0.0; if (gm < p.M && gk < p.K) { x = A[p.offA + gk * p.lda + gm]; } As[k * 16u + m / 4u][m % 4u] = ${cast}(x);`
    : `let m = idx / 16u; let k = idx % 16u; let gm = row0 + m; let gk = k0 + k;
       var x = 0.0; if (gm < p.M && gk < p.K) { x = A[p.offA + gm * p.lda + gk]; } As[k * 16u + m / 4u][m % 4u] = ${cast}(x);`;
  const loadB = v.transB
    ? `let n = idx / 16u; let k = idx % 16u; let gn = col0 + n; let gk = k0 + k;
       var y = 0.0; if (gn < p.N && gk < p.K) { y = Bm[p.offB + gn * p.ldb + gk]; } Bs[k * 16u + n / 4u][n % 4u] = ${cast}(y);`
    : `let k = idx / 64u; let n = idx % 64u; let gn = col0 + n; let gk = k0 + k;
       var y = 0.0; if (gn < p.N && gk < p.K) { y = Bm[p.offB + gk * p.ldb + gn]; } Bs[k * 16u + n / 4u][n % 4u] = ${cast}(y);`;
  // each thread owns an 8 x 8 block: rows ty*8 + r, columns tx*8 + (0..7), held as acc{r}_0 (columns 0-3) and
  // acc{r}_1 (columns 4-7); everything is spelled out so nothing is indexed at run time
  const R = [0, 1, 2, 3, 4, 5, 6, 7];
  const lanes = 'xyzw';
  const decl = R.map((r) => `  var acc${r}_0 = vec4<f32>(0.0);\n  var acc${r}_1 = vec4<f32>(0.0);`).join('\n');
  const fma = R.map((r) => {
    const a = `a${r >> 2}.${lanes[r & 3]}`;
    return `      acc${r}_0 = acc${r}_0 + ${a} * b0;\n      acc${r}_1 = acc${r}_1 + ${a} * b1;`;
  }).join('\n');
  const storeCol = (j: number): string =>
    [
      `  { let gn = c0 + ${j}u; if (gn < p.N) {`,
      `    let ci = p.offC + gm * p.ldc + gn; var x = ${j < 4 ? 'r0' : 'r1'}.${lanes[j & 3]};`,
      v.bias ? '    x = x + bias[p.offBias + gn];' : '',
      v.accumulate ? '    x = x + Cm[ci];' : '',
      '    Cm[ci] = x; } }',
    ].join('\n');
  const storeRow = [
    'fn storeRow(gm: u32, c0: u32, r0: vec4<f32>, r1: vec4<f32>) {',
    '  if (gm >= p.M) { return; }',
    ...R.map(storeCol),
    '}',
  ].join('\n');
  const stores = R.map((r) => `  storeRow(row0 + ty * 8u + ${r}u, c0, acc${r}_0, acc${r}_1);`).join('\n');
  return kernel(
    name,
    [
      ['M', 'u32'],
      ['N', 'u32'],
      ['K', 'u32'],
      ['lda', 'u32'],
      ['ldb', 'u32'],
      ['ldc', 'u32'],
      ['offA', 'u32'],
      ['offB', 'u32'],
      ['offC', 'u32'],
      ['offBias', 'u32'],
    ],
    bindings,
    /* wgsl */ `
var<workgroup> As: array<${tile}, 256>;
var<workgroup> Bs: array<${tile}, 256>;
${storeRow}
@compute @workgroup_size(8, 8)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row0 = wid.y * 64u;
  let col0 = wid.x * 64u;
  let tx = lid.x;
  let ty = lid.y;
  let tid = ty * 8u + tx;
${decl}
  for (var k0 = 0u; k0 < p.K; k0 += 16u) {
    for (var q = 0u; q < 16u; q++) {
      let idx = tid + q * 64u;
      { ${loadA} }
      { ${loadB} }
    }
    workgroupBarrier();
    for (var k = 0u; k < 16u; k++) {
      let a0 = ${widen('As[k * 16u + ty * 2u]')};
      let a1 = ${widen('As[k * 16u + ty * 2u + 1u]')};
      let b0 = ${widen('Bs[k * 16u + tx * 2u]')};
      let b1 = ${widen('Bs[k * 16u + tx * 2u + 1u]')};
${fma}
    }
    workgroupBarrier();
  }
  let c0 = col0 + tx * 8u;
${stores}
}`,
    v.f16 ? 'enable f16;\n' : '',
  );
}

/** db[c] += sum over rows of dout[n, c] (a bias gradient): one thread per column, rows in order. */
export const biasBackward = kernel(
  'bias_backward',
  [
    ['N', 'u32'],
    ['C', 'u32'],
  ],
  [
    ['db', 'rw'],
    ['dout', 'read'],
  ],
  /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let c = flat(wid, nwg, li);
  if (c >= p.C) { return; }
  var s = 0.0;
  for (var n = 0u; n < p.N; n++) { s = s + dout[n * p.C + c]; }
  db[c] = db[c] + s;
}`,
);

// ---- elementwise ------------------------------------------------------------------------------------------------

const GELU_K = 'const GELU_S: f32 = 0.7978845608028654;';

/** GPT-2's tanh GELU. */
export const geluForward = kernel(
  'gelu_forward',
  [['n', 'u32']],
  [
    ['outp', 'rw'],
    ['inp', 'read'],
  ],
  /* wgsl */ `${GELU_K}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= p.n) { return; }
  let x = inp[i];
  outp[i] = 0.5 * x * (1.0 + tanh(GELU_S * (x + 0.044715 * x * x * x)));
}`,
);

export const geluBackward = kernel(
  'gelu_backward',
  [['n', 'u32']],
  [
    ['dinp', 'rw'],
    ['inp', 'read'],
    ['dout', 'read'],
  ],
  /* wgsl */ `${GELU_K}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= p.n) { return; }
  let x = inp[i];
  let u = GELU_S * (x + 0.044715 * x * x * x);
  let th = tanh(u);
  let sech2 = 1.0 - th * th;
  let g = 0.5 * (1.0 + th) + 0.5 * x * sech2 * GELU_S * (1.0 + 3.0 * 0.044715 * x * x);
  dinp[i] = g * dout[i];
}`,
);

/** out = a + b (the residual stream). */
export const residualForward = kernel(
  'residual_forward',
  [['n', 'u32']],
  [
    ['outp', 'rw'],
    ['a', 'read'],
    ['b', 'read'],
  ],
  /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= p.n) { return; }
  outp[i] = a[i] + b[i];
}`,
);

/** x[off + i] *= factor (clipping). */
export const scale = kernel(
  'scale',
  [
    ['n', 'u32'],
    ['factor', 'f32'],
  ],
  [['x', 'rw']],
  /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= p.n) { return; }
  x[i] = x[i] * p.factor;
}`,
);

/**
 * Partial sums of squares: each workgroup of 256 adds 4096 values in a fixed order and writes one partial; the host
 * adds the partials in double precision.
 */
export const sumSquares = kernel(
  'sum_squares',
  [
    ['n', 'u32'],
    ['outOff', 'u32'],
  ],
  [
    ['partial', 'rw'],
    ['x', 'read'],
  ],
  /* wgsl */ `
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let g = wid.y * nwg.x + wid.x;
  var s = 0.0;
  for (var k = 0u; k < 16u; k++) {
    let i = g * 4096u + k * 256u + li;
    if (i < p.n) { let v = x[i]; s = s + v * v; }
  }
  red[li] = s;
  workgroupBarrier();
  var h = 128u;
  while (h > 0u) {
    if (li < h) { red[li] = red[li] + red[li + h]; }
    workgroupBarrier();
    h = h / 2u;
  }
  if (li == 0u) { partial[p.outOff + g] = red[0]; }
}`,
);

/** One AdamW update over a tensor (or a slice of one), with the scalars of native/common/layout.cpp's adamw_scalars. */
export const adamw = kernel(
  'adamw',
  [
    ['n', 'u32'],
    ['decay', 'f32'],
    ['stepSize', 'f32'],
    ['bc2Sqrt', 'f32'],
    ['beta1', 'f32'],
    ['beta2', 'f32'],
    ['oneMinusBeta1', 'f32'],
    ['oneMinusBeta2', 'f32'],
    ['eps', 'f32'],
  ],
  [
    ['param', 'rw'],
    ['mom', 'rw'],
    ['vel', 'rw'],
    ['grad', 'read'],
  ],
  /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= p.n) { return; }
  let g = grad[i];
  let m = mom[i] * p.beta1 + g * p.oneMinusBeta1;
  let v = vel[i] * p.beta2 + g * g * p.oneMinusBeta2;
  let denom = sqrt(v) / p.bc2Sqrt + p.eps;
  param[i] = param[i] * p.decay - p.stepSize * (m / denom);
  mom[i] = m;
  vel[i] = v;
}`,
);

// ---- cross-entropy ----------------------------------------------------------------------------------------------

/**
 * Per row of a logits chunk: loss = logsumexp - logit[target]; with `grad`, the row becomes
 * (softmax - onehot) * weight * scale in place. Rows not counted (weight 0) get a zero loss (the host marks them NaN) and a zero gradient.
 */
export const crossEntropy = kernel(
  'cross_entropy',
  [
    ['rows', 'u32'],
    ['V', 'u32'],
    ['n0', 'u32'],
    ['grad', 'u32'],
    ['scale', 'f32'],
  ],
  [
    ['logits', 'rw'],
    ['losses', 'rw'],
    ['targets', 'read', I32],
    ['weights', 'read'],
  ],
  /* wgsl */ `
var<workgroup> red: array<f32, 256>;
fn reduceMax(x: f32, li: u32) -> f32 {
  red[li] = x; workgroupBarrier();
  var s = 128u;
  while (s > 0u) { if (li < s) { red[li] = max(red[li], red[li + s]); } workgroupBarrier(); s = s / 2u; }
  let r = red[0]; workgroupBarrier(); return r;
}
fn reduceSum(x: f32, li: u32) -> f32 {
  red[li] = x; workgroupBarrier();
  var s = 128u;
  while (s > 0u) { if (li < s) { red[li] = red[li] + red[li + s]; } workgroupBarrier(); s = s / 2u; }
  let r = red[0]; workgroupBarrier(); return r;
}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let r = wid.y * nwg.x + wid.x;
  if (r >= p.rows) { return; }
  let n = p.n0 + r;
  let base = r * p.V;
  let tgt = targets[n];
  let w = weights[n];
  // the reductions run for every row (barriers need uniform control flow); rows left out are written after
  let skip = tgt < 0 || w == 0.0;
  // every thread reads the target's logit before the barriers below, so no thread has overwritten it yet
  let xt = logits[base + u32(max(tgt, 0))];
  var mx = -3.402823e38;
  for (var j = li; j < p.V; j += 256u) { mx = max(mx, logits[base + j]); }
  mx = reduceMax(mx, li);
  var s = 0.0;
  for (var j = li; j < p.V; j += 256u) { s = s + exp(logits[base + j] - mx); }
  s = reduceSum(s, li);
  if (skip) {
    if (li == 0u) { losses[n] = 0.0; }
    if (p.grad == 1u) { for (var j = li; j < p.V; j += 256u) { logits[base + j] = 0.0; } }
    return;
  }
  if (li == 0u) { losses[n] = mx + log(s) - xt; }
  if (p.grad == 1u) {
    let f = w * p.scale / s;
    for (var j = li; j < p.V; j += 256u) {
      var d = exp(logits[base + j] - mx) * f;
      if (j == u32(tgt)) { d = d - w * p.scale; }
      logits[base + j] = d;
    }
  }
}`,
);

/** dst[dstOff + r * C + c] = src[srcOff + (r * stride + last) * C + c]: picks rows (the last position of each sequence). */
export const gatherRows = kernel(
  'gather_rows',
  [
    ['rows', 'u32'],
    ['C', 'u32'],
    ['stride', 'u32'],
    ['last', 'u32'],
  ],
  [
    ['dst', 'rw'],
    ['src', 'read'],
  ],
  /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= p.rows * p.C) { return; }
  let r = i / p.C;
  let c = i % p.C;
  dst[i] = src[(r * p.stride + p.last) * p.C + c];
}`,
);

/**
 * Appends the keys and values of S new positions (from qkv, (B, S, 3C)) to a layer's cache (B, maxLen, 2C) at
 * position pos0.
 */
export const cacheAppend = kernel(
  'cache_append',
  [
    ['B', 'u32'],
    ['S', 'u32'],
    ['C', 'u32'],
    ['maxLen', 'u32'],
    ['pos0', 'u32'],
  ],
  [
    ['cache', 'rw'],
    ['qkv', 'read'],
  ],
  /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  let C2 = 2u * p.C;
  if (i >= p.B * p.S * C2) { return; }
  let row = i / C2;
  let c = i % C2;
  let b = row / p.S;
  let s = row % p.S;
  cache[(b * p.maxLen + p.pos0 + s) * C2 + c] = qkv[row * 3u * p.C + p.C + c];
}`,
);

// ---- attention --------------------------------------------------------------------------------------------------

const ATTN_FIELDS: readonly (readonly [string, FieldType])[] = [
  ['B', 'u32'],
  ['S', 'u32'], // queries per sequence
  ['NH', 'u32'],
  ['C', 'u32'],
  ['pos0', 'u32'], // absolute position of the first query
  ['kvRows', 'u32'], // rows per sequence in the key/value source
  ['kvStride', 'u32'], // floats per row of the key/value source
  ['kOff', 'u32'],
  ['vOff', 'u32'],
  ['scale', 'f32'],
];

/** Query rows per workgroup (one thread each), and key rows staged per tile for a head size. */
export const ATTN_ROWS = 32;
export const attnKeyTile = (hs: number): number => (hs <= 64 ? 32 : 16);

/**
 * Flash-style causal attention forward: each thread owns one query row and walks the keys in tiles staged in
 * workgroup memory, keeping a running max and sum (online softmax), so no T x T matrix is ever stored. The
 * log-sum-exp of each row is kept for the backward pass. Keys and values come from `kv` (the qkv activations in
 * training, a layer's cache when decoding), so decoding with a KV cache runs the same kernel.
 */
export function attentionForward(hs: number): KernelSource {
  const bk = attnKeyTile(hs);
  return kernel(
    `attention_forward_hs${hs}`,
    ATTN_FIELDS,
    [
      ['outp', 'rw'],
      ['lse', 'rw'],
      ['qkv', 'read'],
      ['kv', 'read'],
    ],
    /* wgsl */ `
const HS: u32 = ${hs}u;
const BK: u32 = ${bk}u;
var<workgroup> Ks: array<f32, ${bk * hs}>;
var<workgroup> Vs: array<f32, ${bk * hs}>;
@compute @workgroup_size(${ATTN_ROWS})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  // wid.x: block of queries, wid.y: head, wid.z: sequence
  let h = wid.y;
  let b = wid.z;
  let s = wid.x * ${ATTN_ROWS}u + li;
  let valid = s < p.S;
  let qpos = p.pos0 + s;
  var q: array<f32, ${hs}>;
  var o: array<f32, ${hs}>;
  if (valid) {
    let qb = (b * p.S + s) * 3u * p.C + h * HS;
    for (var d = 0u; d < HS; d++) { q[d] = qkv[qb + d] * p.scale; }
  }
  var m = -3.402823e38;
  var l = 0.0;
  // keys this block needs: up to the last query's position
  let lastQ = min(p.S, (wid.x + 1u) * ${ATTN_ROWS}u) - 1u;
  let nKeys = p.pos0 + lastQ + 1u;
  for (var j0 = 0u; j0 < nKeys; j0 += BK) {
    for (var e = li; e < BK * HS; e += ${ATTN_ROWS}u) {
      let jr = j0 + e / HS;
      let d = e % HS;
      var kx = 0.0;
      var vx = 0.0;
      if (jr < nKeys) {
        let kb = (b * p.kvRows + jr) * p.kvStride + h * HS + d;
        kx = kv[kb + p.kOff];
        vx = kv[kb + p.vOff];
      }
      Ks[e] = kx;
      Vs[e] = vx;
    }
    workgroupBarrier();
    if (valid) {
      let jEnd = min(BK, qpos + 1u - min(qpos + 1u, j0));
      for (var j = 0u; j < jEnd; j++) {
        var sc = 0.0;
        for (var d = 0u; d < HS; d++) { sc = sc + q[d] * Ks[j * HS + d]; }
        let mNew = max(m, sc);
        let corr = exp(m - mNew);
        let pj = exp(sc - mNew);
        l = l * corr + pj;
        for (var d = 0u; d < HS; d++) { o[d] = o[d] * corr + pj * Vs[j * HS + d]; }
        m = mNew;
      }
    }
    workgroupBarrier();
  }
  if (valid) {
    let ob = (b * p.S + s) * p.C + h * HS;
    let inv = 1.0 / l;
    for (var d = 0u; d < HS; d++) { outp[ob + d] = o[d] * inv; }
    lse[(b * p.NH + h) * p.S + s] = m + log(l);
  }
}`,
  );
}

const ATTN_BWD_FIELDS: readonly (readonly [string, FieldType])[] = [
  ['B', 'u32'],
  ['T', 'u32'],
  ['NH', 'u32'],
  ['C', 'u32'],
  ['scale', 'f32'],
];

/** D[b, h, t] = sum_d dout * out over the head's channels (the softmax backward's row term). */
export const attentionBackwardD = kernel(
  'attention_backward_d',
  ATTN_BWD_FIELDS,
  [
    ['D', 'rw'],
    ['outp', 'read'],
    ['dout', 'read'],
  ],
  /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= p.B * p.NH * p.T) { return; }
  let t = i % p.T;
  let h = (i / p.T) % p.NH;
  let b = i / (p.T * p.NH);
  let hs = p.C / p.NH;
  let base = (b * p.T + t) * p.C + h * hs;
  var s = 0.0;
  for (var d = 0u; d < hs; d++) { s = s + outp[base + d] * dout[base + d]; }
  D[i] = s;
}`,
);

/**
 * dQ: one thread per query row walks its keys (tiles of K and V in workgroup memory), recomputing each
 * probability from the saved log-sum-exp: dq = scale * sum_j p_ij (dO_i . v_j - D_i) k_j.
 */
export function attentionBackwardQ(hs: number): KernelSource {
  const bk = attnKeyTile(hs);
  return kernel(
    `attention_backward_q_hs${hs}`,
    ATTN_BWD_FIELDS,
    [
      ['dqkv', 'rw'],
      ['qkv', 'read'],
      ['dout', 'read'],
      ['lse', 'read'],
      ['D', 'read'],
    ],
    /* wgsl */ `
const HS: u32 = ${hs}u;
const BK: u32 = ${bk}u;
var<workgroup> Ks: array<f32, ${bk * hs}>;
var<workgroup> Vs: array<f32, ${bk * hs}>;
@compute @workgroup_size(${ATTN_ROWS})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let h = wid.y;
  let b = wid.z;
  let t = wid.x * ${ATTN_ROWS}u + li;
  let valid = t < p.T;
  let C3 = 3u * p.C;
  var q: array<f32, ${hs}>;
  var g: array<f32, ${hs}>;
  var dq: array<f32, ${hs}>;
  var lrow = 0.0;
  var drow = 0.0;
  if (valid) {
    let qb = (b * p.T + t) * C3 + h * HS;
    let ob = (b * p.T + t) * p.C + h * HS;
    for (var d = 0u; d < HS; d++) { q[d] = qkv[qb + d] * p.scale; g[d] = dout[ob + d]; }
    let r = (b * p.NH + h) * p.T + t;
    lrow = lse[r];
    drow = D[r];
  }
  let lastT = min(p.T, (wid.x + 1u) * ${ATTN_ROWS}u) - 1u;
  for (var j0 = 0u; j0 <= lastT; j0 += BK) {
    for (var e = li; e < BK * HS; e += ${ATTN_ROWS}u) {
      let jr = j0 + e / HS;
      let d = e % HS;
      var kx = 0.0;
      var vx = 0.0;
      if (jr <= lastT) {
        let kb = (b * p.T + jr) * C3 + h * HS + d;
        kx = qkv[kb + p.C];
        vx = qkv[kb + 2u * p.C];
      }
      Ks[e] = kx;
      Vs[e] = vx;
    }
    workgroupBarrier();
    if (valid && j0 <= t) {
      let jEnd = min(BK, t + 1u - j0);
      for (var j = 0u; j < jEnd; j++) {
        var sc = 0.0;
        var dp = 0.0;
        for (var d = 0u; d < HS; d++) { sc = sc + q[d] * Ks[j * HS + d]; dp = dp + g[d] * Vs[j * HS + d]; }
        let ds = exp(sc - lrow) * (dp - drow);
        for (var d = 0u; d < HS; d++) { dq[d] = dq[d] + ds * Ks[j * HS + d]; }
      }
    }
    workgroupBarrier();
  }
  if (valid) {
    let qb = (b * p.T + t) * C3 + h * HS;
    for (var d = 0u; d < HS; d++) { dqkv[qb + d] = dq[d] * p.scale; }
  }
}`,
  );
}

/**
 * dK and dV: one thread per key row walks the queries at or after it (tiles of Q and dO in workgroup memory):
 * dv_j = sum_i p_ij dO_i, dk_j = scale * sum_i p_ij (dO_i . v_j - D_i) q_i.
 */
export function attentionBackwardKV(hs: number): KernelSource {
  const bk = attnKeyTile(hs);
  return kernel(
    `attention_backward_kv_hs${hs}`,
    ATTN_BWD_FIELDS,
    [
      ['dqkv', 'rw'],
      ['qkv', 'read'],
      ['dout', 'read'],
      ['lse', 'read'],
      ['D', 'read'],
    ],
    /* wgsl */ `
const HS: u32 = ${hs}u;
const BK: u32 = ${bk}u;
var<workgroup> Qs: array<f32, ${bk * hs}>;
var<workgroup> Gs: array<f32, ${bk * hs}>;
var<workgroup> Ls: array<f32, ${bk}>;
var<workgroup> Ds: array<f32, ${bk}>;
@compute @workgroup_size(${ATTN_ROWS})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let h = wid.y;
  let b = wid.z;
  let j = wid.x * ${ATTN_ROWS}u + li;
  let valid = j < p.T;
  let C3 = 3u * p.C;
  var k: array<f32, ${hs}>;
  var v: array<f32, ${hs}>;
  var dk: array<f32, ${hs}>;
  var dv: array<f32, ${hs}>;
  if (valid) {
    let kb = (b * p.T + j) * C3 + h * HS;
    for (var d = 0u; d < HS; d++) { k[d] = qkv[kb + p.C + d]; v[d] = qkv[kb + 2u * p.C + d]; }
  }
  let firstJ = wid.x * ${ATTN_ROWS}u;
  for (var i0 = firstJ; i0 < p.T; i0 += BK) {
    for (var e = li; e < BK * HS; e += ${ATTN_ROWS}u) {
      let ir = i0 + e / HS;
      let d = e % HS;
      var qx = 0.0;
      var gx = 0.0;
      if (ir < p.T) {
        qx = qkv[(b * p.T + ir) * C3 + h * HS + d] * p.scale;
        gx = dout[(b * p.T + ir) * p.C + h * HS + d];
      }
      Qs[e] = qx;
      Gs[e] = gx;
    }
    for (var e = li; e < BK; e += ${ATTN_ROWS}u) {
      let ir = i0 + e;
      var lx = 0.0;
      var dx = 0.0;
      if (ir < p.T) { let r = (b * p.NH + h) * p.T + ir; lx = lse[r]; dx = D[r]; }
      Ls[e] = lx;
      Ds[e] = dx;
    }
    workgroupBarrier();
    if (valid) {
      let iEnd = min(BK, p.T - i0);
      for (var ii = 0u; ii < iEnd; ii++) {
        if (i0 + ii < j) { continue; }
        var sc = 0.0;
        var dp = 0.0;
        for (var d = 0u; d < HS; d++) { sc = sc + Qs[ii * HS + d] * k[d]; dp = dp + Gs[ii * HS + d] * v[d]; }
        let pr = exp(sc - Ls[ii]);
        let ds = pr * (dp - Ds[ii]);
        for (var d = 0u; d < HS; d++) {
          dv[d] = dv[d] + pr * Gs[ii * HS + d];
          dk[d] = dk[d] + ds * Qs[ii * HS + d];
        }
      }
    }
    workgroupBarrier();
  }
  if (valid) {
    let kb = (b * p.T + j) * C3 + h * HS;
    for (var d = 0u; d < HS; d++) { dqkv[kb + p.C + d] = dk[d]; dqkv[kb + 2u * p.C + d] = dv[d]; }
  }
}`,
  );
}
