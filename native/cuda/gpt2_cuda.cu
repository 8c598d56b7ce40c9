// The CUDA GPT-2 engine: the C API of native/include/gpt2.h on one GPU, in the layout and numerics of the CPU
// engine (native/cpu/model.cpp), whose structure it follows function for function.
//
// - Matmuls: cuBLAS SGEMM (row-major wrappers), FP32 or TF32 tensor cores (gpt2_set_precision); FP32 master
//   weights, gradients and AdamW state.
// - Attention: q, k, v permuted to (B, NH, T, hs), scores and the weighted sum by strided-batched SGEMM, a causal
//   softmax kernel in between (llm.c's first CUDA version). The softmax rows (B, NH, T, T) of every layer are kept
//   for the backward.
// - Everything else: one kernel per layer function (encoder, layernorm, bias, GELU, residual, cross-entropy,
//   AdamW, norm), FP32.
//
// Not yet verified on a GPU: native/test/test_parity.c checks it against the CPU engine where one is present.
// Next steps (issue 3): a fused flash-style attention (online softmax) instead of the stored (T, T) rows, a BF16
// matmul path, and the Node binding (the native-cuda engine).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "../include/gpt2.h"

namespace {

thread_local std::string tl_error;

int fail(int code, const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  tl_error = buf;
  return code;
}

#define CU(call)                                                                                                   \
  do {                                                                                                             \
    cudaError_t e_ = (call);                                                                                       \
    if (e_ != cudaSuccess) return fail(GPT2_ERR_DEVICE, "%s: %s (%s:%d)", #call, cudaGetErrorString(e_), __FILE__, __LINE__); \
  } while (0)
#define CB(call)                                                                                                   \
  do {                                                                                                             \
    cublasStatus_t s_ = (call);                                                                                    \
    if (s_ != CUBLAS_STATUS_SUCCESS) return fail(GPT2_ERR_DEVICE, "%s: cuBLAS status %d (%s:%d)", #call, (int)s_, __FILE__, __LINE__); \
  } while (0)
#define TRY(expr)            \
  do {                       \
    int rc_ = (expr);        \
    if (rc_ != GPT2_OK) return rc_; \
  } while (0)
#define LAUNCHED() CU(cudaGetLastError())

constexpr int kThreads = 256;
inline int blocks_for(size_t n, int threads = kThreads) { return (int)std::min<size_t>((n + threads - 1) / threads, 65535u * 32u); }

// ---- reductions --------------------------------------------------------------------------------------------------

__device__ inline float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ inline float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ inline double warp_sum_d(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/** The sum over the block (blockDim.x a multiple of 32), returned to every thread. */
__device__ float block_sum(float v) {
  __shared__ float sh[32];
  const int lane = threadIdx.x % 32, wid = threadIdx.x / 32, nw = blockDim.x / 32;
  v = warp_sum(v);
  __syncthreads();  // the previous call's readers are done with sh
  if (lane == 0) sh[wid] = v;
  __syncthreads();
  if (wid == 0) {
    v = warp_sum(lane < nw ? sh[lane] : 0.f);
    if (lane == 0) sh[0] = v;
  }
  __syncthreads();
  return sh[0];
}
__device__ float block_max(float v) {
  __shared__ float sh[32];
  const int lane = threadIdx.x % 32, wid = threadIdx.x / 32, nw = blockDim.x / 32;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) sh[wid] = v;
  __syncthreads();
  if (wid == 0) {
    v = warp_max(lane < nw ? sh[lane] : -FLT_MAX);
    if (lane == 0) sh[0] = v;
  }
  __syncthreads();
  return sh[0];
}

// ---- kernels, one per layer function -----------------------------------------------------------------------------

/** out (N, C) = wte[inp] + wpe[pos0 + n % T] */
__global__ void encoder_forward_kernel(float* out, const int* inp, const float* wte, const float* wpe, int N, int T, int C, int pos0) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (size_t)N * C; i += (size_t)gridDim.x * blockDim.x) {
    const int n = (int)(i / C), c = (int)(i % C);
    out[i] = wte[(size_t)inp[n] * C + c] + wpe[(size_t)(pos0 + n % T) * C + c];
  }
}

/** dwte[inp] += dout, dwpe[t] += dout (atomics: tokens repeat) */
__global__ void encoder_backward_kernel(float* dwte, float* dwpe, const float* dout, const int* inp, int N, int T, int C) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (size_t)N * C; i += (size_t)gridDim.x * blockDim.x) {
    const int n = (int)(i / C), c = (int)(i % C);
    atomicAdd(&dwte[(size_t)inp[n] * C + c], dout[i]);
    atomicAdd(&dwpe[(size_t)(n % T) * C + c], dout[i]);
  }
}

/** One warp per row: out (N, C), mean, rstd (N) (may be null). */
__global__ void layernorm_forward_kernel(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b, int N,
                                         int C, float eps) {
  const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= N) return;
  const float* x = inp + (size_t)row * C;
  float s = 0.f;
  for (int i = lane; i < C; i += 32) s += x[i];
  const float m = warp_sum(s) / C;
  float v = 0.f;
  for (int i = lane; i < C; i += 32) {
    const float d = x[i] - m;
    v += d * d;
  }
  const float r = rsqrtf(warp_sum(v) / C + eps);
  float* o = out + (size_t)row * C;
  for (int i = lane; i < C; i += 32) o[i] = (x[i] - m) * r * w[i] + b[i];
  if (lane == 0) {
    if (mean) mean[row] = m;
    if (rstd) rstd[row] = r;
  }
}

/** One warp per row for dinp (+=); dw, db (+=) summed per block in shared memory (2C floats), then atomics. */
__global__ void layernorm_backward_kernel(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                                          const float* mean, const float* rstd, int N, int C) {
  extern __shared__ float sh[];
  float* sdw = sh;
  float* sdb = sh + C;
  for (int i = threadIdx.x; i < C; i += blockDim.x) sdw[i] = sdb[i] = 0.f;
  __syncthreads();
  const int warps = blockDim.x / 32, lane = threadIdx.x % 32;
  for (int row = blockIdx.x * warps + threadIdx.x / 32; row < N; row += gridDim.x * warps) {
    const float* x = inp + (size_t)row * C;
    const float* d = dout + (size_t)row * C;
    const float m = mean[row], s = rstd[row];
    float dnm = 0.f, dnnm = 0.f;
    for (int i = lane; i < C; i += 32) {
      const float norm = (x[i] - m) * s, dn = d[i] * w[i];
      dnm += dn;
      dnnm += dn * norm;
    }
    dnm = warp_sum(dnm) / C;
    dnnm = warp_sum(dnnm) / C;
    float* di = dinp + (size_t)row * C;
    for (int i = lane; i < C; i += 32) {
      const float norm = (x[i] - m) * s, dn = d[i] * w[i];
      atomicAdd(&sdb[i], d[i]);
      atomicAdd(&sdw[i], norm * d[i]);
      di[i] += (dn - dnm - norm * dnnm) * s;
    }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < C; i += blockDim.x) {
    atomicAdd(&dw[i], sdw[i]);
    atomicAdd(&db[i], sdb[i]);
  }
}

/** out (N, OC) = (add ? add : 0) + (bias ? bias : 0), before a GEMM that accumulates onto it. */
__global__ void bias_prefill_kernel(float* out, const float* add, const float* bias, int N, int OC) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (size_t)N * OC; i += (size_t)gridDim.x * blockDim.x)
    out[i] = (add ? add[i] : 0.f) + (bias ? bias[i % OC] : 0.f);
}

