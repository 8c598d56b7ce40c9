// The CUDA GPT-2 engine: the C API of native/include/gpt2.h on one GPU, in the layout and numerics of the CPU
// engine (native/cpu/model.cpp), whose structure it follows function for function.
//
// - Matmuls: cuBLAS, FP32 (SGEMM), TF32 tensor cores, or BF16 (gpt2_set_precision): BF16 runs cublasGemmEx with
//   bf16 A and B and FP32 accumulation and output; the weights come from a bf16 mirror of the parameters, refreshed
//   lazily after every change (gpt2_write, gpt2_adamw), and every other operand is rounded into a scratch buffer just
//   before its GEMM. Master weights, gradients and AdamW state stay FP32 in every mode.
// - Attention (training and evaluation): a fused flash-style kernel by default. The forward is an online softmax over
//   32-key tiles that keeps only the per-row logsumexp (B, NH, T); the backward recomputes the probabilities from q,
//   k and that logsumexp, with D = rowsum(dO * O) precomputed, in two kernels (dK and dV per key tile, dQ per query
//   tile), so no atomics and no (T, T) rows. FP32 math, except in BF16 with heads of 64 (every GPT-2 size): there the
//   same algorithm runs its products on tensor cores (wmma, bf16 operands, FP32 accumulators and softmax) in 64-row
//   tiles; GPT2_CUDA_ATTENTION=flash32 keeps the FP32 kernels. GPT2_CUDA_ATTENTION=naive (read at gpt2_create)
//   selects the first version instead: q, k, v permuted to (B, NH, T, hs), scores and the weighted sum by
//   strided-batched SGEMM (TF32 in TF32 and BF16) around a causal softmax kernel, the softmax rows (B, NH, T, T) of
//   every layer kept.
// - Everything else: one kernel per layer function (encoder, layernorm, GELU, cross-entropy with its gradient,
//   AdamW, norm); the residual adds and the biases are folded into the GEMMs (bias prefill, beta = 1), FP32.
// - Data parallel: gpt2_comm_* and gpt2_allreduce_grads over NCCL (built with -DGPT2_USE_NCCL; "nccl:" ids) or over
//   the shared-memory communicator of native/common/comm_shm.h ("shm:" ids, staging the gradients through the host).
// - Devices: gpt2_device_count and gpt2_device_info report each GPU's free memory before any model exists (the
//   studio checks a run's memory plan against it), and give back the context that the question made.
//
// The kernels run on the legacy default stream of the model's device (recorded at gpt2_create: the device that
// gpt2_comm_create selected, when it ran first on the thread); every API call selects that device again.
// native/test/gpu/gpu-check.sh checks this engine against the CPU engine on a GPU machine; native/test/emu runs it on
// the CPU (test/cuda-emulated.test.ts).
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <mma.h>
#ifdef GPT2_USE_NCCL
#include <nccl.h>
#endif

