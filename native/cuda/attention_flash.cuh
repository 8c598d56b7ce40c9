// The flash-style causal attention in FP32 (the default path, and BF16's with heads other than 64): an online softmax
// that keeps only each row's logsumexp (B, NH, T), and a backward that recomputes the probabilities from q, k and that
// logsumexp (dK and dV per key tile, dQ per query tile), with no atomics and no (T, T) rows. Part of
// native/cuda/gpt2_cuda.cu; attention_tc.cuh runs the same algorithm on tensor cores.
#ifndef GPT2_CUDA_ATTENTION_FLASH_CUH
#define GPT2_CUDA_ATTENTION_FLASH_CUH

#include "common.cuh"

namespace {

// q, k, v are read in place from qkv (B, T, 3C) (head h at columns h*hs, C + h*hs, 2C + h*hs) and the output goes
// straight to (B, T, C). A block of 256 threads works on one (b, h) and one tile of 32 rows (queries, or keys in the
// dK/dV kernel): thread (r, sub) = (threadIdx.x / 8, threadIdx.x % 8) owns row r of the tile; of the 32 columns of a
// score tile it computes j = sub, sub + 8, sub + 16, sub + 24, and of the hs output dims d = sub + 8 k. The 8
// threads of a row are 8 consecutive lanes of one warp (row reductions are three xor shuffles). Tiles of hs floats
// are stored with a row stride of hs + 1 and score tiles with 33, so the column reads do not hit one bank. Rows past T
// are loaded as zeros, masked out of every score, and never written. D (a template parameter) bounds the output
// dims per thread: hs <= 8 D.

constexpr int kFlashTile = 32;
constexpr int kFlashLanes = 8;
constexpr int kFlashThreads = kFlashTile * kFlashLanes;
constexpr int kFlashCols = kFlashTile / kFlashLanes;  // score columns per thread
constexpr int kFlashMaxHs = 256;

__device__ inline float row_max8(float v) {
  for (int o = kFlashLanes / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ inline float row_sum8(float v) {
  for (int o = kFlashLanes / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/** dst (32, ld) = rows t0 .. t0+31 of src (row stride `stride`, hs floats each), zeros past T. */
__device__ inline void flash_load_tile(float* dst, int ld, const float* src, size_t stride, int t0, int T, int hs) {
  for (int i = threadIdx.x; i < kFlashTile * hs; i += blockDim.x) {
    const int r = i / hs, d = i % hs, t = t0 + r;
    dst[r * ld + d] = t < T ? src[(size_t)t * stride + d] : 0.f;
  }
}

inline size_t flash_forward_smem(int hs) { return (3 * (size_t)kFlashTile * (hs + 1) + kFlashTile * 33) * sizeof(float); }
inline size_t flash_dkdv_smem(int hs) { return (4 * (size_t)kFlashTile * (hs + 1) + 2 * kFlashTile * 33 + 2 * kFlashTile) * sizeof(float); }
inline size_t flash_dq_smem(int hs) { return (4 * (size_t)kFlashTile * (hs + 1) + kFlashTile * 33) * sizeof(float); }

/**
 * out (B, T, C) = softmax(scale q k^T, causal) v per head; lse (B, NH, T) = the logsumexp of each row's scaled
 * scores. Grid (ceil(T / 32), B * NH). Online softmax: per key tile, m' = max(m, tile max), l = l e^(m - m') + sum
 * e^(s - m'), o = o e^(m - m') + P v; at the end out = o / l and lse = m + log l.
 */
template <int D>
__global__ void __launch_bounds__(kFlashThreads) flash_attention_forward_kernel(float* out, float* lse, const float* qkv, int T, int NH,
                                                                                 int hs, float scale) {
  extern __shared__ float smem[];
  const int ld = hs + 1, C = NH * hs;
  float* Qs = smem;
  float* Ks = Qs + kFlashTile * ld;
  float* Vs = Ks + kFlashTile * ld;
  float* Ps = Vs + kFlashTile * ld;  // (32, 33)
  const int bh = blockIdx.y, b = bh / NH, h = bh % NH;
  const int q0 = blockIdx.x * kFlashTile;
  const int r = threadIdx.x / kFlashLanes, sub = threadIdx.x % kFlashLanes;
  const int qi = q0 + r;
  const int qlim = min(qi, T - 1);  // the last key this row sees; a row past T mirrors row T-1 and writes nothing
  const size_t stride = 3 * (size_t)C;
  const float* base = qkv + (size_t)b * T * stride + (size_t)h * hs;
  flash_load_tile(Qs, ld, base, stride, q0, T, hs);
  float o[D];
#pragma unroll
  for (int k = 0; k < D; k++) o[k] = 0.f;
  float m = -INFINITY, l = 0.f;
  const int kend = min(q0 + kFlashTile, T);
  // every key tile starts at k0 <= q0 <= qlim, so each row has at least one live score per tile: m stays finite
  for (int k0 = 0; k0 < kend; k0 += kFlashTile) {
    __syncthreads();  // the previous tile's readers are done
    flash_load_tile(Ks, ld, base + C, stride, k0, T, hs);
    flash_load_tile(Vs, ld, base + 2 * C, stride, k0, T, hs);
    __syncthreads();
    float s[kFlashCols];
#pragma unroll
    for (int jj = 0; jj < kFlashCols; jj++) s[jj] = 0.f;
    for (int d = 0; d < hs; d++) {
      const float qd = Qs[r * ld + d];
#pragma unroll
      for (int jj = 0; jj < kFlashCols; jj++) s[jj] += qd * Ks[(sub + kFlashLanes * jj) * ld + d];
    }
    float tmax = -INFINITY;
#pragma unroll
    for (int jj = 0; jj < kFlashCols; jj++) {
      s[jj] = k0 + sub + kFlashLanes * jj <= qlim ? s[jj] * scale : -INFINITY;
      tmax = fmaxf(tmax, s[jj]);
    }
    const float mnew = fmaxf(m, row_max8(tmax));
    const float alpha = expf(m - mnew);  // 0 on the first tile (m = -inf)
    float psum = 0.f;
#pragma unroll
    for (int jj = 0; jj < kFlashCols; jj++) {
      const float p = expf(s[jj] - mnew);  // 0 where masked
      Ps[r * 33 + sub + kFlashLanes * jj] = p;
      psum += p;
    }
    l = l * alpha + row_sum8(psum);
    m = mnew;
    __syncthreads();  // Ps complete
#pragma unroll
    for (int k = 0; k < D; k++) {
      const int d = sub + kFlashLanes * k;
      if (d < hs) {
        float acc = 0.f;
        for (int j = 0; j < kFlashTile; j++) acc += Ps[r * 33 + j] * Vs[j * ld + d];
        o[k] = o[k] * alpha + acc;
      }
    }
  }
  if (qi < T) {
    const float inv = 1.f / l;
    float* orow = out + ((size_t)b * T + qi) * C + (size_t)h * hs;
#pragma unroll
    for (int k = 0; k < D; k++) {
      const int d = sub + kFlashLanes * k;
      if (d < hs) orow[d] = o[k] * inv;
    }
    if (sub == 0) lse[(size_t)bh * T + qi] = m + logf(l);
  }
}

/** Drow (B, NH, T) = sum over d of dout * out for each (b, t, h), both (B, T, C). One warp per (b, t, h). */
__global__ void flash_attention_rowdot_kernel(float* Drow, const float* dout, const float* out, int B, int T, int NH, int hs) {
  const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= B * T * NH) return;
  const int h = row % NH, t = row / NH % T, b = row / (NH * T);
  const size_t o = ((size_t)b * T + t) * NH * hs + (size_t)h * hs;
  float s = 0.f;
  for (int d = lane; d < hs; d += 32) s += dout[o + d] * out[o + d];
  s = warp_sum(s);
  if (lane == 0) Drow[((size_t)b * NH + h) * T + t] = s;
}

/**
 * dK and dV of one tile of 32 keys (grid (ceil(T / 32), B * NH)), over the query tiles at or after it:
 * P = exp(scale q k^T - lse) (0 where the key is after the query), dV += P^T dO, dS = P (dO v^T - D), dK += scale dS^T q.
 * Writes the k and v parts of dqkv (B, T, 3C).
 */
template <int D>
__global__ void __launch_bounds__(kFlashThreads) flash_attention_backward_dkdv_kernel(float* dqkv, const float* dout, const float* qkv,
                                                                                       const float* lse, const float* Drow, int T, int NH,
                                                                                       int hs, float scale) {
  extern __shared__ float smem[];
  const int ld = hs + 1, C = NH * hs;
  float* Ks = smem;
  float* Vs = Ks + kFlashTile * ld;
  float* Qs = Vs + kFlashTile * ld;
  float* dOs = Qs + kFlashTile * ld;
  float* Ps = dOs + kFlashTile * ld;  // (32 keys, 33)
  float* dSs = Ps + kFlashTile * 33;  // (32 keys, 33)
  float* lse_s = dSs + kFlashTile * 33;
  float* D_s = lse_s + kFlashTile;
  const int bh = blockIdx.y, b = bh / NH, h = bh % NH;
  const int k0 = blockIdx.x * kFlashTile;
  const int r = threadIdx.x / kFlashLanes, sub = threadIdx.x % kFlashLanes;
  const int kj = k0 + r;  // this thread's key
  const size_t stride = 3 * (size_t)C;
  const float* base = qkv + (size_t)b * T * stride + (size_t)h * hs;
  const float* dbase = dout + (size_t)b * T * C + (size_t)h * hs;
  flash_load_tile(Ks, ld, base + C, stride, k0, T, hs);
  flash_load_tile(Vs, ld, base + 2 * C, stride, k0, T, hs);
  float dk[D], dv[D];
#pragma unroll
  for (int k = 0; k < D; k++) dk[k] = dv[k] = 0.f;
  for (int q0 = k0; q0 < T; q0 += kFlashTile) {
    __syncthreads();  // the previous tile's readers are done
    flash_load_tile(Qs, ld, base, stride, q0, T, hs);
    flash_load_tile(dOs, ld, dbase, (size_t)C, q0, T, hs);
    for (int i = threadIdx.x; i < kFlashTile; i += blockDim.x) {
      const int t = q0 + i;
      lse_s[i] = t < T ? lse[(size_t)bh * T + t] : 0.f;
      D_s[i] = t < T ? Drow[(size_t)bh * T + t] : 0.f;
    }
    __syncthreads();
    float s[kFlashCols], dp[kFlashCols];
#pragma unroll
    for (int ii = 0; ii < kFlashCols; ii++) s[ii] = dp[ii] = 0.f;
    for (int d = 0; d < hs; d++) {
      const float kd = Ks[r * ld + d], vd = Vs[r * ld + d];
#pragma unroll
      for (int ii = 0; ii < kFlashCols; ii++) {
        const int i = sub + kFlashLanes * ii;
        s[ii] += Qs[i * ld + d] * kd;
        dp[ii] += dOs[i * ld + d] * vd;
      }
    }
#pragma unroll
    for (int ii = 0; ii < kFlashCols; ii++) {
      const int i = sub + kFlashLanes * ii, qi = q0 + i;
      const bool live = qi < T && kj <= qi;
      const float p = live ? expf(s[ii] * scale - lse_s[i]) : 0.f;
      Ps[r * 33 + i] = p;
      dSs[r * 33 + i] = live ? p * (dp[ii] - D_s[i]) : 0.f;
    }
    __syncthreads();  // Ps and dSs complete
#pragma unroll
    for (int k = 0; k < D; k++) {
      const int d = sub + kFlashLanes * k;
      if (d < hs) {
        float av = 0.f, ak = 0.f;
        for (int i = 0; i < kFlashTile; i++) {
          av += Ps[r * 33 + i] * dOs[i * ld + d];
          ak += dSs[r * 33 + i] * Qs[i * ld + d];
        }
        dv[k] += av;
        dk[k] += ak;
      }
    }
  }
  if (kj < T) {
    float* row = dqkv + ((size_t)b * T + kj) * stride + (size_t)h * hs;
#pragma unroll
    for (int k = 0; k < D; k++) {
      const int d = sub + kFlashLanes * k;
      if (d < hs) {
        row[C + d] = dk[k] * scale;
        row[2 * C + d] = dv[k];
      }
    }
  }
}

/**
 * dQ of one tile of 32 queries (grid (ceil(T / 32), B * NH)), over the key tiles at or before it:
 * dS = P (dO v^T - D) as above, dQ = scale dS k. Writes the q part of dqkv (B, T, 3C).
 */
template <int D>
__global__ void __launch_bounds__(kFlashThreads) flash_attention_backward_dq_kernel(float* dqkv, const float* dout, const float* qkv,
                                                                                     const float* lse, const float* Drow, int T, int NH,
                                                                                     int hs, float scale) {
  extern __shared__ float smem[];
  const int ld = hs + 1, C = NH * hs;
  float* Qs = smem;
  float* dOs = Qs + kFlashTile * ld;
  float* Ks = dOs + kFlashTile * ld;
  float* Vs = Ks + kFlashTile * ld;
  float* dSs = Vs + kFlashTile * ld;  // (32 queries, 33)
  const int bh = blockIdx.y, b = bh / NH, h = bh % NH;
  const int q0 = blockIdx.x * kFlashTile;
  const int r = threadIdx.x / kFlashLanes, sub = threadIdx.x % kFlashLanes;
  const int qi = q0 + r;
  const size_t stride = 3 * (size_t)C;
  const float* base = qkv + (size_t)b * T * stride + (size_t)h * hs;
  flash_load_tile(Qs, ld, base, stride, q0, T, hs);
  flash_load_tile(dOs, ld, dout + (size_t)b * T * C + (size_t)h * hs, (size_t)C, q0, T, hs);
  const float lse_i = qi < T ? lse[(size_t)bh * T + qi] : 0.f;
  const float D_i = qi < T ? Drow[(size_t)bh * T + qi] : 0.f;
  float dq[D];
#pragma unroll
  for (int k = 0; k < D; k++) dq[k] = 0.f;
  const int kend = min(q0 + kFlashTile, T);
  for (int k0 = 0; k0 < kend; k0 += kFlashTile) {
    __syncthreads();  // the previous tile's readers are done (and Qs, dOs are published the first time)
    flash_load_tile(Ks, ld, base + C, stride, k0, T, hs);
    flash_load_tile(Vs, ld, base + 2 * C, stride, k0, T, hs);
    __syncthreads();
    float s[kFlashCols], dp[kFlashCols];
#pragma unroll
    for (int jj = 0; jj < kFlashCols; jj++) s[jj] = dp[jj] = 0.f;
    for (int d = 0; d < hs; d++) {
      const float qd = Qs[r * ld + d], od = dOs[r * ld + d];
#pragma unroll
      for (int jj = 0; jj < kFlashCols; jj++) {
        const int j = sub + kFlashLanes * jj;
        s[jj] += qd * Ks[j * ld + d];
        dp[jj] += od * Vs[j * ld + d];
      }
    }
#pragma unroll
    for (int jj = 0; jj < kFlashCols; jj++) {
      const int j = sub + kFlashLanes * jj;
      const bool live = qi < T && k0 + j <= qi;
      const float p = live ? expf(s[jj] * scale - lse_i) : 0.f;
      dSs[r * 33 + j] = live ? p * (dp[jj] - D_i) : 0.f;
    }
    __syncthreads();  // dSs complete
#pragma unroll
    for (int k = 0; k < D; k++) {
      const int d = sub + kFlashLanes * k;
      if (d < hs) {
        float acc = 0.f;
        for (int j = 0; j < kFlashTile; j++) acc += dSs[r * 33 + j] * Ks[j * ld + d];
        dq[k] += acc;
      }
    }
  }
  if (qi < T) {
    float* row = dqkv + ((size_t)b * T + qi) * stride + (size_t)h * hs;
#pragma unroll
    for (int k = 0; k < D; k++) {
      const int d = sub + kFlashLanes * k;
      if (d < hs) row[d] = dq[k] * scale;
    }
  }
}

/** The launches for heads of at most 8 D dims: grid (ceil(T / 32), B * NH). */
template <int D>
int flash_forward_hs(float* out, float* lse, const float* qkv, int B, int T, int NH, int hs) {
  if ((long)B * NH > 65535) return fail(GPT2_ERR_ARGUMENT, "flash attention: B * heads = %ld exceeds 65535; use a smaller batch", (long)B * NH);
  const size_t smem = flash_forward_smem(hs);
  TRY(allow_smem(flash_attention_forward_kernel<D>, smem));
  const dim3 grid((T + kFlashTile - 1) / kFlashTile, B * NH);
  flash_attention_forward_kernel<D><<<grid, kFlashThreads, smem>>>(out, lse, qkv, T, NH, hs, 1.f / sqrtf((float)hs));
  LAUNCHED();
  return GPT2_OK;
}

template <int D>
int flash_backward_hs(float* dqkv, const float* dout, const float* qkv, const float* lse, const float* Drow, int B, int T, int NH, int hs) {
  if ((long)B * NH > 65535) return fail(GPT2_ERR_ARGUMENT, "flash attention: B * heads = %ld exceeds 65535; use a smaller batch", (long)B * NH);
  const dim3 grid((T + kFlashTile - 1) / kFlashTile, B * NH);
  const float scale = 1.f / sqrtf((float)hs);
  const size_t smem_kv = flash_dkdv_smem(hs), smem_q = flash_dq_smem(hs);
  TRY(allow_smem(flash_attention_backward_dkdv_kernel<D>, smem_kv));
  TRY(allow_smem(flash_attention_backward_dq_kernel<D>, smem_q));
  flash_attention_backward_dkdv_kernel<D><<<grid, kFlashThreads, smem_kv>>>(dqkv, dout, qkv, lse, Drow, T, NH, hs, scale);
  LAUNCHED();
  flash_attention_backward_dq_kernel<D><<<grid, kFlashThreads, smem_q>>>(dqkv, dout, qkv, lse, Drow, T, NH, hs, scale);
  LAUNCHED();
  return GPT2_OK;
}

/**
 * out (B, T, C) = causal self-attention of qkv (B, T, 3C); lse (B, NH, T) = the logsumexp of each row's scaled scores.
 * Heads of up to 64 dims take the kernels with 8 output dims per thread, wider ones (up to kFlashMaxHs) 32.
 */
int flash_forward(float* out, float* lse, const float* qkv, int B, int T, int NH, int hs) {
  return hs <= 8 * 8 ? flash_forward_hs<8>(out, lse, qkv, B, T, NH, hs) : flash_forward_hs<kFlashMaxHs / 8>(out, lse, qkv, B, T, NH, hs);
}

/** Drow (B, NH, T) = rowsum(dout * out), the D of the backward; both (B, T, C). */
int flash_rowdot(float* Drow, const float* dout, const float* out, int B, int T, int NH, int hs) {
  const int rows = B * T * NH;
  flash_attention_rowdot_kernel<<<(rows + 7) / 8, 256>>>(Drow, dout, out, B, T, NH, hs);
  LAUNCHED();
  return GPT2_OK;
}

/** dqkv (B, T, 3C) (overwritten) from dout (B, T, C), qkv and lse as the forward left them, and Drow (flash_rowdot). */
int flash_backward(float* dqkv, const float* dout, const float* qkv, const float* lse, const float* Drow, int B, int T, int NH, int hs) {
  return hs <= 8 * 8 ? flash_backward_hs<8>(dqkv, dout, qkv, lse, Drow, B, T, NH, hs)
                     : flash_backward_hs<kFlashMaxHs / 8>(dqkv, dout, qkv, lse, Drow, B, T, NH, hs);
}

}  // namespace

#endif