/** dbias (OC) += column sums of dout (N, OC): blocks of 32 columns x 32 row lanes, row ranges split over grid.y. */
__global__ void bias_backward_kernel(float* dbias, const float* dout, int N, int OC) {
  __shared__ float sh[32][33];
  const int o = blockIdx.x * 32 + threadIdx.x;
  float acc = 0.f;
  if (o < OC)
    for (int n = blockIdx.y * 32 + threadIdx.y; n < N; n += gridDim.y * 32) acc += dout[(size_t)n * OC + o];
  sh[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && o < OC) {
    float s = 0.f;
    for (int k = 0; k < 32; k++) s += sh[k][threadIdx.x];
    atomicAdd(&dbias[o], s);
  }
}

constexpr float kGeluK = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluA = 0.044715f;

__global__ void gelu_forward_kernel(float* out, const float* inp, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const float x = inp[i];
    out[i] = 0.5f * x * (1.f + tanhf(kGeluK * (x + kGeluA * x * x * x)));
  }
}

__global__ void gelu_backward_kernel(float* dinout, const float* inp, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const float x = inp[i];
    const float th = tanhf(kGeluK * (x + kGeluA * x * x * x));
    const float sech2 = 1.f - th * th;
    dinout[i] *= 0.5f * (1.f + th) + 0.5f * x * sech2 * kGeluK * (1.f + 3.f * kGeluA * x * x);
  }
}

/** qkv (B, T, 3C) -> q, k, v (B, NH, T, hs) */
__global__ void permute_kernel(float* q, float* k, float* v, const float* qkv, int B, int T, int NH, int hs) {
  const int C = NH * hs;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (size_t)B * NH * T * hs; i += (size_t)gridDim.x * blockDim.x) {
    const int d = (int)(i % hs), t = (int)(i / hs % T), h = (int)(i / ((size_t)hs * T) % NH), b = (int)(i / ((size_t)hs * T * NH));
    const size_t src = ((size_t)b * T + t) * 3 * C + (size_t)h * hs + d;
    q[i] = qkv[src];
    k[i] = qkv[src + C];
    v[i] = qkv[src + 2 * C];
  }
}

/** the inverse: dq, dk, dv (B, NH, T, hs) -> dqkv (B, T, 3C) */
__global__ void permute_backward_kernel(float* dqkv, const float* dq, const float* dk, const float* dv, int B, int T, int NH, int hs) {
  const int C = NH * hs;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (size_t)B * NH * T * hs; i += (size_t)gridDim.x * blockDim.x) {
    const int d = (int)(i % hs), t = (int)(i / hs % T), h = (int)(i / ((size_t)hs * T) % NH), b = (int)(i / ((size_t)hs * T * NH));
    const size_t dst = ((size_t)b * T + t) * 3 * C + (size_t)h * hs + d;
    dqkv[dst] = dq[i];
    dqkv[dst + C] = dk[i];
    dqkv[dst + 2 * C] = dv[i];
  }
}

/** y (B, NH, T, hs) <-> out (B, T, C); backward = true goes from out to y. */
__global__ void unpermute_kernel(float* out, float* y, int B, int T, int NH, int hs, bool backward) {
  const int C = NH * hs;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (size_t)B * NH * T * hs; i += (size_t)gridDim.x * blockDim.x) {
    const int d = (int)(i % hs), t = (int)(i / hs % T), h = (int)(i / ((size_t)hs * T) % NH), b = (int)(i / ((size_t)hs * T * NH));
    const size_t o = ((size_t)b * T + t) * C + (size_t)h * hs + d;
    if (backward) y[i] = out[o];
    else out[o] = y[i];
  }
}

/** One warp per row of (rows, T) scores: att = softmax(scale * pre) over t2 <= t (row index % T), 0 after. In place. */
__global__ void softmax_causal_kernel(float* att, const float* pre, int rows, int T, float scale) {
  const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= rows) return;
  const int t = row % T;
  const float* p = pre + (size_t)row * T;
  float* a = att + (size_t)row * T;
  float mx = -FLT_MAX;
  for (int j = lane; j <= t; j += 32) mx = fmaxf(mx, p[j] * scale);
  mx = warp_max(mx);
  float s = 0.f;
  for (int j = lane; j <= t; j += 32) s += expf(p[j] * scale - mx);
  const float inv = 1.f / warp_sum(s);
  for (int j = lane; j < T; j += 32) a[j] = j <= t ? expf(p[j] * scale - mx) * inv : 0.f;
}

/** One warp per row: dpre = att * (datt - sum(att * datt)) * scale over t2 <= t, 0 after. In place (dpre == datt). */
__global__ void softmax_causal_backward_kernel(float* dpre, const float* datt, const float* att, int rows, int T, float scale) {
  const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= rows) return;
  const int t = row % T;
  const float* a = att + (size_t)row * T;
  const float* da = datt + (size_t)row * T;
  float s = 0.f;
  for (int j = lane; j <= t; j += 32) s += a[j] * da[j];
  s = warp_sum(s);
  float* dp = dpre + (size_t)row * T;
  for (int j = lane; j < T; j += 32) dp[j] = j <= t ? a[j] * (da[j] - s) * scale : 0.f;
}

/**
 * One block per row of logits (N, V): the loss lse - x[target] (NaN when the position does not count), and with
 * grad the row becomes (softmax - onehot) * weight * scale in place (zero when it does not count).
 */
__global__ void crossentropy_kernel(float* logits, float* losses, const int* targets, const float* weights, int V, bool grad, float scale) {
  const int row = blockIdx.x;
  float* x = logits + (size_t)row * V;
  const int tgt = targets[row];
  const float w = weights[row];
  if (tgt < 0 || w == 0.f) {
    if (threadIdx.x == 0) losses[row] = NAN;
    if (grad)
      for (int j = threadIdx.x; j < V; j += blockDim.x) x[j] = 0.f;
    return;
  }
  const float xt = x[tgt];
  float mx = -FLT_MAX;
  for (int j = threadIdx.x; j < V; j += blockDim.x) mx = fmaxf(mx, x[j]);
  mx = block_max(mx);
  float s = 0.f;
  for (int j = threadIdx.x; j < V; j += blockDim.x) s += expf(x[j] - mx);
  s = block_sum(s);
  if (threadIdx.x == 0) losses[row] = mx + logf(s) - xt;
  if (grad) {
    const float f = w * scale / s;
    for (int j = threadIdx.x; j < V; j += blockDim.x) x[j] = expf(x[j] - mx) * f;
    __syncthreads();
    if (threadIdx.x == 0) x[tgt] -= w * scale;
  }
}

__global__ void adamw_kernel(float* p, const float* g, float* m, float* v, size_t n, bool decay, float decay_factor, float beta1,
                             float beta2, float one_m_b1, float one_m_b2, float step_size, float bc2_sqrt, float eps) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    float pi = p[i];
    if (decay) pi *= decay_factor;
    const float gi = g[i];
    const float mi = m[i] * beta1 + gi * one_m_b1;
    const float vi = v[i] * beta2 + gi * gi * one_m_b2;
    p[i] = pi - step_size * (mi / (sqrtf(vi) / bc2_sqrt + eps));
    m[i] = mi;
    v[i] = vi;
  }
}