#include <algorithm>
#include <cfloat>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "../common/comm_shm.h"
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
__global__ void layernorm_forward_kernel(float* out, __nv_bfloat16* out16, float* mean, float* rstd, const float* inp, const float* w,
                                         const float* b, int N, int C, float eps) {
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
  float* o = out ? out + (size_t)row * C : nullptr;
  __nv_bfloat16* o16 = out16 ? out16 + (size_t)row * C : nullptr;
  for (int i = lane; i < C; i += 32) {
    const float y = (x[i] - m) * r * w[i] + b[i];
    if (o) o[i] = y;
    if (o16) o16[i] = __float2bfloat16(y);
  }
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

/** out and/or out16 (bf16) = GELU(inp) */
__global__ void gelu_forward_kernel(float* out, __nv_bfloat16* out16, const float* inp, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const float x = inp[i];
    const float y = 0.5f * x * (1.f + tanhf(kGeluK * (x + kGeluA * x * x * x)));
    if (out) out[i] = y;
    if (out16) out16[i] = __float2bfloat16(y);
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

// ---- flash-style causal attention (fused; no (T, T) rows) -------------------------------------------------------
//
// q, k, v are read in place from qkv (B, T, 3C) (head h at columns h*hs, C + h*hs, 2C + h*hs) and the output goes
// straight to (B, T, C). A block of 256 threads works on one (b, h) and one tile of 32 rows (queries, or keys in the
// dK/dV kernel): thread (r, sub) = (threadIdx.x / 8, threadIdx.x % 8) owns row r of the tile; of the 32 columns of a
// score tile it computes j = sub, sub + 8, sub + 16, sub + 24, and of the hs output dims d = sub + 8 k. The 8
// threads of a row are 8 consecutive lanes of one warp (row reductions are three xor shuffles). Tiles of hs floats
// are stored with a row stride of hs + 1 and score tiles with 33, so the column reads do not hit one bank. Rows past T
// are loaded as zeros, masked out of every score, and never written. D (a template parameter) bounds the output
// dims per thread: hs <= 8 D.

constexpr int kFlashTile = 32;
constexpr int kFlashLanes = 8;
constexpr int kFlashThreads = kFlashTile * kFlashLanes;
constexpr int kFlashCols = kFlashTile / kFlashLanes;  // score columns per thread
constexpr int kFlashMaxHs = 256;

__device__ inline float row_max8(float v) {
  for (int o = kFlashLanes / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ inline float row_sum8(float v) {
  for (int o = kFlashLanes / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/** dst (32, ld) = rows t0 .. t0+31 of src (row stride `stride`, hs floats each), zeros past T. */
__device__ inline void flash_load_tile(float* dst, int ld, const float* src, size_t stride, int t0, int T, int hs) {
  for (int i = threadIdx.x; i < kFlashTile * hs; i += blockDim.x) {
    const int r = i / hs, d = i % hs, t = t0 + r;
    dst[r * ld + d] = t < T ? src[(size_t)t * stride + d] : 0.f;
  }
}

inline size_t flash_forward_smem(int hs) { return (3 * (size_t)kFlashTile * (hs + 1) + kFlashTile * 33) * sizeof(float); }
inline size_t flash_dkdv_smem(int hs) { return (4 * (size_t)kFlashTile * (hs + 1) + 2 * kFlashTile * 33 + 2 * kFlashTile) * sizeof(float); }
inline size_t flash_dq_smem(int hs) { return (4 * (size_t)kFlashTile * (hs + 1) + kFlashTile * 33) * sizeof(float); }

/**
 * out (B, T, C) = softmax(scale q k^T, causal) v per head; lse (B, NH, T) = the logsumexp of each row's scaled
 * scores. Grid (ceil(T / 32), B * NH). Online softmax: per key tile, m' = max(m, tile max), l = l e^(m - m') + sum
 * e^(s - m'), o = o e^(m - m') + P v; at the end out = o / l and lse = m + log l.
 */
template <int D>
__global__ void __launch_bounds__(kFlashThreads) flash_attention_forward_kernel(float* out, float* lse, const float* qkv, int T, int NH,
                                                                                 int hs, float scale) {
  extern __shared__ float smem[];
  const int ld = hs + 1, C = NH * hs;
  float* Qs = smem;
  float* Ks = Qs + kFlashTile * ld;
  float* Vs = Ks + kFlashTile * ld;
  float* Ps = Vs + kFlashTile * ld;  // (32, 33)
  const int bh = blockIdx.y, b = bh / NH, h = bh % NH;
  const int q0 = blockIdx.x * kFlashTile;
  const int r = threadIdx.x / kFlashLanes, sub = threadIdx.x % kFlashLanes;
  const int qi = q0 + r;
  const int qlim = min(qi, T - 1);  // the last key this row sees; a row past T mirrors row T-1 and writes nothing
  const size_t stride = 3 * (size_t)C;
  const float* base = qkv + (size_t)b * T * stride + (size_t)h * hs;
  flash_load_tile(Qs, ld, base, stride, q0, T, hs);
  float o[D];
#pragma unroll
  for (int k = 0; k < D; k++) o[k] = 0.f;
  float m = -INFINITY, l = 0.f;
  const int kend = min(q0 + kFlashTile, T);
  // every key tile starts at k0 <= q0 <= qlim, so each row has at least one live score per tile: m stays finite
  for (int k0 = 0; k0 < kend; k0 += kFlashTile) {
    __syncthreads();  // the previous tile's readers are done
    flash_load_tile(Ks, ld, base + C, stride, k0, T, hs);
    flash_load_tile(Vs, ld, base + 2 * C, stride, k0, T, hs);
    __syncthreads();
    float s[kFlashCols];
#pragma unroll
    for (int jj = 0; jj < kFlashCols; jj++) s[jj] = 0.f;
    for (int d = 0; d < hs; d++) {
      const float qd = Qs[r * ld + d];
#pragma unroll
      for (int jj = 0; jj < kFlashCols; jj++) s[jj] += qd * Ks[(sub + kFlashLanes * jj) * ld + d];
    }
    float tmax = -INFINITY;
#pragma unroll
    for (int jj = 0; jj < kFlashCols; jj++) {
      s[jj] = k0 + sub + kFlashLanes * jj <= qlim ? s[jj] * scale : -INFINITY;
      tmax = fmaxf(tmax, s[jj]);
    }
    const float mnew = fmaxf(m, row_max8(tmax));
    const float alpha = expf(m - mnew);  // 0 on the first tile (m = -inf)
    float psum = 0.f;
#pragma unroll
    for (int jj = 0; jj < kFlashCols; jj++) {
      const float p = expf(s[jj] - mnew);  // 0 where masked
      Ps[r * 33 + sub + kFlashLanes * jj] = p;
      psum += p;
    }
    l = l * alpha + row_sum8(psum);
    m = mnew;
    __syncthreads();  // Ps complete
#pragma unroll
    for (int k = 0; k < D; k++) {
      const int d = sub + kFlashLanes * k;
      if (d < hs) {
        float acc = 0.f;
        for (int j = 0; j < kFlashTile; j++) acc += Ps[r * 33 + j] * Vs[j * ld + d];
        o[k] = o[k] * alpha + acc;
      }
    }
  }
  if (qi < T) {
    const float inv = 1.f / l;
    float* orow = out + ((size_t)b * T + qi) * C + (size_t)h * hs;
#pragma unroll
    for (int k = 0; k < D; k++) {
      const int d = sub + kFlashLanes * k;
      if (d < hs) orow[d] = o[k] * inv;
    }
    if (sub == 0) lse[(size_t)bh * T + qi] = m + logf(l);
  }
}

/** Drow (B, NH, T) = sum over d of dout * out for each (b, t, h), both (B, T, C). One warp per (b, t, h). */
__global__ void flash_attention_rowdot_kernel(float* Drow, const float* dout, const float* out, int B, int T, int NH, int hs) {
  const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= B * T * NH) return;
  const int h = row % NH, t = row / NH % T, b = row / (NH * T);
  const size_t o = ((size_t)b * T + t) * NH * hs + (size_t)h * hs;
  float s = 0.f;
  for (int d = lane; d < hs; d += 32) s += dout[o + d] * out[o + d];
  s = warp_sum(s);
  if (lane == 0) Drow[((size_t)b * NH + h) * T + t] = s;
}

/**
 * dK and dV of one tile of 32 keys (grid (ceil(T / 32), B * NH)), over the query tiles at or after it:
 * P = exp(scale q k^T - lse) (0 where the key is after the query), dV += P^T dO, dS = P (dO v^T - D), dK += scale dS^T q.
 * Writes the k and v parts of dqkv (B, T, 3C).
 */
template <int D>
__global__ void __launch_bounds__(kFlashThreads) flash_attention_backward_dkdv_kernel(float* dqkv, const float* dout, const float* qkv,
                                                                                       const float* lse, const float* Drow, int T, int NH,
                                                                                       int hs, float scale) {
  extern __shared__ float smem[];
  const int ld = hs + 1, C = NH * hs;
  float* Ks = smem;
  float* Vs = Ks + kFlashTile * ld;
  float* Qs = Vs + kFlashTile * ld;
  float* dOs = Qs + kFlashTile * ld;
  float* Ps = dOs + kFlashTile * ld;  // (32 keys, 33)
  float* dSs = Ps + kFlashTile * 33;  // (32 keys, 33)
  float* lse_s = dSs + kFlashTile * 33;
  float* D_s = lse_s + kFlashTile;
  const int bh = blockIdx.y, b = bh / NH, h = bh % NH;
  const int k0 = blockIdx.x * kFlashTile;
  const int r = threadIdx.x / kFlashLanes, sub = threadIdx.x % kFlashLanes;
  const int kj = k0 + r;  // this thread's key
  const size_t stride = 3 * (size_t)C;
  const float* base = qkv + (size_t)b * T * stride + (size_t)h * hs;
  const float* dbase = dout + (size_t)b * T * C + (size_t)h * hs;
  flash_load_tile(Ks, ld, base + C, stride, k0, T, hs);
  flash_load_tile(Vs, ld, base + 2 * C, stride, k0, T, hs);
  float dk[D], dv[D];
#pragma unroll
  for (int k = 0; k < D; k++) dk[k] = dv[k] = 0.f;
  for (int q0 = k0; q0 < T; q0 += kFlashTile) {
    __syncthreads();  // the previous tile's readers are done
    flash_load_tile(Qs, ld, base, stride, q0, T, hs);
    flash_load_tile(dOs, ld, dbase, (size_t)C, q0, T, hs);
    for (int i = threadIdx.x; i < kFlashTile; i += blockDim.x) {
      const int t = q0 + i;
      lse_s[i] = t < T ? lse[(size_t)bh * T + t] : 0.f;
      D_s[i] = t < T ? Drow[(size_t)bh * T + t] : 0.f;
    }
    __syncthreads();
    float s[kFlashCols], dp[kFlashCols];
#pragma unroll
    for (int ii = 0; ii < kFlashCols; ii++) s[ii] = dp[ii] = 0.f;
    for (int d = 0; d < hs; d++) {
      const float kd = Ks[r * ld + d], vd = Vs[r * ld + d];
#pragma unroll
      for (int ii = 0; ii < kFlashCols; ii++) {
        const int i = sub + kFlashLanes * ii;
        s[ii] += Qs[i * ld + d] * kd;
        dp[ii] += dOs[i * ld + d] * vd;
      }
    }
#pragma unroll
    for (int ii = 0; ii < kFlashCols; ii++) {
      const int i = sub + kFlashLanes * ii, qi = q0 + i;
      const bool live = qi < T && kj <= qi;
      const float p = live ? expf(s[ii] * scale - lse_s[i]) : 0.f;
      Ps[r * 33 + i] = p;
      dSs[r * 33 + i] = live ? p * (dp[ii] - D_s[i]) : 0.f;
    }
    __syncthreads();  // Ps and dSs complete
#pragma unroll
    for (int k = 0; k < D; k++) {
      const int d = sub + kFlashLanes * k;
      if (d < hs) {
        float av = 0.f, ak = 0.f;
        for (int i = 0; i < kFlashTile; i++) {
          av += Ps[r * 33 + i] * dOs[i * ld + d];
          ak += dSs[r * 33 + i] * Qs[i * ld + d];
        }
        dv[k] += av;
        dk[k] += ak;
      }
    }
  }
  if (kj < T) {
    float* row = dqkv + ((size_t)b * T + kj) * stride + (size_t)h * hs;
#pragma unroll
    for (int k = 0; k < D; k++) {
      const int d = sub + kFlashLanes * k;
      if (d < hs) {
        row[C + d] = dk[k] * scale;
        row[2 * C + d] = dv[k];
      }
    }
  }
}

/**
 * dQ of one tile of 32 queries (grid (ceil(T / 32), B * NH)), over the key tiles at or before it:
 * dS = P (dO v^T - D) as above, dQ = scale dS k. Writes the q part of dqkv (B, T, 3C).
 */
template <int D>
__global__ void __launch_bounds__(kFlashThreads) flash_attention_backward_dq_kernel(float* dqkv, const float* dout, const float* qkv,
                                                                                     const float* lse, const float* Drow, int T, int NH,
                                                                                     int hs, float scale) {
  extern __shared__ float smem[];
  const int ld = hs + 1, C = NH * hs;
  float* Qs = smem;
  float* dOs = Qs + kFlashTile * ld;
  float* Ks = dOs + kFlashTile * ld;
  float* Vs = Ks + kFlashTile * ld;
  float* dSs = Vs + kFlashTile * ld;  // (32 queries, 33)
  const int bh = blockIdx.y, b = bh / NH, h = bh % NH;
  const int q0 = blockIdx.x * kFlashTile;
  const int r = threadIdx.x / kFlashLanes, sub = threadIdx.x % kFlashLanes;
  const int qi = q0 + r;
  const size_t stride = 3 * (size_t)C;
  const float* base = qkv + (size_t)b * T * stride + (size_t)h * hs;
  flash_load_tile(Qs, ld, base, stride, q0, T, hs);
  flash_load_tile(dOs, ld, dout + (size_t)b * T * C + (size_t)h * hs, (size_t)C, q0, T, hs);
  const float lse_i = qi < T ? lse[(size_t)bh * T + qi] : 0.f;
  const float D_i = qi < T ? Drow[(size_t)bh * T + qi] : 0.f;
  float dq[D];
#pragma unroll
  for (int k = 0; k < D; k++) dq[k] = 0.f;
  const int kend = min(q0 + kFlashTile, T);
  for (int k0 = 0; k0 < kend; k0 += kFlashTile) {
    __syncthreads();  // the previous tile's readers are done (and Qs, dOs are published the first time)
    flash_load_tile(Ks, ld, base + C, stride, k0, T, hs);
    flash_load_tile(Vs, ld, base + 2 * C, stride, k0, T, hs);
    __syncthreads();
    float s[kFlashCols], dp[kFlashCols];
#pragma unroll
    for (int jj = 0; jj < kFlashCols; jj++) s[jj] = dp[jj] = 0.f;
    for (int d = 0; d < hs; d++) {
      const float qd = Qs[r * ld + d], od = dOs[r * ld + d];
#pragma unroll
      for (int jj = 0; jj < kFlashCols; jj++) {
        const int j = sub + kFlashLanes * jj;
        s[jj] += qd * Ks[j * ld + d];
        dp[jj] += od * Vs[j * ld + d];
      }
    }
#pragma unroll
    for (int jj = 0; jj < kFlashCols; jj++) {
      const int j = sub + kFlashLanes * jj;
      const bool live = qi < T && k0 + j <= qi;
      const float p = live ? expf(s[jj] * scale - lse_i) : 0.f;
      dSs[r * 33 + j] = live ? p * (dp[jj] - D_i) : 0.f;
    }
    __syncthreads();  // dSs complete
#pragma unroll
    for (int k = 0; k < D; k++) {
      const int d = sub + kFlashLanes * k;
      if (d < hs) {
        float acc = 0.f;
        for (int j = 0; j < kFlashTile; j++) acc += dSs[r * 33 + j] * Ks[j * ld + d];
        dq[k] += acc;
      }
    }
  }
  if (qi < T) {
    float* row = dqkv + ((size_t)b * T + qi) * stride + (size_t)h * hs;
#pragma unroll
    for (int k = 0; k < D; k++) {
      const int d = sub + kFlashLanes * k;
      if (d < hs) row[d] = dq[k] * scale;
    }
  }
}

// ---- tensor-core flash attention (BF16 precision, heads of 64) ---------------------------------------------------
// The same algorithm as the kernels above, with its four products per tile on tensor cores (nvcuda::wmma, 16 x 16 x
// 16 bf16 tiles accumulated in FP32): q, k, v and dO are rounded to bf16 as they are loaded into shared memory, the
// probabilities and dS as they are stored for the next product; the softmax, its running max and sum, and every
// accumulator stay FP32. A block of 4 warps takes a tile of 64 rows, each warp 16 of them, against tiles of 64 keys
// (or, for dK and dV, 64 keys against tiles of 64 queries). Used when the run's precision is BF16 and the head size
// 64 (every GPT-2 size); GPT2_CUDA_ATTENTION=flash32 keeps the FP32 kernels.

constexpr int kTcHs = 64;                      // head size
constexpr int kTcTile = 64;                    // rows per block, and rows per tile of the other operand
constexpr int kTcThreads = 128;                // 4 warps of 16 rows
constexpr int kTcLd = kTcHs + 8;               // bf16 tiles' row stride (a multiple of 8, off the 128-byte banks)
constexpr int kTcLdf = kTcTile + 4;            // FP32 tiles' row stride (a multiple of 4)
constexpr size_t kTcTileBf16 = (size_t)kTcTile * kTcLd * sizeof(__nv_bfloat16);
constexpr size_t kTcTileF32 = (size_t)kTcTile * kTcLdf * sizeof(float);
constexpr size_t kTcForwardSmem = 4 * kTcTileBf16 + 2 * kTcTileF32;              // Q K V P; S O
constexpr size_t kTcDqSmem = 5 * kTcTileBf16 + 2 * kTcTileF32 + 2 * kTcTile * sizeof(float);   // Q dO K V dS; S dP; lse D
constexpr size_t kTcDkdvSmem = 6 * kTcTileBf16 + 2 * kTcTileF32 + 2 * kTcTile * sizeof(float); // K V Q dO P dS; S dP; lse D

using FragA = nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 16, __nv_bfloat16, nvcuda::wmma::row_major>;
using FragBRow = nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, 16, __nv_bfloat16, nvcuda::wmma::row_major>;
using FragBCol = nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, 16, __nv_bfloat16, nvcuda::wmma::col_major>;
using FragC = nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float>;

/** dst (64, kTcLd) bf16 = rows t0 .. t0+63 of src (row stride `stride`, 64 floats each), zeros past T. */
__device__ inline void tc_load_tile(__nv_bfloat16* dst, const float* src, size_t stride, int t0, int T) {
  for (int i = threadIdx.x; i < kTcTile * kTcHs; i += blockDim.x) {
    const int r = i / kTcHs, d = i % kTcHs, t = t0 + r;
    dst[r * kTcLd + d] = __float2bfloat16(t < T ? src[(size_t)t * stride + d] : 0.f);
  }
}

/**
 * The warp's 16 rows of 64 floats (src, ld kTcLdf) times f into rows t0 .. t0+15 of dst (`stride` floats apart; rows
 * at or past T are skipped). The whole warp writes each row, so that every store is one coalesced 128-byte line.
 */
__device__ inline void tc_store_rows(float* dst, size_t stride, const float* src, int t0, int T, float f) {
  const int lane = threadIdx.x % 32;
  for (int r = 0; r < 16 && t0 + r < T; r++) {
    float* d = dst + (size_t)(t0 + r) * stride;
    d[lane] = src[r * kTcLdf + lane] * f;
    d[lane + 32] = src[r * kTcLdf + lane + 32] * f;
  }
}

/**
 * out (16, 64) FP32 at ld kTcLdf = A (16, 64) times B^T, B (64, 64) both row-major bf16 at ld kTcLd: the warp's rows
 * of A against the 64 rows of B (scores: q k^T, or dO v^T).
 */
__device__ inline void tc_rows_times_rows_t(float* out, const __nv_bfloat16* A, const __nv_bfloat16* B) {
  for (int n = 0; n < kTcTile / 16; n++) {
    FragC c;
    nvcuda::wmma::fill_fragment(c, 0.f);
    for (int k = 0; k < kTcHs / 16; k++) {
      FragA a;
      FragBCol b;  // B^T (d, j) = B[j][d]: B read column-major
      nvcuda::wmma::load_matrix_sync(a, A + k * 16, kTcLd);
      nvcuda::wmma::load_matrix_sync(b, B + n * 16 * kTcLd + k * 16, kTcLd);
      nvcuda::wmma::mma_sync(c, a, b, c);
    }
    nvcuda::wmma::store_matrix_sync(out + n * 16, c, kTcLdf, nvcuda::wmma::mem_row_major);
  }
}

/** acc[n] += A (16, 64) times B (64, 64), both row-major bf16 at ld kTcLd, for the 4 column blocks n of B. */
__device__ inline void tc_accumulate(FragC* acc, const __nv_bfloat16* A, const __nv_bfloat16* B) {
  for (int k = 0; k < kTcTile / 16; k++) {
    FragA a;
    nvcuda::wmma::load_matrix_sync(a, A + k * 16, kTcLd);
    for (int n = 0; n < kTcHs / 16; n++) {
      FragBRow b;
      nvcuda::wmma::load_matrix_sync(b, B + k * 16 * kTcLd + n * 16, kTcLd);
      nvcuda::wmma::mma_sync(acc[n], a, b, acc[n]);
    }
  }
}

/** Forward: as flash_attention_forward_kernel. O is kept in shared memory, so that each row can be rescaled. */
__global__ void __launch_bounds__(kTcThreads) tc_flash_forward_kernel(float* out, float* lse, const float* qkv, int T, int NH, float scale) {
  extern __shared__ __align__(128) float smem[];
  __nv_bfloat16* Qs = reinterpret_cast<__nv_bfloat16*>(smem);
  __nv_bfloat16* Ks = Qs + kTcTile * kTcLd;
  __nv_bfloat16* Vs = Ks + kTcTile * kTcLd;
  __nv_bfloat16* Ps = Vs + kTcTile * kTcLd;
  float* Ss = reinterpret_cast<float*>(Ps + kTcTile * kTcLd);
  float* Os = Ss + kTcTile * kTcLdf;
  const int C = NH * kTcHs, bh = blockIdx.y, b = bh / NH, h = bh % NH;
  const int q0 = blockIdx.x * kTcTile, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row = warp * 16 + lane / 2, half = lane % 2;  // this lane's row of the tile, and its 32 columns
  // the lanes walk their 32 columns from different starts, so that the 32 lanes of a warp touch 32 different shared
  // memory banks (rows are kTcLdf = 68 floats apart: without it, 4 lanes would share each bank)
  const int rot = 2 * half + (lane >= 16);
  const int qi = q0 + row, qlim = min(qi, T - 1);
  const size_t stride = 3 * (size_t)C;
  const float* base = qkv + (size_t)b * T * stride + (size_t)h * kTcHs;
  tc_load_tile(Qs, base, stride, q0, T);
  for (int c = 0; c < 32; c++) Os[row * kTcLdf + half * 32 + c] = 0.f;
  float m = -INFINITY, l = 0.f;
  const int kend = min(q0 + kTcTile, T);
  for (int k0 = 0; k0 < kend; k0 += kTcTile) {
    __syncthreads();  // the previous tile's readers are done (and Qs is published the first time)
    tc_load_tile(Ks, base + C, stride, k0, T);
    tc_load_tile(Vs, base + 2 * C, stride, k0, T);
    __syncthreads();
    tc_rows_times_rows_t(Ss + warp * 16 * kTcLdf, Qs + warp * 16 * kTcLd, Ks);
    __syncwarp();  // the stored scores are visible to every lane of the warp
    float* srow = Ss + row * kTcLdf + half * 32;
    float tmax = -INFINITY;
    for (int c0 = 0; c0 < 32; c0++) {
      const int c = (c0 + rot) & 31;
      const float s = k0 + half * 32 + c <= qlim ? srow[c] * scale : -INFINITY;
      srow[c] = s;
      tmax = fmaxf(tmax, s);
    }
    const float mnew = fmaxf(m, fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, 1)));
    const float alpha = expf(m - mnew);  // 0 on the first tile (m = -inf); every tile has a live key per row
    float psum = 0.f;
    __nv_bfloat16* prow = Ps + row * kTcLd + half * 32;
    float* orow = Os + row * kTcLdf + half * 32;
    for (int c0 = 0; c0 < 32; c0++) {
      const int c = (c0 + rot) & 31;
      const float p = expf(srow[c] - mnew);
      prow[c] = __float2bfloat16(p);
      psum += p;
      orow[c] *= alpha;
    }
    l = l * alpha + psum + __shfl_xor_sync(0xffffffffu, psum, 1);
    m = mnew;
    __syncwarp();  // the warp's P rows and rescaled O rows are complete
    FragC acc[kTcHs / 16];
    for (int n = 0; n < kTcHs / 16; n++)
      nvcuda::wmma::load_matrix_sync(acc[n], Os + warp * 16 * kTcLdf + n * 16, kTcLdf, nvcuda::wmma::mem_row_major);
    tc_accumulate(acc, Ps + warp * 16 * kTcLd, Vs);
    for (int n = 0; n < kTcHs / 16; n++)
      nvcuda::wmma::store_matrix_sync(Os + warp * 16 * kTcLdf + n * 16, acc[n], kTcLdf, nvcuda::wmma::mem_row_major);
  }
  __syncwarp();
  const float inv = 1.f / l;  // every row, also one past T, has a live key: l > 0
  float* orow = Os + row * kTcLdf + half * 32;
  for (int c0 = 0; c0 < 32; c0++) orow[(c0 + rot) & 31] *= inv;
  if (qi < T && half == 0) lse[(size_t)bh * T + qi] = m + logf(l);
  __syncwarp();
  tc_store_rows(out + (size_t)b * T * C + (size_t)h * kTcHs, (size_t)C, Os + warp * 16 * kTcLdf, q0 + warp * 16, T, 1.f);
}

/** dQ of one tile of 64 queries, over the key tiles at or before it (as flash_attention_backward_dq_kernel). */
__global__ void __launch_bounds__(kTcThreads) tc_flash_backward_dq_kernel(float* dqkv, const float* dout, const float* qkv, const float* lse,
                                                                          const float* Drow, int T, int NH, float scale) {
  extern __shared__ __align__(128) float smem[];
  __nv_bfloat16* Qs = reinterpret_cast<__nv_bfloat16*>(smem);
  __nv_bfloat16* dOs = Qs + kTcTile * kTcLd;
  __nv_bfloat16* Ks = dOs + kTcTile * kTcLd;
  __nv_bfloat16* Vs = Ks + kTcTile * kTcLd;
  __nv_bfloat16* dSs = Vs + kTcTile * kTcLd;
  float* Ss = reinterpret_cast<float*>(dSs + kTcTile * kTcLd);
  float* dPs = Ss + kTcTile * kTcLdf;
  const int C = NH * kTcHs, bh = blockIdx.y, b = bh / NH, h = bh % NH;
  const int q0 = blockIdx.x * kTcTile, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row = warp * 16 + lane / 2, half = lane % 2, rot = 2 * half + (lane >= 16);  // rot: as in the forward
  const int qi = q0 + row;
  const size_t stride = 3 * (size_t)C;
  const float* base = qkv + (size_t)b * T * stride + (size_t)h * kTcHs;
  tc_load_tile(Qs, base, stride, q0, T);
  tc_load_tile(dOs, dout + (size_t)b * T * C + (size_t)h * kTcHs, (size_t)C, q0, T);
  const float lse_i = qi < T ? lse[(size_t)bh * T + qi] : 0.f;
  const float D_i = qi < T ? Drow[(size_t)bh * T + qi] : 0.f;
  FragC dq[kTcHs / 16];
  for (int n = 0; n < kTcHs / 16; n++) nvcuda::wmma::fill_fragment(dq[n], 0.f);
  const int kend = min(q0 + kTcTile, T);
  for (int k0 = 0; k0 < kend; k0 += kTcTile) {
    __syncthreads();
    tc_load_tile(Ks, base + C, stride, k0, T);
    tc_load_tile(Vs, base + 2 * C, stride, k0, T);
    __syncthreads();
    tc_rows_times_rows_t(Ss + warp * 16 * kTcLdf, Qs + warp * 16 * kTcLd, Ks);
    tc_rows_times_rows_t(dPs + warp * 16 * kTcLdf, dOs + warp * 16 * kTcLd, Vs);
    __syncwarp();
    const float* srow = Ss + row * kTcLdf + half * 32;
    const float* dprow = dPs + row * kTcLdf + half * 32;
    __nv_bfloat16* dsrow = dSs + row * kTcLd + half * 32;
    for (int c0 = 0; c0 < 32; c0++) {
      const int c = (c0 + rot) & 31;
      const bool live = qi < T && k0 + half * 32 + c <= qi;
      const float p = live ? expf(srow[c] * scale - lse_i) : 0.f;
      dsrow[c] = __float2bfloat16(live ? p * (dprow[c] - D_i) : 0.f);
    }
    __syncwarp();
    tc_accumulate(dq, dSs + warp * 16 * kTcLd, Ks);
  }
  for (int n = 0; n < kTcHs / 16; n++)
    nvcuda::wmma::store_matrix_sync(Ss + warp * 16 * kTcLdf + n * 16, dq[n], kTcLdf, nvcuda::wmma::mem_row_major);
  __syncwarp();
  tc_store_rows(dqkv + (size_t)b * T * stride + (size_t)h * kTcHs, stride, Ss + warp * 16 * kTcLdf, q0 + warp * 16, T, scale);
}

/**
 * dK and dV of one tile of 64 keys, over the query tiles at or after it (as flash_attention_backward_dkdv_kernel):
 * in the transposed view, S^T = k q^T and dP^T = v dO^T per warp's 16 keys, then dV += P^T dO and dK += dS^T q.
 */
__global__ void __launch_bounds__(kTcThreads) tc_flash_backward_dkdv_kernel(float* dqkv, const float* dout, const float* qkv, const float* lse,
                                                                            const float* Drow, int T, int NH, float scale) {
  extern __shared__ __align__(128) float smem[];
  __nv_bfloat16* Ks = reinterpret_cast<__nv_bfloat16*>(smem);
  __nv_bfloat16* Vs = Ks + kTcTile * kTcLd;
  __nv_bfloat16* Qs = Vs + kTcTile * kTcLd;
  __nv_bfloat16* dOs = Qs + kTcTile * kTcLd;
  __nv_bfloat16* Pts = dOs + kTcTile * kTcLd;
  __nv_bfloat16* dSts = Pts + kTcTile * kTcLd;
  float* Sts = reinterpret_cast<float*>(dSts + kTcTile * kTcLd);
  float* dPts = Sts + kTcTile * kTcLdf;
  float* lse_s = dPts + kTcTile * kTcLdf;
  float* D_s = lse_s + kTcTile;
  const int C = NH * kTcHs, bh = blockIdx.y, b = bh / NH, h = bh % NH;
  const int k0 = blockIdx.x * kTcTile, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int krow = warp * 16 + lane / 2, half = lane % 2;  // this lane's key of the tile, and its 32 query columns
  const int rot = 2 * half + (lane >= 16);                 // as in the forward
  const int kj = k0 + krow;
  const size_t stride = 3 * (size_t)C;
  const float* base = qkv + (size_t)b * T * stride + (size_t)h * kTcHs;
  const float* dbase = dout + (size_t)b * T * C + (size_t)h * kTcHs;
  tc_load_tile(Ks, base + C, stride, k0, T);
  tc_load_tile(Vs, base + 2 * C, stride, k0, T);
  FragC dk[kTcHs / 16], dv[kTcHs / 16];
  for (int n = 0; n < kTcHs / 16; n++) {
    nvcuda::wmma::fill_fragment(dk[n], 0.f);
    nvcuda::wmma::fill_fragment(dv[n], 0.f);
  }
  for (int q0 = k0; q0 < T; q0 += kTcTile) {
    __syncthreads();  // the previous tile's readers are done (and Ks, Vs are published the first time)
    tc_load_tile(Qs, base, stride, q0, T);
    tc_load_tile(dOs, dbase, (size_t)C, q0, T);
    for (int i = threadIdx.x; i < kTcTile; i += blockDim.x) {
      lse_s[i] = q0 + i < T ? lse[(size_t)bh * T + q0 + i] : 0.f;
      D_s[i] = q0 + i < T ? Drow[(size_t)bh * T + q0 + i] : 0.f;
    }
    __syncthreads();
    tc_rows_times_rows_t(Sts + warp * 16 * kTcLdf, Ks + warp * 16 * kTcLd, Qs);
    tc_rows_times_rows_t(dPts + warp * 16 * kTcLdf, Vs + warp * 16 * kTcLd, dOs);
    __syncwarp();
    const float* srow = Sts + krow * kTcLdf + half * 32;
    const float* dprow = dPts + krow * kTcLdf + half * 32;
    __nv_bfloat16* prow = Pts + krow * kTcLd + half * 32;
    __nv_bfloat16* dsrow = dSts + krow * kTcLd + half * 32;
    for (int c0 = 0; c0 < 32; c0++) {
      const int c = (c0 + rot) & 31, i = half * 32 + c, qi = q0 + i;
      const bool live = kj < T && qi < T && kj <= qi;
      const float p = live ? expf(srow[c] * scale - lse_s[i]) : 0.f;
      prow[c] = __float2bfloat16(p);
      dsrow[c] = __float2bfloat16(live ? p * (dprow[c] - D_s[i]) : 0.f);
    }
    __syncwarp();
    tc_accumulate(dv, Pts + warp * 16 * kTcLd, dOs);
    tc_accumulate(dk, dSts + warp * 16 * kTcLd, Qs);
  }
  float* stage = Sts + warp * 16 * kTcLdf;
  float* dst = dqkv + (size_t)b * T * stride + (size_t)C + (size_t)h * kTcHs;  // the k part; the v part is C further
  __syncwarp();
#pragma unroll
  for (int n = 0; n < kTcHs / 16; n++) nvcuda::wmma::store_matrix_sync(stage + n * 16, dk[n], kTcLdf, nvcuda::wmma::mem_row_major);
  __syncwarp();
  tc_store_rows(dst, stride, stage, k0 + warp * 16, T, scale);
  __syncwarp();
#pragma unroll
  for (int n = 0; n < kTcHs / 16; n++) nvcuda::wmma::store_matrix_sync(stage + n * 16, dv[n], kTcLdf, nvcuda::wmma::mem_row_major);
  __syncwarp();
  tc_store_rows(dst + C, stride, stage, k0 + warp * 16, T, 1.f);
}

/** out[i] = in[i] rounded to bf16 (nearest, ties to even). */
__global__ void to_bf16_kernel(__nv_bfloat16* out, const float* in, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) out[i] = __float2bfloat16(in[i]);
}

/**
 * One block per row of logits (N rows of V, `stride` floats apart): the loss lse - x[target] (NaN when the position
 * does not count). With grad, the row's gradient (softmax - onehot) * weight * scale (zero when the position does not
 * count) replaces the row in place, or, when grad16 is set, goes there in bf16 (same stride) and the logits stay.
 * One pass finds the max and the sum of exponentials together (each thread rescales its sum when its max grows).
 */
__global__ void crossentropy_kernel(float* logits, float* losses, const int* targets, const float* weights, int V, size_t stride, bool grad,
                                    float scale, __nv_bfloat16* grad16) {
  const int row = blockIdx.x;
  float* x = logits + (size_t)row * stride;
  __nv_bfloat16* x16 = grad16 ? grad16 + (size_t)row * stride : nullptr;
  const int tgt = targets[row];
  const float w = weights[row];
  if (tgt < 0 || w == 0.f) {
    if (threadIdx.x == 0) losses[row] = NAN;
    if (grad)
      for (int j = threadIdx.x; j < V; j += blockDim.x) {
        if (x16) x16[j] = __float2bfloat16(0.f);
        else x[j] = 0.f;
      }
    return;
  }
  const float xt = x[tgt];
  float m = -FLT_MAX, s = 0.f;
  for (int j = threadIdx.x; j < V; j += blockDim.x) {
    const float xj = x[j];
    if (xj > m) {
      s = s * expf(m - xj) + 1.f;
      m = xj;
    } else {
      s += expf(xj - m);
    }
  }
  const float mx = block_max(m);
  s = block_sum(s * expf(m - mx));
  if (threadIdx.x == 0) losses[row] = mx + logf(s) - xt;
  if (grad) {
    const float f = w * scale / s;
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
      float gj = expf(x[j] - mx) * f;
      if (j == tgt) gj -= w * scale;
      if (x16) x16[j] = __float2bfloat16(gj);
      else x[j] = gj;
    }
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
  // BF16 keeps the inputs of the GEMMs that are made by a layernorm or GELU only in bf16 (the *16 buffers); their
  // FP32 forms (ln1, ln2, fch_gelu) are then null. The bf16 forms serve the forward GEMM and the weight-gradient GEMM.
  float* ln1;        // (L, B, T, C)
  float* ln1_mean;   // (L, B, T)
  float* ln1_rstd;   // (L, B, T)
  float* qkv;        // (L, B, T, 3C)
  float* atty;       // (L, B, T, C)
  float* att;        // naive: (L, B, NH, T, T) softmax rows; flash: (L, B, NH, T) the logsumexp of each row
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
  float* logits;     // (B, T, V) with rows Vp floats apart, so that every row is aligned for the GEMMs
  // the forward-backward's logits gradient: in place in `logits`, or in BF16 as bf16 in scratch slot 0 (same layout)
  const __nv_bfloat16* dlogits16 = nullptr;
  float* losses;     // (B, T)
  float* weights;    // (B, T)
  int* targets;      // (B, T)
  int* inputs;       // (B, T)
  float* q;          // (B, NH, T, hs)  naive attention scratch (one layer); empty with flash
  float* k;          // (B, NH, T, hs)
  float* v;          // (B, NH, T, hs)
  float* y;          // (B, NH, T, hs)
  float* datt;       // naive: (B, NH, T, T); flash: (B, NH, T) the rows' D = sum(dO * O)
  float* dres;       // (B, T, C)
  float* dbuf_c;     // (B, T, C)
  float* dbuf_4c;    // (B, T, 4C)
  __nv_bfloat16* ln1_16 = nullptr;   // BF16 only: (L, B, T, C)
  __nv_bfloat16* atty16 = nullptr;   // (L, B, T, C), rounded from atty
  __nv_bfloat16* ln2_16 = nullptr;   // (L, B, T, C)
  __nv_bfloat16* fchg16 = nullptr;   // (L, B, T, 4C)
  __nv_bfloat16* lnf16 = nullptr;    // (B, T, C), besides lnf
};

constexpr int kPerLayer = 12;
constexpr int kNormBlocks = 1024;

}  // namespace

struct GPT2 {
  GPT2Config cfg;
  int device = 0;  // the CUDA device it lives on (current at gpt2_create)
  cublasHandle_t blas = nullptr;
  int precision = GPT2_PRECISION_FP32;
  bool flash = true;  // fused attention; false: GPT2_CUDA_ATTENTION=naive
  bool flash32 = false;  // GPT2_CUDA_ATTENTION=flash32: the FP32 fused kernels even in BF16
  // BF16 matmuls: a bf16 mirror of the parameters (stale after every write or update, refreshed before the next GEMM
  // that reads a weight) and two scratch buffers for the other operands
  __nv_bfloat16* params_bf16 = nullptr;  // device (num_params)
  bool bf16_stale = true;
  __nv_bfloat16* scratch_bf16[2] = {nullptr, nullptr};
  size_t scratch_cap[2] = {0, 0};
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
  // GPT2_CUDA_PROFILE=1 (read at gpt2_create): the GPU time of each section of the step, from CUDA events around it,
  // summed over the model's life and printed to stderr by gpt2_destroy
  struct Profile {
    bool on = false;
    std::vector<cudaEvent_t> events;  // a pool, reused after each flush
    size_t used = 0;
    struct Span {
      const char* name;
      size_t start, end;
      double flops;
    };
    std::vector<Span> spans;  // recorded, not yet read back
    struct Total {
      const char* name;
      double ms, flops;
      long calls;
    };
    std::vector<Total> totals;  // in the order first seen
    long steps = 0;
    int B = 0, T = 0;
  } prof;
};

struct GPT2Cache {
  int B, max_len, length, L, NH, hs, C;
  int device = 0;
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

// ---- profile (GPT2_CUDA_PROFILE=1) --------------------------------------------------------------------------------

/** Records the next event of the pool on the model's stream; its index. */
size_t prof_mark(GPT2* M) {
  GPT2::Profile& P = M->prof;
  if (P.used == P.events.size()) {
    cudaEvent_t e = nullptr;
    if (cudaEventCreate(&e) != cudaSuccess) {  // profiling is best effort: it stops, the run goes on
      (void)cudaGetLastError();
      P.on = false;
      return 0;
    }
    P.events.push_back(e);
  }
  (void)cudaEventRecord(P.events[P.used], 0);
  return P.used++;
}

/** Waits for the recorded spans and adds their times to the totals. */
void prof_flush(GPT2* M) {
  GPT2::Profile& P = M->prof;
  if (!P.spans.empty() && P.used > 0 && cudaEventSynchronize(P.events[P.used - 1]) == cudaSuccess) {
    for (const GPT2::Profile::Span& sp : P.spans) {
      float ms = 0.f;
      if (cudaEventElapsedTime(&ms, P.events[sp.start], P.events[sp.end]) != cudaSuccess) ms = 0.f;
      auto t = std::find_if(P.totals.begin(), P.totals.end(), [&](const GPT2::Profile::Total& x) { return !std::strcmp(x.name, sp.name); });
      if (t == P.totals.end()) t = P.totals.insert(P.totals.end(), GPT2::Profile::Total{sp.name, 0.0, 0.0, 0});
      t->ms += ms;
      t->flops += sp.flops;
      t->calls++;
    }
  }
  (void)cudaGetLastError();
  P.spans.clear();
  P.used = 0;
}

inline bool use_tc_attention(const GPT2* M, int hs);

void prof_print(GPT2* M) {
  GPT2::Profile& P = M->prof;
  prof_flush(M);
  if (P.totals.empty()) return;
  double sum = 0;
  for (const auto& t : P.totals) sum += t.ms;
  std::vector<GPT2::Profile::Total> rows = P.totals;
  std::stable_sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.ms > b.ms; });
  const char* prec = M->precision == GPT2_PRECISION_BF16 ? "bf16" : M->precision == GPT2_PRECISION_TF32 ? "tf32" : "fp32";
  const int hs = M->cfg.channels / M->cfg.num_heads;
  const char* att = !M->flash ? "naive" : use_tc_attention(M, hs) ? "flash on tensor cores" : "flash (FP32 kernels)";
  std::fprintf(stderr, "[gpt2 cuda profile] %ld forward-backward calls (last B=%d, T=%d), %s matmuls, attention %s; GPU time by section:\n",
               P.steps, P.B, P.T, prec, att);
  std::fprintf(stderr, "  %-26s %7s %11s %10s %7s %9s\n", "section", "calls", "total ms", "ms/call", "share", "TFLOP/s");
  for (const auto& t : rows) {
    char tf[32] = "-";
    if (t.flops > 0 && t.ms > 0) std::snprintf(tf, sizeof tf, "%.1f", t.flops / (t.ms * 1e-3) / 1e12);
    std::fprintf(stderr, "  %-26s %7ld %11.2f %10.3f %6.1f%% %9s\n", t.name, t.calls, t.ms, t.ms / t.calls, sum > 0 ? 100.0 * t.ms / sum : 0.0, tf);
  }
  std::fprintf(stderr, "  %-26s %7s %11.2f   (TFLOP/s: useful FLOPs; causal attention counts half of T x T)\n", "all sections", "", sum);
}

