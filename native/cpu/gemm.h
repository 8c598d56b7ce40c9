// Single-precision matrix multiply for the CPU engine: BLAS sgemm when the build links one, else (or when asked)
// the built-in cache-blocked, vectorized OpenMP SGEMM of gemm.cpp.
#pragma once

namespace gpt2cpu {

enum class GemmBackend { Blas, Builtin };

/** How a model runs its heavy loops: the GEMM backend and the OpenMP thread count. */
struct Ctx {
  GemmBackend gemm;
  int threads;
};

/**
 * C (M, N) = alpha * op(A) (M, K) @ op(B) (K, N) + beta * C, all row-major, op(X) = X^T when trans is set.
 * lda/ldb/ldc are row strides of A, B, C as stored. With beta == 0, C is not read (it may hold garbage).
 * Runs on cx.threads OpenMP threads; call it outside a parallel region.
 */
void sgemm(const Ctx& cx, bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc);

/** True when the build links a BLAS. */
bool blas_linked();
/** "OpenBLAS 0.3.21 ...", "Accelerate" or "none". */
const char* blas_description();
/** The built-in kernel's shape, e.g. "12x32 avx512". */
const char* builtin_description();

}  // namespace gpt2cpu
