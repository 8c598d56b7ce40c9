// The flash attention on tensor cores (BF16 precision, heads of 64). Part of native/cuda/gpt2_cuda.cu.
//
// The algorithm of attention_flash.cuh's FP32 kernels, with its four products per tile on tensor cores
// (nvcuda::wmma, 16 x 16 x 16 bf16 tiles accumulated in FP32): q, k, v and dO are rounded to bf16 as they are loaded
// into shared memory, the probabilities and dS as they are stored for the next product; the softmax, its running max
// and sum, and every accumulator stay FP32. A block of 4 warps takes a tile of 64 rows, each warp 16 of them, against tiles of 64 keys
// (or, for dK and dV, 64 keys against tiles of 64 queries). Used when the run's precision is BF16 and the head size
// 64 (every GPT-2 size); GPT2_CUDA_ATTENTION=flash32 keeps the FP32 kernels.
#ifndef GPT2_CUDA_ATTENTION_TC_CUH
#define GPT2_CUDA_ATTENTION_TC_CUH

#include <mma.h>

#include "common.cuh"

namespace {

constexpr int kTcHs = 64;                      // head size
constexpr int kTcTile = 64;                    // rows per block, and rows per tile of the other operand
constexpr int kTcThreads = 128;                // 4 warps of 16 rows
constexpr int kTcLd = kTcHs + 8;               // bf16 tiles' row stride (a multiple of 8, off the 128-byte banks)
constexpr int kTcLdf = kTcTile + 4;            // FP32 tiles' row stride (a multiple of 4)
constexpr size_t kTcTileBf16 = (size_t)kTcTile * kTcLd * sizeof(__nv_bfloat16);
constexpr size_t kTcTileF32 = (size_t)kTcTile * kTcLdf * sizeof(float);
constexpr size_t kTcForwardSmem = 4 * kTcTileBf16 + 2 * kTcTileF32;              // Q K V P; S O
constexpr size_t kTcDqSmem = 5 * kTcTileBf16 + 2 * kTcTileF32 + 2 * kTcTile * sizeof(float);   // Q dO K V dS; S dP; lse D
constexpr size_t kTcDkdvSmem = 6 * kTcTileBf16 + 2 * kTcTileF32 + 2 * kTcTile * sizeof(float); // K V Q dO P dS; S dP; lse D

using FragA = nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 16, __nv_bfloat16, nvcuda::wmma::row_major>;
using FragBRow = nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, 16, __nv_bfloat16, nvcuda::wmma::row_major>;
using FragBCol = nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, 16, __nv_bfloat16, nvcuda::wmma::col_major>;
using FragC = nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float>;

/** dst (64, kTcLd) bf16 = rows t0 .. t0+63 of src (row stride `stride`, 64 floats each), zeros past T. */
__device__ inline void tc_load_tile(__nv_bfloat16* dst, const float* src, size_t stride, int t0, int T) {
  for (int i = threadIdx.x; i < kTcTile * kTcHs; i += blockDim.x) {
    const int r = i / kTcHs, d = i % kTcHs, t = t0 + r;
    dst[r * kTcLd + d] = __float2bfloat16(t < T ? src[(size_t)t * stride + d] : 0.f);
  }
}

/**
 * The warp's 16 rows of 64 floats (src, ld kTcLdf) times f into rows t0 .. t0+15 of dst (`stride` floats apart; rows
 * at or past T are skipped). The whole warp writes each row, so that every store is one coalesced 128-byte line.
 */
__device__ inline void tc_store_rows(float* dst, size_t stride, const float* src, int t0, int T, float f) {
  const int lane = threadIdx.x % 32;
  for (int r = 0; r < 16 && t0 + r < T; r++) {
    float* d = dst + (size_t)(t0 + r) * stride;
    d[lane] = src[r * kTcLdf + lane] * f;
    d[lane + 32] = src[r * kTcLdf + lane + 32] * f;
  }
}

/**
 * out (16, 64) FP32 at ld kTcLdf = A (16, 64) times B^T, B (64, 64) both row-major bf16 at ld kTcLd: the warp's rows
 * of A against the 64 rows of B (scores: q k^T, or dO v^T).
 */
__device__ inline void tc_rows_times_rows_t(float* out, const __nv_bfloat16* A, const __nv_bfloat16* B) {
  for (int n = 0; n < kTcTile / 16; n++) {
    FragC c;
    nvcuda::wmma::fill_fragment(c, 0.f);
    for (int k = 0; k < kTcHs / 16; k++) {
      FragA a;
      FragBCol b;  // B^T (d, j) = B[j][d]: B read column-major
      nvcuda::wmma::load_matrix_sync(a, A + k * 16, kTcLd);
      nvcuda::wmma::load_matrix_sync(b, B + n * 16 * kTcLd + k * 16, kTcLd);
      nvcuda::wmma::mma_sync(c, a, b, c);
    }
    nvcuda::wmma::store_matrix_sync(out + n * 16, c, kTcLdf, nvcuda::wmma::mem_row_major);
  }
}

/** acc[n] += A (16, 64) times B (64, 64), both row-major bf16 at ld kTcLd, for the 4 column blocks n of B. */
__device__ inline void tc_accumulate(FragC* acc, const __nv_bfloat16* A, const __nv_bfloat16* B) {
  for (int k = 0; k < kTcTile / 16; k++) {
    FragA a;
    nvcuda::wmma::load_matrix_sync(a, A + k * 16, kTcLd);
    for (int n = 0; n < kTcHs / 16; n++) {
      FragBRow b;
      nvcuda::wmma::load_matrix_sync(b, B + k * 16 * kTcLd + n * 16, kTcLd);
      nvcuda::wmma::mma_sync(acc[n], a, b, acc[n]);
    }
  }
}

/** Forward: as flash_attention_forward_kernel. O is kept in shared memory, so that each row can be rescaled. */
__global__ void __launch_bounds__(kTcThreads) tc_flash_forward_kernel(float* out, float* lse, const float* qkv, int T, int NH, float scale) {
  extern __shared__ __align__(128) float smem[];
  __nv_bfloat16* Qs = reinterpret_cast<__nv_bfloat16*>(smem);
  __nv_bfloat16* Ks = Qs + kTcTile * kTcLd;
  __nv_bfloat16* Vs = Ks + kTcTile * kTcLd;
  __nv_bfloat16* Ps = Vs + kTcTile * kTcLd;
  float* Ss = reinterpret_cast<float*>(Ps + kTcTile * kTcLd);
  float* Os = Ss + kTcTile * kTcLdf;
  const int C = NH * kTcHs, bh = blockIdx.y, b = bh / NH, h = bh % NH;
  const int q0 = blockIdx.x * kTcTile, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row = warp * 16 + lane / 2, half = lane % 2;  // this lane's row of the tile, and its 32 columns
  // the lanes walk their 32 columns from different starts, so that the 32 lanes of a warp touch 32 different shared
  // memory banks (rows are kTcLdf = 68 floats apart: without it, 4 lanes would share each bank)
  const int rot = 2 * half + (lane >= 16);
  const int qi = q0 + row, qlim = min(qi, T - 1);
  const size_t stride = 3 * (size_t)C;
  const float* base = qkv + (size_t)b * T * stride + (size_t)h * kTcHs;
  tc_load_tile(Qs, base, stride, q0, T);
  for (int c = 0; c < 32; c++) Os[row * kTcLdf + half * 32 + c] = 0.f;
  float m = -INFINITY, l = 0.f;
  const int kend = min(q0 + kTcTile, T);
  for (int k0 = 0; k0 < kend; k0 += kTcTile) {
    __syncthreads();  // the previous tile's readers are done (and Qs is published the first time)
    tc_load_tile(Ks, base + C, stride, k0, T);
    tc_load_tile(Vs, base + 2 * C, stride, k0, T);
    __syncthreads();
    tc_rows_times_rows_t(Ss + warp * 16 * kTcLdf, Qs + warp * 16 * kTcLd, Ks);
    __syncwarp();  // the stored scores are visible to every lane of the warp
    float* srow = Ss + row * kTcLdf + half * 32;
    float tmax = -INFINITY;
    for (int c0 = 0; c0 < 32; c0++) {
      const int c = (c0 + rot) & 31;
      const float s = k0 + half * 32 + c <= qlim ? srow[c] * scale : -INFINITY;
      srow[c] = s;
      tmax = fmaxf(tmax, s);
    }
    const float mnew = fmaxf(m, fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, 1)));
    const float alpha = expf(m - mnew);  // 0 on the first tile (m = -inf); every tile has a live key per row
    float psum = 0.f;
    __nv_bfloat16* prow = Ps + row * kTcLd + half * 32;
    float* orow = Os + row * kTcLdf + half * 32;
    for (int c0 = 0; c0 < 32; c0++) {
      const int c = (c0 + rot) & 31;
      const float p = expf(srow[c] - mnew);
      prow[c] = __float2bfloat16(p);
      psum += p;
      orow[c] *= alpha;
    }
    l = l * alpha + psum + __shfl_xor_sync(0xffffffffu, psum, 1);
    m = mnew;
    __syncwarp();  // the warp's P rows and rescaled O rows are complete
    FragC acc[kTcHs / 16];
    for (int n = 0; n < kTcHs / 16; n++)
      nvcuda::wmma::load_matrix_sync(acc[n], Os + warp * 16 * kTcLdf + n * 16, kTcLdf, nvcuda::wmma::mem_row_major);
    tc_accumulate(acc, Ps + warp * 16 * kTcLd, Vs);
    for (int n = 0; n < kTcHs / 16; n++)
      nvcuda::wmma::store_matrix_sync(Os + warp * 16 * kTcLdf + n * 16, acc[n], kTcLdf, nvcuda::wmma::mem_row_major);
  }
  __syncwarp();
  const float inv = 1.f / l;  // every row, also one past T, has a live key: l > 0
  float* orow = Os + row * kTcLdf + half * 32;
  for (int c0 = 0; c0 < 32; c0++) orow[(c0 + rot) & 31] *= inv;
  if (qi < T && half == 0) lse[(size_t)bh * T + qi] = m + logf(l);
  __syncwarp();
  tc_store_rows(out + (size_t)b * T * C + (size_t)h * kTcHs, (size_t)C, Os + warp * 16 * kTcLdf, q0 + warp * 16, T, 1.f);
}

