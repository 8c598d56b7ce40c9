// CPU emulation of the CUDA toolkit for tests (see ../README.md): bfloat16, rounded to nearest even as the GPU does.
#ifndef GPT2_EMU_CUDA_BF16_H
#define GPT2_EMU_CUDA_BF16_H
#include <cstdint>
#include <cstring>

#ifdef GPT2_EMU_EXACT_BF16
// build.sh --exact-bf16: a "bf16" that keeps all of a float's bits, so that the BF16 code paths can be checked
// against FP32 results with FP32 tolerances (the rounding itself is checked by the normal build)
struct __nv_bfloat16 {
  float x;
};
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16{f}; }
inline float __bfloat162float(__nv_bfloat16 h) { return h.x; }
#else
struct __nv_bfloat16 {
  uint16_t x;
};

inline __nv_bfloat16 __float2bfloat16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  __nv_bfloat16 r;
  if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN stays a (quiet) NaN
    r.x = (uint16_t)((u >> 16) | 0x40u);
    return r;
  }
  u += 0x7fffu + ((u >> 16) & 1u);
  r.x = (uint16_t)(u >> 16);
  return r;
}

inline float __bfloat162float(__nv_bfloat16 h) {
  const uint32_t u = (uint32_t)h.x << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
#endif
#endif
