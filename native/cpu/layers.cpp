// The GPT-2 layers of the CPU engine; see layers.h for shapes and contracts.
#include "layers.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <vector>

#include "simd.h"
#include "threads.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace gpt2cpu {

/**
 * Whether an elementwise pass over n floats is worth waking the thread team: below ~16K floats (a few
 * microseconds of work) the fork and join cost more than they save, and most of the KV-cache decode is that small.
 */
static inline bool parallel_worth(size_t n) { return n >= (1u << 14); }

size_t layer_scratch_floats(int threads, int C, int maxT) {
  // attention_backward: one row of T per thread
  (void)C;
  return (size_t)threads * maxT;
}

// ---- encoder ----------------------------------------------------------------------------------------------------

void encoder_forward(const Ctx& cx, float* out, const int* inp, const float* wte, const float* wpe, int B, int T, int C,
                     int pos0) {
#pragma omp parallel for num_threads(cx.threads) schedule(static) if (parallel_worth((size_t)B * T * C))
  for (int n = 0; n < B * T; n++) {
    const float* te = wte + (size_t)inp[n] * C;
    const float* pe = wpe + (size_t)(pos0 + n % T) * C;
    float* o = out + (size_t)n * C;
    for (int i = 0; i < C; i++) o[i] = te[i] + pe[i];
  }
}

void encoder_backward(const Ctx& cx, float* dwte, float* dwpe, const float* dout, const int* inp, int B, int T, int C) {
  // Rows of dwte repeat when a token repeats, so threads split the channels, not the positions: no races, and a
  // fixed summation order.
#pragma omp parallel num_threads(cx.threads)
  {
    const int t = thread_id(), nt = team_size();
    const int c0 = C * t / nt, c1 = C * (t + 1) / nt;
    for (int n = 0; n < B * T; n++) {
      const float* d = dout + (size_t)n * C;
      float* wt = dwte + (size_t)inp[n] * C;
      float* wp = dwpe + (size_t)(n % T) * C;
      for (int i = c0; i < c1; i++) {
        wt[i] += d[i];
        wp[i] += d[i];
      }
    }
  }
}

// ---- layernorm --------------------------------------------------------------------------------------------------

void layernorm_forward(const Ctx& cx, float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b,
                       int N, int C, float eps) {
#pragma omp parallel for num_threads(cx.threads) schedule(static) if (parallel_worth((size_t)N * C))
  for (int n = 0; n < N; n++) {
    const float* x = inp + (size_t)n * C;
    float m = 0.f;
#pragma omp simd reduction(+ : m)
    for (int i = 0; i < C; i++) m += x[i];
    m /= C;
    float v = 0.f;
#pragma omp simd reduction(+ : v)
    for (int i = 0; i < C; i++) {
      const float d = x[i] - m;
      v += d * d;
    }
    v /= C;
    const float s = 1.f / std::sqrt(v + eps);
    float* o = out + (size_t)n * C;
#pragma omp simd
    for (int i = 0; i < C; i++) o[i] = (x[i] - m) * s * w[i] + b[i];
    if (mean) mean[n] = m;
    if (rstd) rstd[n] = s;
  }
}

void layernorm_backward(const Ctx& cx, float* dinp, float* dw, float* db, const float* dout, const float* inp,
                        const float* w, const float* mean, const float* rstd, int N, int C) {
#pragma omp parallel num_threads(cx.threads)
  {
    // dinp, row by row
#pragma omp for schedule(static)
    for (int n = 0; n < N; n++) {
      const float* x = inp + (size_t)n * C;
      const float* d = dout + (size_t)n * C;
      float* di = dinp + (size_t)n * C;
      const float m = mean[n], s = rstd[n];
      // dnorm = dout * w; the two row means of the layernorm gradient
      float dnm = 0.f, dnnm = 0.f;
#pragma omp simd reduction(+ : dnm, dnnm)
      for (int i = 0; i < C; i++) {
        const float norm = (x[i] - m) * s, dn = d[i] * w[i];
        dnm += dn;
        dnnm += dn * norm;
      }
      dnm /= C;
      dnnm /= C;
#pragma omp simd
      for (int i = 0; i < C; i++) {
        const float norm = (x[i] - m) * s, dn = d[i] * w[i];
        di[i] += (dn - dnm - norm * dnnm) * s;
      }
    }
    // dw and db, by blocks of columns summed over the rows in order: the same bits for any thread count
    const int blocks = (C + 63) / 64;
#pragma omp for schedule(static)
    for (int blk = 0; blk < blocks; blk++) {
      const int c0 = blk * 64, cn = std::min(64, C - c0);
      float aw[64] = {0}, ab[64] = {0};
      for (int n = 0; n < N; n++) {
        const float* x = inp + (size_t)n * C + c0;
        const float* d = dout + (size_t)n * C + c0;
        const float m = mean[n], s = rstd[n];
#pragma omp simd
        for (int i = 0; i < cn; i++) {
          aw[i] += (x[i] - m) * s * d[i];
          ab[i] += d[i];
        }
      }
      for (int i = 0; i < cn; i++) {
        dw[c0 + i] += aw[i];
        db[c0 + i] += ab[i];
      }
    }
  }
}