/** dQ of one tile of 64 queries, over the key tiles at or before it (as flash_attention_backward_dq_kernel). */
__global__ void __launch_bounds__(kTcThreads) tc_flash_backward_dq_kernel(float* dqkv, const float* dout, const float* qkv, const float* lse,
                                                                          const float* Drow, int T, int NH, float scale) {
  extern __shared__ __align__(128) float smem[];
  __nv_bfloat16* Qs = reinterpret_cast<__nv_bfloat16*>(smem);
  __nv_bfloat16* dOs = Qs + kTcTile * kTcLd;
  __nv_bfloat16* Ks = dOs + kTcTile * kTcLd;
  __nv_bfloat16* Vs = Ks + kTcTile * kTcLd;
  __nv_bfloat16* dSs = Vs + kTcTile * kTcLd;
  float* Ss = reinterpret_cast<float*>(dSs + kTcTile * kTcLd);
  float* dPs = Ss + kTcTile * kTcLdf;
  const int C = NH * kTcHs, bh = blockIdx.y, b = bh / NH, h = bh % NH;
  const int q0 = blockIdx.x * kTcTile, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row = warp * 16 + lane / 2, half = lane % 2, rot = 2 * half + (lane >= 16);  // rot: as in the forward
  const int qi = q0 + row;
  const size_t stride = 3 * (size_t)C;
  const float* base = qkv + (size_t)b * T * stride + (size_t)h * kTcHs;
  tc_load_tile(Qs, base, stride, q0, T);
  tc_load_tile(dOs, dout + (size_t)b * T * C + (size_t)h * kTcHs, (size_t)C, q0, T);
  const float lse_i = qi < T ? lse[(size_t)bh * T + qi] : 0.f;
  const float D_i = qi < T ? Drow[(size_t)bh * T + qi] : 0.f;
  FragC dq[kTcHs / 16];
  for (int n = 0; n < kTcHs / 16; n++) nvcuda::wmma::fill_fragment(dq[n], 0.f);
  const int kend = min(q0 + kTcTile, T);
  for (int k0 = 0; k0 < kend; k0 += kTcTile) {
    __syncthreads();
    tc_load_tile(Ks, base + C, stride, k0, T);
    tc_load_tile(Vs, base + 2 * C, stride, k0, T);
    __syncthreads();
    tc_rows_times_rows_t(Ss + warp * 16 * kTcLdf, Qs + warp * 16 * kTcLd, Ks);
    tc_rows_times_rows_t(dPs + warp * 16 * kTcLdf, dOs + warp * 16 * kTcLd, Vs);
    __syncwarp();
    const float* srow = Ss + row * kTcLdf + half * 32;
    const float* dprow = dPs + row * kTcLdf + half * 32;
    __nv_bfloat16* dsrow = dSs + row * kTcLd + half * 32;
    for (int c0 = 0; c0 < 32; c0++) {
      const int c = (c0 + rot) & 31;
      const bool live = qi < T && k0 + half * 32 + c <= qi;
      const float p = live ? expf(srow[c] * scale - lse_i) : 0.f;
      dsrow[c] = __float2bfloat16(live ? p * (dprow[c] - D_i) : 0.f);
    }
    __syncwarp();
    tc_accumulate(dq, dSs + warp * 16 * kTcLd, Ks);
  }
  for (int n = 0; n < kTcHs / 16; n++)
    nvcuda::wmma::store_matrix_sync(Ss + warp * 16 * kTcLdf + n * 16, dq[n], kTcLdf, nvcuda::wmma::mem_row_major);
  __syncwarp();
  tc_store_rows(dqkv + (size_t)b * T * stride + (size_t)h * kTcHs, stride, Ss + warp * 16 * kTcLdf, q0 + warp * 16, T, scale);
}