/** A profiled section: events around its lifetime when GPT2_CUDA_PROFILE is on (flops: the work it does, or 0). */
struct Timed {
  GPT2* M;
  const char* name;
  double flops;
  size_t start = 0;
  Timed(GPT2* m, const char* n, double f = 0) : M(m), name(n), flops(f) {
    if (M->prof.on) start = prof_mark(M);
  }
  ~Timed() {
    if (M->prof.on) {
      const size_t end = prof_mark(M);
      if (M->prof.on) M->prof.spans.push_back({name, start, end, flops});
    }
  }
  Timed(const Timed&) = delete;
  Timed& operator=(const Timed&) = delete;
};
#define TIMED(name, flops, ...)   \
  do {                            \
    Timed timed_(M, name, flops); \
    __VA_ARGS__;                  \
  } while (0)

// ---- row-major cuBLAS (the CPU engine's sgemm contract) ----------------------------------------------------------

/** Selects the model's device on the calling thread (every API call on a model starts with it). */
int use_device(int device) {
  // a failed allocation of an earlier call leaves CUDA's last error set; the next launch check would report it
  (void)cudaGetLastError();
  int cur = -1;
  if (cudaGetDevice(&cur) == cudaSuccess && cur == device) return GPT2_OK;
  CU(cudaSetDevice(device));
  return GPT2_OK;
}