// ---- matmul -----------------------------------------------------------------------------------------------------

void matmul_forward(const Ctx& cx, float* out, const float* inp, const float* W, const float* bias, const float* add, int N,
                    int IC, int OC) {
  float beta = 0.f;
  if (bias || add) {
    // out = add + bias first, then the GEMM accumulates onto it (beta = 1): the residual and bias cost one pass
#pragma omp parallel for num_threads(cx.threads) schedule(static) if (parallel_worth((size_t)N * OC))
    for (int n = 0; n < N; n++) {
      float* o = out + (size_t)n * OC;
      const float* a = add ? add + (size_t)n * OC : nullptr;
#pragma omp simd
      for (int i = 0; i < OC; i++) o[i] = (a ? a[i] : 0.f) + (bias ? bias[i] : 0.f);
    }
    beta = 1.f;
  }
  sgemm(cx, false, true, N, OC, IC, 1.f, inp, IC, W, IC, beta, out, OC);
}

void matmul_backward(const Ctx& cx, float* dinp, float* dW, float* dbias, const float* dout, const float* inp, const float* W,
                     int N, int IC, int OC) {
  // dinp (N, IC) = dout (N, OC) @ W (OC, IC)
  sgemm(cx, false, false, N, IC, OC, 1.f, dout, OC, W, IC, 0.f, dinp, IC);
  // dW (OC, IC) += dout^T (OC, N) @ inp (N, IC)
  sgemm(cx, true, false, OC, IC, N, 1.f, dout, OC, inp, IC, 1.f, dW, IC);
  if (dbias) {
    // column sums of dout: threads own blocks of 64 columns, each summed over all rows in order
    const int blocks = (OC + 63) / 64;
#pragma omp parallel for num_threads(cx.threads) schedule(static)
    for (int blk = 0; blk < blocks; blk++) {
      const int o0 = blk * 64, oc = std::min(64, OC - o0);
      float acc[64] = {0};
      for (int n = 0; n < N; n++) {
        const float* d = dout + (size_t)n * OC + o0;
#pragma omp simd
        for (int i = 0; i < oc; i++) acc[i] += d[i];
      }
      for (int i = 0; i < oc; i++) dbias[o0 + i] += acc[i];
    }
  }
}

// ---- attention --------------------------------------------------------------------------------------------------

/** row[0..n) = softmax(row[0..n)) in place. */
static void softmax_inplace(float* row, int n) {
  vfloat vm = vset1(-FLT_MAX);
  int j = 0;
  for (; j + VL <= n; j += VL) vm = vmax(vm, vload(row + j));
  float maxv = hmax(vm);
  for (; j < n; j++) maxv = std::max(maxv, row[j]);
  const vfloat vmx = vset1(maxv);
  vfloat vs{};
  j = 0;
  for (; j + VL <= n; j += VL) {
    const vfloat e = vexp(vload(row + j) - vmx);
    vstore(row + j, e);
    vs += e;
  }
  float sum = hsum(vs);
  for (; j < n; j++) {
    row[j] = sexp(row[j] - maxv);
    sum += row[j];
  }
  const vfloat inv = vset1(1.f / sum);
  j = 0;
  for (; j + VL <= n; j += VL) vstore(row + j, vload(row + j) * inv);
  for (; j < n; j++) row[j] *= inv[0];
}

