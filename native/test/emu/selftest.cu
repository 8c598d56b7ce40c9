// The CPU emulation's own checks (see README.md): each case is one run of this program, `emu_selftest CASE`, that
// exits 0 and prints "ok" when the emulation behaves as a GPU would, or, for the cases that plant a bug, fails the
// way the emulation promises to (test/cuda-emulated.test.ts checks both).
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond)) {                                                         \
      std::fprintf(stderr, "check failed: %s (line %d)\n", #cond, __LINE__); \
      std::exit(1);                                                        \
    }                                                                      \
  } while (0)

__device__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/** out[blockIdx.x] = the sum of in over the block's 256 values, by warp shuffles and shared memory. */
__global__ void block_sum_kernel(float* out, const float* in) {
  __shared__ float sh[32];
  const int lane = threadIdx.x % 32, wid = threadIdx.x / 32;
  float v = warp_sum(in[blockIdx.x * blockDim.x + threadIdx.x]);
  if (lane == 0) sh[wid] = v;
  __syncthreads();
  if (wid == 0) {
    v = warp_sum(lane < (int)(blockDim.x / 32) ? sh[lane] : 0.f);
    if (lane == 0) out[blockIdx.x] = v;
  }
}

/** A 2-D block and grid: every thread writes its coordinates. */
__global__ void coords_kernel(int* out) {
  const int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
  out[y * gridDim.x * blockDim.x + x] = x * 1000 + y;
}

/** Each thread reads its right neighbour's value from dynamic shared memory; `sync` = false leaves out the barrier. */
__global__ void neighbour_kernel(float* out, const float* in, bool sync) {
  extern __shared__ float buf[];
  const int i = threadIdx.x, n = blockDim.x;
  buf[i] = in[i];
  if (sync) __syncthreads();
  out[i] = buf[(i + 1) % n];
}

/** Half the block waits at a barrier that the other half never reaches. */
__global__ void divergent_barrier_kernel(float* out) {
  if (threadIdx.x < 16) __syncthreads();
  out[threadIdx.x] = 1.f;
}

/** Half a warp shuffles while the other half waits at __syncthreads(): a hang on a GPU. */
__global__ void deadlock_kernel(float* out) {
  float v = (float)threadIdx.x;
  if (threadIdx.x < 16) v = __shfl_xor_sync(0xffffffffu, v, 1);
  else __syncthreads();
  out[threadIdx.x] = v;
}

/** Writes one float past the end of its dynamic shared memory (found by the AddressSanitizer build). */
__global__ void smem_overflow_kernel(float* out, int n) {
  extern __shared__ float buf[];
  buf[threadIdx.x + n] = 1.f;
  __syncthreads();
  out[threadIdx.x] = buf[threadIdx.x];
}

__global__ void fill_kernel(float* out, float v, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = v;
}

