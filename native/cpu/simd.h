// Portable SIMD for the CPU engine: GCC/Clang vector extensions sized to the widest vector the build targets
// (AVX-512: 16 floats, AVX/AVX2: 8, otherwise 4), plus a vectorized exp accurate to about 2 ulp.
#pragma once

#include <cstring>

namespace gpt2cpu {

#if defined(__AVX512F__)
constexpr int VL = 16;
#elif defined(__AVX__)
constexpr int VL = 8;
#else
constexpr int VL = 4;
#endif

typedef float vfloat __attribute__((vector_size(VL * 4)));
typedef int vint __attribute__((vector_size(VL * 4)));

static inline vfloat vload(const float* p) {
  vfloat v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
static inline void vstore(float* p, vfloat v) { std::memcpy(p, &v, sizeof v); }
static inline vfloat vset1(float x) { return vfloat{} + x; }
static inline vfloat vmax(vfloat a, vfloat b) { return a > b ? a : b; }
static inline vfloat vmin(vfloat a, vfloat b) { return a < b ? a : b; }
static inline float hsum(vfloat v) {
  float s = 0.f;
  for (int i = 0; i < VL; i++) s += v[i];
  return s;
}
static inline float hmax(vfloat v) {
  float m = v[0];
  for (int i = 1; i < VL; i++) m = v[i] > m ? v[i] : m;
  return m;
}

// exp(x) for each lane (Cephes expf): x = n ln2 + r with |r| <= ln2/2, exp(r) by a degree-6 polynomial, and 2^n
// put into the exponent bits. Inputs are clamped to [-87.3, 88.7], so the result is never inf or a denormal.
static inline vfloat vexp(vfloat x) {
  const vfloat hi = vset1(88.7f), lo = vset1(-87.3f);
  x = vmin(vmax(x, lo), hi);
  // n = round(x / ln2) with the 1.5 * 2^23 trick: adding it leaves the rounded integer in the low mantissa bits
  const vfloat magic = vset1(12582912.0f);
  vfloat t = x * vset1(1.44269504088896341f) + magic;
  vfloat n = t - magic;
  vfloat r = x - n * vset1(0.693359375f) - n * vset1(-2.12194440e-4f);
  vfloat p = vset1(1.9875691500e-4f);
  p = p * r + vset1(1.3981999507e-3f);
  p = p * r + vset1(8.3334519073e-3f);
  p = p * r + vset1(4.1665795894e-2f);
  p = p * r + vset1(1.6666665459e-1f);
  p = p * r + vset1(5.0000001201e-1f);
  p = p * r * r + r + vset1(1.0f);
  vint ti, mi;
  std::memcpy(&ti, &t, sizeof ti);
  std::memcpy(&mi, &magic, sizeof mi);
  vint e = ((ti - mi) + 127) << 23;  // 2^n as float bits
  vfloat scale;
  std::memcpy(&scale, &e, sizeof scale);
  return p * scale;
}

/** dot(a, b) over n floats, four vector accumulators wide. */
static inline float vdot(const float* a, const float* b, int n) {
  vfloat s0{}, s1{}, s2{}, s3{};
  int i = 0;
  for (; i + 4 * VL <= n; i += 4 * VL) {
    s0 += vload(a + i) * vload(b + i);
    s1 += vload(a + i + VL) * vload(b + i + VL);
    s2 += vload(a + i + 2 * VL) * vload(b + i + 2 * VL);
    s3 += vload(a + i + 3 * VL) * vload(b + i + 3 * VL);
  }
  for (; i + VL <= n; i += VL) s0 += vload(a + i) * vload(b + i);
  float s = hsum((s0 + s1) + (s2 + s3));
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

/** y (n) += a * x (n). */
static inline void vaxpy(float* y, float a, const float* x, int n) {
  const vfloat va = vset1(a);
  int i = 0;
  for (; i + VL <= n; i += VL) vstore(y + i, vload(y + i) + va * vload(x + i));
  for (; i < n; i++) y[i] += a * x[i];
}

// Scalar exp through the same polynomial (so a row's tail matches its body).
static inline float sexp(float x) {
  vfloat v = vset1(x);
  return vexp(v)[0];
}

}  // namespace gpt2cpu
