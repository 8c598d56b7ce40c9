// LayerNorm (eps and the biased variance as PyTorch), forward and backward; the forward can write its output in bf16
// only (the BF16 GEMMs' operand). Part of native/cuda/gpt2_cuda.cu.
#ifndef GPT2_CUDA_LAYERNORM_CUH
#define GPT2_CUDA_LAYERNORM_CUH

#include "common.cuh"

namespace {

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

}  // namespace

#endif
