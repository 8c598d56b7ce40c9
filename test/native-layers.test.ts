/**
 * Each layer of the native engine, forward and backward, against TF.js autodiff (the cpu backend, plain float32)
 * on random inputs of awkward sizes (not multiples of the SIMD width), with both GEMM backends and 1 or 3 threads.
 * The backward of a layer is checked as the gradient of sum(out * dout) for a random dout.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../src/core/random';
import { GEMM_CASES, addon, maxAbs, maxAbsDiff } from '../src/node/native/testing';

/** Forward outputs within 1e-5 and gradients within 1e-4, relative to the largest reference value (at least 1). */
const FWD_TOL = 1e-5;
const GRAD_TOL = 1e-4;

function close(got: Float32Array, want: Float32Array | number[], tol: number, what: string): void {
  const w = want instanceof Float32Array ? want : Float32Array.from(want);
  const err = maxAbsDiff(got, w) / Math.max(1, maxAbs(w));
  expect(err, `${what}: max relative error`).toBeLessThan(tol);
}

const rand = (rng: Rng, n: number, scale = 1): Float32Array =>
  Float32Array.from({ length: n }, () => rng.normal() * scale);

/** The gradients of sum(f(...xs) * dout) with respect to xs, and f's value. */
function vjp(
  f: (...xs: tf.Tensor[]) => tf.Tensor,
  xs: tf.Tensor[],
  dout: tf.Tensor,
): { out: Float32Array; grads: Float32Array[] } {
  return tf.tidy(() => {
    const out = f(...xs).dataSync() as Float32Array;
    const grads = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(f(...a), dout)))(xs);
    return { out: Float32Array.from(out), grads: grads.map((g) => Float32Array.from(g.dataSync())) };
  });
}

const GELU_K = Math.sqrt(2 / Math.PI);

beforeAll(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
});