/** partial[block] = sum of g^2 over a grid-stride slice, in double; the host sums the partials in order. */
__global__ void sumsq_kernel(double* partial, const float* g, size_t n) {
  __shared__ double sh[32];
  double acc = 0;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) acc += (double)g[i] * g[i];
  acc = warp_sum_d(acc);
  if (threadIdx.x % 32 == 0) sh[threadIdx.x / 32] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    double s = 0;
    for (int k = 0; k < (int)blockDim.x / 32; k++) s += sh[k];
    partial[blockIdx.x] = s;
  }
}

__global__ void scale_kernel(float* x, float f, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) x[i] *= f;
}

/** KV cache append: the k and v of qkv (B, S, 3C) into K, V (B, NH, maxLen, hs) at positions pos .. pos+S-1. */
__global__ void kv_append_kernel(float* K, float* Vc, const float* qkv, int B, int S, int NH, int hs, int maxLen, int pos) {
  const int C = NH * hs;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (size_t)B * S * C; i += (size_t)gridDim.x * blockDim.x) {
    const int c = (int)(i % C), s = (int)(i / C % S), b = (int)(i / ((size_t)C * S));
    const int h = c / hs, d = c % hs;
    const size_t dst = (((size_t)b * NH + h) * maxLen + pos + s) * hs + d;
    const size_t src = ((size_t)b * S + s) * 3 * C + c;
    K[dst] = qkv[src + C];
    Vc[dst] = qkv[src + 2 * C];
  }
}

/** Decode attention: one block per (b, h, s); query at pos + s over cached keys 0 .. pos + s. Shared: maxLen floats. */
__global__ void decode_attention_kernel(float* out, const float* qkv, const float* K, const float* Vc, int S, int NH, int hs, int maxLen,
                                        int pos, float scale) {
  extern __shared__ float sc[];
  const int s = blockIdx.x % S, h = blockIdx.x / S % NH, b = blockIdx.x / (S * NH);
  const int C = NH * hs, n = pos + s + 1;
  const float* q = qkv + ((size_t)b * S + s) * 3 * C + (size_t)h * hs;
  const float* kh = K + ((size_t)b * NH + h) * maxLen * hs;
  const float* vh = Vc + ((size_t)b * NH + h) * maxLen * hs;
  float mx = -FLT_MAX;
  for (int t = threadIdx.x; t < n; t += blockDim.x) {
    float d = 0.f;
    for (int i = 0; i < hs; i++) d += q[i] * kh[(size_t)t * hs + i];
    sc[t] = d * scale;
    mx = fmaxf(mx, sc[t]);
  }
  mx = block_max(mx);
  float sum = 0.f;
  for (int t = threadIdx.x; t < n; t += blockDim.x) {
    sc[t] = expf(sc[t] - mx);
    sum += sc[t];
  }
  sum = block_sum(sum);  // its barriers also publish sc
  float* o = out + ((size_t)b * S + s) * C + (size_t)h * hs;
  for (int i = threadIdx.x; i < hs; i += blockDim.x) {
    float acc = 0.f;
    for (int t = 0; t < n; t++) acc += sc[t] * vh[(size_t)t * hs + i];
    o[i] = acc / sum;
  }
}

// ---- model -------------------------------------------------------------------------------------------------------

struct LayerTensors {
  float* ln1w;      // (C)
  float* ln1b;      // (C)
  float* qkvw;      // (3C, C)
  float* qkvb;      // (3C)
  float* attprojw;  // (C, C)
  float* attprojb;  // (C)
  float* ln2w;      // (C)
  float* ln2b;      // (C)
  float* fcw;       // (4C, C)
  float* fcb;       // (4C)
  float* fcprojw;   // (C, 4C)
  float* fcprojb;   // (C)
};

struct Tensors {
  float* wte;  // (Vp, C)
  float* wpe;  // (maxT, C)
  std::vector<LayerTensors> layers;
  float* lnfw;  // (C)
  float* lnfb;  // (C)
};

/** Device activations of one training forward, sized from (B, T). */
struct Activations {
  int B = 0, T = 0;
  size_t capacity = 0;
  float* mem = nullptr;
  float* encoded;    // (B, T, C)
  float* ln1;        // (L, B, T, C)
  float* ln1_mean;   // (L, B, T)
  float* ln1_rstd;   // (L, B, T)
  float* qkv;        // (L, B, T, 3C)
  float* atty;       // (L, B, T, C)
  float* att;        // (L, B, NH, T, T) softmax rows
  float* residual2;  // (L, B, T, C)
  float* ln2;        // (L, B, T, C)
  float* ln2_mean;   // (L, B, T)
  float* ln2_rstd;   // (L, B, T)
  float* fch;        // (L, B, T, 4C)
  float* fch_gelu;   // (L, B, T, 4C)
  float* residual3;  // (L, B, T, C)
  float* lnf;        // (B, T, C)
  float* lnf_mean;   // (B, T)
  float* lnf_rstd;   // (B, T)
  float* logits;     // (B, T, V)
  float* losses;     // (B, T)
  float* weights;    // (B, T)
  int* targets;      // (B, T)
  int* inputs;       // (B, T)
  float* q;          // (B, NH, T, hs)  attention scratch (one layer)
  float* k;          // (B, NH, T, hs)
  float* v;          // (B, NH, T, hs)
  float* y;          // (B, NH, T, hs)
  float* datt;       // (B, NH, T, T)
  float* dres;       // (B, T, C)
  float* dbuf_c;     // (B, T, C)
  float* dbuf_4c;    // (B, T, 4C)
};

constexpr int kPerLayer = 12;
constexpr int kNormBlocks = 1024;

}  // namespace

struct GPT2 {
  GPT2Config cfg;
  cublasHandle_t blas = nullptr;
  int precision = GPT2_PRECISION_FP32;
  std::vector<size_t> sizes, offsets;
  std::vector<char> decay;
  size_t num_params = 0;
  float* params = nullptr;  // device (num_params)
  float* grads = nullptr;   // device, from the first backward
  float* m = nullptr;       // device, from the first update
  float* v = nullptr;
  Tensors p, g;
  Activations acts;
  double* partials = nullptr;  // device (kNormBlocks)
  std::vector<float> host_losses, host_weights;
  std::vector<int> host_targets;
};

struct GPT2Cache {
  int B, max_len, length, L, NH, hs, C;
  float* k = nullptr;  // device (L, B, NH, max_len, hs)
  float* v = nullptr;
  int cap_S = 0;
  float* x = nullptr;     // (B, S, C)
  float* ln = nullptr;    // (B, S, C)
  float* qkv = nullptr;   // (B, S, 3C)
  float* atty = nullptr;  // (B, S, C)
  float* fch = nullptr;   // (B, S, 4C)
  int* tokens = nullptr;  // (B, S)
  float* last = nullptr;  // (B, C)
  float* lastln = nullptr;  // (B, C)
  float* out = nullptr;   // (B, V)
};