/**
 * dK and dV of one tile of 64 keys, over the query tiles at or after it (as flash_attention_backward_dkdv_kernel):
 * in the transposed view, S^T = k q^T and dP^T = v dO^T per warp's 16 keys, then dV += P^T dO and dK += dS^T q.
 */
__global__ void __launch_bounds__(kTcThreads) tc_flash_backward_dkdv_kernel(float* dqkv, const float* dout, const float* qkv, const float* lse,
                                                                            const float* Drow, int T, int NH, float scale) {
  extern __shared__ __align__(128) float smem[];
  __nv_bfloat16* Ks = reinterpret_cast<__nv_bfloat16*>(smem);
  __nv_bfloat16* Vs = Ks + kTcTile * kTcLd;
  __nv_bfloat16* Qs = Vs + kTcTile * kTcLd;
  __nv_bfloat16* dOs = Qs + kTcTile * kTcLd;
  __nv_bfloat16* Pts = dOs + kTcTile * kTcLd;
  __nv_bfloat16* dSts = Pts + kTcTile * kTcLd;
  float* Sts = reinterpret_cast<float*>(dSts + kTcTile * kTcLd);
  float* dPts = Sts + kTcTile * kTcLdf;
  float* lse_s = dPts + kTcTile * kTcLdf;
  float* D_s = lse_s + kTcTile;
  const int C = NH * kTcHs, bh = blockIdx.y, b = bh / NH, h = bh % NH;
  const int k0 = blockIdx.x * kTcTile, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int krow = warp * 16 + lane / 2, half = lane % 2;  // this lane's key of the tile, and its 32 query columns
  const int rot = 2 * half + (lane >= 16);                 // as in the forward
  const int kj = k0 + krow;
  const size_t stride = 3 * (size_t)C;
  const float* base = qkv + (size_t)b * T * stride + (size_t)h * kTcHs;
  const float* dbase = dout + (size_t)b * T * C + (size_t)h * kTcHs;
  tc_load_tile(Ks, base + C, stride, k0, T);
  tc_load_tile(Vs, base + 2 * C, stride, k0, T);
  FragC dk[kTcHs / 16], dv[kTcHs / 16];
  for (int n = 0; n < kTcHs / 16; n++) {
    nvcuda::wmma::fill_fragment(dk[n], 0.f);
    nvcuda::wmma::fill_fragment(dv[n], 0.f);
  }
  for (int q0 = k0; q0 < T; q0 += kTcTile) {
    __syncthreads();  // the previous tile's readers are done (and Ks, Vs are published the first time)
    tc_load_tile(Qs, base, stride, q0, T);
    tc_load_tile(dOs, dbase, (size_t)C, q0, T);
    for (int i = threadIdx.x; i < kTcTile; i += blockDim.x) {
      lse_s[i] = q0 + i < T ? lse[(size_t)bh * T + q0 + i] : 0.f;
      D_s[i] = q0 + i < T ? Drow[(size_t)bh * T + q0 + i] : 0.f;
    }
    __syncthreads();
    tc_rows_times_rows_t(Sts + warp * 16 * kTcLdf, Ks + warp * 16 * kTcLd, Qs);
    tc_rows_times_rows_t(dPts + warp * 16 * kTcLdf, Vs + warp * 16 * kTcLd, dOs);
    __syncwarp();
    const float* srow = Sts + krow * kTcLdf + half * 32;
    const float* dprow = dPts + krow * kTcLdf + half * 32;
    __nv_bfloat16* prow = Pts + krow * kTcLd + half * 32;
    __nv_bfloat16* dsrow = dSts + krow * kTcLd + half * 32;
    for (int c0 = 0; c0 < 32; c0++) {
      const int c = (c0 + rot) & 31, i = half * 32 + c, qi = q0 + i;
      const bool live = kj < T && qi < T && kj <= qi;
      const float p = live ? expf(srow[c] * scale - lse_s[i]) : 0.f;
      prow[c] = __float2bfloat16(p);
      dsrow[c] = __float2bfloat16(live ? p * (dprow[c] - D_s[i]) : 0.f);
    }
    __syncwarp();
    tc_accumulate(dv, Pts + warp * 16 * kTcLd, dOs);
    tc_accumulate(dk, dSts + warp * 16 * kTcLd, Qs);
  }
  float* stage = Sts + warp * 16 * kTcLdf;
  float* dst = dqkv + (size_t)b * T * stride + (size_t)C + (size_t)h * kTcHs;  // the k part; the v part is C further
  __syncwarp();
#pragma unroll
  for (int n = 0; n < kTcHs / 16; n++) nvcuda::wmma::store_matrix_sync(stage + n * 16, dk[n], kTcLdf, nvcuda::wmma::mem_row_major);
  __syncwarp();
  tc_store_rows(dst, stride, stage, k0 + warp * 16, T, scale);
  __syncwarp();
#pragma unroll
  for (int n = 0; n < kTcHs / 16; n++) nvcuda::wmma::store_matrix_sync(stage + n * 16, dv[n], kTcLdf, nvcuda::wmma::mem_row_major);
  __syncwarp();
  tc_store_rows(dst + C, stride, stage, k0 + warp * 16, T, 1.f);
}