describe.each(GEMM_CASES.flatMap((c) => [1, 3].map((threads) => ({ ...c, threads }))))(
  'native layers against TF.js autodiff, $title, $threads thread(s)',
  ({ gemm, skip, threads }) => {
    const run = (
      name: Parameters<NonNullable<typeof addon>['layerCheck']>[0],
      arrays: Record<string, Float32Array | Int32Array>,
      dims: Record<string, number>,
    ) => addon!.layerCheck(name, arrays, dims, gemm, threads);

    it.skipIf(!!skip)('encoder: wte[token] + wpe[t], gradients scattered into both tables', () => {
      const rng = new Rng(1);
      const [B, T, C, V] = [3, 7, 20, 11];
      const inp = Int32Array.from({ length: B * T }, () => rng.int(V));
      inp[0] = inp[1] = inp[5]!; // repeated tokens accumulate
      const wte = rand(rng, V * C);
      const wpe = rand(rng, T * C);
      const dout = rand(rng, B * T * C);
      const got = run('encoder', { inp, wte, wpe, dout }, { B, T, C, V });
      const pos = Int32Array.from({ length: B * T }, (_, i) => i % T);
      const ref = vjp(
        (te, pe) => tf.add(tf.gather(te, tf.tensor1d(inp, 'int32')), tf.gather(pe, tf.tensor1d(pos, 'int32'))),
        [tf.tensor2d(wte, [V, C]), tf.tensor2d(wpe, [T, C])],
        tf.tensor2d(dout, [B * T, C]),
      );
      close(got.out!, ref.out, FWD_TOL, 'out');
      close(got.dwte!, ref.grads[0]!, GRAD_TOL, 'dwte');
      close(got.dwpe!, ref.grads[1]!, GRAD_TOL, 'dwpe');
    });

    it.skipIf(!!skip)('layernorm (biased variance, eps 1e-5): out, dx, dw, db', () => {
      const rng = new Rng(2);
      const [N, C] = [37, 24];
      const x = rand(rng, N * C, 2).map((v, i) => v + (i % C) * 0.1); // rows with a mean away from 0
      const w = rand(rng, C).map((v) => 1 + 0.2 * v);
      const b = rand(rng, C, 0.2);
      const dout = rand(rng, N * C);
      const got = run('layernorm', { x, w, b, dout }, { N, C });
      const ref = vjp(
        (xt, wt, bt) => {
          const { mean, variance } = tf.moments(xt, -1, true);
          return tf.add(tf.mul(tf.mul(tf.sub(xt, mean), tf.rsqrt(tf.add(variance, 1e-5))), wt), bt);
        },
        [tf.tensor2d(x, [N, C]), tf.tensor1d(w), tf.tensor1d(b)],
        tf.tensor2d(dout, [N, C]),
      );
      close(got.out!, ref.out, FWD_TOL, 'out');
      close(got.dx!, ref.grads[0]!, GRAD_TOL, 'dx');
      close(got.dw!, ref.grads[1]!, GRAD_TOL, 'dw');
      close(got.db!, ref.grads[2]!, GRAD_TOL, 'db');
    });

    it.skipIf(!!skip)('matmul with bias, weights [out, in]: out, dx, dW, dbias', () => {
      const rng = new Rng(3);
      // odd sizes: the edges of every packed panel, and a K larger than one packed block (256)
      for (const [N, IC, OC] of [
        [37, 40, 72],
        [5, 300, 33],
        [130, 17, 9],
      ] as const) {
        const x = rand(rng, N * IC);
        const W = rand(rng, OC * IC, 0.1);
        const bias = rand(rng, OC);
        const dout = rand(rng, N * OC);
        const got = run('matmul', { x, W, bias, dout }, { N, IC, OC });
        const ref = vjp(
          (xt, wt, bt) => tf.add(tf.matMul(xt, wt, false, true), bt),
          [tf.tensor2d(x, [N, IC]), tf.tensor2d(W, [OC, IC]), tf.tensor1d(bias)],
          tf.tensor2d(dout, [N, OC]),
        );
        close(got.out!, ref.out, FWD_TOL, `out ${N}x${IC}x${OC}`);
        close(got.dx!, ref.grads[0]!, GRAD_TOL, `dx ${N}x${IC}x${OC}`);
        close(got.dW!, ref.grads[1]!, GRAD_TOL, `dW ${N}x${IC}x${OC}`);
        close(got.dbias!, ref.grads[2]!, GRAD_TOL, `dbias ${N}x${IC}x${OC}`);
      }
    });

    it.skipIf(!!skip)('causal self-attention over packed qkv: out and dqkv', () => {
      const rng = new Rng(4);
      const [B, T, C, NH] = [2, 13, 24, 3];
      const hs = C / NH;
      const qkv = rand(rng, B * T * 3 * C);
      const dout = rand(rng, B * T * C);
      const got = run('attention', { qkv, dout }, { B, T, C, NH });
      const mask = tf.tensor2d(
        Float32Array.from({ length: T * T }, (_, i) => (i % T <= Math.floor(i / T) ? 0 : -1e9)),
        [T, T],
      );
      const ref = vjp(
        (x) => {
          const [q, k, v] = tf.split(x, 3, 2).map((t) => tf.transpose(tf.reshape(t, [B, T, NH, hs]), [0, 2, 1, 3]));
          const att = tf.softmax(tf.add(tf.mul(tf.matMul(q!, k!, false, true), 1 / Math.sqrt(hs)), mask), -1);
          return tf.reshape(tf.transpose(tf.matMul(att, v!), [0, 2, 1, 3]), [B, T, C]);
        },
        [tf.tensor3d(qkv, [B, T, 3 * C])],
        tf.tensor3d(dout, [B, T, C]),
      );
      close(got.out!, ref.out, FWD_TOL, 'out');
      close(got.dqkv!, ref.grads[0]!, GRAD_TOL, 'dqkv');
    });

    it.skipIf(!!skip)('GELU (tanh approximation): out and dx, including large |x|', () => {
      const rng = new Rng(5);
      const N = 203;
      const x = rand(rng, N, 3);
      x[0] = -30;
      x[1] = 30;
      x[2] = 0;
      const dout = rand(rng, N);
      const got = run('gelu', { x, dout }, { N });
      const ref = vjp(
        (t) => tf.mul(tf.mul(t, 0.5), tf.add(tf.tanh(tf.mul(tf.add(t, tf.mul(tf.pow(t, 3), 0.044715)), GELU_K)), 1)),
        [tf.tensor1d(x)],
        tf.tensor1d(dout),
      );
      close(got.out!, ref.out, FWD_TOL, 'out');
      close(got.dx!, ref.grads[0]!, GRAD_TOL, 'dx');
    });

    it.skipIf(!!skip)('softmax cross-entropy with weights, an ignored target and a scale: losses and dlogits', () => {
      const rng = new Rng(6);
      const [N, V] = [9, 101];
      const logits = rand(rng, N * V, 3);
      const targets = Int32Array.from({ length: N }, () => rng.int(V));
      targets[4] = -1;
      const weights = Float32Array.from({ length: N }, (_, i) => (i === 4 || i === 6 ? 0 : 1 / 7));
      const scale = 0.5;
      const got = run('crossentropy', { logits, targets, weights }, { N, V, scale });
      const safeT = tf.tensor1d(
        Int32Array.from(targets, (t) => Math.max(t, 0)),
        'int32',
      );
      const onehot = tf.oneHot(safeT, V);
      const perRow = (x: tf.Tensor) => tf.sub(tf.logSumExp(x, 1), tf.sum(tf.mul(x, onehot), 1));
      const ref = vjp(
        (x) => tf.mul(tf.sum(tf.mul(perRow(x), tf.tensor1d(weights))), scale),
        [tf.tensor2d(logits, [N, V])],
        tf.scalar(1),
      );
      const losses = tf.tidy(() => perRow(tf.tensor2d(logits, [N, V])).dataSync() as Float32Array);
      for (let i = 0; i < N; i++) {
        if (weights[i] === 0) expect(Number.isNaN(got.losses![i]), `loss ${i} is NaN`).toBe(true);
        else expect(Math.abs(got.losses![i]! - losses[i]!)).toBeLessThan(1e-5 * Math.max(1, Math.abs(losses[i]!)));
      }
      close(got.dlogits!, ref.grads[0]!, GRAD_TOL, 'dlogits');
    });
  },
);