namespace {

Tensors view(const GPT2& M, float* base) {
  Tensors t;
  auto at = [&](size_t i) { return base + M.offsets[i]; };
  t.wte = at(0);
  t.wpe = at(1);
  t.layers.resize(M.cfg.num_layers);
  for (int l = 0; l < M.cfg.num_layers; l++) {
    const size_t o = 2 + (size_t)l * kPerLayer;
    LayerTensors& x = t.layers[l];
    x.ln1w = at(o + 0); x.ln1b = at(o + 1);
    x.qkvw = at(o + 2); x.qkvb = at(o + 3);
    x.attprojw = at(o + 4); x.attprojb = at(o + 5);
    x.ln2w = at(o + 6); x.ln2b = at(o + 7);
    x.fcw = at(o + 8); x.fcb = at(o + 9);
    x.fcprojw = at(o + 10); x.fcprojb = at(o + 11);
  }
  const size_t f = 2 + (size_t)M.cfg.num_layers * kPerLayer;
  t.lnfw = at(f);
  t.lnfb = at(f + 1);
  return t;
}

int dev_alloc(float** p, size_t n) {
  CU(cudaMalloc(p, std::max<size_t>(n, 1) * sizeof(float)));
  CU(cudaMemset(*p, 0, std::max<size_t>(n, 1) * sizeof(float)));
  return GPT2_OK;
}

// ---- row-major cuBLAS (the CPU engine's sgemm contract) ----------------------------------------------------------

/** C (M, N) = alpha op(A) op(B) + beta C, row-major: cuBLAS (column-major) computes C^T = op(B)^T op(A)^T. */
int gemm(GPT2* M, bool tA, bool tB, int m, int n, int k, float alpha, const float* A, int lda, const float* B, int ldb, float beta,
         float* C, int ldc) {
  CB(cublasSgemm(M->blas, tB ? CUBLAS_OP_T : CUBLAS_OP_N, tA ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, B, ldb, A, lda, &beta, C, ldc));
  return GPT2_OK;
}

int gemm_batched(GPT2* M, bool tA, bool tB, int m, int n, int k, float alpha, const float* A, int lda, long long sA, const float* B, int ldb,
                 long long sB, float beta, float* C, int ldc, long long sC, int batch) {
  CB(cublasSgemmStridedBatched(M->blas, tB ? CUBLAS_OP_T : CUBLAS_OP_N, tA ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, B, ldb, sB, A,
                               lda, sA, &beta, C, ldc, sC, batch));
  return GPT2_OK;
}

// ---- layer functions (as native/cpu/layers.h) --------------------------------------------------------------------

int layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b, int N, int C, float eps) {
  layernorm_forward_kernel<<<(N + 7) / 8, 256>>>(out, mean, rstd, inp, w, b, N, C, eps);
  LAUNCHED();
  return GPT2_OK;
}

