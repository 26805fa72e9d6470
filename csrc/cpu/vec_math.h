// exp, log and cos in float that gcc can vectorise: glibc's expf/logf/cosf are scalar calls
// per element, which made the row-wise KL and the Gaussian random start slower than torch.
//
// vec_exp:
// Classic Cody-Waite scheme: x = k ln2 + r with k = round(x / ln2) and |r| <= ln2 / 2, ln2
// split in a high part exact in float and a low correction; exp(r) by its degree-7 Taylor
// polynomial (truncation error < 1e-8 relative on that interval); 2^k assembled in the
// exponent bits. Accuracy is about 2 ulp. Results below FLT_MIN flush to 0 (a softmax
// term that small does not change any float sum); NaN propagates; x > 88 gives inf (true
// overflow is at 88.72; the KL kernels only pass max-shifted logits, x <= 0).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "cpu/common.h"

namespace fastadv {

FASTADV_INLINE float vec_exp(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693145751953125f;   // 12 significant bits: k * kLn2Hi is exact
  constexpr float kLn2Lo = 1.428606765330187e-06f;
  constexpr float kRound = 12582912.0f;           // 1.5 * 2^23: adding it rounds to integer
  const float xc = min_nan(max_nan(x, -87.33654475f), 88.0f);  // ln(FLT_MIN), below 2^127
  const float k = (xc * kLog2e + kRound) - kRound;
  const float r = (xc - k * kLn2Hi) - k * kLn2Lo;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(k) + 127) << 23;
  float two_k;
  std::memcpy(&two_k, &bits, sizeof two_k);
  float y = p * two_k;
  y = x < -87.33654475f ? 0.0f : y;
  y = x > 88.0f ? INFINITY : y;
  return y;
}

// log(x) for positive normal x: x = m 2^e with m in [sqrt(1/2), sqrt(2)); with
// s = (m - 1) / (m + 1), log m = 2 (s + s^3/3 + s^5/5 + s^7/7 + s^9/9) (|s| < 0.172, so the
// next term is below 1e-9 relative). Used on Box-Muller's u1 in (0, 1], never 0 or subnormal.
FASTADV_INLINE float vec_log(float x) {
  const uint32_t bits = float_to_bits(x);
  int32_t e = static_cast<int32_t>(bits >> 23) - 127;
  float m = bits_to_float((bits & 0x7fffffu) | 0x3f800000u);
  const bool high = m > 1.41421356f;
  m = high ? 0.5f * m : m;
  e = high ? e + 1 : e;
  const float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
  float p = 1.0f / 9.0f;
  p = p * s2 + 1.0f / 7.0f;
  p = p * s2 + 1.0f / 5.0f;
  p = p * s2 + 1.0f / 3.0f;
  p = p * s2 + 1.0f;
  return static_cast<float>(e) * 0.693147180559945f + 2.0f * s * p;
}

// cos(2 pi u) for u in [0, 1): folded to an angle in [0, pi/2] (cos is even and
// cos(2 pi a) = -cos(2 pi (1/2 - a))), then the Taylor series to theta^12 (error < 1e-8).
FASTADV_INLINE float vec_cos_2pi(float u) {
  const float t = u < 0.5f ? u : u - 1.0f;
  const float a = t < 0.0f ? -t : t;
  const bool flip = a > 0.25f;
  const float theta = 6.28318530717959f * (flip ? 0.5f - a : a);
  const float t2 = theta * theta;
  float p = 1.0f / 479001600.0f;
  p = p * t2 - 1.0f / 3628800.0f;
  p = p * t2 + 1.0f / 40320.0f;
  p = p * t2 - 1.0f / 720.0f;
  p = p * t2 + 1.0f / 24.0f;
  p = p * t2 - 0.5f;
  p = p * t2 + 1.0f;
  return flip ? -p : p;
}

// Box-Muller from one 64-bit draw, as counter_rng.h's box_muller but with the vectorisable
// functions above (agrees with it to about 1e-6).
FASTADV_INLINE float vec_box_muller(uint64_t r) {
  const float u1 = static_cast<float>(static_cast<uint32_t>(r >> 40) + 1u) * (1.0f / 16777216.0f);
  const float u2 = static_cast<float>(static_cast<uint32_t>(r & 0xffffffu)) * (1.0f / 16777216.0f);
  return std::sqrt(-2.0f * vec_log(u1)) * vec_cos_2pi(u2);
}

}  // namespace fastadv
