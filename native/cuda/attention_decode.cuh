// The KV-cache decode's attention: the new positions' keys and values appended to the cache, and each new query's
// attention over the cached positions. Part of native/cuda/gpt2_cuda.cu.
#ifndef GPT2_CUDA_ATTENTION_DECODE_CUH
#define GPT2_CUDA_ATTENTION_DECODE_CUH

#include "common.cuh"

namespace {

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

/**
 * The new positions pos .. pos+S-1 of qkv (B, S, 3C): their keys and values into K, V (B, NH, maxLen, hs), then out
 * (B, S, C) = each query's attention over the cached positions 0 .. pos + s.
 */
int decode_attention(float* out, float* K, float* Vc, const float* qkv, int B, int S, int NH, int hs, int maxLen, int pos) {
  kv_append_kernel<<<blocks_for((size_t)B * S * NH * hs), kThreads>>>(K, Vc, qkv, B, S, NH, hs, maxLen, pos);
  LAUNCHED();
  decode_attention_kernel<<<B * NH * S, 128, maxLen * sizeof(float)>>>(out, qkv, K, Vc, S, NH, hs, maxLen, pos, 1.f / sqrtf((float)hs));
  LAUNCHED();
  return GPT2_OK;
}

}  // namespace

#endif