/** Makes bf16 scratch buffer `slot` hold at least `span` elements (only the first steps grow it). */
int bf16_scratch(GPT2* M, int slot, size_t span) {
  if (span <= M->scratch_cap[slot]) return GPT2_OK;
  CU(cudaFree(M->scratch_bf16[slot]));
  M->scratch_bf16[slot] = nullptr;
  M->scratch_cap[slot] = 0;
  if (cudaMalloc(&M->scratch_bf16[slot], span * sizeof(__nv_bfloat16)) != cudaSuccess)
    return fail(GPT2_ERR_MEMORY, "out of GPU memory for a bf16 operand of %zu elements", span);
  M->scratch_cap[slot] = span;
  return GPT2_OK;
}

/** Brings the parameters' bf16 mirror up to date (allocated on first use). */
int refresh_bf16_params(GPT2* M) {
  if (!M->params_bf16) CU(cudaMalloc(&M->params_bf16, M->num_params * sizeof(__nv_bfloat16)));
  if (M->bf16_stale) {
    to_bf16_kernel<<<blocks_for(M->num_params), kThreads>>>(M->params_bf16, M->params, M->num_params);
    LAUNCHED();
    M->bf16_stale = false;
  }
  return GPT2_OK;
}

/**
 * The bf16 form of a GEMM operand of `span` floats at X: the parameters' mirror when X is a parameter (refreshed
 * first when stale), else X rounded into scratch buffer `slot` (grown on demand; only the first steps grow it).
 */
int bf16_operand(GPT2* M, const float* X, size_t span, int slot, const __nv_bfloat16** out) {
  const uintptr_t x = reinterpret_cast<uintptr_t>(X), p0 = reinterpret_cast<uintptr_t>(M->params);
  if (x >= p0 && x < p0 + M->num_params * sizeof(float)) {
    TRY(refresh_bf16_params(M));
    *out = M->params_bf16 + (X - M->params);
    return GPT2_OK;
  }
  TRY(bf16_scratch(M, slot, span));
  to_bf16_kernel<<<blocks_for(span), kThreads>>>(M->scratch_bf16[slot], X, span);
  LAUNCHED();
  *out = M->scratch_bf16[slot];
  return GPT2_OK;
}

/**
 * C (M, N) = alpha op(A) op(B) + beta C, row-major: cuBLAS (column-major) computes C^T = op(B)^T op(A)^T.
 * FP32 and TF32: SGEMM (the math mode set by gpt2_set_precision). BF16: A and B rounded to bf16, the products
 * accumulated in FP32 into the FP32 C (cublasGemmEx, CUBLAS_COMPUTE_32F). A16, when given, is A already in bf16
 * (same layout), and so is B16 for B: an operand used by two GEMMs is rounded once, and one made in bf16 (a layernorm's
 * output, a gradient) is not rounded again; A or B may then be null.
 */