static float* device_copy(const std::vector<float>& h) {
  float* d = nullptr;
  CHECK(cudaMalloc(&d, h.size() * sizeof(float)) == cudaSuccess);
  CHECK(cudaMemcpy(d, h.data(), h.size() * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
  return d;
}

static std::vector<float> host_copy(const float* d, size_t n) {
  std::vector<float> h(n);
  CHECK(cudaMemcpy(h.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
  return h;
}

int main(int argc, char** argv) {
  const char* c = argc > 1 ? argv[1] : "";
  if (!std::strcmp(c, "reduce")) {
    std::vector<float> in(4 * 256);
    for (size_t i = 0; i < in.size(); i++) in[i] = (float)(i % 97) - 40.f;
    float* din = device_copy(in);
    float* dout = nullptr;
    CHECK(cudaMalloc(&dout, 4 * sizeof(float)) == cudaSuccess);
    block_sum_kernel<<<4, 256>>>(dout, din);
    CHECK(cudaGetLastError() == cudaSuccess);
    const std::vector<float> out = host_copy(dout, 4);
    for (int b = 0; b < 4; b++) {
      double want = 0;
      for (int i = 0; i < 256; i++) want += in[b * 256 + i];
      CHECK(out[b] == (float)want);
    }
    int* dc = nullptr;
    CHECK(cudaMalloc(&dc, 64 * 6 * sizeof(int)) == cudaSuccess);
    coords_kernel<<<dim3(4, 2), dim3(16, 3)>>>(dc);
    std::vector<int> coords(64 * 6);
    CHECK(cudaMemcpy(coords.data(), dc, coords.size() * sizeof(int), cudaMemcpyDeviceToHost) == cudaSuccess);
    for (int y = 0; y < 6; y++)
      for (int x = 0; x < 64; x++) CHECK(coords[y * 64 + x] == x * 1000 + y);
    cudaFree(din), cudaFree(dout), cudaFree(dc);
  } else if (!std::strcmp(c, "barrier") || !std::strcmp(c, "missing-barrier")) {
    const bool sync = !std::strcmp(c, "barrier");
    std::vector<float> in(128);
    for (int i = 0; i < 128; i++) in[i] = (float)i;
    float* din = device_copy(in);
    float* dout = nullptr;
    CHECK(cudaMalloc(&dout, 128 * sizeof(float)) == cudaSuccess);
    neighbour_kernel<<<1, 128, 128 * sizeof(float)>>>(dout, din, sync);
    const std::vector<float> out = host_copy(dout, 128);
    // without the barrier, thread 0 reads before thread 1 has written: the NaN bytes shared memory starts with
    for (int i = 0; i < 128; i++) CHECK(out[i] == (float)((i + 1) % 128));
  } else if (!std::strcmp(c, "divergent-barrier") || !std::strcmp(c, "deadlock")) {
    float* d = nullptr;
    CHECK(cudaMalloc(&d, 32 * sizeof(float)) == cudaSuccess);
    if (!std::strcmp(c, "deadlock")) deadlock_kernel<<<1, 32>>>(d);
    else divergent_barrier_kernel<<<1, 32>>>(d);
  } else if (!std::strcmp(c, "host-pointer")) {
    std::vector<float> h(256);
    fill_kernel<<<1, 256>>>(h.data(), 1.f, 256);
  } else if (!std::strcmp(c, "smem-overflow")) {
    float* d = nullptr;
    CHECK(cudaMalloc(&d, 64 * sizeof(float)) == cudaSuccess);
    smem_overflow_kernel<<<1, 64, 64 * sizeof(float)>>>(d, 1);
  } else if (!std::strcmp(c, "limits")) {
    float* d = nullptr;
    CHECK(cudaMalloc(&d, 2048 * sizeof(float)) == cudaSuccess);
    fill_kernel<<<1, 2048>>>(d, 1.f, 2048);  // over 1024 threads per block
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
    fill_kernel<<<dim3(1, 70000), 32>>>(d, 1.f, 32);  // grid y over 65535
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
    CHECK(cudaGetLastError() == cudaSuccess);  // read and cleared
    neighbour_kernel<<<1, 32, 64 * 1024>>>(d, d, true);  // over the 48 KB default
    CHECK(cudaGetLastError() == cudaErrorInvalidValue);
    CHECK(cudaFuncSetAttribute(neighbour_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024) == cudaSuccess);
    neighbour_kernel<<<1, 32, 64 * 1024>>>(d, d, true);
    CHECK(cudaGetLastError() == cudaSuccess);
    CHECK(cudaFuncSetAttribute(neighbour_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 300 * 1024) == cudaErrorInvalidValue);
  } else if (!std::strcmp(c, "bf16")) {
    CHECK(__bfloat162float(__float2bfloat16(1.00390625f)) == 1.f);         // a tie rounds to even (down)
    CHECK(__bfloat162float(__float2bfloat16(1.01171875f)) == 1.015625f);   // a tie rounds to even (up)
    CHECK(__bfloat162float(__float2bfloat16(1.0048828125f)) == 1.0078125f);  // above the tie: up
    CHECK(std::isnan(__bfloat162float(__float2bfloat16(NAN))));
    CHECK(std::isinf(__bfloat162float(__float2bfloat16(INFINITY))));
  } else if (!std::strcmp(c, "gemm")) {
    // C (3 x 2, column-major) = A^T B with A stored (4 x 3), B (4 x 2): both transposition conventions of cuBLAS
    const int m = 3, n = 2, k = 4;
    std::vector<float> A(k * m), B(k * n);
    for (int i = 0; i < k * m; i++) A[i] = (float)(i + 1);
    for (int i = 0; i < k * n; i++) B[i] = (float)(2 * i - 3);
    float *dA = device_copy(A), *dB = device_copy(B), *dC = nullptr;
    CHECK(cudaMalloc(&dC, m * n * sizeof(float)) == cudaSuccess);
    cublasHandle_t h;
    CHECK(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS);
    const float one = 1.f, zero = 0.f;
    CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, dA, k, dB, k, &zero, dC, m) == CUBLAS_STATUS_SUCCESS);
    std::vector<float> C = host_copy(dC, m * n);
    for (int j = 0; j < n; j++)
      for (int i = 0; i < m; i++) {
        float want = 0;
        for (int p = 0; p < k; p++) want += A[p + i * k] * B[p + j * k];
        CHECK(C[i + j * m] == want);
      }
    // a leading dimension smaller than the stored rows is refused, as cuBLAS does
    CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, dA, k - 1, dB, k, &zero, dC, m) == CUBLAS_STATUS_INVALID_VALUE);
    cublasDestroy(h);
  } else {
    std::fprintf(stderr, "usage: %s reduce|barrier|missing-barrier|divergent-barrier|deadlock|host-pointer|smem-overflow|limits|bf16|gemm\n", argv[0]);
    return 2;
  }
  std::printf("ok\n");
  return 0;
}
