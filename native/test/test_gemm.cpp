// Checks the SGEMM backends against a double-precision reference on every transpose combination and odd sizes,
// then times the GEMM shapes of a training step. Built and run by `node scripts/build-native.mjs --test`.
//   test_gemm            correctness (exit 1 on failure)
//   test_gemm --bench    plus timings of both backends
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "../cpu/gemm.h"

using namespace gpt2cpu;

static double ref_at(bool tA, bool tB, const std::vector<float>& A, int lda, const std::vector<float>& B, int ldb, int m,
                     int n, int K) {
  double s = 0;
  for (int k = 0; k < K; k++) {
    double a = tA ? A[(size_t)k * lda + m] : A[(size_t)m * lda + k];
    double b = tB ? B[(size_t)n * ldb + k] : B[(size_t)k * ldb + n];
    s += a * b;
  }
  return s;
}

static bool check(const Ctx& cx, bool tA, bool tB, int M, int N, int K, float alpha, float beta) {
  std::mt19937 rng(M * 131 + N * 7 + K);
  std::normal_distribution<float> nd;
  const int lda = (tA ? M : K) + 3, ldb = (tB ? K : N) + 5, ldc = N + 2;
  std::vector<float> A((size_t)(tA ? K : M) * lda), B((size_t)(tB ? N : K) * ldb), C((size_t)M * ldc), C0;
  for (auto& x : A) x = nd(rng);
  for (auto& x : B) x = nd(rng);
  for (auto& x : C) x = beta == 0.f ? NAN : nd(rng);  // beta == 0 must never read C
  C0 = C;
  sgemm(cx, tA, tB, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
  double maxErr = 0;
  for (int m = 0; m < M; m++)
    for (int n = 0; n < N; n++) {
      double want = alpha * ref_at(tA, tB, A, lda, B, ldb, m, n, K) + (beta == 0.f ? 0.0 : beta * C0[(size_t)m * ldc + n]);
      double err = std::fabs(C[(size_t)m * ldc + n] - want) / (std::sqrt((double)K) + 1);
      if (!(err <= maxErr)) maxErr = std::isnan(err) ? INFINITY : err;
    }
  // the padding columns past N stay untouched
  for (int m = 0; m < M; m++)
    for (int n = N; n < ldc; n++) {
      float a = C[(size_t)m * ldc + n], b = C0[(size_t)m * ldc + n];
      if (!(a == b || (std::isnan(a) && std::isnan(b)))) maxErr = INFINITY;
    }
  bool ok = maxErr < 1e-5;
  if (!ok) std::printf("FAIL %s tA=%d tB=%d M=%d N=%d K=%d alpha=%g beta=%g err=%g\n",
                       cx.gemm == GemmBackend::Blas ? "blas" : "builtin", tA, tB, M, N, K, alpha, beta, maxErr);
  return ok;
}

static double gflops(const Ctx& cx, bool tA, bool tB, int M, int N, int K) {
  std::vector<float> A((size_t)M * K, 0.01f), B((size_t)K * N, 0.02f), C((size_t)M * N);
  const int lda = tA ? M : K, ldb = tB ? K : N;
  sgemm(cx, tA, tB, M, N, K, 1.f, A.data(), lda, B.data(), ldb, 0.f, C.data(), N);
  double best = 1e30;
  for (int r = 0; r < 5; r++) {
    auto t0 = std::chrono::steady_clock::now();
    sgemm(cx, tA, tB, M, N, K, 1.f, A.data(), lda, B.data(), ldb, 0.f, C.data(), N);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = s < best ? s : best;
  }
  return 2.0 * M * N * K / best / 1e9;
}

int main(int argc, char** argv) {
  bool bench = argc > 1 && std::strcmp(argv[1], "--bench") == 0;
  std::vector<Ctx> ctxs = {{GemmBackend::Builtin, 2}, {GemmBackend::Builtin, 1}};
  if (blas_linked()) ctxs.push_back({GemmBackend::Blas, 2});
  int fails = 0, runs = 0;
  const int sizes[][3] = {{1, 1, 1}, {3, 5, 7}, {13, 33, 17}, {64, 64, 64}, {100, 37, 300}, {2, 300, 65}, {4, 70, 33},
                          {200, 129, 513}, {37, 1000, 20}, {513, 40, 260}};
  for (const Ctx& cx : ctxs)
    for (int tA = 0; tA < 2; tA++)
      for (int tB = 0; tB < 2; tB++)
        for (auto& s : sizes)
          for (float beta : {0.f, 1.f, 0.5f}) {
            runs++;
            if (!check(cx, tA, tB, s[0], s[1], s[2], beta == 0.5f ? -0.75f : 1.f, beta)) fails++;
          }
  std::printf("gemm: %d/%d checks passed (builtin %s, blas %s)\n", runs - fails, runs, builtin_description(), blas_description());
  if (bench) {
    // the shapes of a C2 training step (B*T = 1024, C = 384, V = 50257)
    const int shapes[][5] = {{0, 1, 1024, 1152, 384}, {0, 1, 1024, 1536, 384}, {0, 0, 1024, 384, 1536},
                             {1, 0, 1536, 384, 1024}, {0, 1, 1024, 50257, 384}, {0, 0, 1024, 384, 50257},
                             {1, 0, 50257, 384, 1024}, {0, 1, 1024, 50257, 128}};
    for (auto& s : shapes) {
      std::printf("tA=%d tB=%d M=%5d N=%5d K=%5d  builtin %6.1f GFLOP/s", s[0], s[1], s[2], s[3], s[4],
                  gflops({GemmBackend::Builtin, 2}, s[0], s[1], s[2], s[3], s[4]));
      if (blas_linked()) std::printf("  blas %6.1f GFLOP/s", gflops({GemmBackend::Blas, 2}, s[0], s[1], s[2], s[3], s[4]));
      std::printf("\n");
    }
  }
  return fails ? 1 : 0;
}