/** The tensor-core kernels' launches (BF16, heads of 64): grid (ceil(T / 64), B * NH). */
int tc_flash_forward(float* out, float* lse, const float* qkv, int B, int T, int NH) {
  if ((long)B * NH > 65535) return fail(GPT2_ERR_ARGUMENT, "flash attention: B * heads = %ld exceeds 65535; use a smaller batch", (long)B * NH);
  TRY(allow_smem(tc_flash_forward_kernel, kTcForwardSmem));
  const dim3 grid((T + kTcTile - 1) / kTcTile, B * NH);
  tc_flash_forward_kernel<<<grid, kTcThreads, kTcForwardSmem>>>(out, lse, qkv, T, NH, 1.f / sqrtf((float)kTcHs));
  LAUNCHED();
  return GPT2_OK;
}

int tc_flash_backward(float* dqkv, const float* dout, const float* qkv, const float* lse, const float* Drow, int B, int T, int NH) {
  if ((long)B * NH > 65535) return fail(GPT2_ERR_ARGUMENT, "flash attention: B * heads = %ld exceeds 65535; use a smaller batch", (long)B * NH);
  TRY(allow_smem(tc_flash_backward_dkdv_kernel, kTcDkdvSmem));
  TRY(allow_smem(tc_flash_backward_dq_kernel, kTcDqSmem));
  const dim3 grid((T + kTcTile - 1) / kTcTile, B * NH);
  const float scale = 1.f / sqrtf((float)kTcHs);
  tc_flash_backward_dkdv_kernel<<<grid, kTcThreads, kTcDkdvSmem>>>(dqkv, dout, qkv, lse, Drow, T, NH, scale);
  LAUNCHED();
  tc_flash_backward_dq_kernel<<<grid, kTcThreads, kTcDqSmem>>>(dqkv, dout, qkv, lse, Drow, T, NH, scale);
  LAUNCHED();
  return GPT2_OK;
}

}  // namespace

#endif
