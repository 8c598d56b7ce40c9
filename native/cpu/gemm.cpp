// SGEMM for the CPU engine.
//
// - Threads: the rows (or columns) of C are split evenly over the OpenMP threads, and each thread runs a serial
//   GEMM on its slice: single-threaded cblas_sgemm, or the built-in one. All threading goes through one OpenMP
//   pool (OpenBLAS's own pthread pool would spin against it on a small machine), with no barrier inside a GEMM.
// - Built-in serial GEMM: the GotoBLAS/BLIS scheme. op(B) is packed in KC x NR column panels, op(A) in MR x KC
//   row panels, and an MR x NR register-blocked micro-kernel (vector extensions, FMA) accumulates each tile over
//   KC. Edge tiles are zero-padded in the packs and clipped on store.
// - Few rows (M <= 4, A @ B^T, the KV-cache decode): one streamed pass over B's rows with dot products, which is
//   memory-bound and reads each weight once.
#include "gemm.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "simd.h"
#include "threads.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef GPT2_USE_BLAS
#ifdef __APPLE__
#include <Accelerate/Accelerate.h>
#else
#include <cblas.h>
#endif
#endif

namespace gpt2cpu {
namespace {

#if defined(__AVX512F__)
constexpr int MR = 12, NR = 32;  // 24 accumulators of 16 lanes (of 32 registers)
const char* const kKernelName = "12x32 avx512";
#elif defined(__AVX__)
constexpr int MR = 6, NR = 16;  // 12 accumulators of 8 lanes (of 16 registers)
const char* const kKernelName = "6x16 avx2";
#else
constexpr int MR = 4, NR = 8;  // 8 accumulators of 4 lanes
const char* const kKernelName = "4x8 128-bit";
#endif
constexpr int NV = NR / VL;    // vectors per tile row
#ifndef GEMM_KC
#define GEMM_KC 256
#define GEMM_MCB 16
#define GEMM_NCB 128
#endif
constexpr int KC = GEMM_KC;        // depth of one packed block
constexpr int MC = MR * GEMM_MCB;    // rows of op(A) per packed block (in L2)
constexpr int NC = NR * GEMM_NCB;   // columns of op(B) per packed block (in L3)

/** A 64-byte-aligned buffer that only grows, one per thread, so steady-state calls never allocate. */
struct Scratch {
  float* p = nullptr;
  size_t n = 0;
  ~Scratch() { std::free(p); }
  float* get(size_t need) {
    if (need > n) {
      std::free(p);
      size_t bytes = ((need * sizeof(float) + 63) / 64) * 64;
      p = static_cast<float*>(std::aligned_alloc(64, bytes));
      n = p ? need : 0;
    }
    return p;
  }
};
thread_local Scratch tl_apack;  // per thread: MC x KC
thread_local Scratch tl_bpack;  // per calling thread, shared by its team: KC x NC

/** Packs op(A)[i0 : i0+mc, p0 : p0+kc] as MR-row panels; panel r holds MR consecutive rows for each k. */
void pack_a(bool trans, const float* A, int lda, int i0, int mc, int p0, int kc, float* out) {
  for (int r = 0; r < mc; r += MR) {
    const int mr = std::min(MR, mc - r);
    float* o = out + (size_t)r * kc;
    if (!trans) {
      for (int i = 0; i < mr; i++) {
        const float* a = A + (size_t)(i0 + r + i) * lda + p0;
        for (int k = 0; k < kc; k++) o[k * MR + i] = a[k];
      }
      for (int i = mr; i < MR; i++)
        for (int k = 0; k < kc; k++) o[k * MR + i] = 0.f;
    } else {  // op(A)[m][k] = A[k][m]
      for (int k = 0; k < kc; k++) {
        const float* a = A + (size_t)(p0 + k) * lda + i0 + r;
        for (int i = 0; i < mr; i++) o[k * MR + i] = a[i];
        for (int i = mr; i < MR; i++) o[k * MR + i] = 0.f;
      }
    }
  }
}

/** Packs columns j .. j+nr of op(B)[p0 : p0+kc, :] as one NR-column panel: NR consecutive columns for each k. */
void pack_b(bool trans, const float* B, int ldb, int p0, int kc, int j, int nr, float* o) {
  if (!trans) {
    for (int k = 0; k < kc; k++) {
      const float* b = B + (size_t)(p0 + k) * ldb + j;
      for (int jj = 0; jj < nr; jj++) o[k * NR + jj] = b[jj];
      for (int jj = nr; jj < NR; jj++) o[k * NR + jj] = 0.f;
    }
  } else {  // op(B)[k][n] = B[n][k]: read each row of B contiguously
    for (int jj = 0; jj < nr; jj++) {
      const float* b = B + (size_t)(j + jj) * ldb + p0;
      for (int k = 0; k < kc; k++) o[k * NR + jj] = b[k];
    }
    for (int jj = nr; jj < NR; jj++)
      for (int k = 0; k < kc; k++) o[k * NR + jj] = 0.f;
  }
}

/** tile (MR, NR) = packed A panel (kc, MR) ^T @ packed B panel (kc, NR). */
inline void micro_kernel(int kc, const float* __restrict a, const float* __restrict b, float* __restrict tile) {
  vfloat acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[i][v] = vfloat{};
  for (int k = 0; k < kc; k++) {
    vfloat bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) bv[v] = *reinterpret_cast<const vfloat*>(b + k * NR + v * VL);
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      const vfloat ai = vset1(a[k * MR + i]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[i][v] += ai * bv[v];
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) *reinterpret_cast<vfloat*>(tile + i * NR + v * VL) = acc[i][v];
}

/** C[0:mr, 0:nr] = alpha * tile + (first ? beta * C : C); beta == 0 on the first block never reads C. */
inline void store_tile(const float* tile, float* C, int ldc, int mr, int nr, float alpha, float beta, bool first) {
  const vfloat va = vset1(alpha), vb = vset1(beta);
  for (int i = 0; i < mr; i++) {
    float* c = C + (size_t)i * ldc;
    const float* t = tile + i * NR;
    int j = 0;
    if (nr == NR) {
      for (; j < NR; j += VL) {
        vfloat x = va * vload(t + j);
        if (!first) x += vload(c + j);
        else if (beta != 0.f) x += vb * vload(c + j);
        vstore(c + j, x);
      }
    }
    for (; j < nr; j++) {
      float x = alpha * t[j];
      if (!first) x += c[j];
      else if (beta != 0.f) x += beta * c[j];
      c[j] = x;
    }
  }
}

/** The built-in SGEMM on one thread (no OpenMP inside): the Goto loops over packed blocks of op(B) and op(A). */
void builtin_sgemm_serial(bool tA, bool tB, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
                          float beta, float* C, int ldc) {
  float* bpack = tl_bpack.get((size_t)KC * ((std::min(N, NC) + NR - 1) / NR) * NR);
  float* apack = tl_apack.get((size_t)MC * KC);
  alignas(64) float tile[MR * NR];
  for (int jc = 0; jc < N; jc += NC) {
    const int nc = std::min(NC, N - jc);
    const int npanels = (nc + NR - 1) / NR;
    for (int pc = 0; pc < K; pc += KC) {
      const int kc = std::min(KC, K - pc);
      const bool first = pc == 0;
      for (int q = 0; q < npanels; q++) pack_b(tB, B, ldb, pc, kc, jc + q * NR, std::min(NR, nc - q * NR), bpack + (size_t)q * NR * kc);
      for (int ic = 0; ic < M; ic += MC) {
        const int mc = std::min(MC, M - ic);
        pack_a(tA, A, lda, ic, mc, pc, kc, apack);
        for (int r = 0; r < mc; r += MR)
          for (int q = 0; q < npanels; q++) {
            micro_kernel(kc, apack + (size_t)r * kc, bpack + (size_t)q * NR * kc, tile);
            store_tile(tile, C + (size_t)(ic + r) * ldc + jc + q * NR, ldc, std::min(MR, mc - r), std::min(NR, nc - q * NR), alpha, beta,
                       first);
          }
      }
    }
  }
}

#ifdef GPT2_USE_BLAS
void blas_sgemm_serial(bool tA, bool tB, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb, float beta,
                       float* C, int ldc) {
  cblas_sgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
#endif

typedef void (*SerialGemm)(bool, bool, int, int, int, float, const float*, int, const float*, int, float, float*, int);

/**
 * C split into one slice per thread along its longer side (rows of op(A) or columns of op(B)), each slice a serial
 * GEMM with its own packing: no barrier inside, and the packing repeated per thread costs K*(M or N), against
 * M*N*K/threads of arithmetic. With the built-in GEMM, each element of C comes out the same whatever the thread
 * count (the KC blocks fix its summation order).
 */
void split_sgemm(const Ctx& cx, SerialGemm gemm, bool tA, bool tB, int M, int N, int K, float alpha, const float* A, int lda,
                 const float* B, int ldb, float beta, float* C, int ldc) {
  const bool splitRows = M >= N;
  const int dim = splitRows ? M : N;
  if (cx.threads <= 1 || dim < 32 || (size_t)M * N * K < (1u << 18)) {
    gemm(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
#pragma omp parallel num_threads(cx.threads)
  {
    const int t = thread_id(), n = team_size();
    // slice boundaries on multiples of 16 so each slice starts on a cache line
    const int unit = 16, units = (dim + unit - 1) / unit;
    const int a0 = std::min(dim, (int)((long)units * t / n) * unit), a1 = std::min(dim, (int)((long)units * (t + 1) / n) * unit);
    if (a1 > a0) {
      if (splitRows) {
        const float* Ap = tA ? A + a0 : A + (size_t)a0 * lda;
        gemm(tA, tB, a1 - a0, N, K, alpha, Ap, lda, B, ldb, beta, C + (size_t)a0 * ldc, ldc);
      } else {
        const float* Bp = tB ? B + (size_t)a0 * ldb : B + a0;
        gemm(tA, tB, M, a1 - a0, K, alpha, A, lda, Bp, ldb, beta, C + a0, ldc);
      }
    }
  }
}

/** C (M, N) = alpha * A (M, K) @ B (N, K)^T + beta * C for small M: each row of B is read once. */
void few_rows_sgemm(const Ctx& cx, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
                    float beta, float* C, int ldc) {
#pragma omp parallel for num_threads(cx.threads) schedule(static) if ((size_t)N * K * M >= (1u << 15))
  for (int n = 0; n < N; n++) {
    const float* b = B + (size_t)n * ldb;
    for (int m = 0; m < M; m++) {
      float x = alpha * vdot(A + (size_t)m * lda, b, K);
      float* c = C + (size_t)m * ldc + n;
      *c = beta == 0.f ? x : x + beta * *c;
    }
  }
}

#ifdef GPT2_USE_BLAS
struct BlasInit {
  BlasInit() {
#ifdef GPT2_OPENBLAS
    openblas_set_num_threads(1);  // threads come from our OpenMP split
#endif
  }
};
#endif

}  // namespace

void sgemm(const Ctx& cx, bool tA, bool tB, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
           int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {  // C = beta * C
    for (int m = 0; m < M; m++)
      for (int n = 0; n < N; n++) C[(size_t)m * ldc + n] = beta == 0.f ? 0.f : beta * C[(size_t)m * ldc + n];
    return;
  }
  if (M <= 4 && !tA && tB) {
    few_rows_sgemm(cx, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
#ifdef GPT2_USE_BLAS
  if (cx.gemm == GemmBackend::Blas) {
    static BlasInit once;
    (void)once;
    split_sgemm(cx, blas_sgemm_serial, tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
#endif
  split_sgemm(cx, builtin_sgemm_serial, tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

bool blas_linked() {
#ifdef GPT2_USE_BLAS
  return true;
#else
  return false;
#endif
}

const char* blas_description() {
#if defined(GPT2_USE_BLAS) && defined(GPT2_OPENBLAS)
  static char buf[160];
  if (!buf[0]) {
    const char* cfg = openblas_get_config();
    std::snprintf(buf, sizeof buf, "OpenBLAS (%s)", cfg ? cfg : "?");
  }
  return buf;
#elif defined(GPT2_USE_BLAS) && defined(__APPLE__)
  return "Accelerate";
#elif defined(GPT2_USE_BLAS)
  return "CBLAS";
#else
  return "none";
#endif
}

const char* builtin_description() { return kKernelName; }

}  // namespace gpt2cpu