int layernorm_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w, const float* mean,
                       const float* rstd, int N, int C) {
  const int blocks = std::min((N + 7) / 8, 1024);
  layernorm_backward_kernel<<<blocks, 256, 2 * C * sizeof(float)>>>(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
  LAUNCHED();
  return GPT2_OK;
}

int matmul_forward(GPT2* M, float* out, const float* inp, const float* W, const float* bias, const float* add, int N, int IC, int OC) {
  float beta = 0.f;
  if (bias || add) {
    bias_prefill_kernel<<<blocks_for((size_t)N * OC), kThreads>>>(out, add, bias, N, OC);
    LAUNCHED();
    beta = 1.f;
  }
  return gemm(M, false, true, N, OC, IC, 1.f, inp, IC, W, IC, beta, out, OC);
}

int matmul_backward(GPT2* M, float* dinp, float* dW, float* dbias, const float* dout, const float* inp, const float* W, int N, int IC, int OC) {
  TRY(gemm(M, false, false, N, IC, OC, 1.f, dout, OC, W, IC, 0.f, dinp, IC));
  TRY(gemm(M, true, false, OC, IC, N, 1.f, dout, OC, inp, IC, 1.f, dW, IC));
  if (dbias) {
    dim3 grid((OC + 31) / 32, std::min((N + 31) / 32, 64));
    bias_backward_kernel<<<grid, dim3(32, 32)>>>(dbias, dout, N, OC);
    LAUNCHED();
  }
  return GPT2_OK;
}

int attention_forward(GPT2* M, float* out, float* att, const float* qkv, int B, int T, int C, int NH) {
  Activations& a = M->acts;
  const int hs = C / NH;
  const size_t n = (size_t)B * NH * T * hs;
  permute_kernel<<<blocks_for(n), kThreads>>>(a.q, a.k, a.v, qkv, B, T, NH, hs);
  LAUNCHED();
  // scores (B*NH, T, T) = q @ k^T, unscaled; the softmax scales
  TRY(gemm_batched(M, false, true, T, T, hs, 1.f, a.q, hs, (long long)T * hs, a.k, hs, (long long)T * hs, 0.f, att, T, (long long)T * T, B * NH));
  const int rows = B * NH * T;
  softmax_causal_kernel<<<(rows + 7) / 8, 256>>>(att, att, rows, T, 1.f / sqrtf((float)hs));
  LAUNCHED();
  // y (B*NH, T, hs) = att @ v
  TRY(gemm_batched(M, false, false, T, hs, T, 1.f, att, T, (long long)T * T, a.v, hs, (long long)T * hs, 0.f, a.y, hs, (long long)T * hs, B * NH));
  unpermute_kernel<<<blocks_for(n), kThreads>>>(out, a.y, B, T, NH, hs, false);
  LAUNCHED();
  return GPT2_OK;
}

/** dqkv (B, T, 3C) from dout (B, T, C); qkv and att as saved. Reuses q, k, v, y, datt and dbuf_c of the activations. */
int attention_backward(GPT2* M, float* dqkv, const float* dout, const float* qkv, const float* att, int B, int T, int C, int NH) {
  Activations& a = M->acts;
  const int hs = C / NH, BH = B * NH;
  const size_t n = (size_t)BH * T * hs;
  const long long sTh = (long long)T * hs, sTT = (long long)T * T;
  permute_kernel<<<blocks_for(n), kThreads>>>(a.q, a.k, a.v, qkv, B, T, NH, hs);  // recomputed, not stored per layer
  LAUNCHED();
  float* dy = a.y;
  unpermute_kernel<<<blocks_for(n), kThreads>>>(const_cast<float*>(dout), dy, B, T, NH, hs, true);
  LAUNCHED();
  float* dv = a.dbuf_4c;  // (B*NH, T, hs) x 3 fit in the (B, T, 4C) buffer
  float* dq = dv + n;
  float* dk = dq + n;
  // y = att @ v: datt = dy @ v^T, dv = att^T @ dy
  TRY(gemm_batched(M, false, true, T, T, hs, 1.f, dy, hs, sTh, a.v, hs, sTh, 0.f, a.datt, T, sTT, BH));
  TRY(gemm_batched(M, true, false, T, hs, T, 1.f, att, T, sTT, dy, hs, sTh, 0.f, dv, hs, sTh, BH));
  const int rows = BH * T;
  softmax_causal_backward_kernel<<<(rows + 7) / 8, 256>>>(a.datt, a.datt, att, rows, T, 1.f / sqrtf((float)hs));
  LAUNCHED();
  // scores = q @ k^T: dq = dpre @ k, dk = dpre^T @ q
  TRY(gemm_batched(M, false, false, T, hs, T, 1.f, a.datt, T, sTT, a.k, hs, sTh, 0.f, dq, hs, sTh, BH));
  TRY(gemm_batched(M, true, false, T, hs, T, 1.f, a.datt, T, sTT, a.q, hs, sTh, 0.f, dk, hs, sTh, BH));
  permute_backward_kernel<<<blocks_for(n), kThreads>>>(dqkv, dq, dk, dv, B, T, NH, hs);
  LAUNCHED();
  return GPT2_OK;
}

int ensure_acts(GPT2* M, int B, int T) {
  Activations& a = M->acts;
  const size_t L = M->cfg.num_layers, C = M->cfg.channels, NH = M->cfg.num_heads, V = M->cfg.vocab_size;
  const size_t BT = (size_t)B * T;
  const size_t sizes[] = {
      BT * C,
      L * BT * C, L * BT, L * BT,
      L * BT * 3 * C, L * BT * C,
      L * B * NH * T * T,
      L * BT * C,
      L * BT * C, L * BT, L * BT,
      L * BT * 4 * C, L * BT * 4 * C,
      L * BT * C,
      BT * C, BT, BT,
      BT * V, BT, BT, BT, BT,
      BT * C, BT * C, BT * C, BT * C, B * NH * T * T,  // q, k, v, y, datt
      BT * C, BT * C, BT * 4 * C,
  };
  size_t total = 0;
  for (size_t s : sizes) total += (s + 63) / 64 * 64;
  if (total > a.capacity) {
    if (a.mem) CU(cudaFree(a.mem));
    a.mem = nullptr;
    a.capacity = 0;
    cudaError_t e = cudaMalloc(&a.mem, total * sizeof(float));
    if (e != cudaSuccess) return fail(GPT2_ERR_MEMORY, "out of GPU memory for the activations of B=%d, T=%d (%.1f GB)", B, T, total * 4.0 / 1e9);
    a.capacity = total;
  }
  float* p = a.mem;
  int i = 0;
  auto take = [&]() {
    float* r = p;
    p += (sizes[i++] + 63) / 64 * 64;
    return r;
  };
  a.encoded = take();
  a.ln1 = take(); a.ln1_mean = take(); a.ln1_rstd = take();
  a.qkv = take(); a.atty = take();
  a.att = take();
  a.residual2 = take();
  a.ln2 = take(); a.ln2_mean = take(); a.ln2_rstd = take();
  a.fch = take(); a.fch_gelu = take();
  a.residual3 = take();
  a.lnf = take(); a.lnf_mean = take(); a.lnf_rstd = take();
  a.logits = take(); a.losses = take(); a.weights = take();
  a.targets = reinterpret_cast<int*>(take());
  a.inputs = reinterpret_cast<int*>(take());
  a.q = take(); a.k = take(); a.v = take(); a.y = take(); a.datt = take();
  a.dres = take(); a.dbuf_c = take(); a.dbuf_4c = take();
  a.B = B;
  a.T = T;
  M->host_losses.resize(BT);
  M->host_weights.resize(BT);
  M->host_targets.resize(BT);
  return GPT2_OK;
}

int forward_hidden(GPT2* M, int B, int T) {
  const int L = M->cfg.num_layers, C = M->cfg.channels, NH = M->cfg.num_heads, N = B * T;
  const float eps = M->cfg.ln_eps;
  Activations& a = M->acts;
  const size_t NC = (size_t)N * C;
  encoder_forward_kernel<<<blocks_for(NC), kThreads>>>(a.encoded, a.inputs, M->p.wte, M->p.wpe, N, T, C, 0);
  LAUNCHED();
  for (int l = 0; l < L; l++) {
    const LayerTensors& w = M->p.layers[l];
    const float* residual = l == 0 ? a.encoded : a.residual3 + (l - 1) * NC;
    float* ln1 = a.ln1 + l * NC;
    float* qkv = a.qkv + l * NC * 3;
    float* atty = a.atty + l * NC;
    float* att = a.att + (size_t)l * B * NH * T * T;
    float* residual2 = a.residual2 + l * NC;
    float* ln2 = a.ln2 + l * NC;
    float* fch = a.fch + l * NC * 4;
    float* fch_gelu = a.fch_gelu + l * NC * 4;
    float* residual3 = a.residual3 + l * NC;
    TRY(layernorm_forward(ln1, a.ln1_mean + l * N, a.ln1_rstd + l * N, residual, w.ln1w, w.ln1b, N, C, eps));
    TRY(matmul_forward(M, qkv, ln1, w.qkvw, w.qkvb, nullptr, N, C, 3 * C));
    TRY(attention_forward(M, atty, att, qkv, B, T, C, NH));
    TRY(matmul_forward(M, residual2, atty, w.attprojw, w.attprojb, residual, N, C, C));
    TRY(layernorm_forward(ln2, a.ln2_mean + l * N, a.ln2_rstd + l * N, residual2, w.ln2w, w.ln2b, N, C, eps));
    TRY(matmul_forward(M, fch, ln2, w.fcw, w.fcb, nullptr, N, C, 4 * C));
    gelu_forward_kernel<<<blocks_for(NC * 4), kThreads>>>(fch_gelu, fch, NC * 4);
    LAUNCHED();
    TRY(matmul_forward(M, residual3, fch_gelu, w.fcprojw, w.fcprojb, residual2, N, 4 * C, C));
  }
  return layernorm_forward(a.lnf, a.lnf_mean, a.lnf_rstd, a.residual3 + (L - 1) * NC, M->p.lnfw, M->p.lnfb, N, C, eps);
}

int backward(GPT2* M, int B, int T) {
  const int L = M->cfg.num_layers, C = M->cfg.channels, NH = M->cfg.num_heads, V = M->cfg.vocab_size, N = B * T;
  const size_t NC = (size_t)N * C;
  Activations& a = M->acts;
  Tensors& g = M->g;
  TRY(gemm(M, false, false, N, C, V, 1.f, a.logits, V, M->p.wte, C, 0.f, a.dbuf_c, C));
  TRY(gemm(M, true, false, V, C, N, 1.f, a.logits, V, a.lnf, C, 1.f, g.wte, C));
  CU(cudaMemset(a.dres, 0, NC * sizeof(float)));
  TRY(layernorm_backward(a.dres, g.lnfw, g.lnfb, a.dbuf_c, a.residual3 + (L - 1) * NC, M->p.lnfw, a.lnf_mean, a.lnf_rstd, N, C));
  for (int l = L - 1; l >= 0; l--) {
    const LayerTensors& w = M->p.layers[l];
    const LayerTensors& dw = g.layers[l];
    const float* residual = l == 0 ? a.encoded : a.residual3 + (l - 1) * NC;
    TRY(matmul_backward(M, a.dbuf_4c, dw.fcprojw, dw.fcprojb, a.dres, a.fch_gelu + l * NC * 4, w.fcprojw, N, 4 * C, C));
    gelu_backward_kernel<<<blocks_for(NC * 4), kThreads>>>(a.dbuf_4c, a.fch + l * NC * 4, NC * 4);
    LAUNCHED();
    TRY(matmul_backward(M, a.dbuf_c, dw.fcw, dw.fcb, a.dbuf_4c, a.ln2 + l * NC, w.fcw, N, C, 4 * C));
    TRY(layernorm_backward(a.dres, dw.ln2w, dw.ln2b, a.dbuf_c, a.residual2 + l * NC, w.ln2w, a.ln2_mean + l * N, a.ln2_rstd + l * N, N, C));
    TRY(matmul_backward(M, a.dbuf_c, dw.attprojw, dw.attprojb, a.dres, a.atty + l * NC, w.attprojw, N, C, C));
    // the attention backward works in dbuf_4c (dq, dk, dv) and writes dqkv into... a buffer it does not read: qkv's
    // gradient goes to the fch slot of this layer's activations, which the backward of this layer no longer needs
    float* dqkv = a.fch + l * NC * 4;
    TRY(attention_backward(M, dqkv, a.dbuf_c, a.qkv + l * NC * 3, a.att + (size_t)l * B * NH * T * T, B, T, C, NH));
    TRY(matmul_backward(M, a.dbuf_c, dw.qkvw, dw.qkvb, dqkv, a.ln1 + l * NC, w.qkvw, N, C, 3 * C));
    TRY(layernorm_backward(a.dres, dw.ln1w, dw.ln1b, a.dbuf_c, residual, w.ln1w, a.ln1_mean + l * N, a.ln1_rstd + l * N, N, C));
  }
  encoder_backward_kernel<<<blocks_for(NC), kThreads>>>(g.wte, g.wpe, a.dres, a.inputs, N, T, C);
  LAUNCHED();
  return GPT2_OK;
}

int check_ids(const GPT2* M, const int* ids, size_t n, bool allowNegative, const char* what) {
  for (size_t i = 0; i < n; i++)
    if (ids[i] >= M->cfg.vocab_size || (ids[i] < 0 && !allowNegative))
      return fail(GPT2_ERR_ARGUMENT, "token id %d at %s[%zu] is outside the vocabulary (0..%d)", ids[i], what, i, M->cfg.vocab_size - 1);
  return GPT2_OK;
}

int check_bt(const GPT2* M, int B, int T) {
  if (B <= 0 || T <= 0) return fail(GPT2_ERR_ARGUMENT, "batch shape B=%d, T=%d must be positive", B, T);
  if (T > M->cfg.max_seq_len) return fail(GPT2_ERR_ARGUMENT, "sequence length %d exceeds the model's context of %d positions", T, M->cfg.max_seq_len);
  return GPT2_OK;
}

/** Targets and weights (mask / count) to the device; returns the count through *count. */
int upload_batch(GPT2* M, const int* inputs, const int* targets, const float* mask, int N, int* count) {
  int c = 0;
  for (int i = 0; i < N; i++) {
    const bool on = targets && targets[i] >= 0 && (!mask || mask[i] != 0.f);
    M->host_targets[i] = on ? targets[i] : -1;
    M->host_weights[i] = on ? 1.f : 0.f;
    c += on;
  }
  if (c > 0)
    for (int i = 0; i < N; i++) M->host_weights[i] /= (float)c;
  *count = c;
  Activations& a = M->acts;
  CU(cudaMemcpy(a.inputs, inputs, N * sizeof(int), cudaMemcpyHostToDevice));
  CU(cudaMemcpy(a.targets, M->host_targets.data(), N * sizeof(int), cudaMemcpyHostToDevice));
  CU(cudaMemcpy(a.weights, M->host_weights.data(), N * sizeof(float), cudaMemcpyHostToDevice));
  return GPT2_OK;
}

int ensure_buffer(GPT2* M, float** slot) {
  if (*slot) return GPT2_OK;
  TRY(dev_alloc(slot, M->num_params));
  if (slot == &M->grads) M->g = view(*M, M->grads);
  return GPT2_OK;
}

float** buffer_slot(GPT2* M, int which) {
  switch (which) {
    case GPT2_BUF_PARAMS: return &M->params;
    case GPT2_BUF_GRADS: return &M->grads;
    case GPT2_BUF_M: return &M->m;
    case GPT2_BUF_V: return &M->v;
    default: return nullptr;
  }
}

}  // namespace

