// CPU emulation of the CUDA toolkit for tests (see ../README.md): the warp matrix functions (nvcuda::wmma) on
// 16 x 16 x 16 tiles. A fragment's layout across the lanes is opaque to a kernel, so here every lane holds the whole
// tile of the operands. Of an accumulator, a lane computes and stores only its share (every 32nd element), as on the
// GPU the lanes store their own elements: a lane that reads the stored tile before the warp's __syncwarp() sees its
// neighbours' elements missing. (So a kernel may not read an accumulator's elements through `x`.) Each call
// checks what the GPU faults on: a pointer not aligned to 32 bytes, a leading dimension not a multiple of 16 bytes.
#ifndef GPT2_EMU_MMA_H
#define GPT2_EMU_MMA_H
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <type_traits>

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  static constexpr int rows = std::is_same<Use, matrix_b>::value ? K : M;
  static constexpr int cols = std::is_same<Use, matrix_a>::value ? K : N;
  static constexpr int num_elements = rows * cols;
  T x[rows * cols];  // the whole tile, row-major
};

namespace detail {
inline float to_float(float v) { return v; }
inline float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T>
void check(const void* p, unsigned ldm, const char* what) {
  ::emu::wmma_check(p, ldm * sizeof(T), what);
}
}  // namespace detail

template <typename Use, int M, int N, int K, typename T, typename Layout>
void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const T* p, unsigned ldm) {
  static_assert(!std::is_same<Use, accumulator>::value, "an accumulator load needs a layout_t");
  detail::check<T>(p, ldm, "load_matrix_sync");
  using F = fragment<Use, M, N, K, T, Layout>;
  for (int r = 0; r < F::rows; r++)
    for (int c = 0; c < F::cols; c++) f.x[r * F::cols + c] = std::is_same<Layout, row_major>::value ? p[r * ldm + c] : p[c * ldm + r];
}

template <int M, int N, int K, typename T>
void load_matrix_sync(fragment<accumulator, M, N, K, T, void>& f, const T* p, unsigned ldm, layout_t l) {
  detail::check<T>(p, ldm, "load_matrix_sync");
  for (int r = 0; r < M; r++)
    for (int c = 0; c < N; c++) f.x[r * N + c] = l == mem_row_major ? p[r * ldm + c] : p[c * ldm + r];
}

template <int M, int N, int K, typename T>
void store_matrix_sync(T* p, const fragment<accumulator, M, N, K, T, void>& f, unsigned ldm, layout_t l) {
  detail::check<T>(p, ldm, "store_matrix_sync");
  const int lane = ::emu::lane_id();
  for (int i = lane; i < M * N; i += 32) {
    const int r = i / N, c = i % N;
    (l == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]) = f.x[i];
  }
}

template <typename Use, int M, int N, int K, typename T, typename Layout>
void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, T v) {
  for (int i = 0; i < f.num_elements; i++) f.x[i] = v;
}

template <int M, int N, int K, typename TA, typename LA, typename TB, typename LB, typename TC>
void mma_sync(fragment<accumulator, M, N, K, TC, void>& d, const fragment<matrix_a, M, N, K, TA, LA>& a,
              const fragment<matrix_b, M, N, K, TB, LB>& b, const fragment<accumulator, M, N, K, TC, void>& c) {
  // only the lane's share of the product: the only elements that its stores write
  fragment<accumulator, M, N, K, TC, void> r = c;
  for (int e = ::emu::lane_id(); e < M * N; e += 32) {
    const int i = e / N, j = e % N;
    float s = c.x[e];
    for (int k = 0; k < K; k++) s += detail::to_float(a.x[i * K + k]) * detail::to_float(b.x[k * N + j]);
    r.x[e] = s;
  }
  d = r;
}

}  // namespace wmma
}  // namespace nvcuda
#endif
