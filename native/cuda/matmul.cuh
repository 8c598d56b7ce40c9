// The matmuls: row-major cuBLAS calls with the CPU engine's sgemm contract (native/cpu/gemm.h), in FP32, TF32 or BF16,
// the bias folded in (prefill, beta = 1), the bias gradient, and the parameters' bf16 mirror that BF16 reads the
// weights from. Part of native/cuda/gpt2_cuda.cu.
#ifndef GPT2_CUDA_MATMUL_CUH
#define GPT2_CUDA_MATMUL_CUH

#include <cstdint>

#include "common.cuh"

namespace {

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

/**
 * A model's cuBLAS state: the handle, the precision (gpt2_set_precision), and for BF16 a bf16 mirror of the
 * parameters (stale after every write or update, refreshed before the next GEMM that reads a weight) and two scratch
 * buffers for the other operands.
 */
struct Blas {
  cublasHandle_t handle = nullptr;
  int precision = GPT2_PRECISION_FP32;
  const float* params = nullptr;         // device (num_params): the FP32 parameters the mirror follows
  size_t num_params = 0;
  __nv_bfloat16* params_bf16 = nullptr;  // device (num_params)
  bool bf16_stale = true;
  __nv_bfloat16* scratch_bf16[2] = {nullptr, nullptr};
  size_t scratch_cap[2] = {0, 0};
};

/** Frees the mirror and the scratch buffers and destroys the handle. */
void blas_free(Blas& G) {
  for (__nv_bfloat16* p : {G.params_bf16, G.scratch_bf16[0], G.scratch_bf16[1]}) cudaFree(p);
  if (G.handle) cublasDestroy(G.handle);
  G = Blas();
}

/** Makes bf16 scratch buffer `slot` hold at least `span` elements (only the first steps grow it). */
int bf16_scratch(Blas& G, int slot, size_t span) {
  if (span <= G.scratch_cap[slot]) return GPT2_OK;
  CU(cudaFree(G.scratch_bf16[slot]));
  G.scratch_bf16[slot] = nullptr;
  G.scratch_cap[slot] = 0;
  if (cudaMalloc(&G.scratch_bf16[slot], span * sizeof(__nv_bfloat16)) != cudaSuccess)
    return fail(GPT2_ERR_MEMORY, "out of GPU memory for a bf16 operand of %zu elements", span);
  G.scratch_cap[slot] = span;
  return GPT2_OK;
}

/** Brings the parameters' bf16 mirror up to date (allocated on first use). */
int refresh_bf16_params(Blas& G) {
  if (!G.params_bf16) CU(cudaMalloc(&G.params_bf16, G.num_params * sizeof(__nv_bfloat16)));
  if (G.bf16_stale) {
    to_bf16_kernel<<<blocks_for(G.num_params), kThreads>>>(G.params_bf16, G.params, G.num_params);
    LAUNCHED();
    G.bf16_stale = false;
  }
  return GPT2_OK;
}

/**
 * The bf16 form of a GEMM operand of `span` floats at X: the parameters' mirror when X is a parameter (refreshed
 * first when stale), else X rounded into scratch buffer `slot` (grown on demand; only the first steps grow it).
 */
int bf16_operand(Blas& G, const float* X, size_t span, int slot, const __nv_bfloat16** out) {
  const uintptr_t x = reinterpret_cast<uintptr_t>(X), p0 = reinterpret_cast<uintptr_t>(G.params);
  if (x >= p0 && x < p0 + G.num_params * sizeof(float)) {
    TRY(refresh_bf16_params(G));
    *out = G.params_bf16 + (X - G.params);
    return GPT2_OK;
  }
  TRY(bf16_scratch(G, slot, span));
  to_bf16_kernel<<<blocks_for(span), kThreads>>>(G.scratch_bf16[slot], X, span);
  LAUNCHED();
  *out = G.scratch_bf16[slot];
  return GPT2_OK;
}

/**
 * C (M, N) = alpha op(A) op(B) + beta C, row-major: cuBLAS (column-major) computes C^T = op(B)^T op(A)^T.
 * FP32 and TF32: SGEMM (the math mode set by gpt2_set_precision). BF16: A and B rounded to bf16, the products
 * accumulated in FP32 into the FP32 C (cublasGemmEx, CUBLAS_COMPUTE_32F). A16, when given, is A already in bf16
 * (same layout), and so is B16 for B: an operand used by two GEMMs is rounded once, and one made in bf16 (a layernorm's
 * output, a gradient) is not rounded again; A or B may then be null.
 */
int gemm(Blas& G, bool tA, bool tB, int m, int n, int k, float alpha, const float* A, int lda, const float* B, int ldb, float beta,
         float* C, int ldc, const __nv_bfloat16* A16 = nullptr, const __nv_bfloat16* B16 = nullptr) {
  const cublasOperation_t opA = tA ? CUBLAS_OP_T : CUBLAS_OP_N, opB = tB ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (G.precision != GPT2_PRECISION_BF16) {
    CB(cublasSgemm(G.handle, opB, opA, n, m, k, &alpha, B, ldb, A, lda, &beta, C, ldc));
    return GPT2_OK;
  }
  // the stored (row-major) extent of each operand: A is (m, k), or (k, m) when transposed; B is (k, n), or (n, k)
  const size_t spanA = (size_t)((tA ? k : m) - 1) * lda + (tA ? m : k);
  const size_t spanB = (size_t)((tB ? n : k) - 1) * ldb + (tB ? k : n);
  if (!A16) TRY(bf16_operand(G, A, spanA, 0, &A16));
  if (!B16) TRY(bf16_operand(G, B, spanB, 1, &B16));
  CB(cublasGemmEx(G.handle, opB, opA, n, m, k, &alpha, B16, CUDA_R_16BF, ldb, A16, CUDA_R_16BF, lda, &beta, C, CUDA_R_32F, ldc,
                  CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  return GPT2_OK;
}

int gemm_batched(Blas& G, bool tA, bool tB, int m, int n, int k, float alpha, const float* A, int lda, long long sA, const float* B, int ldb,
                 long long sB, float beta, float* C, int ldc, long long sC, int batch) {
  CB(cublasSgemmStridedBatched(G.handle, tB ? CUBLAS_OP_T : CUBLAS_OP_N, tA ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, B, ldb, sB, A,
                               lda, sA, &beta, C, ldc, sC, batch));
  return GPT2_OK;
}

/** out = inp W^T + bias (+ add). inp16: inp in bf16 (BF16; inp may then be null). */
int matmul_forward(Blas& G, float* out, const float* inp, const __nv_bfloat16* inp16, const float* W, const float* bias, const float* add, int N,
                   int IC, int OC) {
  float beta = 0.f;
  if (bias || add) {
    bias_prefill_kernel<<<blocks_for((size_t)N * OC), kThreads>>>(out, add, bias, N, OC);
    LAUNCHED();
    beta = 1.f;
  }
  return gemm(G, false, true, N, OC, IC, 1.f, inp, IC, W, IC, beta, out, OC, inp16);
}

/** dinp = dout W, dW += dout^T inp, dbias += column sums of dout. inp16: as matmul_forward's. */
int matmul_backward(Blas& G, float* dinp, float* dW, float* dbias, const float* dout, const float* inp, const __nv_bfloat16* inp16, const float* W,
                    int N, int IC, int OC) {
  // BF16: dout is an operand of both GEMMs; round it once (scratch slot 0, which neither GEMM's other operand uses)
  const __nv_bfloat16* dout16 = nullptr;
  if (G.precision == GPT2_PRECISION_BF16) TRY(bf16_operand(G, dout, (size_t)N * OC, 0, &dout16));
  TRY(gemm(G, false, false, N, IC, OC, 1.f, dout, OC, W, IC, 0.f, dinp, IC, dout16));
  TRY(gemm(G, true, false, OC, IC, N, 1.f, dout, OC, inp, IC, 1.f, dW, IC, dout16, inp16));
  if (dbias) {
    dim3 grid((OC + 31) / 32, std::min((N + 31) / 32, 64));
    bias_backward_kernel<<<grid, dim3(32, 32)>>>(dbias, dout, N, OC);
    LAUNCHED();
  }
  return GPT2_OK;
}

}  // namespace

#endif
