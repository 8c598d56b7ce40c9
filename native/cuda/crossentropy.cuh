// The fused classifier: softmax cross-entropy over each row of logits with its gradient in place (or in bf16), in one
// kernel. Part of native/cuda/gpt2_cuda.cu.
#ifndef GPT2_CUDA_CROSSENTROPY_CUH
#define GPT2_CUDA_CROSSENTROPY_CUH

#include "common.cuh"

namespace {

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

/** The kernel above over N rows (logits (N, V) at `stride` floats per row). */
int crossentropy(float* logits, float* losses, const int* targets, const float* weights, int N, int V, size_t stride, bool grad, float scale,
                 __nv_bfloat16* grad16) {
  crossentropy_kernel<<<N, 512>>>(logits, losses, targets, weights, V, stride, grad, scale, grad16);
  LAUNCHED();
  return GPT2_OK;
}

}  // namespace

#endif
