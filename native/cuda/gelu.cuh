// GELU with tanh (as PyTorch's approximate="tanh"), forward and backward; the forward can write its output in bf16
// only (the BF16 GEMMs' operand). Part of native/cuda/gpt2_cuda.cu.
#ifndef GPT2_CUDA_GELU_CUH
#define GPT2_CUDA_GELU_CUH

#include "common.cuh"

namespace {

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

/** out and/or out16 (bf16) = GELU(inp) over n elements. */
int gelu_forward(float* out, __nv_bfloat16* out16, const float* inp, size_t n) {
  gelu_forward_kernel<<<blocks_for(n), kThreads>>>(out, out16, inp, n);
  LAUNCHED();
  return GPT2_OK;
}

/** dinout *= GELU'(inp) over n elements. */
int gelu_backward(float* dinout, const float* inp, size_t n) {
  gelu_backward_kernel<<<blocks_for(n), kThreads>>>(dinout, inp, n);
  LAUNCHED();
  return GPT2_OK;
}

}  // namespace

#endif
