// The naive causal attention (GPT2_CUDA_ATTENTION=naive): q, k, v permuted to (B, NH, T, hs), the scores and the
// weighted sum by strided-batched SGEMM (TF32 in TF32 and BF16) around a causal softmax kernel, every layer's
// softmax rows (B, NH, T, T) kept for the backward. Part of native/cuda/gpt2_cuda.cu.
#ifndef GPT2_CUDA_ATTENTION_NAIVE_CUH
#define GPT2_CUDA_ATTENTION_NAIVE_CUH

#include "common.cuh"
#include "matmul.cuh"

namespace {

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

/** One layer's scratch of the naive path. */
struct NaiveAttentionScratch {
  float* q;     // (B, NH, T, hs)
  float* k;     // (B, NH, T, hs)
  float* v;     // (B, NH, T, hs)
  float* y;     // (B, NH, T, hs)
  float* datt;  // (B, NH, T, T)
  float* dqkv;  // 3 x (B, NH, T, hs): dv, dq, dk
};

/** out (B, T, C) = causal self-attention of qkv (B, T, 3C); att (B, NH, T, T) = the softmax rows. */
int naive_attention_forward(Blas& G, float* out, float* att, const float* qkv, const NaiveAttentionScratch& s, int B, int T, int NH, int hs) {
  const size_t n = (size_t)B * NH * T * hs;
  permute_kernel<<<blocks_for(n), kThreads>>>(s.q, s.k, s.v, qkv, B, T, NH, hs);
  LAUNCHED();
  // scores (B*NH, T, T) = q @ k^T, unscaled; the softmax scales
  TRY(gemm_batched(G, false, true, T, T, hs, 1.f, s.q, hs, (long long)T * hs, s.k, hs, (long long)T * hs, 0.f, att, T, (long long)T * T, B * NH));
  const int rows = B * NH * T;
  softmax_causal_kernel<<<(rows + 7) / 8, 256>>>(att, att, rows, T, 1.f / sqrtf((float)hs));
  LAUNCHED();
  // y (B*NH, T, hs) = att @ v
  TRY(gemm_batched(G, false, false, T, hs, T, 1.f, att, T, (long long)T * T, s.v, hs, (long long)T * hs, 0.f, s.y, hs, (long long)T * hs, B * NH));
  unpermute_kernel<<<blocks_for(n), kThreads>>>(out, s.y, B, T, NH, hs, false);
  LAUNCHED();
  return GPT2_OK;
}

/** dqkv (B, T, 3C) (overwritten) from dout (B, T, C); qkv and att as the forward left them. */
int naive_attention_backward(Blas& G, float* dqkv, const float* dout, const float* qkv, const float* att, const NaiveAttentionScratch& s, int B,
                             int T, int NH, int hs) {
  const int BH = B * NH;
  const size_t n = (size_t)BH * T * hs;
  const long long sTh = (long long)T * hs, sTT = (long long)T * T;
  permute_kernel<<<blocks_for(n), kThreads>>>(s.q, s.k, s.v, qkv, B, T, NH, hs);  // recomputed, not stored per layer
  LAUNCHED();
  float* dy = s.y;
  unpermute_kernel<<<blocks_for(n), kThreads>>>(const_cast<float*>(dout), dy, B, T, NH, hs, true);
  LAUNCHED();
  float* dv = s.dqkv;
  float* dq = dv + n;
  float* dk = dq + n;
  // y = att @ v: datt = dy @ v^T, dv = att^T @ dy
  TRY(gemm_batched(G, false, true, T, T, hs, 1.f, dy, hs, sTh, s.v, hs, sTh, 0.f, s.datt, T, sTT, BH));
  TRY(gemm_batched(G, true, false, T, hs, T, 1.f, att, T, sTT, dy, hs, sTh, 0.f, dv, hs, sTh, BH));
  const int rows = BH * T;
  softmax_causal_backward_kernel<<<(rows + 7) / 8, 256>>>(s.datt, s.datt, att, rows, T, 1.f / sqrtf((float)hs));
  LAUNCHED();
  // scores = q @ k^T: dq = dpre @ k, dk = dpre^T @ q
  TRY(gemm_batched(G, false, false, T, hs, T, 1.f, s.datt, T, sTT, s.k, hs, sTh, 0.f, dq, hs, sTh, BH));
  TRY(gemm_batched(G, true, false, T, hs, T, 1.f, s.datt, T, sTT, s.q, hs, sTh, 0.f, dk, hs, sTh, BH));
  permute_backward_kernel<<<blocks_for(n), kThreads>>>(dqkv, dq, dk, dv, B, T, NH, hs);
  LAUNCHED();
  return GPT2_OK;
}

}  // namespace

#endif