void attention_forward(const Ctx& cx, float* out, float* att, const float* qkv, int B, int T, int C, int NH) {
  const int hs = C / NH, C3 = 3 * C;
  const float scale = 1.f / std::sqrt((float)hs);
#pragma omp parallel for collapse(2) num_threads(cx.threads) schedule(static)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++) {
      const float* base = qkv + (size_t)b * T * C3 + h * hs;  // q of (b, 0, h); k at +C, v at +2C
      for (int t = 0; t < T; t++) {
        const float* q = base + (size_t)t * C3;
        float* row = att + ((size_t)(b * NH + h) * T + t) * T;
        for (int t2 = 0; t2 <= t; t2++) row[t2] = vdot(q, base + (size_t)t2 * C3 + C, hs) * scale;
        softmax_inplace(row, t + 1);
        float* o = out + ((size_t)b * T + t) * C + h * hs;
        std::memset(o, 0, sizeof(float) * hs);
        for (int t2 = 0; t2 <= t; t2++) vaxpy(o, row[t2], base + (size_t)t2 * C3 + 2 * C, hs);
      }
    }
}

void attention_backward(const Ctx& cx, float* dqkv, float* scratch, const float* dout, const float* qkv, const float* att,
                        int B, int T, int C, int NH) {
  const int hs = C / NH, C3 = 3 * C;
  const float scale = 1.f / std::sqrt((float)hs);
#pragma omp parallel num_threads(cx.threads)
  {
    float* datt = scratch + (size_t)thread_id() * T;  // (T) d of one softmax row
#pragma omp for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
      for (int h = 0; h < NH; h++) {
        // this (b, h) owns columns h*hs .. of q, k and v in rows of batch b: no other iteration touches them
        const float* base = qkv + (size_t)b * T * C3 + h * hs;
        float* dbase = dqkv + (size_t)b * T * C3 + h * hs;
        for (int t = 0; t < T; t++)
          for (int s = 0; s < 3; s++) std::memset(dbase + (size_t)t * C3 + s * C, 0, sizeof(float) * hs);
        for (int t = 0; t < T; t++) {
          const float* row = att + ((size_t)(b * NH + h) * T + t) * T;
          const float* dy = dout + ((size_t)b * T + t) * C + h * hs;
          // out[t] = sum_t2 att[t2] v[t2]
          float dot_sum = 0.f;
          for (int t2 = 0; t2 <= t; t2++) {
            datt[t2] = vdot(dy, base + (size_t)t2 * C3 + 2 * C, hs);
            vaxpy(dbase + (size_t)t2 * C3 + 2 * C, row[t2], dy, hs);
            dot_sum += row[t2] * datt[t2];
          }
          // softmax backward, then the scaled scores q . k
          const float* q = base + (size_t)t * C3;
          float* dq = dbase + (size_t)t * C3;
          for (int t2 = 0; t2 <= t; t2++) {
            const float dp = row[t2] * (datt[t2] - dot_sum) * scale;
            vaxpy(dq, dp, base + (size_t)t2 * C3 + C, hs);
            vaxpy(dbase + (size_t)t2 * C3 + C, dp, q, hs);
          }
        }
      }
  }
}

// ---- GELU -------------------------------------------------------------------------------------------------------

static const float kGeluK = 0.7978845608028654f;  // sqrt(2 / pi)
static const float kGeluA = 0.044715f;

void gelu_forward(const Ctx& cx, float* out, const float* inp, size_t n) {
  const long blocks = (long)((n + VL - 1) / VL);
#pragma omp parallel for num_threads(cx.threads) schedule(static) if (parallel_worth(n))
  for (long blk = 0; blk < blocks; blk++) {
    const size_t i = (size_t)blk * VL;
    if (i + VL <= n) {
      const vfloat x = vload(inp + i);
      const vfloat u = vset1(kGeluK) * (x + vset1(kGeluA) * x * x * x);
      vstore(out + i, x / (vset1(1.f) + vexp(vset1(-2.f) * u)));
    } else {
      for (size_t j = i; j < n; j++) {
        const float x = inp[j], u = kGeluK * (x + kGeluA * x * x * x);
        out[j] = x / (1.f + sexp(-2.f * u));
      }
    }
  }
}

