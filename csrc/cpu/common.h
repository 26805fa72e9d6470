// Shared helpers of the C++/OpenMP kernels (csrc/cpu/*.cpp, the module fastadv._C).
//
// Why raw pointers: the extension is built without torch headers (torch must not be a build
// requirement, see DESIGN.md "Build"), so Python passes data_ptr() integers, the element count
// and scalars; every tensor of one call has the same dense layout and is treated as flat.
//
// Float16 storage is loaded to float, computed in float and rounded back with round-to-nearest-
// even after each operation the reference performs, which is exactly what eager torch does for
// half tensors on CPU (compute in float, store half), so results match it bit for bit.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/step_formula.h"  // max_nan, min_nan, sign_of

#ifdef _OPENMP
#include <omp.h>
#endif

// Kernels are compiled three times on x86-64 (baseline SSE2, x86-64-v3 = AVX2, x86-64-v4 =
// AVX-512) and the loader picks one per machine. AVX-512 matters beyond width: it has the
// 64-bit vector multiply the counter RNG needs (4x faster random start) and wide integer ops
// for the float16 bit conversions. FMA contraction is disabled by the build flags
// (-ffp-contract=off), so every clone rounds exactly like the reference.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && __GNUC__ >= 11 && \
    defined(__linux__)
#define FASTADV_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FASTADV_CLONES
#endif

#define FASTADV_INLINE inline __attribute__((always_inline))

namespace fastadv {

enum DType : int { kFloat32 = 0, kFloat16 = 1 };

// IEEE binary16 storage converted with integer and float bit tricks instead of _Float16:
// gcc 12 converts _Float16 one element at a time (a libgcc call without F16C), while these
// branch-free forms vectorise with plain SSE2/AVX2. half -> float is exact; float -> half
// rounds to nearest even, NaN becomes the quiet NaN 0x7e00 like torch's c10::Half (checked
// against F16C hardware conversion for all 2^32 float bit patterns when written, and against
// torch for all 65536 halves in tests/ops/test_backend_cpp.py).
struct half_t {
  uint16_t bits;
};

FASTADV_INLINE float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
FASTADV_INLINE uint32_t float_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

FASTADV_INLINE float half_to_float(half_t h) {
  const uint32_t sign = static_cast<uint32_t>(h.bits & 0x8000u) << 16;
  const uint32_t magnitude = static_cast<uint32_t>(h.bits & 0x7fffu) << 13;
  // Placing the half's exponent and mantissa in a float and scaling by 2^(127-15) rebases the
  // exponent, and turns half subnormals into the right normal floats, in one exact multiply.
  const float scaled = bits_to_float(magnitude) * 5.192296858534828e+33f;  // 2^112
  const uint32_t finite = float_to_bits(scaled);
  const uint32_t special = magnitude | 0x7f800000u;  // inf / NaN keep their mantissa
  return bits_to_float(sign | (magnitude >= (0x7c00u << 13) ? special : finite));
}

FASTADV_INLINE half_t float_to_half(float f) {
  const uint32_t u = float_to_bits(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7fffffffu;
  // |f| >= 2^16 (or inf/NaN): inf, or a quiet NaN.
  const uint32_t big = a > 0x7f800000u ? 0x7e00u : 0x7c00u;
  // |f| < 2^-14: half subnormal or zero. Adding 0.5 puts the half's subnormal grid on the
  // float's last mantissa bits, so the hardware add rounds to nearest even for us.
  const uint32_t small = float_to_bits(bits_to_float(a) + 0.5f) - 0x3f000000u;
  // Normal range: rebias the exponent, round to nearest even on the 13 dropped bits (a carry
  // into the exponent is the correct result, up to inf).
  const uint32_t odd = (a >> 13) & 1u;
  const uint32_t normal = (a + 0xc8000fffu + odd) >> 13;  // 0xc8000fff = ((15 - 127) << 23) + 0xfff
  const uint32_t magnitude = a >= 0x47800000u ? big : (a < 0x38800000u ? small : normal);
  return {static_cast<uint16_t>(sign | magnitude)};
}

// v rounded to the nearest half value (ties to even), kept in float: adding c = 2^(E + 13),
// E = v's exponent, leaves exactly 11 significant bits of v, so the FPU's own rounding does
// the work; c = 0.5 below 2^-14 gives the subnormal grid 2^-24. Same result as
// half_to_float(float_to_half(v)) in about a third of the instructions.
FASTADV_INLINE float round_to_half(float v) {
  const uint32_t u = float_to_bits(v);
  const uint32_t sign = u & 0x80000000u, a = u & 0x7fffffffu;
  uint32_t c_bits = (a & 0x7f800000u) + (13u << 23);
  c_bits = c_bits < 0x3f000000u ? 0x3f000000u : c_bits;
  const float c = bits_to_float(c_bits | sign);
  // The sign is put back because (-tiny + -0.5) - -0.5 is +0, not -0.
  const float r = bits_to_float(float_to_bits((v + c) - c) | sign);
  // |v| >= 65520 rounds to inf (and c may have overflowed); NaN stays NaN.
  const float inf = bits_to_float(sign | 0x7f800000u);
  return a >= 0x477ff000u && a <= 0x7f800000u ? inf : (a > 0x7f800000u ? v : r);
}

// Load/store/round for a storage type: identity for float, half round trip for half_t.
template <class T> struct Num;
template <> struct Num<float> {
  static FASTADV_INLINE float load(float v) { return v; }
  static FASTADV_INLINE float store(float v) { return v; }
  static FASTADV_INLINE float round(float v) { return v; }
};
template <> struct Num<half_t> {
  static FASTADV_INLINE float load(half_t v) { return half_to_float(v); }
  static FASTADV_INLINE half_t store(float v) { return float_to_half(v); }
  static FASTADV_INLINE float round(float v) { return round_to_half(v); }
};

// The scalar of a tensor-scalar op as eager torch (2.13, CPU) uses it: for float16 it casts
// the Python scalar of an add/sub to half before computing in float, but keeps the scalar of a
// mul in float. Kernels that mirror the reference bit for bit pass the scalars they add
// (eps, tol) through added_scalar and use those they multiply by (alpha, scale) as given.
template <class T>
FASTADV_INLINE float added_scalar(float v) { return Num<T>::round(v); }

// Elementwise ops (the steps, masked_scale) give each thread at least this many elements.
constexpr int64_t kElementwiseMinPerThread = 1 << 15;

// Splits [0, n) into one contiguous, cache-line aligned range per thread. Small problems run
// on the calling thread: waking the OpenMP team costs microseconds, more than the work.
template <class Body>
void parallel_ranges(int64_t n, int threads, int64_t min_per_thread, Body&& body) {
  if (n <= 0) return;
  int64_t want = n / (min_per_thread > 0 ? min_per_thread : 1);
  int nt = threads < 1 ? 1 : threads;
  if (want < nt) nt = want < 1 ? 1 : static_cast<int>(want);
#ifdef _OPENMP
  if (nt > 1) {
#pragma omp parallel num_threads(nt)
    {
      const int64_t k = omp_get_num_threads(), t = omp_get_thread_num();
      // Align boundaries to 64 elements so no two threads write the same cache line.
      int64_t begin = (n * t / k) & ~int64_t(63), end = (n * (t + 1) / k) & ~int64_t(63);
      if (t == k - 1) end = n;
      if (begin < end) body(begin, end);
    }
    return;
  }
#endif
  (void)nt;
  body(0, n);
}

inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace fastadv
