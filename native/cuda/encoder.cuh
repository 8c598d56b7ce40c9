// The encoder: token plus position embeddings, and its backward into the embeddings' gradients (native/cpu/layers.h
// has the CPU engine's). Part of native/cuda/gpt2_cuda.cu.
#ifndef GPT2_CUDA_ENCODER_CUH
#define GPT2_CUDA_ENCODER_CUH

#include "common.cuh"

namespace {

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

int encoder_forward(float* out, const int* inp, const float* wte, const float* wpe, int N, int T, int C, int pos0) {
  encoder_forward_kernel<<<blocks_for((size_t)N * C), kThreads>>>(out, inp, wte, wpe, N, T, C, pos0);
  LAUNCHED();
  return GPT2_OK;
}

int encoder_backward(float* dwte, float* dwpe, const float* dout, const int* inp, int N, int T, int C) {
  encoder_backward_kernel<<<blocks_for((size_t)N * C), kThreads>>>(dwte, dwpe, dout, inp, N, T, C);
  LAUNCHED();
  return GPT2_OK;
}

}  // namespace

#endif