void gelu_backward(const Ctx& cx, float* dinout, const float* inp, size_t n) {
  // d/dx [x s(2u)] = s + 2 x s (1 - s) du/dx, s = sigmoid(2u) = (1 + tanh u) / 2, du/dx = K (1 + 3 A x^2)
  const long blocks = (long)((n + VL - 1) / VL);
#pragma omp parallel for num_threads(cx.threads) schedule(static)
  for (long blk = 0; blk < blocks; blk++) {
    const size_t i = (size_t)blk * VL;
    if (i + VL <= n) {
      const vfloat x = vload(inp + i), x2 = x * x;
      const vfloat u = vset1(kGeluK) * (x + vset1(kGeluA) * x2 * x);
      const vfloat s = vset1(1.f) / (vset1(1.f) + vexp(vset1(-2.f) * u));
      const vfloat g = s + vset1(2.f) * x * s * (vset1(1.f) - s) * vset1(kGeluK) * (vset1(1.f) + vset1(3.f * kGeluA) * x2);
      vstore(dinout + i, vload(dinout + i) * g);
    } else {
      for (size_t j = i; j < n; j++) {
        const float x = inp[j], u = kGeluK * (x + kGeluA * x * x * x);
        const float s = 1.f / (1.f + sexp(-2.f * u));
        dinout[j] *= s + 2.f * x * s * (1.f - s) * kGeluK * (1.f + 3.f * kGeluA * x * x);
      }
    }
  }
}

// ---- cross-entropy ----------------------------------------------------------------------------------------------

double crossentropy(const Ctx& cx, float* logits, float* losses, const int* targets, const float* weights, int N, int V,
                    bool grad, float scale) {
#pragma omp parallel for num_threads(cx.threads) schedule(static)
  for (int n = 0; n < N; n++) {
    float* row = logits + (size_t)n * V;
    const int tgt = targets[n];
    const float w = weights ? weights[n] : (tgt >= 0 ? 1.f : 0.f);
    if (w == 0.f || tgt < 0) {
      losses[n] = NAN;
      if (grad) std::memset(row, 0, sizeof(float) * V);
      continue;
    }
    vfloat vm = vset1(-FLT_MAX);
    int j = 0;
    for (; j + VL <= V; j += VL) vm = vmax(vm, vload(row + j));
    float maxv = hmax(vm);
    for (; j < V; j++) maxv = std::max(maxv, row[j]);
    const float xt = row[tgt];
    const vfloat vmx = vset1(maxv);
    vfloat vs{};
    j = 0;
    if (grad) {  // keep exp(x - max) for the gradient
      for (; j + VL <= V; j += VL) {
        const vfloat e = vexp(vload(row + j) - vmx);
        vstore(row + j, e);
        vs += e;
      }
    } else {
      for (; j + VL <= V; j += VL) vs += vexp(vload(row + j) - vmx);
    }
    double sum = hsum(vs);
    for (; j < V; j++) {
      const float e = sexp(row[j] - maxv);
      if (grad) row[j] = e;
      sum += e;
    }
    const double lse = maxv + std::log(sum);
    losses[n] = (float)(lse - xt);
    if (grad) {
      // dlogits = (softmax - onehot) * w * scale
      const float ws = w * scale;
      const vfloat f = vset1((float)(ws / sum));
      j = 0;
      for (; j + VL <= V; j += VL) vstore(row + j, vload(row + j) * f);
      for (; j < V; j++) row[j] *= f[0];
      row[tgt] -= ws;
    }
  }
  double total = 0;  // in row order, so the result does not depend on the thread count
  for (int n = 0; n < N; n++) {
    const float w = weights ? weights[n] : (targets[n] >= 0 ? 1.f : 0.f);
    if (w != 0.f && targets[n] >= 0) total += (double)losses[n] * w;
  }
  return total;
}

void add_inplace(const Ctx& cx, float* out, const float* a, size_t n) {
#pragma omp parallel for num_threads(cx.threads) schedule(static) if (parallel_worth(n))
  for (long i = 0; i < (long)n; i++) out[i] += a[i];
}

}  // namespace gpt2cpu