int gemm(GPT2* M, bool tA, bool tB, int m, int n, int k, float alpha, const float* A, int lda, const float* B, int ldb, float beta,
         float* C, int ldc, const __nv_bfloat16* A16 = nullptr, const __nv_bfloat16* B16 = nullptr) {
  const cublasOperation_t opA = tA ? CUBLAS_OP_T : CUBLAS_OP_N, opB = tB ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (M->precision != GPT2_PRECISION_BF16) {
    CB(cublasSgemm(M->blas, opB, opA, n, m, k, &alpha, B, ldb, A, lda, &beta, C, ldc));
    return GPT2_OK;
  }
  // the stored (row-major) extent of each operand: A is (m, k), or (k, m) when transposed; B is (k, n), or (n, k)
  const size_t spanA = (size_t)((tA ? k : m) - 1) * lda + (tA ? m : k);
  const size_t spanB = (size_t)((tB ? n : k) - 1) * ldb + (tB ? k : n);
  if (!A16) TRY(bf16_operand(M, A, spanA, 0, &A16));
  if (!B16) TRY(bf16_operand(M, B, spanB, 1, &B16));
  CB(cublasGemmEx(M->blas, opB, opA, n, m, k, &alpha, B16, CUDA_R_16BF, ldb, A16, CUDA_R_16BF, lda, &beta, C, CUDA_R_32F, ldc,
                  CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  return GPT2_OK;
}

int gemm_batched(GPT2* M, bool tA, bool tB, int m, int n, int k, float alpha, const float* A, int lda, long long sA, const float* B, int ldb,
                 long long sB, float beta, float* C, int ldc, long long sC, int batch) {
  CB(cublasSgemmStridedBatched(M->blas, tB ? CUBLAS_OP_T : CUBLAS_OP_N, tA ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, B, ldb, sB, A,
                               lda, sA, &beta, C, ldc, sC, batch));
  return GPT2_OK;
}

// ---- layer functions (as native/cpu/layers.h) --------------------------------------------------------------------

int layernorm_forward(float* out, __nv_bfloat16* out16, float* mean, float* rstd, const float* inp, const float* w, const float* b, int N,
                      int C, float eps) {
  layernorm_forward_kernel<<<(N + 7) / 8, 256>>>(out, out16, mean, rstd, inp, w, b, N, C, eps);
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

/** out = inp W^T + bias (+ add). inp16: inp in bf16 (BF16; inp may then be null). */
int matmul_forward(GPT2* M, float* out, const float* inp, const __nv_bfloat16* inp16, const float* W, const float* bias, const float* add, int N,
                   int IC, int OC) {
  float beta = 0.f;
  if (bias || add) {
    bias_prefill_kernel<<<blocks_for((size_t)N * OC), kThreads>>>(out, add, bias, N, OC);
    LAUNCHED();
    beta = 1.f;
  }
  return gemm(M, false, true, N, OC, IC, 1.f, inp, IC, W, IC, beta, out, OC, inp16);
}

/** dinp = dout W, dW += dout^T inp, dbias += column sums of dout. inp16: as matmul_forward's. */
int matmul_backward(GPT2* M, float* dinp, float* dW, float* dbias, const float* dout, const float* inp, const __nv_bfloat16* inp16, const float* W,
                    int N, int IC, int OC) {
  // BF16: dout is an operand of both GEMMs; round it once (scratch slot 0, which neither GEMM's other operand uses)
  const __nv_bfloat16* dout16 = nullptr;
  if (M->precision == GPT2_PRECISION_BF16) TRY(bf16_operand(M, dout, (size_t)N * OC, 0, &dout16));
  TRY(gemm(M, false, false, N, IC, OC, 1.f, dout, OC, W, IC, 0.f, dinp, IC, dout16));
  TRY(gemm(M, true, false, OC, IC, N, 1.f, dout, OC, inp, IC, 1.f, dW, IC, dout16, inp16));
  if (dbias) {
    dim3 grid((OC + 31) / 32, std::min((N + 31) / 32, 64));
    bias_backward_kernel<<<grid, dim3(32, 32)>>>(dbias, dout, N, OC);
    LAUNCHED();
  }
  return GPT2_OK;
}

/** Raises a kernel's dynamic shared memory limit when it needs more than the default 48 KB (large head sizes). */
template <typename K>
int allow_smem(K kernel, size_t bytes) {
  if (bytes > 48 * 1024) CU(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
  return GPT2_OK;
}

template <int D>
int flash_forward(float* out, float* lse, const float* qkv, int B, int T, int NH, int hs) {
  if ((long)B * NH > 65535) return fail(GPT2_ERR_ARGUMENT, "flash attention: B * heads = %ld exceeds 65535; use a smaller batch", (long)B * NH);
  const size_t smem = flash_forward_smem(hs);
  TRY(allow_smem(flash_attention_forward_kernel<D>, smem));
  const dim3 grid((T + kFlashTile - 1) / kFlashTile, B * NH);
  flash_attention_forward_kernel<D><<<grid, kFlashThreads, smem>>>(out, lse, qkv, T, NH, hs, 1.f / sqrtf((float)hs));
  LAUNCHED();
  return GPT2_OK;
}

template <int D>
int flash_backward(float* dqkv, const float* dout, const float* qkv, const float* lse, const float* Drow, int B, int T, int NH, int hs) {
  if ((long)B * NH > 65535) return fail(GPT2_ERR_ARGUMENT, "flash attention: B * heads = %ld exceeds 65535; use a smaller batch", (long)B * NH);
  const dim3 grid((T + kFlashTile - 1) / kFlashTile, B * NH);
  const float scale = 1.f / sqrtf((float)hs);
  const size_t smem_kv = flash_dkdv_smem(hs), smem_q = flash_dq_smem(hs);
  TRY(allow_smem(flash_attention_backward_dkdv_kernel<D>, smem_kv));
  TRY(allow_smem(flash_attention_backward_dq_kernel<D>, smem_q));
  flash_attention_backward_dkdv_kernel<D><<<grid, kFlashThreads, smem_kv>>>(dqkv, dout, qkv, lse, Drow, T, NH, hs, scale);
  LAUNCHED();
  flash_attention_backward_dq_kernel<D><<<grid, kFlashThreads, smem_q>>>(dqkv, dout, qkv, lse, Drow, T, NH, hs, scale);
  LAUNCHED();
  return GPT2_OK;
}

/** The tensor-core kernels' launches (BF16, heads of 64): grid (ceil(T / 64), B * NH). */
int tc_flash_forward(float* out, float* lse, const float* qkv, int B, int T, int NH) {
  if ((long)B * NH > 65535) return fail(GPT2_ERR_ARGUMENT, "flash attention: B * heads = %ld exceeds 65535; use a smaller batch", (long)B * NH);
  TRY(allow_smem(tc_flash_forward_kernel, kTcForwardSmem));
  const dim3 grid((T + kTcTile - 1) / kTcTile, B * NH);
  tc_flash_forward_kernel<<<grid, kTcThreads, kTcForwardSmem>>>(out, lse, qkv, T, NH, 1.f / sqrtf((float)kTcHs));
  LAUNCHED();
  return GPT2_OK;
}

int tc_flash_backward(float* dqkv, const float* dout, const float* qkv, const float* lse, const float* Drow, int B, int T, int NH) {
  if ((long)B * NH > 65535) return fail(GPT2_ERR_ARGUMENT, "flash attention: B * heads = %ld exceeds 65535; use a smaller batch", (long)B * NH);
  TRY(allow_smem(tc_flash_backward_dkdv_kernel, kTcDkdvSmem));
  TRY(allow_smem(tc_flash_backward_dq_kernel, kTcDqSmem));
  const dim3 grid((T + kTcTile - 1) / kTcTile, B * NH);
  const float scale = 1.f / sqrtf((float)kTcHs);
  tc_flash_backward_dkdv_kernel<<<grid, kTcThreads, kTcDkdvSmem>>>(dqkv, dout, qkv, lse, Drow, T, NH, scale);
  LAUNCHED();
  tc_flash_backward_dq_kernel<<<grid, kTcThreads, kTcDqSmem>>>(dqkv, dout, qkv, lse, Drow, T, NH, scale);
  LAUNCHED();
  return GPT2_OK;
}

/** Whether the attention runs on the tensor-core kernels: flash, BF16, heads of 64, unless GPT2_CUDA_ATTENTION=flash32. */
inline bool use_tc_attention(const GPT2* M, int hs) { return M->flash && !M->flash32 && M->precision == GPT2_PRECISION_BF16 && hs == kTcHs; }

/**
 * out (B, T, C) = causal self-attention of qkv (B, T, 3C). `saved` keeps what the backward needs: the logsumexp
 * rows (B, NH, T) with flash, the softmax rows (B, NH, T, T) with the naive path.
 */
int attention_forward(GPT2* M, float* out, float* saved, const float* qkv, int B, int T, int C, int NH) {
  const int hs = C / NH;
  if (use_tc_attention(M, hs)) return tc_flash_forward(out, saved, qkv, B, T, NH);
  if (M->flash) return hs <= 8 * 8 ? flash_forward<8>(out, saved, qkv, B, T, NH, hs) : flash_forward<kFlashMaxHs / 8>(out, saved, qkv, B, T, NH, hs);
  float* att = saved;
  Activations& a = M->acts;
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

/**
 * dqkv (B, T, 3C) (overwritten) from dout (B, T, C); out, qkv and saved as the forward left them. Flash uses datt for
 * the rows' D; the naive path reuses q, k, v, y, datt and dbuf_4c of the activations.
 */
int attention_backward(GPT2* M, float* dqkv, const float* dout, const float* out, const float* qkv, const float* saved, int B, int T, int C,
                       int NH) {
  Activations& a = M->acts;
  const int hs = C / NH, BH = B * NH;
  if (M->flash) {
    const int rows = B * T * NH;
    flash_attention_rowdot_kernel<<<(rows + 7) / 8, 256>>>(a.datt, dout, out, B, T, NH, hs);
    LAUNCHED();
    if (use_tc_attention(M, hs)) return tc_flash_backward(dqkv, dout, qkv, saved, a.datt, B, T, NH);
    return hs <= 8 * 8 ? flash_backward<8>(dqkv, dout, qkv, saved, a.datt, B, T, NH, hs)
                       : flash_backward<kFlashMaxHs / 8>(dqkv, dout, qkv, saved, a.datt, B, T, NH, hs);
  }
  const float* att = saved;
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
  const size_t L = M->cfg.num_layers, C = M->cfg.channels, NH = M->cfg.num_heads, Vp = M->cfg.padded_vocab_size;
  const size_t BT = (size_t)B * T;
  const bool naive = !M->flash, bf16 = M->precision == GPT2_PRECISION_BF16;
  const size_t scratch = naive ? BT * C : 0;  // q, k, v, y of the naive attention
  const size_t f32 = bf16 ? 0 : 1, h16 = bf16 ? 1 : 0;  // FP32-only and BF16-only buffers
  auto in_floats = [](size_t n16) { return (n16 * sizeof(__nv_bfloat16) + sizeof(float) - 1) / sizeof(float); };
  const size_t saved = naive ? B * NH * (size_t)T * T : B * NH * (size_t)T;  // per layer: softmax rows, or logsumexp
  const size_t sizes[] = {
      BT * C,
      f32 * L * BT * C, L * BT, L * BT,
      L * BT * 3 * C, L * BT * C,
      L * saved,
      L * BT * C,
      f32 * L * BT * C, L * BT, L * BT,
      L * BT * 4 * C, f32 * L * BT * 4 * C,
      L * BT * C,
      BT * C, BT, BT,
      BT * Vp, BT, BT, BT, BT,
      scratch, scratch, scratch, scratch, saved,  // q, k, v, y, datt (flash: the rows' D)
      BT * C, BT * C, BT * 4 * C,
      h16 * in_floats(L * BT * C), h16 * in_floats(L * BT * C), h16 * in_floats(L * BT * C), h16 * in_floats(L * BT * 4 * C),
      h16 * in_floats(BT * C),  // the bf16 buffers
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
  if (!naive) a.q = a.k = a.v = a.y = nullptr;
  a.dres = take(); a.dbuf_c = take(); a.dbuf_4c = take();
  auto take16 = [&]() { return reinterpret_cast<__nv_bfloat16*>(take()); };
  a.ln1_16 = take16(); a.atty16 = take16(); a.ln2_16 = take16(); a.fchg16 = take16(); a.lnf16 = take16();
  if (bf16) a.ln1 = a.ln2 = a.fch_gelu = nullptr;
  else a.ln1_16 = a.atty16 = a.ln2_16 = a.fchg16 = a.lnf16 = nullptr;
  a.B = B;
  a.T = T;
  M->host_losses.resize(BT);
  M->host_weights.resize(BT);
  M->host_targets.resize(BT);
  return GPT2_OK;
}

/** Floats per layer of what the attention forward keeps for the backward (Activations::att). */
size_t saved_per_layer(const GPT2* M, int B, int T) {
  return (size_t)B * M->cfg.num_heads * T * (M->flash ? 1 : (size_t)T);
}

int forward_hidden(GPT2* M, int B, int T) {
  const int L = M->cfg.num_layers, C = M->cfg.channels, NH = M->cfg.num_heads, N = B * T;
  const float eps = M->cfg.ln_eps;
  Activations& a = M->acts;
  const size_t NC = (size_t)N * C;
  const double mm = 2.0 * N * C * C, att_flops = 2.0 * B * T * (double)T * C;  // a C x C matmul; the causal attention
  if (M->precision == GPT2_PRECISION_BF16 && M->bf16_stale) TIMED("bf16 weights", 0, TRY(refresh_bf16_params(M)));
  TIMED("encoder", 0, encoder_forward_kernel<<<blocks_for(NC), kThreads>>>(a.encoded, a.inputs, M->p.wte, M->p.wpe, N, T, C, 0); LAUNCHED());
  for (int l = 0; l < L; l++) {
    const LayerTensors& w = M->p.layers[l];
    const float* residual = l == 0 ? a.encoded : a.residual3 + (l - 1) * NC;
    float* ln1 = a.ln1 ? a.ln1 + l * NC : nullptr;
    __nv_bfloat16* ln1_16 = a.ln1_16 ? a.ln1_16 + l * NC : nullptr;
    float* qkv = a.qkv + l * NC * 3;
    float* atty = a.atty + l * NC;
    __nv_bfloat16* atty16 = a.atty16 ? a.atty16 + l * NC : nullptr;
    float* att = a.att + l * saved_per_layer(M, B, T);
    float* residual2 = a.residual2 + l * NC;
    float* ln2 = a.ln2 ? a.ln2 + l * NC : nullptr;
    __nv_bfloat16* ln2_16 = a.ln2_16 ? a.ln2_16 + l * NC : nullptr;
    float* fch = a.fch + l * NC * 4;
    float* fch_gelu = a.fch_gelu ? a.fch_gelu + l * NC * 4 : nullptr;
    __nv_bfloat16* fchg16 = a.fchg16 ? a.fchg16 + l * NC * 4 : nullptr;
    float* residual3 = a.residual3 + l * NC;
    TIMED("layernorm", 0, TRY(layernorm_forward(ln1, ln1_16, a.ln1_mean + l * N, a.ln1_rstd + l * N, residual, w.ln1w, w.ln1b, N, C, eps)));
    TIMED("matmul qkv", 3 * mm, TRY(matmul_forward(M, qkv, ln1, ln1_16, w.qkvw, w.qkvb, nullptr, N, C, 3 * C)));
    TIMED("attention", att_flops, TRY(attention_forward(M, atty, att, qkv, B, T, C, NH)));
    if (atty16) {  // the attention backward needs atty in FP32; the GEMMs take this copy
      TIMED("attention bf16 copy", 0, to_bf16_kernel<<<blocks_for(NC), kThreads>>>(atty16, atty, NC); LAUNCHED());
    }
    TIMED("matmul attproj", mm, TRY(matmul_forward(M, residual2, atty, atty16, w.attprojw, w.attprojb, residual, N, C, C)));
    TIMED("layernorm", 0, TRY(layernorm_forward(ln2, ln2_16, a.ln2_mean + l * N, a.ln2_rstd + l * N, residual2, w.ln2w, w.ln2b, N, C, eps)));
    TIMED("matmul fc", 4 * mm, TRY(matmul_forward(M, fch, ln2, ln2_16, w.fcw, w.fcb, nullptr, N, C, 4 * C)));
    TIMED("gelu", 0, gelu_forward_kernel<<<blocks_for(NC * 4), kThreads>>>(fch_gelu, fchg16, fch, NC * 4); LAUNCHED());
    TIMED("matmul fcproj", 4 * mm, TRY(matmul_forward(M, residual3, fch_gelu, fchg16, w.fcprojw, w.fcprojb, residual2, N, 4 * C, C)));
  }
  Timed timed(M, "layernorm");
  return layernorm_forward(a.lnf, a.lnf16, a.lnf_mean, a.lnf_rstd, a.residual3 + (L - 1) * NC, M->p.lnfw, M->p.lnfb, N, C, eps);
}

int backward(GPT2* M, int B, int T) {
  const int L = M->cfg.num_layers, C = M->cfg.channels, NH = M->cfg.num_heads, V = M->cfg.vocab_size, Vp = M->cfg.padded_vocab_size;
  const int N = B * T;
  const size_t NC = (size_t)N * C;
  Activations& a = M->acts;
  Tensors& g = M->g;
  const double mm = 4.0 * N * C * C, att_flops = 4.0 * B * T * (double)T * C;  // backward: twice the forward's work
  TIMED("logits backward", 4.0 * N * (double)V * C, {
    TRY(gemm(M, false, false, N, C, V, 1.f, a.logits, Vp, M->p.wte, C, 0.f, a.dbuf_c, C, a.dlogits16));
    TRY(gemm(M, true, false, V, C, N, 1.f, a.logits, Vp, a.lnf, C, 1.f, g.wte, C, a.dlogits16, a.lnf16));
  });
  CU(cudaMemset(a.dres, 0, NC * sizeof(float)));
  TIMED("layernorm backward", 0,
        TRY(layernorm_backward(a.dres, g.lnfw, g.lnfb, a.dbuf_c, a.residual3 + (L - 1) * NC, M->p.lnfw, a.lnf_mean, a.lnf_rstd, N, C)));
  for (int l = L - 1; l >= 0; l--) {
    const LayerTensors& w = M->p.layers[l];
    const LayerTensors& dw = g.layers[l];
    const float* residual = l == 0 ? a.encoded : a.residual3 + (l - 1) * NC;
    const float* fch_gelu = a.fch_gelu ? a.fch_gelu + l * NC * 4 : nullptr;
    const __nv_bfloat16* fchg16 = a.fchg16 ? a.fchg16 + l * NC * 4 : nullptr;
    const float* ln2 = a.ln2 ? a.ln2 + l * NC : nullptr;
    const __nv_bfloat16* ln2_16 = a.ln2_16 ? a.ln2_16 + l * NC : nullptr;
    const __nv_bfloat16* atty16 = a.atty16 ? a.atty16 + l * NC : nullptr;
    const float* ln1 = a.ln1 ? a.ln1 + l * NC : nullptr;
    const __nv_bfloat16* ln1_16 = a.ln1_16 ? a.ln1_16 + l * NC : nullptr;
    TIMED("matmul fcproj backward", 4 * mm,
          TRY(matmul_backward(M, a.dbuf_4c, dw.fcprojw, dw.fcprojb, a.dres, fch_gelu, fchg16, w.fcprojw, N, 4 * C, C)));
    TIMED("gelu backward", 0, gelu_backward_kernel<<<blocks_for(NC * 4), kThreads>>>(a.dbuf_4c, a.fch + l * NC * 4, NC * 4); LAUNCHED());
    TIMED("matmul fc backward", 4 * mm, TRY(matmul_backward(M, a.dbuf_c, dw.fcw, dw.fcb, a.dbuf_4c, ln2, ln2_16, w.fcw, N, C, 4 * C)));
    TIMED("layernorm backward", 0,
          TRY(layernorm_backward(a.dres, dw.ln2w, dw.ln2b, a.dbuf_c, a.residual2 + l * NC, w.ln2w, a.ln2_mean + l * N, a.ln2_rstd + l * N, N, C)));
    TIMED("matmul attproj backward", mm,
          TRY(matmul_backward(M, a.dbuf_c, dw.attprojw, dw.attprojb, a.dres, a.atty + l * NC, atty16, w.attprojw, N, C, C)));
    // the attention backward works in dbuf_4c (dq, dk, dv) and writes dqkv into... a buffer it does not read: qkv's
    // gradient goes to the fch slot of this layer's activations, which the backward of this layer no longer needs
    float* dqkv = a.fch + l * NC * 4;
    TIMED("attention backward", att_flops,
          TRY(attention_backward(M, dqkv, a.dbuf_c, a.atty + l * NC, a.qkv + l * NC * 3, a.att + l * saved_per_layer(M, B, T), B, T, C, NH)));
    TIMED("matmul qkv backward", 3 * mm, TRY(matmul_backward(M, a.dbuf_c, dw.qkvw, dw.qkvb, dqkv, ln1, ln1_16, w.qkvw, N, C, 3 * C)));
    TIMED("layernorm backward", 0,
          TRY(layernorm_backward(a.dres, dw.ln1w, dw.ln1b, a.dbuf_c, residual, w.ln1w, a.ln1_mean + l * N, a.ln1_rstd + l * N, N, C)));
  }
  TIMED("encoder backward", 0, encoder_backward_kernel<<<blocks_for(NC), kThreads>>>(g.wte, g.wpe, a.dres, a.inputs, N, T, C); LAUNCHED());
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
    std::snprintf(buf, sizeof buf, "CUDA runtime %d, driver %d, %s (sm_%d%d), cuBLAS (FP32/TF32/BF16), flash attention, %s", rt, drv,
                  prop.name, prop.major, prop.minor,
#ifdef GPT2_USE_NCCL
                  "NCCL and shm data parallel"
#else
                  "shm data parallel (no NCCL)"
#endif
    );
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
  // the attention path: GPT2_CUDA_ATTENTION=flash (the default) or naive, read once here
  bool flash = true, flash32 = false;
  if (const char* att = std::getenv("GPT2_CUDA_ATTENTION"); att && *att) {
    if (!std::strcmp(att, "naive")) flash = false;
    else if (!std::strcmp(att, "flash32")) flash32 = true;
    else if (std::strcmp(att, "flash"))
      return fail(GPT2_ERR_ARGUMENT, "GPT2_CUDA_ATTENTION must be flash, flash32 or naive, got \"%s\"", att);
  }
  if (c.channels / c.num_heads > kFlashMaxHs) flash = false;  // the fused kernels hold at most 256 dims per head
  int device = 0;
  (void)cudaGetLastError();  // see use_device
  CU(cudaGetDevice(&device));
  GPT2* M = new (std::nothrow) GPT2();
  if (!M) return fail(GPT2_ERR_MEMORY, "out of memory");
  M->cfg = c;
  M->device = device;
  M->flash = flash;
  M->flash32 = flash32;
  if (const char* prof = std::getenv("GPT2_CUDA_PROFILE"); prof && *prof && std::strcmp(prof, "0")) M->prof.on = true;
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
  use_device(M->device);
  if (M->prof.on) prof_print(M);
  for (cudaEvent_t e : M->prof.events) cudaEventDestroy(e);
  for (float* p : {M->params, M->grads, M->m, M->v, M->acts.mem}) cudaFree(p);
  for (__nv_bfloat16* p : {M->params_bf16, M->scratch_bf16[0], M->scratch_bf16[1]}) cudaFree(p);
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
  TRY(use_device(M->device));
  // BF16 runs its GEMMs through cublasGemmEx; the SGEMMs left (the naive attention's batched ones) use TF32 tensor
  // cores, finer than bf16 and far faster than FP32
  if (precision == GPT2_PRECISION_FP32) CB(cublasSetMathMode(M->blas, CUBLAS_DEFAULT_MATH));
  else if (precision == GPT2_PRECISION_TF32 || precision == GPT2_PRECISION_BF16) CB(cublasSetMathMode(M->blas, CUBLAS_TF32_TENSOR_OP_MATH));
  else return fail(GPT2_ERR_ARGUMENT, "unknown precision %d (FP32 = 0, TF32 = 1, BF16 = 2)", precision);
  M->precision = precision;
  M->bf16_stale = true;
  return GPT2_OK;
}

int gpt2_num_tensors(const GPT2* M) { return M ? (int)M->sizes.size() : 0; }
size_t gpt2_tensor_numel(const GPT2* M, int i) { return M && i >= 0 && i < (int)M->sizes.size() ? M->sizes[i] : 0; }
size_t gpt2_num_parameters(const GPT2* M) { return M ? M->num_params : 0; }

int gpt2_read(GPT2* M, int which, size_t offset, float* dst, size_t count) {
  if (!M || !dst) return fail(GPT2_ERR_ARGUMENT, "null argument");
  TRY(use_device(M->device));
  float** slot = buffer_slot(M, which);
  if (!slot) return fail(GPT2_ERR_ARGUMENT, "unknown buffer %d", which);
  if (offset > M->num_params || count > M->num_params - offset) return fail(GPT2_ERR_ARGUMENT, "read past the parameters");
  if (*slot) CU(cudaMemcpy(dst, *slot + offset, count * sizeof(float), cudaMemcpyDeviceToHost));
  else std::memset(dst, 0, count * sizeof(float));
  return GPT2_OK;
}

int gpt2_write(GPT2* M, int which, size_t offset, const float* src, size_t count) {
  if (!M || !src) return fail(GPT2_ERR_ARGUMENT, "null argument");
  TRY(use_device(M->device));
  float** slot = buffer_slot(M, which);
  if (!slot) return fail(GPT2_ERR_ARGUMENT, "unknown buffer %d", which);
  if (offset > M->num_params || count > M->num_params - offset) return fail(GPT2_ERR_ARGUMENT, "write past the parameters");
  TRY(ensure_buffer(M, slot));
  CU(cudaMemcpy(*slot + offset, src, count * sizeof(float), cudaMemcpyHostToDevice));
  if (which == GPT2_BUF_PARAMS) M->bf16_stale = true;
  return GPT2_OK;
}

int gpt2_forward_backward(GPT2* M, const int* inputs, const int* targets, const float* mask, int B, int T, float loss_scale, float* loss) {
  if (!M || !inputs || !targets || !loss) return fail(GPT2_ERR_ARGUMENT, "null argument");
  TRY(use_device(M->device));
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
  const int V = M->cfg.vocab_size, Vp = M->cfg.padded_vocab_size, C = M->cfg.channels;
  TIMED("logits", 2.0 * N * (double)V * C, TRY(gemm(M, false, true, N, V, C, 1.f, a.lnf, C, M->p.wte, C, 0.f, a.logits, Vp, a.lnf16)));
  // BF16: the gradient is only ever a bf16 GEMM operand, so it is written in bf16 straight away
  a.dlogits16 = nullptr;
  __nv_bfloat16* dlogits16 = nullptr;
  if (M->precision == GPT2_PRECISION_BF16) {
    TRY(bf16_scratch(M, 0, (size_t)N * Vp));
    dlogits16 = M->scratch_bf16[0];
  }
  TIMED("crossentropy", 0, crossentropy_kernel<<<N, 512>>>(a.logits, a.losses, a.targets, a.weights, V, Vp, true, loss_scale, dlogits16); LAUNCHED());
  a.dlogits16 = dlogits16;
  TRY(backward(M, B, T));
  CU(cudaMemcpy(M->host_losses.data(), a.losses, N * sizeof(float), cudaMemcpyDeviceToHost));
  if (M->prof.on) {
    M->prof.steps++;
    M->prof.B = B;
    M->prof.T = T;
    prof_flush(M);
  }
  double total = 0;
  for (int i = 0; i < N; i++)
    if (M->host_weights[i] != 0.f) total += (double)M->host_losses[i] * M->host_weights[i];
  *loss = (float)total;
  return GPT2_OK;
}

int gpt2_zero_grad(GPT2* M) {
  if (!M) return fail(GPT2_ERR_ARGUMENT, "null model");
  TRY(use_device(M->device));
  if (M->grads) CU(cudaMemset(M->grads, 0, M->num_params * sizeof(float)));
  return GPT2_OK;
}

int gpt2_grad_norm(GPT2* M, double* norm) {
  if (!M || !norm) return fail(GPT2_ERR_ARGUMENT, "null argument");
  TRY(use_device(M->device));
  *norm = 0;
  if (!M->grads) return GPT2_OK;
  TIMED("grad norm", 0, sumsq_kernel<<<kNormBlocks, 256>>>(M->partials, M->grads, M->num_params); LAUNCHED());
  double part[kNormBlocks];
  CU(cudaMemcpy(part, M->partials, sizeof part, cudaMemcpyDeviceToHost));
  double s = 0;
  for (double x : part) s += x;
  *norm = std::sqrt(s);
  return GPT2_OK;
}

int gpt2_scale_grads(GPT2* M, float factor) {
  if (!M) return fail(GPT2_ERR_ARGUMENT, "null model");
  TRY(use_device(M->device));
  if (!M->grads) return GPT2_OK;
  scale_kernel<<<blocks_for(M->num_params), kThreads>>>(M->grads, factor, M->num_params);
  LAUNCHED();
  return GPT2_OK;
}

int gpt2_adamw(GPT2* M, double lr, double beta1, double beta2, double eps, double weight_decay, int t) {
  if (!M) return fail(GPT2_ERR_ARGUMENT, "null model");
  TRY(use_device(M->device));
  if (t < 1) return fail(GPT2_ERR_ARGUMENT, "AdamW step number must be >= 1, got %d", t);
  TRY(ensure_buffer(M, &M->grads));
  TRY(ensure_buffer(M, &M->m));
  TRY(ensure_buffer(M, &M->v));
  const float decay_factor = (float)(1.0 - lr * weight_decay);
  const float step_size = (float)(lr / (1.0 - std::pow(beta1, t)));
  const float bc2_sqrt = (float)std::sqrt(1.0 - std::pow(beta2, t));
  Timed timed(M, "adamw");
  for (size_t i = 0; i < M->sizes.size(); i++) {
    const size_t o = M->offsets[i], n = M->sizes[i];
    adamw_kernel<<<blocks_for(n), kThreads>>>(M->params + o, M->grads + o, M->m + o, M->v + o, n, M->decay[i] && weight_decay != 0.0,
                                              decay_factor, (float)beta1, (float)beta2, (float)(1.0 - beta1), (float)(1.0 - beta2),
                                              step_size, bc2_sqrt, (float)eps);
    LAUNCHED();
  }
  M->bf16_stale = true;
  return GPT2_OK;
}

int gpt2_logits(GPT2* M, const int* inputs, int B, int T, float* out) {
  if (!M || !inputs || !out) return fail(GPT2_ERR_ARGUMENT, "null argument");
  TRY(use_device(M->device));
  TRY(check_bt(M, B, T));
  TRY(check_ids(M, inputs, (size_t)B * T, false, "inputs"));
  TRY(ensure_acts(M, B, T));
  const int N = B * T, V = M->cfg.vocab_size, Vp = M->cfg.padded_vocab_size, C = M->cfg.channels;
  CU(cudaMemcpy(M->acts.inputs, inputs, N * sizeof(int), cudaMemcpyHostToDevice));
  TRY(forward_hidden(M, B, T));
  TRY(gemm(M, false, true, N, V, C, 1.f, M->acts.lnf, C, M->p.wte, C, 0.f, M->acts.logits, Vp, M->acts.lnf16));
  CU(cudaMemcpy2D(out, (size_t)V * sizeof(float), M->acts.logits, (size_t)Vp * sizeof(float), (size_t)V * sizeof(float), N, cudaMemcpyDeviceToHost));
  if (M->prof.on) prof_flush(M);  // evaluation's sections count too; the pool of events stays small
  return GPT2_OK;
}

int gpt2_token_losses(GPT2* M, const int* inputs, const int* targets, const float* mask, int B, int T, float* out) {
  if (!M || !inputs || !targets || !out) return fail(GPT2_ERR_ARGUMENT, "null argument");
  TRY(use_device(M->device));
  TRY(check_bt(M, B, T));
  const int N = B * T, V = M->cfg.vocab_size, Vp = M->cfg.padded_vocab_size, C = M->cfg.channels;
  TRY(check_ids(M, inputs, N, false, "inputs"));
  TRY(check_ids(M, targets, N, true, "targets"));
  TRY(ensure_acts(M, B, T));
  int count = 0;
  TRY(upload_batch(M, inputs, targets, mask, N, &count));
  Activations& a = M->acts;
  TRY(forward_hidden(M, B, T));
  TRY(gemm(M, false, true, N, V, C, 1.f, a.lnf, C, M->p.wte, C, 0.f, a.logits, Vp, a.lnf16));
  crossentropy_kernel<<<N, 512>>>(a.logits, a.losses, a.targets, a.weights, V, Vp, false, 0.f, nullptr);
  LAUNCHED();
  CU(cudaMemcpy(out, a.losses, N * sizeof(float), cudaMemcpyDeviceToHost));
  if (M->prof.on) prof_flush(M);
  return GPT2_OK;
}

int gpt2_cache_create(GPT2* M, int batch, int max_len, GPT2Cache** out) {
  if (!M || !out) return fail(GPT2_ERR_ARGUMENT, "null argument");
  TRY(use_device(M->device));
  *out = nullptr;
  if (batch <= 0 || max_len <= 0 || max_len > M->cfg.max_seq_len)
    return fail(GPT2_ERR_ARGUMENT, "KV cache of %d rows x %d positions: rows must be > 0 and positions in 1..%d", batch, max_len, M->cfg.max_seq_len);
  GPT2Cache* c = new (std::nothrow) GPT2Cache();
  if (!c) return fail(GPT2_ERR_MEMORY, "out of memory");
  c->device = M->device;
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
  use_device(c->device);
  for (float* p : {c->k, c->v, c->x, c->ln, c->qkv, c->atty, c->fch, c->last, c->lastln, c->out}) cudaFree(p);
  cudaFree(c->tokens);
  delete c;
}

int gpt2_cache_length(const GPT2Cache* c) { return c ? c->length : 0; }

int gpt2_decode(GPT2* M, GPT2Cache* c, const int* tokens, int S, float* out) {
  if (!M || !c || !tokens || !out) return fail(GPT2_ERR_ARGUMENT, "null argument");
  TRY(use_device(M->device));
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
    TRY(layernorm_forward(c->ln, nullptr, nullptr, nullptr, c->x, w.ln1w, w.ln1b, N, C, eps));
    TRY(matmul_forward(M, c->qkv, c->ln, nullptr, w.qkvw, w.qkvb, nullptr, N, C, 3 * C));
    kv_append_kernel<<<blocks_for((size_t)N * C), kThreads>>>(K, Vc, c->qkv, B, S, NH, hs, maxLen, pos);
    LAUNCHED();
    decode_attention_kernel<<<B * NH * S, 128, maxLen * sizeof(float)>>>(c->atty, c->qkv, K, Vc, S, NH, hs, maxLen, pos, 1.f / sqrtf((float)hs));
    LAUNCHED();
    TRY(matmul_forward(M, c->x, c->atty, nullptr, w.attprojw, w.attprojb, c->x, N, C, C));
    TRY(layernorm_forward(c->ln, nullptr, nullptr, nullptr, c->x, w.ln2w, w.ln2b, N, C, eps));
    TRY(matmul_forward(M, c->fch, c->ln, nullptr, w.fcw, w.fcb, nullptr, N, C, 4 * C));
    gelu_forward_kernel<<<blocks_for((size_t)N * 4 * C), kThreads>>>(c->fch, nullptr, c->fch, (size_t)N * 4 * C);
    LAUNCHED();
    TRY(matmul_forward(M, c->x, c->fch, nullptr, w.fcprojw, w.fcprojb, c->x, N, 4 * C, C));
  }
  // the last new position of each row: rows b*S + S-1 of x, gathered by a strided copy
  CU(cudaMemcpy2D(c->last, C * sizeof(float), c->x + (size_t)(S - 1) * C, (size_t)S * C * sizeof(float), C * sizeof(float), B,
                  cudaMemcpyDeviceToDevice));
  TRY(layernorm_forward(c->lastln, nullptr, nullptr, nullptr, c->last, M->p.lnfw, M->p.lnfb, B, C, eps));
  TRY(gemm(M, false, true, B, V, C, 1.f, c->lastln, C, M->p.wte, C, 0.f, c->out, V));
  CU(cudaMemcpy(out, c->out, (size_t)B * V * sizeof(float), cudaMemcpyDeviceToHost));
  c->length += S;
  return GPT2_OK;
}

}  // extern "C"

// ---- data parallel -----------------------------------------------------------------------------------------------

struct GPT2Comm {
  int rank = 0, world = 1, device = 0;
  bool aborted = false;
  gpt2shm::Comm* shm = nullptr;  // "shm:" ids: the host stages the gradients
  float* host = nullptr;         // (host_cap) staging, pinned when cudaMallocHost allows it
  size_t host_cap = 0;
  bool host_pinned = false;
#ifdef GPT2_USE_NCCL
  ncclComm_t nccl = nullptr;     // "nccl:" ids (nonblocking, so that joins and failures can be waited on with a limit)
  cudaStream_t stream = nullptr; // the collectives' stream; it waits for the model's work through `ready`
  cudaEvent_t ready = nullptr;
  double* dev_values = nullptr;  // device (64), for gpt2_comm_allreduce_mean
#endif
};

namespace {

constexpr int kCommMaxValues = 64;

/** gpt2shm's codes pass through when they are the API's; anything else is a failed exchange (GPT2_ERR_STATE). */
int shm_fail(int rc, const std::string& err, const char* what) {
  const int code = rc >= GPT2_ERR_ARGUMENT && rc <= GPT2_ERR_DEVICE ? rc : GPT2_ERR_STATE;
  return fail(code, "%s: %s", what, err.empty() ? "the shared-memory communicator failed" : err.c_str());
}

#ifdef GPT2_USE_NCCL
constexpr int kCommDefaultTimeoutMs = 120000;  // gpt2_comm_create's timeout_ms = 0 (the shm communicator has its own)

int hex_value(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

#define NC(call)                                                                                                   \
  do {                                                                                                             \
    ncclResult_t r_ = (call);                                                                                      \
    if (r_ != ncclSuccess && r_ != ncclInProgress)                                                                 \
      return fail(GPT2_ERR_DEVICE, "%s: %s (%s:%d)", #call, ncclGetErrorString(r_), __FILE__, __LINE__);          \
  } while (0)

void nccl_abort(GPT2Comm* c) {
  if (c->nccl) ncclCommAbort(c->nccl);
  c->nccl = nullptr;
  c->aborted = true;
}

/**
 * Waits until the nonblocking communicator has finished its last call (ncclCommGetAsyncError leaves
 * ncclInProgress). An NCCL error, or no progress within timeout_ms (0: no limit), aborts it: GPT2_ERR_STATE.
 */
int nccl_settle(GPT2Comm* c, const char* what, int timeout_ms) {
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    ncclResult_t st = ncclSuccess;
    const ncclResult_t r = ncclCommGetAsyncError(c->nccl, &st);
    if (r != ncclSuccess) st = r;
    if (st == ncclSuccess) return GPT2_OK;
    if (st != ncclInProgress) {
      nccl_abort(c);
      return fail(GPT2_ERR_STATE, "%s: NCCL reports \"%s\"; the communicator is aborted", what, ncclGetErrorString(st));
    }
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
    if (timeout_ms > 0 && ms > timeout_ms) {
      nccl_abort(c);
      return fail(GPT2_ERR_STATE, "%s: not done after %d ms (did every rank join with the same id and world?)", what, timeout_ms);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

/** Waits for the work queued on the communicator's stream, watching NCCL's error state (a failed peer aborts it). */
int nccl_wait(GPT2Comm* c, const char* what) {
  for (;;) {
    const cudaError_t e = cudaStreamQuery(c->stream);
    if (e == cudaSuccess) return GPT2_OK;
    if (e != cudaErrorNotReady) return fail(GPT2_ERR_DEVICE, "%s: %s", what, cudaGetErrorString(e));
    ncclResult_t st = ncclSuccess;
    const ncclResult_t r = ncclCommGetAsyncError(c->nccl, &st);
    if (r != ncclSuccess) st = r;
    if (st != ncclSuccess && st != ncclInProgress) {
      nccl_abort(c);
      return fail(GPT2_ERR_STATE, "%s: NCCL reports \"%s\" (did another rank fail?); the communicator is aborted", what, ncclGetErrorString(st));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
}
#endif

void comm_free(GPT2Comm* c) {
  if (!c) return;
  if (c->shm) gpt2shm::destroy(c->shm);
#ifdef GPT2_USE_NCCL
  if (c->nccl) {
    // finalize flushes what is queued; a peer that is gone must not hang it: nccl_settle aborts after 10 s
    const ncclResult_t r = ncclCommFinalize(c->nccl);
    if ((r == ncclSuccess || r == ncclInProgress) && nccl_settle(c, "ncclCommFinalize", 10000) == GPT2_OK) ncclCommDestroy(c->nccl);
    else nccl_abort(c);
    c->nccl = nullptr;
  }
  if (c->ready) cudaEventDestroy(c->ready);
  if (c->stream) cudaStreamDestroy(c->stream);
  cudaFree(c->dev_values);
#endif
  if (c->host) {
    if (c->host_pinned) cudaFreeHost(c->host);
    else std::free(c->host);
  }
  delete c;
}

}  // namespace

extern "C" {

int gpt2_comm_new_id(const char* kind, char* id) {
  if (!id) return fail(GPT2_ERR_ARGUMENT, "gpt2_comm_new_id: null id");
  id[0] = '\0';
#ifdef GPT2_USE_NCCL
  const bool have_nccl = true;
#else
  const bool have_nccl = false;
#endif
  if (kind && std::strcmp(kind, "nccl") && std::strcmp(kind, "shm"))
    return fail(GPT2_ERR_ARGUMENT, "unknown communicator kind \"%s\" (nccl, shm, or NULL for the build's best)", kind);
  const bool nccl = kind ? !std::strcmp(kind, "nccl") : have_nccl;
  if (!nccl) {
    std::string err;
    const int rc = gpt2shm::new_id(id, GPT2_COMM_ID_BYTES, &err);
    return rc == 0 ? GPT2_OK : shm_fail(rc, err, "gpt2_comm_new_id(shm)");
  }
#ifdef GPT2_USE_NCCL
  ncclUniqueId uid;
  NC(ncclGetUniqueId(&uid));
  static const char digits[] = "0123456789abcdef";
  static_assert(5 + 2 * sizeof(ncclUniqueId) < GPT2_COMM_ID_BYTES, "an NCCL id fits a communicator id");
  std::memcpy(id, "nccl:", 5);
  const unsigned char* bytes = reinterpret_cast<const unsigned char*>(&uid);
  for (size_t i = 0; i < sizeof uid; i++) {
    id[5 + 2 * i] = digits[bytes[i] >> 4];
    id[6 + 2 * i] = digits[bytes[i] & 15];
  }
  id[5 + 2 * sizeof uid] = '\0';
  return GPT2_OK;
#else
  return fail(GPT2_ERR_ARGUMENT, "this CUDA build has no NCCL (it was built without -DGPT2_USE_NCCL); use a \"shm\" communicator");
#endif
}

int gpt2_comm_create(const char* id, int rank, int world, int timeout_ms, GPT2Comm** out) {
  if (!id || !out) return fail(GPT2_ERR_ARGUMENT, "gpt2_comm_create: null argument");
  *out = nullptr;
  if (world < 1 || rank < 0 || rank >= world || timeout_ms < 0)
    return fail(GPT2_ERR_ARGUMENT, "gpt2_comm_create: rank %d of world %d (timeout %d ms) is not valid", rank, world, timeout_ms);
  const bool is_shm = !std::strncmp(id, "shm:", 4), is_nccl = !std::strncmp(id, "nccl:", 5);
  if (!is_shm && !is_nccl) return fail(GPT2_ERR_ARGUMENT, "communicator id \"%.40s\" is neither shm:<name> nor nccl:<hex>", id);
#ifndef GPT2_USE_NCCL
  if (is_nccl) return fail(GPT2_ERR_ARGUMENT, "this CUDA build has no NCCL (it was built without -DGPT2_USE_NCCL); use a \"shm\" communicator");
#endif
  // one GPU per rank: select it now, so that the model this thread creates next lives on it
  int ndev = 0;
  const cudaError_t e = cudaGetDeviceCount(&ndev);
  if (e != cudaSuccess || ndev < 1) return fail(GPT2_ERR_DEVICE, "no CUDA device for rank %d (%s)", rank, cudaGetErrorString(e));
  const int device = rank % ndev;
  CU(cudaSetDevice(device));
  GPT2Comm* c = new (std::nothrow) GPT2Comm();
  if (!c) return fail(GPT2_ERR_MEMORY, "out of memory");
  c->rank = rank;
  c->world = world;
  c->device = device;
  if (is_shm) {
    std::string err;
    const int rc = gpt2shm::create(id, rank, world, timeout_ms, &c->shm, &err);
    if (rc != 0) {
      c->shm = nullptr;
      comm_free(c);
      return shm_fail(rc, err, "gpt2_comm_create(shm)");
    }
    *out = c;
    return GPT2_OK;
  }
#ifdef GPT2_USE_NCCL
  ncclUniqueId uid;
  const char* hex = id + 5;
  bool good = std::strlen(hex) == 2 * sizeof uid;
  unsigned char* bytes = reinterpret_cast<unsigned char*>(&uid);
  for (size_t i = 0; good && i < sizeof uid; i++) {
    const int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
    good = hi >= 0 && lo >= 0;
    bytes[i] = (unsigned char)(hi * 16 + lo);
  }
  if (!good) {
    comm_free(c);
    return fail(GPT2_ERR_ARGUMENT, "communicator id nccl:<hex> must carry %zu hex digits", 2 * sizeof uid);
  }
  int rc = GPT2_OK;
  if (cudaStreamCreate(&c->stream) != cudaSuccess || cudaEventCreateWithFlags(&c->ready, cudaEventDisableTiming) != cudaSuccess ||
      cudaMalloc(&c->dev_values, kCommMaxValues * sizeof(double)) != cudaSuccess)
    rc = fail(GPT2_ERR_DEVICE, "rank %d: cannot make the communicator's stream and buffers on device %d", rank, device);
  if (rc == GPT2_OK) {
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    const ncclResult_t r = ncclCommInitRankConfig(&c->nccl, world, uid, rank, &config);
    if (r != ncclSuccess && r != ncclInProgress) {
      rc = fail(GPT2_ERR_DEVICE, "ncclCommInitRankConfig (rank %d of %d, device %d): %s", rank, world, device, ncclGetErrorString(r));
      nccl_abort(c);
    } else {
      rc = nccl_settle(c, "ncclCommInitRank", timeout_ms > 0 ? timeout_ms : kCommDefaultTimeoutMs);
    }
  }
  if (rc != GPT2_OK) {
    comm_free(c);
    return rc;
  }
  *out = c;
  return GPT2_OK;
#else
  comm_free(c);
  return fail(GPT2_ERR_ARGUMENT, "unreachable");
#endif
}

void gpt2_comm_abort(GPT2Comm* c) {
  if (!c) return;
  if (c->shm) gpt2shm::abort(c->shm);
#ifdef GPT2_USE_NCCL
  if (c->nccl) nccl_abort(c);
#endif
  c->aborted = true;
}

void gpt2_comm_destroy(GPT2Comm* c) {
  if (!c) return;
  use_device(c->device);
  comm_free(c);
}

int gpt2_allreduce_grads(GPT2* M, GPT2Comm* c) {
  if (!M || !c) return fail(GPT2_ERR_ARGUMENT, "gpt2_allreduce_grads: null argument");
  if (c->aborted) return fail(GPT2_ERR_STATE, "gpt2_allreduce_grads: the communicator was aborted");
  TRY(use_device(M->device));
  TRY(ensure_buffer(M, &M->grads));  // a rank without a backward yet contributes zeros
  if (c->world == 1) return GPT2_OK;
  Timed timed(M, "allreduce");
  const size_t n = M->num_params;
#ifdef GPT2_USE_NCCL
  if (c->nccl) {
    if (c->device != M->device)
      return fail(GPT2_ERR_ARGUMENT, "the model is on device %d but rank %d's communicator on device %d (create the communicator first, on the same thread)",
                  M->device, c->rank, c->device);
    // the collective starts after the model's queued work (the legacy default stream), then the mean is taken there
    CU(cudaEventRecord(c->ready, 0));
    CU(cudaStreamWaitEvent(c->stream, c->ready, 0));
    NC(ncclAllReduce(M->grads, M->grads, n, ncclFloat, ncclSum, c->nccl, c->stream));
    TRY(nccl_settle(c, "ncclAllReduce", 0));
    TRY(nccl_wait(c, "ncclAllReduce"));
    scale_kernel<<<blocks_for(n), kThreads>>>(M->grads, 1.f / (float)c->world, n);
    LAUNCHED();
    return GPT2_OK;
  }
#endif
  if (!c->shm) return fail(GPT2_ERR_STATE, "gpt2_allreduce_grads: the communicator has no transport");
  if (n > c->host_cap) {
    if (c->host) {
      if (c->host_pinned) cudaFreeHost(c->host);
      else std::free(c->host);
    }
    c->host = nullptr;
    c->host_cap = 0;
    c->host_pinned = cudaMallocHost(&c->host, n * sizeof(float)) == cudaSuccess;
    if (!c->host_pinned) {
      cudaGetLastError();  // pinned memory is a speed-up only; fall back to plain memory
      c->host = static_cast<float*>(std::malloc(n * sizeof(float)));
    }
    if (!c->host) return fail(GPT2_ERR_MEMORY, "out of host memory for the gradients' staging (%zu floats)", n);
    c->host_cap = n;
  }
  CU(cudaMemcpy(c->host, M->grads, n * sizeof(float), cudaMemcpyDeviceToHost));
  std::string err;
  const int rc = gpt2shm::allreduce_mean(c->shm, c->host, n, &err);
  if (rc != 0) return shm_fail(rc, err, "gpt2_allreduce_grads(shm)");
  CU(cudaMemcpy(M->grads, c->host, n * sizeof(float), cudaMemcpyHostToDevice));
  return GPT2_OK;
}

int gpt2_comm_allreduce_mean(GPT2Comm* c, double* values, int n) {
  if (!c || (!values && n > 0)) return fail(GPT2_ERR_ARGUMENT, "gpt2_comm_allreduce_mean: null argument");
  if (n < 0 || n > kCommMaxValues) return fail(GPT2_ERR_ARGUMENT, "gpt2_comm_allreduce_mean: %d values (0..%d)", n, kCommMaxValues);
  if (c->aborted) return fail(GPT2_ERR_STATE, "gpt2_comm_allreduce_mean: the communicator was aborted");
  if (n == 0 || c->world == 1) return GPT2_OK;
#ifdef GPT2_USE_NCCL
  if (c->nccl) {
    TRY(use_device(c->device));
    CU(cudaMemcpyAsync(c->dev_values, values, n * sizeof(double), cudaMemcpyHostToDevice, c->stream));
    NC(ncclAllReduce(c->dev_values, c->dev_values, n, ncclDouble, ncclSum, c->nccl, c->stream));
    TRY(nccl_settle(c, "ncclAllReduce", 0));
    // wait (watching for a failed peer) before the copy: a copy to pageable memory would block in the driver
    TRY(nccl_wait(c, "ncclAllReduce"));
    double sums[kCommMaxValues];
    CU(cudaMemcpy(sums, c->dev_values, n * sizeof(double), cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++) values[i] = sums[i] / c->world;
    return GPT2_OK;
  }
#endif
  if (!c->shm) return fail(GPT2_ERR_STATE, "gpt2_comm_allreduce_mean: the communicator has no transport");
  std::string err;
  const int rc = gpt2shm::allreduce_mean_f64(c->shm, values, n, &err);
  return rc == 0 ? GPT2_OK : shm_fail(rc, err, "gpt2_comm_allreduce_mean(shm)");
}

}  // extern "C"

// ---- Devices -----------------------------------------------------------------------------------------------------

namespace {

// Two functions of the driver API, with its types spelled out (CUresult and CUdevice are ints): the engine links only
// the runtime, so they are looked up at run time.
typedef int (*PrimaryCtxGetStateFn)(int dev, unsigned* flags, int* active);
typedef int (*DeviceGetFn)(int* dev, int ordinal);

struct DriverContextApi {
  PrimaryCtxGetStateFn get_state = nullptr;
  DeviceGetFn device_get = nullptr;
};

const DriverContextApi& driver_context_api() {
  static const DriverContextApi api = [] {
    DriverContextApi a;
    // The driver that the runtime loaded (cudaGetDeviceCount has run): RTLD_NOLOAD never loads a second one. Looking
    // it up there, as PyTorch does, asks nothing of the runtime, so it cannot make a context of its own.
    if (void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD)) {
      a.get_state = reinterpret_cast<PrimaryCtxGetStateFn>(dlsym(h, "cuDevicePrimaryCtxGetState"));
      a.device_get = reinterpret_cast<DeviceGetFn>(dlsym(h, "cuDeviceGet"));
    }
#if CUDART_VERSION >= 12050
    // else through the runtime's entry points (the CPU emulation answers here; 12000: both exist since long before)
    if (!a.get_state || !a.device_get) {
      void* get_state = nullptr;
      void* device_get = nullptr;
      cudaDriverEntryPointQueryResult q1, q2;
      if (cudaGetDriverEntryPointByVersion("cuDevicePrimaryCtxGetState", &get_state, 12000, cudaEnableDefault, &q1) == cudaSuccess &&
          cudaGetDriverEntryPointByVersion("cuDeviceGet", &device_get, 12000, cudaEnableDefault, &q2) == cudaSuccess &&
          q1 == cudaDriverEntryPointSuccess && q2 == cudaDriverEntryPointSuccess && get_state && device_get) {
        a.get_state = reinterpret_cast<PrimaryCtxGetStateFn>(get_state);
        a.device_get = reinterpret_cast<DeviceGetFn>(device_get);
      }
      (void)cudaGetLastError();
    }
#endif
    return a;
  }();
  return api;
}

/** 1 when device's primary context is active, 0 when it is not, -1 when the driver cannot say. */
int primary_context_state(int device) {
  const DriverContextApi& d = driver_context_api();
  int dev = 0, active = 0;
  unsigned flags = 0;
  if (!d.get_state || !d.device_get || d.device_get(&dev, device) != 0 || d.get_state(dev, &flags, &active) != 0) return -1;
  return active ? 1 : 0;
}

/** gpt2_device_info's work, on a thread of its own (cudaSetDevice selects the device for the calling thread only). */
int query_device(int device, GPT2DeviceInfo* out) {
  cudaDeviceProp prop;
  std::memset(&prop, 0, sizeof prop);
  CU(cudaGetDeviceProperties(&prop, device));  // needs no context
  const int before = primary_context_state(device);
  size_t free_bytes = 0, total_bytes = 0;
  cudaError_t e = cudaSetDevice(device);  // makes the primary context (CUDA 12 and later), as cudaMemGetInfo would
  if (e == cudaSuccess) e = cudaMemGetInfo(&free_bytes, &total_bytes);
  // No one had the context before this question: give its memory back. Nothing of the process lives in it.
  if (before == 0) cudaDeviceReset();
  (void)cudaGetLastError();
  if (e != cudaSuccess) return fail(GPT2_ERR_DEVICE, "cudaMemGetInfo on CUDA device %d (%s): %s", device, prop.name, cudaGetErrorString(e));
  out->device = device;
  out->free_bytes = free_bytes;
  out->total_bytes = total_bytes;
  std::snprintf(out->name, sizeof out->name, "%s", prop.name);
  return GPT2_OK;
}

}  // namespace

extern "C" {

int gpt2_device_count(int* count) {
  if (!count) return fail(GPT2_ERR_ARGUMENT, "gpt2_device_count: null count");
  *count = 0;
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  (void)cudaGetLastError();  // see use_device
  if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver) return GPT2_OK;  // a machine without a GPU, or a driver
  if (e != cudaSuccess) return fail(GPT2_ERR_DEVICE, "cudaGetDeviceCount: %s", cudaGetErrorString(e));
  *count = n;
  return GPT2_OK;
}

int gpt2_device_info(int device, GPT2DeviceInfo* out) {
  if (!out) return fail(GPT2_ERR_ARGUMENT, "gpt2_device_info: null out");
  std::memset(out, 0, sizeof *out);
  int n = 0;
  TRY(gpt2_device_count(&n));
  if (device < 0 || device >= n) return fail(GPT2_ERR_ARGUMENT, "gpt2_device_info: no CUDA device %d (this machine has %d)", device, n);
  int rc = GPT2_OK;
  std::string err;
  try {
    std::thread t([&]() {
      rc = query_device(device, out);
      if (rc != GPT2_OK) err = tl_error;  // the message is per thread
    });
    t.join();
  } catch (const std::exception& e) {
    return fail(GPT2_ERR_STATE, "gpt2_device_info: cannot start a thread: %s", e.what());
  }
  if (rc != GPT2_OK) return fail(rc, "%s", err.c_str());
  return GPT2_OK;
}

}  // extern "C"