// ---- C API -------------------------------------------------------------------------------------------------------

extern "C" {

const char* gpt2_last_error(void) { return tl_error.c_str(); }

const char* gpt2_build_info(void) {
  static char buf[512];
  if (!buf[0]) {
    int dev = 0, rt = 0, drv = 0;
    cudaDeviceProp prop;
    std::memset(&prop, 0, sizeof prop);
    cudaGetDevice(&dev);
    cudaGetDeviceProperties(&prop, dev);
    cudaRuntimeGetVersion(&rt);
    cudaDriverGetVersion(&drv);
    std::snprintf(buf, sizeof buf, "CUDA runtime %d, driver %d, %s (sm_%d%d), cuBLAS SGEMM (FP32/TF32)", rt, drv, prop.name, prop.major, prop.minor);
  }
  return buf;
}

int gpt2_has_blas(void) { return 1; }

int gpt2_create(const GPT2Config* cfg, GPT2** out) {
  if (!cfg || !out) return fail(GPT2_ERR_ARGUMENT, "gpt2_create: null argument");
  *out = nullptr;
  const GPT2Config& c = *cfg;
  if (c.num_layers <= 0 || c.num_heads <= 0 || c.channels <= 0 || c.max_seq_len <= 0 || c.vocab_size <= 0 ||
      c.padded_vocab_size < c.vocab_size || c.channels % c.num_heads != 0 || !(c.ln_eps > 0))
    return fail(GPT2_ERR_ARGUMENT, "bad config: L=%d NH=%d C=%d maxT=%d V=%d Vp=%d", c.num_layers, c.num_heads, c.channels, c.max_seq_len,
                c.vocab_size, c.padded_vocab_size);
  GPT2* M = new (std::nothrow) GPT2();
  if (!M) return fail(GPT2_ERR_MEMORY, "out of memory");
  M->cfg = c;
  const size_t C = c.channels;
  auto add = [&](size_t n, bool decay) {
    M->offsets.push_back(M->num_params);
    M->sizes.push_back(n);
    M->decay.push_back(decay);
    M->num_params += n;
  };
  add((size_t)c.padded_vocab_size * C, true);
  add((size_t)c.max_seq_len * C, true);
  for (int l = 0; l < c.num_layers; l++) {
    add(C, false); add(C, false);
    add(3 * C * C, true); add(3 * C, false);
    add(C * C, true); add(C, false);
    add(C, false); add(C, false);
    add(4 * C * C, true); add(4 * C, false);
    add(4 * C * C, true); add(C, false);
  }
  add(C, false); add(C, false);
  int rc = dev_alloc(&M->params, M->num_params);
  if (rc == GPT2_OK && cublasCreate(&M->blas) != CUBLAS_STATUS_SUCCESS) rc = fail(GPT2_ERR_DEVICE, "cublasCreate failed (no usable GPU?)");
  if (rc == GPT2_OK && cudaMalloc(&M->partials, kNormBlocks * sizeof(double)) != cudaSuccess) rc = fail(GPT2_ERR_MEMORY, "out of GPU memory");
  if (rc != GPT2_OK) {
    gpt2_destroy(M);
    return rc;
  }
  M->p = view(*M, M->params);
  *out = M;
  return GPT2_OK;
}

void gpt2_destroy(GPT2* M) {
  if (!M) return;
  for (float* p : {M->params, M->grads, M->m, M->v, M->acts.mem}) cudaFree(p);
  cudaFree(M->partials);
  if (M->blas) cublasDestroy(M->blas);
  delete M;
}

int gpt2_set_threads(GPT2* M, int threads) {
  if (!M || threads < 1) return fail(GPT2_ERR_ARGUMENT, "threads must be >= 1");
  return GPT2_OK;  // the GPU decides
}

int gpt2_set_gemm(GPT2* M, int gemm) {
  if (!M) return fail(GPT2_ERR_ARGUMENT, "null model");
  if (gemm != GPT2_GEMM_BLAS) return fail(GPT2_ERR_ARGUMENT, "the CUDA engine multiplies with cuBLAS only");
  return GPT2_OK;
}

int gpt2_set_precision(GPT2* M, int precision) {
  if (!M) return fail(GPT2_ERR_ARGUMENT, "null model");
  if (precision == GPT2_PRECISION_FP32) CB(cublasSetMathMode(M->blas, CUBLAS_DEFAULT_MATH));
  else if (precision == GPT2_PRECISION_TF32) CB(cublasSetMathMode(M->blas, CUBLAS_TF32_TENSOR_OP_MATH));
  else return fail(GPT2_ERR_ARGUMENT, "the CUDA engine has FP32 and TF32 matmuls (BF16 is not built yet)");
  M->precision = precision;
  return GPT2_OK;
}

int gpt2_num_tensors(const GPT2* M) { return M ? (int)M->sizes.size() : 0; }
size_t gpt2_tensor_numel(const GPT2* M, int i) { return M && i >= 0 && i < (int)M->sizes.size() ? M->sizes[i] : 0; }
size_t gpt2_num_parameters(const GPT2* M) { return M ? M->num_params : 0; }

int gpt2_read(GPT2* M, int which, size_t offset, float* dst, size_t count) {
  if (!M || !dst) return fail(GPT2_ERR_ARGUMENT, "null argument");
  float** slot = buffer_slot(M, which);
  if (!slot) return fail(GPT2_ERR_ARGUMENT, "unknown buffer %d", which);
  if (offset > M->num_params || count > M->num_params - offset) return fail(GPT2_ERR_ARGUMENT, "read past the parameters");
  if (*slot) CU(cudaMemcpy(dst, *slot + offset, count * sizeof(float), cudaMemcpyDeviceToHost));
  else std::memset(dst, 0, count * sizeof(float));
  return GPT2_OK;
}

int gpt2_write(GPT2* M, int which, size_t offset, const float* src, size_t count) {
  if (!M || !src) return fail(GPT2_ERR_ARGUMENT, "null argument");
  float** slot = buffer_slot(M, which);
  if (!slot) return fail(GPT2_ERR_ARGUMENT, "unknown buffer %d", which);
  if (offset > M->num_params || count > M->num_params - offset) return fail(GPT2_ERR_ARGUMENT, "write past the parameters");
  TRY(ensure_buffer(M, slot));
  CU(cudaMemcpy(*slot + offset, src, count * sizeof(float), cudaMemcpyHostToDevice));
  return GPT2_OK;
}

int gpt2_forward_backward(GPT2* M, const int* inputs, const int* targets, const float* mask, int B, int T, float loss_scale, float* loss) {
  if (!M || !inputs || !targets || !loss) return fail(GPT2_ERR_ARGUMENT, "null argument");
  TRY(check_bt(M, B, T));
  const int N = B * T;
  TRY(check_ids(M, inputs, N, false, "inputs"));
  TRY(check_ids(M, targets, N, true, "targets"));
  TRY(ensure_buffer(M, &M->grads));
  TRY(ensure_acts(M, B, T));
  int count = 0;
  TRY(upload_batch(M, inputs, targets, mask, N, &count));
  *loss = 0.f;
  if (count == 0) return GPT2_OK;
  Activations& a = M->acts;
  TRY(forward_hidden(M, B, T));
  const int V = M->cfg.vocab_size, C = M->cfg.channels;
  TRY(gemm(M, false, true, N, V, C, 1.f, a.lnf, C, M->p.wte, C, 0.f, a.logits, V));
  crossentropy_kernel<<<N, 512>>>(a.logits, a.losses, a.targets, a.weights, V, true, loss_scale);
  LAUNCHED();
  TRY(backward(M, B, T));
  CU(cudaMemcpy(M->host_losses.data(), a.losses, N * sizeof(float), cudaMemcpyDeviceToHost));
  double total = 0;
  for (int i = 0; i < N; i++)
    if (M->host_weights[i] != 0.f) total += (double)M->host_losses[i] * M->host_weights[i];
  *loss = (float)total;
  return GPT2_OK;
}

int gpt2_zero_grad(GPT2* M) {
  if (!M) return fail(GPT2_ERR_ARGUMENT, "null model");
  if (M->grads) CU(cudaMemset(M->grads, 0, M->num_params * sizeof(float)));
  return GPT2_OK;
}

int gpt2_grad_norm(GPT2* M, double* norm) {
  if (!M || !norm) return fail(GPT2_ERR_ARGUMENT, "null argument");
  *norm = 0;
  if (!M->grads) return GPT2_OK;
  sumsq_kernel<<<kNormBlocks, 256>>>(M->partials, M->grads, M->num_params);
  LAUNCHED();
  double part[kNormBlocks];
  CU(cudaMemcpy(part, M->partials, sizeof part, cudaMemcpyDeviceToHost));
  double s = 0;
  for (double x : part) s += x;
  *norm = std::sqrt(s);
  return GPT2_OK;
}

int gpt2_scale_grads(GPT2* M, float factor) {
  if (!M) return fail(GPT2_ERR_ARGUMENT, "null model");
  if (!M->grads) return GPT2_OK;
  scale_kernel<<<blocks_for(M->num_params), kThreads>>>(M->grads, factor, M->num_params);
  LAUNCHED();
  return GPT2_OK;
}

int gpt2_adamw(GPT2* M, double lr, double beta1, double beta2, double eps, double weight_decay, int t) {
  if (!M) return fail(GPT2_ERR_ARGUMENT, "null model");
  if (t < 1) return fail(GPT2_ERR_ARGUMENT, "AdamW step number must be >= 1, got %d", t);
  TRY(ensure_buffer(M, &M->grads));
  TRY(ensure_buffer(M, &M->m));
  TRY(ensure_buffer(M, &M->v));
  const float decay_factor = (float)(1.0 - lr * weight_decay);
  const float step_size = (float)(lr / (1.0 - std::pow(beta1, t)));
  const float bc2_sqrt = (float)std::sqrt(1.0 - std::pow(beta2, t));
  for (size_t i = 0; i < M->sizes.size(); i++) {
    const size_t o = M->offsets[i], n = M->sizes[i];
    adamw_kernel<<<blocks_for(n), kThreads>>>(M->params + o, M->grads + o, M->m + o, M->v + o, n, M->decay[i] && weight_decay != 0.0,
                                              decay_factor, (float)beta1, (float)beta2, (float)(1.0 - beta1), (float)(1.0 - beta2),
                                              step_size, bc2_sqrt, (float)eps);
    LAUNCHED();
  }
  return GPT2_OK;
}

int gpt2_logits(GPT2* M, const int* inputs, int B, int T, float* out) {
  if (!M || !inputs || !out) return fail(GPT2_ERR_ARGUMENT, "null argument");
  TRY(check_bt(M, B, T));
  TRY(check_ids(M, inputs, (size_t)B * T, false, "inputs"));
  TRY(ensure_acts(M, B, T));
  const int N = B * T, V = M->cfg.vocab_size, C = M->cfg.channels;
  CU(cudaMemcpy(M->acts.inputs, inputs, N * sizeof(int), cudaMemcpyHostToDevice));
  TRY(forward_hidden(M, B, T));
  TRY(gemm(M, false, true, N, V, C, 1.f, M->acts.lnf, C, M->p.wte, C, 0.f, M->acts.logits, V));
  CU(cudaMemcpy(out, M->acts.logits, (size_t)N * V * sizeof(float), cudaMemcpyDeviceToHost));
  return GPT2_OK;
}

int gpt2_token_losses(GPT2* M, const int* inputs, const int* targets, const float* mask, int B, int T, float* out) {
  if (!M || !inputs || !targets || !out) return fail(GPT2_ERR_ARGUMENT, "null argument");
  TRY(check_bt(M, B, T));
  const int N = B * T, V = M->cfg.vocab_size, C = M->cfg.channels;
  TRY(check_ids(M, inputs, N, false, "inputs"));
  TRY(check_ids(M, targets, N, true, "targets"));
  TRY(ensure_acts(M, B, T));
  int count = 0;
  TRY(upload_batch(M, inputs, targets, mask, N, &count));
  Activations& a = M->acts;
  TRY(forward_hidden(M, B, T));
  TRY(gemm(M, false, true, N, V, C, 1.f, a.lnf, C, M->p.wte, C, 0.f, a.logits, V));
  crossentropy_kernel<<<N, 512>>>(a.logits, a.losses, a.targets, a.weights, V, false, 0.f);
  LAUNCHED();
  CU(cudaMemcpy(out, a.losses, N * sizeof(float), cudaMemcpyDeviceToHost));
  return GPT2_OK;
}

int gpt2_cache_create(GPT2* M, int batch, int max_len, GPT2Cache** out) {
  if (!M || !out) return fail(GPT2_ERR_ARGUMENT, "null argument");
  *out = nullptr;
  if (batch <= 0 || max_len <= 0 || max_len > M->cfg.max_seq_len)
    return fail(GPT2_ERR_ARGUMENT, "KV cache of %d rows x %d positions: rows must be > 0 and positions in 1..%d", batch, max_len, M->cfg.max_seq_len);
  GPT2Cache* c = new (std::nothrow) GPT2Cache();
  if (!c) return fail(GPT2_ERR_MEMORY, "out of memory");
  c->B = batch;
  c->max_len = max_len;
  c->length = 0;
  c->L = M->cfg.num_layers;
  c->NH = M->cfg.num_heads;
  c->C = M->cfg.channels;
  c->hs = c->C / c->NH;
  const size_t n = (size_t)c->L * batch * c->C * max_len;
  int rc = dev_alloc(&c->k, n);
  if (rc == GPT2_OK) rc = dev_alloc(&c->v, n);
  if (rc == GPT2_OK) rc = dev_alloc(&c->last, (size_t)batch * c->C);
  if (rc == GPT2_OK) rc = dev_alloc(&c->lastln, (size_t)batch * c->C);
  if (rc == GPT2_OK) rc = dev_alloc(&c->out, (size_t)batch * M->cfg.vocab_size);
  if (rc != GPT2_OK) {
    gpt2_cache_destroy(c);
    return rc;
  }
  *out = c;
  return GPT2_OK;
}

void gpt2_cache_destroy(GPT2Cache* c) {
  if (!c) return;
  for (float* p : {c->k, c->v, c->x, c->ln, c->qkv, c->atty, c->fch, c->last, c->lastln, c->out}) cudaFree(p);
  cudaFree(c->tokens);
  delete c;
}

int gpt2_cache_length(const GPT2Cache* c) { return c ? c->length : 0; }

int gpt2_decode(GPT2* M, GPT2Cache* c, const int* tokens, int S, float* out) {
  if (!M || !c || !tokens || !out) return fail(GPT2_ERR_ARGUMENT, "null argument");
  if (c->C != M->cfg.channels || c->L != M->cfg.num_layers) return fail(GPT2_ERR_ARGUMENT, "the cache belongs to another model");
  if (S <= 0) return fail(GPT2_ERR_ARGUMENT, "decode needs at least one position, got %d", S);
  if (c->length + S > c->max_len)
    return fail(GPT2_ERR_STATE, "the KV cache holds %d positions; %d are used and %d more were fed", c->max_len, c->length, S);
  const int B = c->B, C = c->C, NH = c->NH, hs = c->hs, L = c->L, V = M->cfg.vocab_size, N = B * S, pos = c->length, maxLen = c->max_len;
  TRY(check_ids(M, tokens, (size_t)N, false, "tokens"));
  if (S > c->cap_S) {
    for (float* p : {c->x, c->ln, c->qkv, c->atty, c->fch}) cudaFree(p);
    cudaFree(c->tokens);
    c->x = c->ln = c->qkv = c->atty = c->fch = nullptr;
    c->tokens = nullptr;
    c->cap_S = 0;
    const size_t rows = (size_t)B * S;
    TRY(dev_alloc(&c->x, rows * C));
    TRY(dev_alloc(&c->ln, rows * C));
    TRY(dev_alloc(&c->qkv, rows * 3 * C));
    TRY(dev_alloc(&c->atty, rows * C));
    TRY(dev_alloc(&c->fch, rows * 4 * C));
    CU(cudaMalloc(&c->tokens, rows * sizeof(int)));
    c->cap_S = S;
  }
  const float eps = M->cfg.ln_eps;
  CU(cudaMemcpy(c->tokens, tokens, N * sizeof(int), cudaMemcpyHostToDevice));
  encoder_forward_kernel<<<blocks_for((size_t)N * C), kThreads>>>(c->x, c->tokens, M->p.wte, M->p.wpe, N, S, C, pos);
  LAUNCHED();
  for (int l = 0; l < L; l++) {
    const LayerTensors& w = M->p.layers[l];
    float* K = c->k + (size_t)l * B * NH * maxLen * hs;
    float* Vc = c->v + (size_t)l * B * NH * maxLen * hs;
    TRY(layernorm_forward(c->ln, nullptr, nullptr, c->x, w.ln1w, w.ln1b, N, C, eps));
    TRY(matmul_forward(M, c->qkv, c->ln, w.qkvw, w.qkvb, nullptr, N, C, 3 * C));
    kv_append_kernel<<<blocks_for((size_t)N * C), kThreads>>>(K, Vc, c->qkv, B, S, NH, hs, maxLen, pos);
    LAUNCHED();
    decode_attention_kernel<<<B * NH * S, 128, maxLen * sizeof(float)>>>(c->atty, c->qkv, K, Vc, S, NH, hs, maxLen, pos, 1.f / sqrtf((float)hs));
    LAUNCHED();
    TRY(matmul_forward(M, c->x, c->atty, w.attprojw, w.attprojb, c->x, N, C, C));
    TRY(layernorm_forward(c->ln, nullptr, nullptr, c->x, w.ln2w, w.ln2b, N, C, eps));
    TRY(matmul_forward(M, c->fch, c->ln, w.fcw, w.fcb, nullptr, N, C, 4 * C));
    gelu_forward_kernel<<<blocks_for((size_t)N * 4 * C), kThreads>>>(c->fch, c->fch, (size_t)N * 4 * C);
    LAUNCHED();
    TRY(matmul_forward(M, c->x, c->fch, w.fcprojw, w.fcprojb, c->x, N, 4 * C, C));
  }
  // the last new position of each row: rows b*S + S-1 of x, gathered by a strided copy
  CU(cudaMemcpy2D(c->last, C * sizeof(float), c->x + (size_t)(S - 1) * C, (size_t)S * C * sizeof(float), C * sizeof(float), B,
                  cudaMemcpyDeviceToDevice));
  TRY(layernorm_forward(c->lastln, nullptr, nullptr, c->last, M->p.lnfw, M->p.lnfb, B, C, eps));
  TRY(gemm(M, false, true, B, V, C, 1.f, c->lastln, C, M->p.wte, C, 0.f, c->out, V));
  CU(cudaMemcpy(out, c->out, (size_t)B * V * sizeof(float), cudaMemcpyDeviceToHost));
  c->length += S;
  return GPT2_OK;
}

}  // extern "C"
