// AdamW (as torch.optim.AdamW, the scalars from native/common/layout.h), the gradients' global norm in double, and
// their scaling. Part of native/cuda/gpt2_cuda.cu.
#ifndef GPT2_CUDA_ADAMW_CUH
#define GPT2_CUDA_ADAMW_CUH

#include "common.cuh"

namespace {

constexpr int kNormBlocks = 1024;  // blocks of the norm, and the doubles of its partial sums

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

/** One AdamW step over every tensor of the layout; weight decay on the tensors that take it, when decay is on. */
int adamw_update(float* params, const float* grads, float* m, float* v, const gpt2common::ParamLayout& layout,
                 const gpt2common::AdamWScalars& k, bool decay) {
  for (size_t i = 0; i < layout.sizes.size(); i++) {
    const size_t o = layout.offsets[i], n = layout.sizes[i];
    adamw_kernel<<<blocks_for(n), kThreads>>>(params + o, grads + o, m + o, v + o, n, layout.decay[i] && decay, k.decay_factor, k.beta1, k.beta2,
                                              k.one_m_b1, k.one_m_b2, k.step_size, k.bc2_sqrt, k.eps);
    LAUNCHED();
  }
  return GPT2_OK;
}

/** partials (kNormBlocks, device) = the sums of g^2 over n floats, per block. */
int norm_partials(double* partials, const float* g, size_t n) {
  sumsq_kernel<<<kNormBlocks, 256>>>(partials, g, n);
  LAUNCHED();
  return GPT2_OK;
}

/** *norm = the square root of the partials' sum, summed in order on the host (the same bits every time). */
int norm_from_partials(double* norm, const double* partials) {
  double part[kNormBlocks];
  CU(cudaMemcpy(part, partials, sizeof part, cudaMemcpyDeviceToHost));
  double s = 0;
  for (double x : part) s += x;
  *norm = std::sqrt(s);
  return GPT2_OK;
}

/** x[0..n) *= f */
int scale_floats(float* x, float f, size_t n) {
  scale_kernel<<<blocks_for(n), kThreads>>>(x, f, n);
  LAUNCHED();
  return GPT2_OK;
}

}  // namespace

#endif
