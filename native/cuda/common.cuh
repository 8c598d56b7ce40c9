// The CUDA engine's common ground, included first by native/cuda/gpt2_cuda.cu: the checks of CUDA and cuBLAS calls
// (a failure becomes the C API's error code and message), launch sizes, warp and block reductions, and the helpers
// every part uses. See native/README.md ("CUDA").
#ifndef GPT2_CUDA_COMMON_CUH
#define GPT2_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstddef>

#include "../common/layout.h"
#include "../include/gpt2.h"

namespace {

// the shared host-side bookkeeping that the parts use
using gpt2common::check_bt;
using gpt2common::check_ids;
using gpt2common::fail;
using gpt2common::LayerTensors;
using gpt2common::Tensors;

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

// ---- helpers -----------------------------------------------------------------------------------------------------

/** Selects the model's device on the calling thread (every API call on a model starts with it). */
int use_device(int device) {
  // a failed allocation of an earlier call leaves CUDA's last error set; the next launch check would report it
  (void)cudaGetLastError();
  int cur = -1;
  if (cudaGetDevice(&cur) == cudaSuccess && cur == device) return GPT2_OK;
  CU(cudaSetDevice(device));
  return GPT2_OK;
}

/** n floats of zeroed device memory (at least one). */
int dev_alloc(float** p, size_t n) {
  CU(cudaMalloc(p, std::max<size_t>(n, 1) * sizeof(float)));
  CU(cudaMemset(*p, 0, std::max<size_t>(n, 1) * sizeof(float)));
  return GPT2_OK;
}

/** Raises a kernel's dynamic shared memory limit when it needs more than the default 48 KB (large head sizes). */
template <typename K>
int allow_smem(K kernel, size_t bytes) {
  if (bytes > 48 * 1024) CU(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
  return GPT2_OK;
}

/** out[i] = in[i] rounded to bf16 (nearest, ties to even). */
__global__ void to_bf16_kernel(__nv_bfloat16* out, const float* in, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) out[i] = __float2bfloat16(in[i]);
}

}  // namespace

#endif
